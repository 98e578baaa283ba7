"""The report's figures (matplotlib, Agg): each takes the summary table or job records, returns a Figure.

A figure that the sweep gives no data for (e.g. p99 vs arrival rate when the rate never varied)
is not drawn; the function returns ``None`` and the reason, which the HTML report shows instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")

import matplotlib.lines  # noqa: E402
import numpy as np  # noqa: E402 - after choosing the backend
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from router_lab.report.formatting import (  # noqa: E402
    factor_label,
    format_number,
    format_setting,
    policy_label,
    wrap_title,
)

RATE_COLUMN = "workload.rate_per_s"
SLO_COLUMN = "sim.slo_ms"


def upper_bound_policies(frame: pd.DataFrame) -> tuple[str, ...]:
    """Policies that need the answers (metrics.json `upper_bound`): references, not choices."""
    if "policy" not in frame or "upper_bound" not in frame:
        return ()
    flagged = frame["upper_bound"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    return tuple(dict.fromkeys(frame.loc[flagged, "policy"]))


# Okabe & Ito's colour-blind-safe palette (black left out: it is the SLO line's), then two of
# Paul Tol's muted colours for sweeps of more than seven policies; markers tell repeats apart.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#F0E442",
           "#882255", "#999933")
SLO_COLOR = "#000000"
SLO_STYLE = {"color": SLO_COLOR, "linestyle": (0, (6, 3)), "linewidth": 1.4}
_MARKERS = "osD^vP*Xh<>"
MAX_PANELS = 9  # routing-curve panels; more scenarios are named in the caption, all in summary.csv
TITLE_WIDTH = 95  # characters per subtitle line at the figures' width


@dataclass(frozen=True)
class Drawn:
    """A figure (or why it was not drawn) with its file name and a caption."""

    name: str  # file stem: <name>.png
    title: str
    figure: Figure | None
    caption: str  # what it shows, or why it is missing


def styles_for(keys: list[str]) -> dict[str, dict[str, object]]:
    """A colour and a marker per key, in the order given (the same policy order in every figure)."""
    return {k: {"color": PALETTE[i % len(PALETTE)], "marker": _MARKERS[i % len(_MARKERS)]}
            for i, k in enumerate(keys)}


def policy_styles(frame: pd.DataFrame) -> dict[str, dict[str, object]]:
    return styles_for(list(dict.fromkeys(frame["policy"]))) if "policy" in frame else {}


def new_figure(width: float = 8.4, height: float = 4.6, rows: int = 1, cols: int = 1,
               sharey: bool = False) -> tuple[Figure, object]:
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    if rows == 1 and cols == 1:
        return fig, fig.subplots()
    if cols > 1:
        return fig, fig.subplots(rows, cols, sharex=True, sharey=sharey, squeeze=False).ravel()
    return fig, fig.subplots(rows, 1, sharex=True)


def place_legend(ax, title: str | None = None) -> None:  # noqa: ANN001 - a matplotlib Axes
    """Inside when it is short; to the right of the plot when it would hide the data."""
    n_entries = len(ax.get_legend_handles_labels()[0])
    if not n_entries:
        return
    if n_entries <= 5:
        ax.legend(fontsize=8, loc="best", title=title, title_fontsize=8)
    else:  # beside the plot; past 14 entries in columns, so a big sweep's legend keeps to the figure
        ax.legend(fontsize=8 if n_entries <= 14 else 6, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  borderaxespad=0, title=title, title_fontsize=8, ncols=-(-n_entries // 24))


def figure_title(title: str, scenario: str, label: str = "") -> str:
    """The title, then the scenario and the panel's label wrapped to the figure's width."""
    lines = [title, wrap_title(scenario, TITLE_WIDTH)]
    if label:
        lines.append(wrap_title(label, TITLE_WIDTH, max_lines=1))
    return "\n".join(line for line in lines if line)


def finish_axes(ax, xlabel: str, ylabel: str, title: str, log: bool = False,  # noqa: ANN001
                legend_title: str | None = "policy") -> None:
    """Axis labels (with units), the title naming the scenario, a grid and the legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both" if log else "major")
    place_legend(ax, legend_title)


def thousands(axis) -> None:  # noqa: ANN001 - a matplotlib Axis
    """Tick labels with thousands separators and no scientific notation (log axes too)."""
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: format_number(float(v), None, 3)))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


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


def _points_per_policy(ax, frame: pd.DataFrame, x_column: str, joined: bool,  # noqa: ANN001
                       style: dict[str, dict[str, object]], labelled: bool = True) -> None:
    """Accuracy (95 % CI bars) against ``x_column``, one series per policy."""
    upper_bounds = upper_bound_policies(frame)
    for policy in dict.fromkeys(frame["policy"]):
        part = frame[frame["policy"] == policy].sort_values(x_column)
        label = policy_label(policy, upper_bounds) if labelled else None
        ax.errorbar(part[x_column], part["accuracy"], yerr=_error(part, "accuracy"), label=label,
                    linestyle="-" if joined and len(part) > 1 else "none", capsize=2, markersize=6,
                    **style[policy])


