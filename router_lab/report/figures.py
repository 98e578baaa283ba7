"""The report's figures (matplotlib, Agg): each takes the summary table or job records, returns a Figure.

A figure that the sweep gives no data for (e.g. p99 vs arrival rate when the rate never varied)
is not drawn; the function returns ``None`` and the reason, which the HTML report shows instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")

import numpy as np  # noqa: E402 - after choosing the backend
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

RATE_COLUMN = "workload.rate_per_s"
SLO_COLUMN = "sim.slo_ms"


def upper_bound_policies(frame: pd.DataFrame) -> tuple[str, ...]:
    """Policies that need the answers (metrics.json `upper_bound`): references, not choices."""
    if "policy" not in frame or "upper_bound" not in frame:
        return ()
    flagged = frame["upper_bound"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    return tuple(dict.fromkeys(frame.loc[flagged, "policy"]))
_MARKERS = "osD^vP*Xh<>"


@dataclass(frozen=True)
class Drawn:
    """A figure (or why it was not drawn) with its file name and a caption."""

    name: str  # file stem: <name>.png
    title: str
    figure: Figure | None
    caption: str  # what it shows, or why it is missing


def styles_for(policies: list[str]) -> dict[str, dict[str, object]]:
    import matplotlib.pyplot as plt

    colors = plt.get_cmap("tab10").colors
    return {p: {"color": colors[i % 10], "marker": _MARKERS[i % len(_MARKERS)]}
            for i, p in enumerate(policies)}


def new_figure(width: float = 8.4, height: float = 4.6, rows: int = 1) -> tuple[Figure, object]:
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True) if rows > 1 else fig.subplots()
    return fig, axes


def place_legend(ax) -> None:  # noqa: ANN001 - a matplotlib Axes
    """Inside when it is short; to the right of the plot when it would hide the data."""
    n_entries = len(ax.get_legend_handles_labels()[0])
    if n_entries <= 5:
        ax.legend(fontsize=8, loc="best")
    else:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def finish_axes(ax, xlabel: str, ylabel: str, title: str, log: bool = False) -> None:  # noqa: ANN001
    """Axis labels (with units), the title naming the scenario, a grid and the legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both" if log else "major")
    place_legend(ax)


