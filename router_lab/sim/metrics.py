"""Records → the run's summary (``metrics.json``): one function, used by the CLI, the report and tests.

Point values pool every replication's measured requests (those arriving after the warm-up);
95 % confidence intervals come from the replications (t over their values) or, for a single run,
from batch means over consecutive batches of requests.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from router_lab import metric_catalogue as catalogue
from router_lab.errors import RouterLabError
from router_lab.sim.audit import CHECKS
from router_lab.sim.draws import NS_PER_MS, NS_PER_S
from router_lab.sim.records import Outcome, Records
from router_lab.sim.scenario import Scenario

# What each metric is (unit, direction, interval, …) is declared in router_lab/metric_catalogue.py;
# this module computes them (``_measure`` per replication or batch, ``summarize`` for the run).
CI_KEYS = frozenset(catalogue.names(interval=True))
# Proportions: their intervals are clipped to [0, 1] (a t interval over few replications can pass 1).
FRACTION_KEYS = frozenset(catalogue.names(fraction=True))
ANSWERED = (Outcome.LOCAL, Outcome.CLOUD, Outcome.CASCADE, Outcome.FALLBACK)
log = logging.getLogger(__name__)


def _measure(rec: Records, keep: np.ndarray, sc: Scenario) -> dict[str, Any]:
    """Summary figures over the requests selected by ``keep`` (a boolean mask)."""
    n = int(keep.sum())
    outcome = rec.outcome[keep]
    answered = np.isin(outcome, ANSWERED)
    latency_ms = (rec.end_ns[keep] - rec.arrival_ns[keep]) / NS_PER_MS
    answered_ms = latency_ms[answered]
    pct = np.percentile(answered_ms, [50, 90, 95, 99]) if answered_ms.size else [float("nan")] * 4
    begin_ns = int(rec.arrival_ns[keep].min())
    window_s = max((int(rec.end_ns[keep].max()) - begin_ns) / NS_PER_S, 1e-12)
    dev_busy_s = _busy_s(rec.device_start_ns[keep], rec.device_done_ns[keep])
    cloud_busy_s = _busy_s(rec.cloud_start_ns[keep], rec.cloud_done_ns[keep])
    cloud_units = sc.cloud.units if not rec.models else sum(_remote_units(sc, rec.models).values())
    missed = ~answered | (latency_ms > sc.sim.slo_ms)
    return {
        "n_requests": n,
        "accuracy": float(rec.quality[keep].astype(np.float64).mean()),
        "latency_mean_ms": float(answered_ms.mean()) if answered_ms.size else float("nan"),
        "latency_p50_ms": float(pct[0]),
        "latency_p90_ms": float(pct[1]),
        "latency_p95_ms": float(pct[2]),
        "latency_p99_ms": float(pct[3]),
        "slo_miss_rate": float(missed.mean()),
        "cloud_fraction": float(rec.sent[keep].mean()),
        "answered_by_cloud_fraction": float(np.isin(outcome, (Outcome.CLOUD, Outcome.CASCADE)).mean()),
        "cost_per_1k_usd": float(rec.cost_usd[keep].astype(np.float64).mean() * 1000),
        "energy_per_request_j": float(rec.energy_j[keep].astype(np.float64).sum() / n
                                      + sc.device.idle_w * window_s / n),
        "device_utilization": dev_busy_s / (sc.device.units * window_s),
        "cloud_utilization": cloud_busy_s / (cloud_units * window_s),
        "throughput_per_s": n / window_s,
        "fallbacks": int((outcome == Outcome.FALLBACK).sum()),
        "rejections": int((outcome == Outcome.REJECTED).sum()),
        "failures": int((outcome == Outcome.FAILED).sum()),
        "outcomes": {o.name.lower(): int((outcome == o).sum()) for o in Outcome},
        "offdevice_bytes": int(rec.offdevice_bytes[keep].astype(np.int64).sum()),
        **(_tier_metrics(rec, keep) if rec.models else {}),
    }


def _remote_units(sc: Scenario, models: tuple[str, ...]) -> dict[str, int]:
    """Tiered runs: the units of each remote tier, by the model it serves."""
    units = {t.model: t.cloud.units for t in sc.tiers}
    if "cloud" in models and "cloud" not in units:
        units["cloud"] = sc.cloud.units
    return units


def _tier_metrics(rec: Records, keep: np.ndarray) -> dict[str, Any]:
    """Tiered runs: each model's share of the answers, and each remote tier's bill per 1,000 requests."""
    n = int(keep.sum())
    by = rec.answered_by[keep]
    counts = np.bincount(by[by >= 0], minlength=len(rec.models))
    billed = rec.tier_cost[keep].sum(axis=0, dtype=np.float64)  # each tier its own bills, failed attempts too
    return {
        "tier_shares": {m: float(counts[k] / n) for k, m in enumerate(rec.models)},
        "tier_cost_per_1k_usd": {m: float(billed[k] / n * 1000) for k, m in enumerate(rec.models) if k},
    }


def _busy_s(start_ns: np.ndarray, done_ns: np.ndarray) -> float:
    ran = start_ns >= 0
    return float((done_ns[ran] - start_ns[ran]).sum() / NS_PER_S)


def _ci95(values: np.ndarray, fraction: bool = False) -> list[float]:
    """The t interval of the mean over replications (or batches), clipped at 0, and at 1 for a
    proportion (every metric here is non-negative)."""
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return [float("nan"), float("nan")]
    # Student's t quantile: scipy.special.stdtrit is what scipy.stats.t.ppf calls; importing
    # scipy.stats instead would add about a second to every `simulate` (and sweep worker) start.
    from scipy.special import stdtrit

    half = stdtrit(len(values) - 1, 0.975) * values.std(ddof=1) / np.sqrt(len(values))
    mean = values.mean()
    return [float(max(mean - half, 0.0)), float(min(mean + half, 1.0) if fraction else mean + half)]


def _pooled(runs: Sequence[Records]) -> Records:
    if len(runs) == 1:
        return runs[0]
    columns = {name: np.concatenate([getattr(r, name) for r in runs])
               for name, value in vars(runs[0]).items() if isinstance(value, np.ndarray)}
    return Records(**columns, sensitive_blocked=sum(r.sensitive_blocked for r in runs), engine=runs[0].engine,
                   violations=accounting_violations(runs), models=runs[0].models)


def accounting_violations(runs: Sequence[Records]) -> dict[str, int]:
    """Per accounting check (``sim.audit``), the violations summed over the runs (all 0 normally)."""
    return {name: int(sum(r.violations.get(name, 0) for r in runs)) for name in CHECKS}


def summarize(records: Records | Sequence[Records], scenario: Scenario) -> dict[str, Any]:
    """The metrics of one run or of several replications (``metrics.json``'s content)."""
    runs = [records] if isinstance(records, Records) else list(records)
    warmup_ns = int(round(scenario.sim.warmup_s * NS_PER_S))
    masks = [r.arrival_ns >= warmup_ns for r in runs]
    if not all(m.any() for m in masks):
        raise RouterLabError(f"sim.warmup_s: got {scenario.sim.warmup_s}; every request arrives in the "
                             "warm-up, so nothing is measured (lower it or run longer)")
    pooled = _pooled(runs)
    summary = _measure(pooled, np.concatenate(masks), scenario)
    if len(runs) >= 2:
        per_run = [_measure(r, m, scenario) for r, m in zip(runs, masks, strict=True)]
        method = "replications"
    else:
        idx = np.flatnonzero(masks[0])
        batches = np.array_split(idx, min(scenario.sim.batches, len(idx)))
        per_run = []
        for b in batches:
            keep = np.zeros(len(runs[0]), dtype=bool)
            keep[b] = True
            per_run.append(_measure(runs[0], keep, scenario))
        method = "batch_means"
    # in the summary's order (that of _measure's keys)
    summary["ci95"] = {k: _ci95(np.array([p[k] for p in per_run], dtype=np.float64), k in FRACTION_KEYS)
                       for k in summary if k in CI_KEYS}
    summary["ci_method"] = method
    summary["replications"] = len(runs)
    summary["n_requests_total"] = int(sum(len(r) for r in runs))
    summary["sensitive_offloaded"] = int(sum(int((r.sensitive & r.sent).sum()) for r in runs))
    summary["sensitive_blocked"] = int(sum(r.sensitive_blocked for r in runs))
    violations = accounting_violations(runs)  # one number in metrics.json (a report column); details logged
    audited = all(r.violations for r in runs)  # the live testbed's records are not checked against the model
    summary["accounting_violations"] = sum(violations.values()) if audited else None
    if summary["accounting_violations"]:
        log.warning("simulator accounting checks failed (a simulator bug): %s",
                    {k: v for k, v in violations.items() if v})
    summary["engine"] = runs[0].engine
    summary["slo_ms"] = scenario.sim.slo_ms
    return _json_safe(summary)


def _json_safe(value: Any) -> Any:
    """NaN (e.g. a percentile with no answered request) becomes None, so JSON stays strict."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
