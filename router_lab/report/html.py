"""One self-contained ``report.html``: figures embedded as base64 PNG, the table, the scenario in
words and the best policy per objective; opens from disk with no server and no network."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass

import pandas as pd

from router_lab.report.figures import Drawn


@dataclass(frozen=True)
class Objective:
    """A column to optimise, which way, and how to print its value."""

    title: str
    column: str
    maximise: bool
    fmt: str


OBJECTIVES = (
    Objective("highest accuracy", "accuracy", True, "{:.4f}"),
    Objective("lowest cloud cost per 1,000 requests", "cost_per_1k_usd", False, "${:,.4f}"),
    Objective("lowest p99 latency", "latency_p99_ms", False, "{:,.1f} ms"),
    Objective("fewest SLO misses", "slo_miss_rate", False, "{:.4f}"),
    Objective("least energy per request", "energy_per_request_j", False, "{:.3f} J"),
    Objective("least data sent off the device", "offdevice_bytes", False, "{:,.0f} bytes"),
)


SLO_MISS_BUDGET = 0.05


def png_base64(figure) -> str:  # noqa: ANN001 - a matplotlib Figure
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def best_per_objective(frame: pd.DataFrame, label_columns: list[str],
                       excluded_policies: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """(objective, winning job's label, value) for every objective the table has."""
    candidates = frame[~frame["policy"].isin(excluded_policies)] if "policy" in frame else frame
    best = []
    for objective in OBJECTIVES:
        if objective.column not in candidates or candidates[objective.column].isna().all():
            continue
        values = candidates[objective.column].astype(float)
        row = candidates.loc[values.idxmax() if objective.maximise else values.idxmin()]
        label = ", ".join(f"{c}={row[c]}" for c in label_columns if c in row) or str(row["job"])
        best.append((objective.title, label, objective.fmt.format(float(row[objective.column]))))
    if {"accuracy", "slo_miss_rate"} <= set(candidates):
        meeting = candidates[candidates["slo_miss_rate"] <= SLO_MISS_BUDGET]
        title = f"highest accuracy with at most {SLO_MISS_BUDGET:.0%} SLO misses"
        if meeting.empty:
            best.append((title, "none of these jobs meets it", "–"))
        else:
            row = meeting.loc[meeting["accuracy"].astype(float).idxmax()]
            label = ", ".join(f"{c}={row[c]}" for c in label_columns if c in row) or str(row["job"])
            best.append((title, label, f"{float(row['accuracy']):.4f}"))
    return best


def _table_html(frame: pd.DataFrame, columns: list[str]) -> str:
    shown = frame[[c for c in columns if c in frame]]
    return shown.to_html(index=False, border=0, classes="summary", float_format=lambda v: f"{v:,.4g}",
                         na_rep="–")


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table.summary { border-collapse: collapse; font-size: 0.85em; }
table.summary th, table.summary td { padding: 0.25em 0.6em; border-bottom: 1px solid #ddd; text-align: right; }
table.summary th { background: #f3f3f3; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; } .warn { color: #a40; } .muted { color: #777; }
"""


def render_report(title: str, scenario_lines: list[str], best: list[tuple[str, str, str]],
                  figures: list[Drawn], frame: pd.DataFrame, table_columns: list[str],
                  left_out: list[tuple[str, str]], notes: list[str]) -> str:
    """The whole page as a string (UTF-8, no external references)."""
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>",
             f"<style>{_STYLE}</style></head><body>", f"<h1>{esc(title)}</h1>",
             "<h2>Scenario</h2><ul>", *[f"<li>{esc(line)}</li>" for line in scenario_lines], "</ul>"]
    if best:
        parts += ["<h2>Best policy per objective</h2><ul>"]
        parts += [f"<li><b>{esc(obj)}</b>: {esc(label)} ({esc(value)})</li>" for obj, label, value in best]
        parts += ["</ul>"]
    parts += [f"<p class='muted'>{esc(note)}</p>" for note in notes]
    if left_out:
        parts += ["<h2 class='warn'>Jobs left out</h2><ul>"]
        parts += [f"<li class='warn'>{esc(job)}: {esc(reason)}</li>" for job, reason in left_out]
        parts += ["</ul>"]
    parts += ["<h2>Figures</h2>"]
    for drawn in figures:
        if drawn.figure is None:
            parts.append(f"<p class='muted'>{esc(drawn.title)}: {esc(drawn.caption)}</p>")
            continue
        parts.append(f"<figure><img alt='{esc(drawn.title)}' src='data:image/png;base64,"
                     f"{png_base64(drawn.figure)}'><figcaption>{esc(drawn.caption)}</figcaption></figure>")
    parts += ["<h2>Results (one row per job; full table in summary.csv)</h2>",
              _table_html(frame, table_columns), "</body></html>"]
    return "\n".join(parts)