def scenario_keys(factors: list[str]) -> list[str]:
    """The swept factors that are not the policy: together they name a scenario."""
    return [c for c in factors if c != "policy" and not c.startswith("policy.")]


def accuracy_cost_figure(frame: pd.DataFrame, scenario: str, factors: list[str] | None = None) -> Drawn:
    """Colour: the policy; marker: the scenario (the other swept factors), with a legend naming them."""
    name, title = "accuracy_vs_cost", "Accuracy vs cost per 1,000 requests"
    if not {"accuracy", "cost_per_1k_usd", "policy"} <= set(frame):
        return Drawn(name, title, None, "needs accuracy, cost_per_1k_usd and policy columns")
    fig, ax = new_figure()
    style = policy_styles(frame)
    keys = scenario_keys(factors or [])
    scenarios = frame.apply(lambda r: factor_label(r, keys), axis=1) if keys else pd.Series("", frame.index)
    # the legend's title names the factors; its entries need only the values
    values = frame.apply(lambda r: ", ".join(format_setting(r[k]) for k in keys), axis=1) if keys else scenarios
    names = list(dict.fromkeys(scenarios))
    by_marker = 1 < len(names) <= len(_MARKERS)
    upper_bounds = upper_bound_policies(frame)
    for policy in dict.fromkeys(frame["policy"]):
        part = frame[frame["policy"] == policy]
        for i, scenario_name in enumerate(names):
            points = part[scenarios[part.index] == scenario_name]
            if points.empty:
                continue
            marker = _MARKERS[i] if by_marker else style[policy]["marker"]
            ax.errorbar(points["cost_per_1k_usd"], points["accuracy"], yerr=_error(points, "accuracy"),
                        linestyle="none", capsize=2, markersize=6, color=style[policy]["color"],
                        marker=marker, label=None)
        ax.plot([], [], linestyle="none", color=style[policy]["color"],
                marker="o" if by_marker else style[policy]["marker"],
                label=policy_label(policy, upper_bounds))
        if len(part) > 1 and not by_marker:
            cost, acc = part["cost_per_1k_usd"].to_numpy(float), part["accuracy"].to_numpy(float)
            front = pareto_front(cost, acc)
            ax.plot(cost[front], acc[front], "-", color=style[policy]["color"], alpha=0.6)
    deployable = frame[~frame["policy"].isin(upper_bounds)]
    if len(deployable) > 1:
        cost, acc = deployable["cost_per_1k_usd"].to_numpy(float), deployable["accuracy"].to_numpy(float)
        front = pareto_front(cost, acc)
        ax.step(cost[front], acc[front], where="post", color="0.3", linestyle="--", linewidth=1,
                label="Pareto frontier (all but upper bounds)")
    finish_axes(ax, "cloud cost per 1,000 requests (USD)", "accuracy (fraction correct)",
                figure_title(title, scenario))
    caption = "Each point is one job (95 % CI bars); colour is the policy"
    if by_marker:
        ax.add_artist(ax.get_legend())
        handles = [matplotlib.lines.Line2D([], [], color="0.35", marker=_MARKERS[i], linestyle="none",
                                           label=values[scenarios == n].iloc[0])
                   for i, n in enumerate(names)]
        ax.legend(handles=handles, fontsize=8, title=", ".join(keys), title_fontsize=8,
                  loc="lower left", bbox_to_anchor=(1.01, 0.0), borderaxespad=0)
        caption += f", the marker is the scenario ({', '.join(keys)})"
    elif len(names) > 1:
        caption += f"; {len(names)} scenarios ({', '.join(keys)}) share each policy's colour"
    else:
        caption += "; lines join each policy's Pareto-optimal settings"
    return Drawn(name, title, fig, caption + "; the dashed step is the frontier over all deployable "
                 "policies.")


