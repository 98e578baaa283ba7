"""Structured configs owned by router_lab.report: its config groups' schemas and its run section."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ReportSection:
    """Run options of this stage (`report.*` on the command line)."""


SCHEMAS: list[tuple[str, str, type]] = []
