"""The target matrix of exported routers: router x target (passed / refused / no-op / skipped,
size, single-request latency in the target's own runtime), from validation.json's ``targets``.

``router-lab report PATH`` writes it (``target_matrix.md`` and ``.csv``) when PATH holds export
folders whose validation.json has targets; a folder of simulations is reported as before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from router_lab.io import atomic_write_text

VALIDATION_FILE = "validation.json"
TARGET_ORDER = ("onnx", "ort", "web", "int8")  # the float model first: the others are judged against it


def find_target_reports(root: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """(folder relative to ``root``, validation.json) of every export under ``root`` with targets."""
    root = Path(root)
    found = []
    for path in sorted(root.rglob(VALIDATION_FILE)):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not an export's report: the simulation report names bad job folders itself
        if isinstance(data, dict) and isinstance(data.get("targets"), dict):
            found.append((str(path.parent.relative_to(root)) if path.parent != root else ".", data))
    return found


def matrix_frame(found: list[tuple[str, dict[str, Any]]]) -> pd.DataFrame:
    """One row per (router, target)."""
    rows = []
    for folder, data in found:
        router = data.get("router_estimator") or Path(str(data.get("file", folder))).stem
        for target, rep in data["targets"].items():
            rows.append({"router": router, "folder": folder, "dataset": data.get("dataset", ""),
                         "target": target, "status": rep.get("status"), "passed": bool(rep.get("passed")),
                         "bytes": rep.get("bytes"), "p50_us": rep.get("p50_us"), "p99_us": rep.get("p99_us"),
                         "max_abs_diff": rep.get("max_abs_diff"),
                         "decision_agreement": rep.get("decision_agreement"),
                         "adversarial_agreement": (rep.get("adversarial_text") or {}).get("decision_agreement"),
                         "runtime": f"{rep.get('runtime', '')} {rep.get('runtime_version', '')}".strip(),
                         "why_not": "" if rep.get("passed") else _why_not(rep)})
    return pd.DataFrame(rows)


def _why_not(rep: dict[str, Any]) -> str:
    example = rep.get("failing_example")
    if example:
        return (f"{example['case']}: score {example['target_score']:.4g} vs {example['reference_score']:.4g}"
                f" (max |Δ| {rep.get('max_abs_diff', float('nan')):.3g}, {rep.get('n_decisions_flipped', 0)} flipped)")
    return "; ".join(rep.get("notes") or [])[:120]


def _cell(row: pd.Series) -> str:
    if row["status"] != "passed":
        return str(row["status"])
    size = row["bytes"] / 1024
    return f"pass · {size:,.1f} KB · {row['p50_us']:,.1f}/{row['p99_us']:,.0f} µs"


def matrix_markdown(frame: pd.DataFrame) -> str:
    """router x target, each cell 'pass · size · p50/p99 µs' or the status; then why each is not."""
    order = {name: i for i, name in enumerate(TARGET_ORDER)}
    targets = sorted(dict.fromkeys(frame["target"]), key=lambda t: (order.get(t, len(order)), t))
    routers = list(dict.fromkeys(zip(frame["router"], frame["folder"], strict=True)))
    lines = ["| router | folder | " + " | ".join(targets) + " |", "|---|---|" + "---|" * len(targets)]
    for router, folder in routers:
        cells = []
        for target in targets:
            match = frame[(frame["router"] == router) & (frame["folder"] == folder) & (frame["target"] == target)]
            cells.append(_cell(match.iloc[0]) if len(match) else "–")
        lines.append(f"| {router} | {folder} | " + " | ".join(cells) + " |")
    notes = frame[~frame["passed"]]
    if len(notes):
        lines.append("")
        lines += [f"- {r.router} / {r.target}: {r.status} — {r.why_not}".replace("|", "\\|")
                  for r in notes.itertuples()]
    return "\n".join(lines) + "\n"


def write_target_matrix(root: str | Path, out_dir: str | Path | None) -> tuple[Path, str] | None:
    """Write target_matrix.md / .csv for the exports under ``root``; None when there are none."""
    found = find_target_reports(root)
    if not found:
        return None
    out = Path(out_dir) if out_dir else Path(root) / "report"
    out.mkdir(parents=True, exist_ok=True)
    frame = matrix_frame(found)
    text = matrix_markdown(frame)
    atomic_write_text(out / "target_matrix.csv", frame.to_csv(index=False, float_format="%.6g"))
    path = atomic_write_text(out / "target_matrix.md", text)
    return path, text
