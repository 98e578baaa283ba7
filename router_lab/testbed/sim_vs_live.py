"""`router-lab testbed +experiment=sim_vs_live`: each scenario simulated and run live, stage by stage.

Both sides use the same seeds, so the same requests, draws and (stateless) routes: a difference is
what the real system adds.  Writes ``sim_vs_live.csv`` (scenario, metric, sim, live, live_ci_low,
live_ci_high, rel_error; the live interval is a t interval over the live replications),
``sim_vs_live.md``, every answered request's latency (``sim_vs_live_latency.parquet``) and one
latency-CDF figure per scenario (``cdf_<scenario>.png``; `router-lab report` on the folder embeds
them in report.html).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from router_lab.errors import RouterLabError
from router_lab.io import atomic_path, atomic_write_text, run_dir
from router_lab.report.comparison import LATENCY_FILE, cdf_figure, latency_frame
from router_lab.sim.commands import simulate_config
from router_lab.sim.records import Outcome, Records

COLUMNS = ["scenario", "metric", "sim", "live", "live_ci_low", "live_ci_high", "rel_error"]
SUMMARY_METRICS = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "cloud_fraction", "accuracy")
STAGES = ("device_wait_ms", "device_service_ms", "network_ms", "cloud_wait_ms", "cloud_service_ms")
COUNTS = ("rejections", "fallbacks")


def stage_means(rec: Records) -> dict[str, float]:
    """Each stage's mean over the requests that went through it (network: those uploaded)."""
    frame = rec.to_frame()
    out = {}
    for stage in STAGES:
        values = frame.loc[frame["sent"], stage] if stage == "network_ms" else frame[stage]
        values = values.dropna()
        out[f"{stage}_mean"] = float(values.mean()) if len(values) else float("nan")
    out["rejections"] = float((rec.outcome == Outcome.REJECTED).sum())
    out["fallbacks"] = float((rec.outcome == Outcome.FALLBACK).sum())
    return out


def _t_interval(values: np.ndarray) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean() - half), float(values.mean() + half)


def _rel(sim: float, live: float) -> float:
    if not (np.isfinite(sim) and np.isfinite(live)):
        return float("nan")
    if sim == 0:
        return 0.0 if live == 0 else float("inf")
    return (live - sim) / abs(sim)


