"""Jobs grouped by deployment (which remote tiers a job's scenario had) and each group's Pareto front.

A job's deployment is read from its config: the models its ``tiers`` serve, then ``cloud`` (served by
``network`` + ``cloud`` unless a tier claims it) — ``device → cloud`` for a two-tier job,
``device → edge → cloud`` with ``deployment=three_tier``.  Within each deployment a job is on the
front when no other job of that deployment is at least as accurate, as cheap and as fast at p99
and better in one of them.  Drawn (``pareto_by_deployment.png``) and tabled
(``pareto_by_deployment.md``) only when the jobs span more than one deployment.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from router_lab.report import figures
from router_lab.report.figures import Drawn, finish_axes, pareto_front

TIER_MODEL = re.compile(r"^tiers\.([^.]+)\.model$")
OBJECTIVES = (("accuracy", True), ("cost_per_1k_usd", False), ("latency_p99_ms", False))  # (column, maximise)
FIGURE = "pareto_by_deployment"


def deployment_labels(frame: pd.DataFrame) -> pd.Series:
    """Per job, its deployment: the models in tier order, ``device → … → cloud``."""
    columns = [c for c in frame.columns if TIER_MODEL.match(str(c))]

    def label(row: pd.Series) -> str:
        models = [str(row[c]) for c in columns if isinstance(row[c], str) and row[c]]
        if "cloud" not in models:
            models.append("cloud")
        return " → ".join(["device", *models])

    return frame.apply(label, axis=1) if len(frame) else pd.Series([], dtype=str)


def non_dominated(frame: pd.DataFrame) -> np.ndarray:
    """Boolean mask: the rows no other row dominates on accuracy (higher), cost and p99 (lower)."""
    values = np.column_stack([frame[c].to_numpy(float) * (-1.0 if up else 1.0) for c, up in OBJECTIVES])
    ok = np.isfinite(values).all(axis=1)
    keep = ok.copy()
    for i in np.flatnonzero(ok):
        others = values[ok]
        beaten = (others <= values[i]).all(axis=1) & (others < values[i]).any(axis=1)
        keep[i] = not beaten.any()
    return keep


def annotate(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``deployment`` and ``pareto_in_deployment`` columns when its jobs span more
    than one deployment and carry the three objectives; else ``frame`` unchanged."""
    if not {c for c, _ in OBJECTIVES} <= set(frame.columns):
        return frame
    labels = deployment_labels(frame)
    if labels.nunique() < 2:
        return frame
    out = frame.copy()
    out["deployment"] = labels
    out["pareto_in_deployment"] = False
    for _, part in out.groupby("deployment", sort=False):
        out.loc[part.index, "pareto_in_deployment"] = non_dominated(part)
    return out


def pareto_table(frame: pd.DataFrame, label_columns: list[str]) -> str:
    """Markdown: each deployment's non-dominated jobs, by cost."""
    columns = ["deployment", *[c for c in label_columns if c in frame and c != "deployment"],
               *[c for c, _ in OBJECTIVES], "job"]
    front = frame[frame["pareto_in_deployment"]].sort_values(["deployment", "cost_per_1k_usd"], kind="stable")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in front.iterrows():
        lines.append("| " + " | ".join(_cell(row[c]) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.4g}"  # NaN: a setting this job leaves unset
    return str(value)


def pareto_figure(frame: pd.DataFrame, scenario: str) -> Drawn:
    """Accuracy against cost and against p99, one colour per deployment; each deployment's
    non-dominated jobs filled and its accuracy–cost / accuracy–p99 fronts joined."""
    title = "Pareto front per deployment (accuracy, cost, p99)"
    if "deployment" not in frame:
        return Drawn(FIGURE, title, None, "needs jobs on more than one deployment")
    fig = Figure(figsize=(10.5, 4.4), dpi=110, layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    colours = figures.styles_for(list(dict.fromkeys(frame["deployment"])))
    for name, part in frame.groupby("deployment", sort=False):
        colour = colours[name]["color"]
        front = part["pareto_in_deployment"].to_numpy(bool)
        for ax, x in zip(axes, ("cost_per_1k_usd", "latency_p99_ms"), strict=True):
            xs, acc = part[x].to_numpy(float), part["accuracy"].to_numpy(float)
            ax.scatter(xs[~front], acc[~front], facecolors="none", edgecolors=colour, s=30)
            ax.scatter(xs[front], acc[front], color=colour, s=36, label=name)
            line = pareto_front(xs, acc)
            ax.step(xs[line], acc[line], where="post", color=colour, alpha=0.7)
    fig.suptitle(figures.figure_title(title, scenario), fontsize=10)
    finish_axes(axes[0], "cloud cost per 1,000 requests (USD)", "accuracy (fraction correct)", "against cost",
                legend_title="deployment")
    finish_axes(axes[1], "p99 latency of answered requests (ms)", "", "against p99 latency", legend_title=None)
    if axes[1].get_legend() is not None:
        axes[1].get_legend().remove()
    return Drawn(FIGURE, title, fig, "Each point is one job; filled: on its deployment's accuracy/cost/p99 "
                 "Pareto front (no job of the same deployment is as accurate, as cheap and as fast and better "
                 "in one); the steps join each deployment's two-objective fronts.")
