"""Structured configs owned by router_lab.train: its config groups' schemas and its run section."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainSection:
    """Run options of this stage (`train.*` on the command line)."""


SCHEMAS: list[tuple[str, str, type]] = []