def compare(name: str, sim_runs: list[Records], sim_m: dict[str, Any], live_runs: list[Records],
            live_m: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for metric in SUMMARY_METRICS:
        low, high = live_m["ci95"].get(metric) or (None, None)
        sim_v = np.nan if sim_m[metric] is None else sim_m[metric]
        live_v = np.nan if live_m[metric] is None else live_m[metric]
        rows.append({"scenario": name, "metric": metric, "sim": sim_v, "live": live_v,
                     "live_ci_low": np.nan if low is None else low,
                     "live_ci_high": np.nan if high is None else high, "rel_error": _rel(sim_v, live_v)})
    sim_stages = _pooled_stages(sim_runs)
    per_live = [stage_means(r) for r in live_runs]
    live_stages = _pooled_stages(live_runs)
    for key in [f"{s}_mean" for s in STAGES] + list(COUNTS):
        low, high = _t_interval(np.array([p[key] for p in per_live]))
        if key in COUNTS:  # per replication, summed over replications like the metrics' counts
            n = len(live_runs)
            low, high = low * n, high * n
        rows.append({"scenario": name, "metric": key, "sim": sim_stages[key], "live": live_stages[key],
                     "live_ci_low": low, "live_ci_high": high, "rel_error": _rel(sim_stages[key], live_stages[key])})
    return rows


def _pooled_stages(runs: list[Records]) -> dict[str, float]:
    per = [stage_means(r) for r in runs]
    frames = pd.concat([r.to_frame() for r in runs], ignore_index=True)
    out = {}
    for stage in STAGES:
        values = frames.loc[frames["sent"], stage] if stage == "network_ms" else frames[stage]
        values = values.dropna()
        out[f"{stage}_mean"] = float(values.mean()) if len(values) else float("nan")
    for key in COUNTS:
        out[key] = float(sum(p[key] for p in per))
    return out


ANSWERED = [int(o) for o in (Outcome.LOCAL, Outcome.CLOUD, Outcome.CASCADE, Outcome.FALLBACK)]


def answered_latency_ms(runs: list[Records]) -> np.ndarray:
    """End-to-end latency (ms) of every answered request, replications pooled."""
    return np.concatenate([r.latency_ns[np.isin(r.outcome, ANSWERED)] / 1e6 for r in runs])


def write_cdf(path: Any, name: str, latency: pd.DataFrame) -> None:
    """``cdf_<scenario>.png``: the report's drawing of the scenario's latency CDF, sim vs live."""
    drawn = cdf_figure(name, latency)
    if drawn.figure is None:
        return
    with atomic_path(path) as tmp:
        drawn.figure.savefig(tmp, format="png", metadata={"Software": None})
    drawn.figure.clear()


def _base_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return [o for o in HydraConfig.get().overrides.task if not o.startswith("hydra.")]


def sim_vs_live(cfg: Any) -> dict[str, Any]:
    from hydra import compose

    from router_lab.testbed.commands import testbed_config

    scenarios = list(cfg.testbed.scenarios)
    if not scenarios:
        raise RouterLabError("testbed.scenarios: empty; expected a list of {name, overrides} "
                             "(see conf/experiment/sim_vs_live.yaml)")
    base = _base_overrides()
    out = run_dir()
    rows: list[dict[str, Any]] = []
    latencies: list[pd.DataFrame] = []
    for scenario in scenarios:
        name = str(scenario["name"])
        sub = compose("config", overrides=[*base, *[str(o) for o in scenario["overrides"]],
                                           "testbed.experiment=null"])
        sim_runs, sim_m = simulate_config(sub)
        live_runs, live_m, info = testbed_config(sub)
        rows += compare(name, sim_runs, sim_m, live_runs, live_m)
        latencies.append(latency_frame(name, answered_latency_ms(sim_runs), answered_latency_ms(live_runs),
                                       float(sub.sim.slo_ms)))
        write_cdf(out / f"cdf_{name}.png", name, latencies[-1])
        print(f"sim_vs_live: {name}: p50 sim {sim_m['latency_p50_ms']:.1f} / live {live_m['latency_p50_ms']:.1f} ms, "
              f"p99 sim {sim_m['latency_p99_ms']:.1f} / live {live_m['latency_p99_ms']:.1f} ms "
              f"(generator p99 lateness {info['generator'].get('lateness_p99_ms', float('nan')):.2f} configured ms)",
              flush=True)
    table = pd.DataFrame(rows, columns=COLUMNS)
    with atomic_path(out / "sim_vs_live.csv") as tmp:
        table.to_csv(tmp, index=False)
    atomic_write_text(out / "sim_vs_live.md", markdown(table))
    with atomic_path(out / LATENCY_FILE) as tmp:
        pd.concat(latencies, ignore_index=True).to_parquet(tmp, index=False)
    print(f"  wrote {out / 'sim_vs_live.csv'}, sim_vs_live.md, {LATENCY_FILE} and {len(scenarios)} CDF figure(s); "
          f"`router-lab report {out}` embeds them in report.html")
    return {"scenarios": len(scenarios), "rows": len(table)}


def markdown(table: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in table.itertuples(index=False):
        cells = [row.scenario, row.metric] + [_fmt(v) for v in (row.sim, row.live, row.live_ci_low, row.live_ci_high)]
        cells.append("–" if not np.isfinite(row.rel_error) else f"{row.rel_error:+.1%}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt(v: float) -> str:
    if not np.isfinite(v):
        return "–"
    return f"{v:.4g}"
