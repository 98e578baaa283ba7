"""Structured configs owned by router_lab.report: its run section (`report.*` on the command line)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ReportSection:
    """Run options of `router-lab report PATH`."""

    out_dir: str | None = None  # where summary.*, figures and report.html go; None: PATH/report
    title: str | None = None  # the page title; None: "router_lab report: <PATH>"
    time_windows: int = 40  # windows of the cloud-fraction/accuracy-over-time figure


SCHEMAS: list[tuple[str, str, type]] = []
