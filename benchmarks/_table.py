"""Shared output for benchmarks: a plain table for people, or one JSON object with `--json`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def emit(rows: list[dict[str, Any]], json_figures: dict[str, Any], argv: Sequence[str] | None = None) -> None:
    """Print ``rows`` as an aligned table, or ``json_figures`` as JSON when ``--json`` is in argv."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--json" in argv:
        print(json.dumps(json_figures, sort_keys=True))
        return
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[_fmt(row.get(col, "")) for col in columns] for row in rows]
    numeric = [all(isinstance(row.get(col), int | float) for row in rows) for col in columns]
    widths = [max(len(col), *(len(r[i]) for r in cells)) for i, col in enumerate(columns)]
    print("  ".join(col.ljust(w) for col, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric, strict=True)))


def evaluation_parser(description: str, datasets: str) -> argparse.ArgumentParser:
    """The options every cross-fitted evaluation benchmark takes (repeats × folds, bootstrap
    resamples, the datasets folder, ``--json``); a benchmark adds its own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--datasets", default=datasets)
    parser.add_argument("--json", action="store_true")
    return parser


def run_and_emit(run: Any, args: argparse.Namespace) -> None:
    """``run(args) -> (rows, json_figures)``, printed by :func:`emit`."""
    rows, figures = run(args)
    emit(rows, figures, ["--json"] if args.json else [])