def latency_rate_figure(frame: pd.DataFrame, scenario: str, group_columns: list[str]) -> Drawn:
    name, title = "p99_latency_vs_rate", "p99 latency vs arrival rate"
    if RATE_COLUMN not in frame or frame[RATE_COLUMN].nunique() < 2:
        return Drawn(name, title, None, "not drawn: the arrival rate did not vary in these jobs "
                     "(run +experiment=load_sweep)")
    if "latency_p99_ms" not in frame:
        return Drawn(name, title, None, "not drawn: no latency_p99_ms column")
    fig, ax = new_figure()
    groups = [c for c in group_columns if c != RATE_COLUMN and c in frame] or ["policy"]
    upper_bounds = upper_bound_policies(frame)
    labels = frame.apply(lambda r: factor_label(r, groups, upper_bounds, short=True), axis=1)
    style = styles_for(list(dict.fromkeys(labels)))
    for label in dict.fromkeys(labels):
        part = frame[labels == label].sort_values(RATE_COLUMN)
        ax.errorbar(part[RATE_COLUMN], part["latency_p99_ms"], yerr=_error(part, "latency_p99_ms"),
                    label=label, capsize=2, **style[label])
    if SLO_COLUMN in frame:
        slo_ms = float(frame[SLO_COLUMN].iloc[0])
        ax.axhline(slo_ms, label=f"SLO {format_number(slo_ms, 0)} ms", **SLO_STYLE)
    ax.set_yscale("log")
    thousands(ax.yaxis)
    finish_axes(ax, "arrival rate (requests/s)", "p99 end-to-end latency (ms, log scale)",
                figure_title(title, scenario), log=True, legend_title=", ".join(groups))
    return Drawn(name, title, fig, f"Tail latency as load grows, one line per {', '.join(groups)}; "
                 "past the dashed black SLO line requests miss their deadline.")


def routing_curve_figure(scenarios: list[tuple[str, pd.DataFrame]], scenario: str,
                         references: list | None = None, keys: list[str] | None = None) -> Drawn:  # noqa: ANN001
    """One panel per scenario (at most MAX_PANELS); ``references``: one
    :class:`router_lab.report.reference.ReferenceCurves` (or None) per scenario shown."""
    name, title = "routing_curve", "Routing curve: accuracy vs cloud fraction"
    if not scenarios or not {"accuracy", "cloud_fraction", "policy"} <= set(scenarios[0][1]):
        return Drawn(name, title, None, "not drawn: needs accuracy, cloud_fraction and policy columns")
    shown = scenarios[:MAX_PANELS]
    n = len(shown)
    cols = 1 if n == 1 else 2 if n <= 4 else 3
    rows = -(-n // cols)
    whole = pd.concat([part for _, part in scenarios])
    style = policy_styles(whole)
    fig, axes = new_figure(width=8.4 if cols < 3 else 9.6, height=4.6 if n == 1 else 2.9 * rows + 0.9,
                           rows=rows, cols=cols, sharey=True)
    axes = [axes] if n == 1 else list(np.ravel(axes))
    references = list(references or []) + [None] * n
    for i, (ax, (label, part)) in enumerate(zip(axes, shown, strict=False)):
        _points_per_policy(ax, part, "cloud_fraction", joined=True, style=style, labelled=(i == 0))
        reference = references[i]
        ends = {p: part.loc[part["policy"] == p, "accuracy"].mean() for p in ("always_local", "always_cloud")}
        if reference is not None:
            ax.plot(reference.cloud_fraction_oracle, reference.accuracy_oracle, color="0.15", linewidth=1.2,
                    label="oracle curve (upper bound, offline)" if i == 0 else None)
            ax.plot(reference.cloud_fraction_random, reference.accuracy_random, color="0.4", linestyle=":",
                    label="random routing (offline, same requests)" if i == 0 else None)
        elif not any(np.isnan(v) for v in ends.values()):
            ax.plot([0, 1], [ends["always_local"], ends["always_cloud"]], color="0.4", linestyle=":",
                    label="random routing (expected)" if i == 0 else None)
        ax.set_xlim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        if n > 1:
            ax.set_title(wrap_title(label, 40 if cols == 3 else 55, max_lines=2), fontsize=9)
    for ax in axes[n:]:
        ax.set_visible(False)
    xlabel, ylabel = "fraction of requests answered in the cloud", "accuracy (fraction correct)"
    if n == 1:
        finish_axes(axes[0], xlabel, ylabel, figure_title(title, scenario, shown[0][0]))
    else:
        for i, ax in enumerate(axes[:n]):
            if i + cols >= n:  # the lowest panel of its column: its own axis label and ticks
                ax.set_xlabel(xlabel, fontsize=9)
                ax.tick_params(labelbottom=True)
        fig.supylabel(ylabel, fontsize=10)
        fig.suptitle(figure_title(title, scenario), fontsize=10)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncols=min(4, len(labels)),
                   title="policy", title_fontsize=8)
    where = (f"One panel per scenario ({', '.join(keys)}); each point is one job of that scenario"
             if n > 1 and keys else "Each point is one job")
    if len(scenarios) > n:
        where += f" (the first {n} of {len(scenarios)} scenarios; every job is in the table)"
    return Drawn(name, title, fig, where + ". Above the dotted random line a router knows which "
                 "requests need the cloud; the oracle curve (upper bound) shows the most any router "
                 "could gain at each cloud fraction.")
