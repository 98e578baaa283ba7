"""Figures drawn from the per-request records: the latency CDF per policy, and the cloud fraction
and accuracy over simulated time (where drift and outages show) for one scenario of the sweep."""

from __future__ import annotations

import numpy as np
import pandas as pd

from router_lab.report.figures import (
    SLO_COLUMN,
    SLO_STYLE,
    Drawn,
    figure_title,
    finish_axes,
    new_figure,
    place_legend,
    policy_styles,
    scenario_keys,
    thousands,
    upper_bound_policies,
)
from router_lab.report.formatting import factor_label, format_number, policy_label
from router_lab.report.summary import Collection

# requests.parquet columns (router_lab.sim.records.Records.to_frame)
ARRIVAL_COLUMN = "arrival_s"
LATENCY_COLUMN = "latency_ms"
OUTCOME_COLUMN = "outcome"  # local | cloud | cascade | fallback | rejected | failed
CORRECT_COLUMN = "correct"  # quality of the answer (0 without one)
CLOUD_ANSWERS = ("cloud", "cascade")


def scenario_groups(frame: pd.DataFrame, factors: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """The sweep's scenarios, in job order: jobs sharing every swept factor except the policy's."""
    keys = scenario_keys(factors)
    if not keys:
        return [("", frame)]
    labels = frame.apply(lambda r: factor_label(r, keys), axis=1)
    return [(label, frame[labels == label]) for label in dict.fromkeys(labels)]


def _requests(collection: Collection, job_name: str, columns: list[str]) -> pd.DataFrame | None:
    job = next(j for j in collection.jobs if j.name == job_name)
    try:
        import pyarrow.parquet as pq

        present = set(pq.read_schema(job.requests_path).names)
        if not set(columns) <= present:
            return None
        return pd.read_parquet(job.requests_path, columns=columns)
    except (OSError, ValueError):
        return None


def latency_cdf_figure(collection: Collection, frame: pd.DataFrame, varied: list[str],
                       scenario: str) -> Drawn:
    name, title = "latency_cdf", "Latency CDF per policy"
    label, part = scenario_groups(frame, varied)[0]
    fig, ax = new_figure()
    style = policy_styles(frame) if "policy" in frame else {"run": {"color": "#0072B2"}}
    upper_bounds = upper_bound_policies(frame)
    drawn = 0
    for _, row in part.iterrows():
        records = _requests(collection, row["job"], [LATENCY_COLUMN])
        if records is None or records.empty:
            continue
        latency = np.sort(records[LATENCY_COLUMN].to_numpy(float))
        share = np.arange(1, len(latency) + 1) / len(latency)
        policy = row.get("policy", "run")
        ax.step(latency, share, where="post", color=style[policy]["color"],
                label=policy_label(policy, upper_bounds))
        drawn += 1
    if not drawn:
        return Drawn(name, title, None, f"not drawn: no {LATENCY_COLUMN} in requests.parquet")
    if SLO_COLUMN in part:
        slo_ms = float(part[SLO_COLUMN].iloc[0])
        ax.axvline(slo_ms, label=f"SLO {format_number(slo_ms, 0)} ms", **SLO_STYLE)
    ax.set_xscale("log")
    thousands(ax.xaxis)
    finish_axes(ax, "end-to-end latency (ms, log scale)", "fraction of requests at or below",
                figure_title(title, scenario, label), log=True)
    which = f"the first of the sweep: {label}" if label else "the only one of these jobs"
    return Drawn(name, title, fig, "Each curve is one policy's distribution of end-to-end latency "
                 f"in the same scenario ({which}); the dashed black line is the SLO.")


def windowed(time_s: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean of ``values`` in each window [edges[i], edges[i+1]) (NaN where a window is empty)."""
    index = np.clip(np.searchsorted(edges, time_s, side="right") - 1, 0, len(edges) - 2)
    sums = np.bincount(index, weights=values.astype(float), minlength=len(edges) - 1)
    counts = np.bincount(index, minlength=len(edges) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def over_time_figure(collection: Collection, frame: pd.DataFrame, varied: list[str], scenario: str,
                     n_windows: int = 40) -> Drawn:
    name, title = "over_time", "Cloud fraction and accuracy over time"
    label, part = scenario_groups(frame, varied)[-1]
    columns = [ARRIVAL_COLUMN, OUTCOME_COLUMN, CORRECT_COLUMN]
    series = []
    for _, row in part.iterrows():
        records = _requests(collection, row["job"], columns)
        if records is not None and not records.empty:
            series.append((row.get("policy", "run"), records, row["job"]))
    if not series:
        return Drawn(name, title, None, f"not drawn: requests.parquet lacks {', '.join(columns)}")
    end_s = max(float(r[ARRIVAL_COLUMN].max()) for _, r, _ in series)
    edges = np.linspace(0.0, max(end_s, 1e-9), n_windows + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    fig, (ax_cloud, ax_acc) = new_figure(height=6.0, rows=2)
    style = policy_styles(frame) if "policy" in frame else {"run": {"color": "#0072B2"}}
    upper_bounds = upper_bound_policies(frame)
    for policy, records, _job in series:
        t = records[ARRIVAL_COLUMN].to_numpy(float)
        in_cloud = records[OUTCOME_COLUMN].astype(str).isin(CLOUD_ANSWERS).to_numpy(float)
        ax_cloud.plot(centres, windowed(t, in_cloud, edges),
                      color=style[policy]["color"], label=policy_label(policy, upper_bounds))
        ax_acc.plot(centres, windowed(t, records[CORRECT_COLUMN].to_numpy(float), edges),
                    color=style[policy]["color"], label=policy)
    down = _outages([records for _, records, _ in series], edges)
    for start, stop in down:
        for ax in (ax_cloud, ax_acc):
            ax.axvspan(start, stop, color="0.85", zorder=0)
    ax_cloud.set_ylabel("cloud fraction")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_xlabel("simulated time (s)")
    ax_cloud.set_title(figure_title(title, scenario, label + (" · grey: cloud attempts failing"
                                                              if down else "")), fontsize=10)
    for ax in (ax_cloud, ax_acc):
        ax.grid(alpha=0.3)
    place_legend(ax_cloud, "policy")
    which = f"the last of the sweep: {label}" if label else "the only one of these jobs"
    return Drawn(name, title, fig, f"Means over {n_windows} windows of arrival time for one scenario "
                 f"({which}); drift and outages show as changes over time.")


def _outages(series: list[pd.DataFrame], edges: np.ndarray) -> list[tuple[float, float]]:
    """Windows where most cloud attempts fell back to the device (outages, rejections), pooled
    over the scenario's jobs."""
    records = pd.concat(series, ignore_index=True)
    outcome = records[OUTCOME_COLUMN].astype(str)
    attempted = outcome.isin((*CLOUD_ANSWERS, "fallback")).to_numpy()
    if not attempted.any():
        return []
    t = records[ARRIVAL_COLUMN].to_numpy(float)[attempted]
    fell_back = (outcome[attempted] == "fallback").to_numpy(float)
    share = windowed(t, fell_back, edges)
    return [(edges[i], edges[i + 1]) for i in np.flatnonzero(share > 0.5)]
