"""Structured configs owned by router_lab.export: its config groups' schemas and its run section."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ExportSection:
    """Run options of this stage (`export.*` on the command line)."""


SCHEMAS: list[tuple[str, str, type]] = []