def pareto_front(cost: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats (cheaper-or-equal and more-or-equally accurate),
    ordered by cost."""
    order = np.lexsort((-accuracy, cost))
    front, best = [], -np.inf
    for i in order:
        if accuracy[i] > best:
            front.append(i)
            best = accuracy[i]
    return np.asarray(front, dtype=int)


def _error(frame: pd.DataFrame, metric: str) -> np.ndarray | None:
    low, high = f"{metric}_ci95_low", f"{metric}_ci95_high"
    if low not in frame or high not in frame:
        return None
    values = frame[metric].to_numpy(float)
    return np.vstack([values - frame[low].to_numpy(float), frame[high].to_numpy(float) - values]).clip(0)


def _points_per_policy(ax, frame: pd.DataFrame, x_column: str,  # noqa: ANN001 - an Axes
                       joined: bool) -> dict[str, dict[str, object]]:
    """Accuracy (95 % CI bars) against ``x_column``, one series per policy; returns the styles."""
    style = styles_for(list(dict.fromkeys(frame["policy"])))
    upper_bounds = upper_bound_policies(frame)
    for policy in style:
        part = frame[frame["policy"] == policy].sort_values(x_column)
        label = policy + (" (upper bound)" if policy in upper_bounds else "")
        ax.errorbar(part[x_column], part["accuracy"], yerr=_error(part, "accuracy"), label=label,
                    linestyle="-" if joined and len(part) > 1 else "none", capsize=2, markersize=6,
                    **style[policy])
    return style


def accuracy_cost_figure(frame: pd.DataFrame, scenario: str) -> Drawn:
    name, title = "accuracy_vs_cost", "Accuracy vs cost per 1,000 requests"
    if not {"accuracy", "cost_per_1k_usd", "policy"} <= set(frame):
        return Drawn(name, title, None, "needs accuracy, cost_per_1k_usd and policy columns")
    fig, ax = new_figure()
    style = _points_per_policy(ax, frame, "cost_per_1k_usd", joined=False)
    for policy in style:
        part = frame[frame["policy"] == policy]
        if len(part) > 1:
            cost, acc = part["cost_per_1k_usd"].to_numpy(float), part["accuracy"].to_numpy(float)
            front = pareto_front(cost, acc)
            ax.plot(cost[front], acc[front], "-", color=style[policy]["color"], alpha=0.6)
    deployable = frame[~frame["policy"].isin(upper_bound_policies(frame))]
    if len(deployable) > 1:
        cost, acc = deployable["cost_per_1k_usd"].to_numpy(float), deployable["accuracy"].to_numpy(float)
        front = pareto_front(cost, acc)
        ax.step(cost[front], acc[front], where="post", color="0.3", linestyle="--", linewidth=1,
                label="Pareto frontier (all but upper bounds)")
    finish_axes(ax, "cloud cost per 1,000 requests (USD)", "accuracy (fraction correct)",
                f"{title}\n{scenario}")
    return Drawn(name, title, fig, "Each point is one job (95 % CI bars); lines join each policy's "
                 "Pareto-optimal settings; the dashed step is the frontier over all deployable policies.")


def _group_label(row: pd.Series, columns: list[str]) -> str:
    return ", ".join(f"{c.split('.')[-1]}={row[c]}" if "." in c else str(row[c]) for c in columns)


def latency_rate_figure(frame: pd.DataFrame, scenario: str, group_columns: list[str]) -> Drawn:
    name, title = "p99_latency_vs_rate", "p99 latency vs arrival rate"
    if RATE_COLUMN not in frame or frame[RATE_COLUMN].nunique() < 2:
        return Drawn(name, title, None, "not drawn: the arrival rate did not vary in these jobs "
                     "(run +experiment=load_sweep)")
    if "latency_p99_ms" not in frame:
        return Drawn(name, title, None, "not drawn: no latency_p99_ms column")
    fig, ax = new_figure()
    groups = [c for c in group_columns if c != RATE_COLUMN and c in frame] or ["policy"]
    labels = frame.apply(lambda r: _group_label(r, groups), axis=1)
    style = styles_for(list(dict.fromkeys(labels)))
    for label in dict.fromkeys(labels):
        part = frame[labels == label].sort_values(RATE_COLUMN)
        ax.errorbar(part[RATE_COLUMN], part["latency_p99_ms"], yerr=_error(part, "latency_p99_ms"),
                    label=label, capsize=2, **style[label])
    if SLO_COLUMN in frame:
        slo_ms = float(frame[SLO_COLUMN].iloc[0])
        ax.axhline(slo_ms, color="crimson", linestyle="--", linewidth=1, label=f"SLO {slo_ms:,.0f} ms")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    finish_axes(ax, "arrival rate (requests/s)", "p99 end-to-end latency (ms, log scale)",
                f"{title}\n{scenario}", log=True)
    return Drawn(name, title, fig, "Tail latency as load grows, per policy; past the dashed SLO line "
                 "requests miss their deadline.")


def routing_curve_figure(frame: pd.DataFrame, scenario: str, reference=None) -> Drawn:  # noqa: ANN001
    """``reference``: a :class:`router_lab.report.reference.ReferenceCurves` for these requests."""
    name, title = "routing_curve", "Routing curve: accuracy vs cloud fraction"
    if not {"accuracy", "cloud_fraction", "policy"} <= set(frame):
        return Drawn(name, title, None, "not drawn: needs accuracy, cloud_fraction and policy columns")
    fig, ax = new_figure()
    _points_per_policy(ax, frame, "cloud_fraction", joined=True)
    ends = {p: frame.loc[frame["policy"] == p, "accuracy"].mean() for p in ("always_local", "always_cloud")}
    if reference is not None:
        ax.plot(reference.cloud_fraction_oracle, reference.accuracy_oracle, color="0.15", linewidth=1.2,
                label="oracle curve (offline, same requests)")
        ax.plot(reference.cloud_fraction_random, reference.accuracy_random, color="0.4", linestyle=":",
                label="random routing (offline, same requests)")
    elif not any(np.isnan(v) for v in ends.values()):
        ax.plot([0, 1], [ends["always_local"], ends["always_cloud"]], color="0.4", linestyle=":",
                label="random routing (expected)")
    ax.set_xlim(-0.02, 1.02)
    finish_axes(ax, "fraction of requests answered in the cloud", "accuracy (fraction correct)",
                f"{title}\n{scenario}")
    return Drawn(name, title, fig, "Each point is one job. Above the dotted random line a router knows "
                 "which requests need the cloud; the oracle (upper bound) shows the most any router "
                 "could gain at each cloud fraction.")
