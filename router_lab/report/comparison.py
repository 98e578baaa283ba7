"""The sim-vs-live comparison in the report: its table and one latency-CDF figure per scenario.

`router-lab testbed +experiment=sim_vs_live` writes ``sim_vs_live.csv`` (one row per scenario and
metric) and ``sim_vs_live_latency.parquet`` (every answered request's end-to-end latency, per
scenario and side); :func:`cdf_figure` draws a scenario's CDF (the testbed saves it as
``cdf_<scenario>.png``, the report embeds the same drawing in report.html).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from router_lab.errors import RouterLabError
from router_lab.report.figures import (
    PALETTE,
    SLO_STYLE,
    Drawn,
    finish_axes,
    new_figure,
    thousands,
)
from router_lab.report.formatting import format_number

TABLE_FILE = "sim_vs_live.csv"
LATENCY_FILE = "sim_vs_live_latency.parquet"
LATENCY_COLUMNS = ("scenario", "side", "latency_ms", "slo_ms")  # side: sim | live
SIDES = {"sim": ("simulated", "-", PALETTE[0]), "live": ("live testbed", "--", PALETTE[1])}


def is_comparison(root: Path) -> bool:
    """Whether ``root`` is the run folder of a sim-vs-live comparison."""
    return (root / TABLE_FILE).is_file()


def latency_frame(scenario: str, sim_ms: np.ndarray, live_ms: np.ndarray, slo_ms: float) -> pd.DataFrame:
    """One scenario's rows of ``sim_vs_live_latency.parquet``."""
    parts = [pd.DataFrame({"scenario": scenario, "side": side, "latency_ms": np.asarray(ms, dtype=np.float64),
                           "slo_ms": float(slo_ms)}) for side, ms in (("sim", sim_ms), ("live", live_ms))]
    return pd.concat(parts, ignore_index=True)[list(LATENCY_COLUMNS)]


def cdf_figure(scenario: str, latency: pd.DataFrame) -> Drawn:
    """Scenario ``scenario``'s end-to-end latency CDF, simulated and live (rows of latency_frame)."""
    name, title = f"cdf_{scenario}", f"{scenario}: latency CDF, sim vs live"
    part = latency[latency["scenario"] == scenario]
    fig, ax = new_figure(width=7.0, height=4.2)
    drawn = 0
    for side, (label, style, color) in SIDES.items():
        ms = np.sort(part.loc[part["side"] == side, "latency_ms"].to_numpy(np.float64))
        if len(ms):
            ax.step(ms, np.arange(1, len(ms) + 1) / len(ms), style, where="post", color=color,
                    label=f"{label} ({len(ms):,} answered)")
            drawn += 1
    if not drawn:
        return Drawn(name, title, None, f"not drawn: no answered request of {scenario} in {LATENCY_FILE}")
    slo_ms = float(part["slo_ms"].iloc[0])
    ax.axvline(slo_ms, label=f"SLO {format_number(slo_ms, 0)} ms", **SLO_STYLE)
    ax.set_xscale("log")
    thousands(ax.xaxis)
    finish_axes(ax, "end-to-end latency (ms, log scale)", "fraction of answered requests", title, log=True,
                legend_title=None)
    return Drawn(name, title, fig, f"Scenario {scenario}: the simulator (solid) and the live testbed (dashed) "
                 "on the same requests and draws, every replication pooled; the dashed black line is the SLO.")


def load_comparison(root: Path) -> tuple[pd.DataFrame, list[Drawn]]:
    """The comparison table and one CDF figure per scenario (in the table's order)."""
    try:
        table = pd.read_csv(root / TABLE_FILE)
    except (OSError, ValueError) as exc:
        raise RouterLabError(f"report: {root / TABLE_FILE}: unreadable ({exc}); expected the table "
                             "`router-lab testbed +experiment=sim_vs_live` writes") from None
    if "scenario" not in table or "metric" not in table:
        raise RouterLabError(f"report: {root / TABLE_FILE}: no scenario/metric columns; expected the "
                             "table `router-lab testbed +experiment=sim_vs_live` writes")
    scenarios = list(dict.fromkeys(table["scenario"].astype(str)))
    path = root / LATENCY_FILE
    if not path.is_file():
        return table, [Drawn(f"cdf_{s}", f"{s}: latency CDF, sim vs live", None,
                             f"not drawn: {LATENCY_FILE} is missing from the run folder") for s in scenarios]
    latency = pd.read_parquet(path, columns=list(LATENCY_COLUMNS))
    latency["scenario"] = latency["scenario"].astype(str)
    return table, [cdf_figure(s, latency) for s in scenarios]
