"""Structured configs owned by router_lab.sim: its config groups' schemas and its run section."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SimSection:
    """Run options of this stage (`sim.*` on the command line)."""


SCHEMAS: list[tuple[str, str, type]] = []
