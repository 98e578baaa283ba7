"""Arrival processes (the `workload` group): Poisson, bursty MMPP-2, diurnal by thinning, trace replay.

Each generator returns sorted arrival times in seconds (vectorised, from one seeded generator), up to
``n_max`` requests or until ``t_max_s``, whichever comes first; trace replay may also fix the rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError
from router_lab.registry import Registry
from router_lab.sim.config import (
    BurstyWorkloadConfig,
    DiurnalWorkloadConfig,
    TraceWorkloadConfig,
    WorkloadConfig,
)

HARD_CAP = 50_000_000  # a duration-bounded run never makes more requests than this


@dataclass(frozen=True)
class Arrivals:
    times_s: np.ndarray  # float64, sorted
    rows: np.ndarray | None = None  # dataset rows in replay order (trace), else sampled later


ARRIVALS: Registry[Callable[..., Arrivals]] = Registry("workload", field="workload.kind")  # workload.kind -> its generator


def _cap(n_max: int, t_max_s: float | None) -> int:
    return HARD_CAP if t_max_s is not None else n_max


def _clip(times: np.ndarray, n_max: int, t_max_s: float | None) -> np.ndarray:
    if t_max_s is not None:
        return times[times < t_max_s]
    return times[:n_max]


def _batched(draw: Callable[[int, float], tuple[np.ndarray, float]], rate: float, n_max: int,
             t_max_s: float | None) -> np.ndarray:
    """Call ``draw(k, t_start) -> (sorted times, t_next)`` until enough requests or time is covered."""
    cap = _cap(n_max, t_max_s)
    chunks: list[np.ndarray] = []
    total, t = 0, 0.0
    while total < cap and (t_max_s is None or t < t_max_s):
        k = int(min(max(1024, (cap - total) * 1.05 + 64 if t_max_s is None else
                        (t_max_s - t) * rate * 1.05 + 64), 4_000_000))
        batch, t = draw(k, t)
        chunks.append(batch)
        total += len(batch)
    times = np.concatenate(chunks) if chunks else np.empty(0)
    return _clip(times, n_max, t_max_s)


@ARRIVALS.register("poisson", schema=WorkloadConfig)
def poisson(w: WorkloadConfig, n_max: int, t_max_s: float | None, rng: np.random.Generator,
            dataset: Dataset) -> Arrivals:
    """Poisson arrivals at `rate_per_s`: exponential gaps, drawn in blocks."""
    rate = w.rate_per_s

    def draw(k: int, t0: float) -> np.ndarray:
        times = t0 + np.cumsum(rng.exponential(1.0 / rate, k))
        return times, float(times[-1])

    return Arrivals(_batched(draw, rate, n_max, t_max_s))


@ARRIVALS.register("bursty", schema=BurstyWorkloadConfig)
def bursty(w: BurstyWorkloadConfig, n_max: int, t_max_s: float | None, rng: np.random.Generator,
           dataset: Dataset) -> Arrivals:
    """MMPP-2: alternate exponential sojourns; Poisson counts per sojourn, uniform order statistics."""
    rates = np.array([w.rate_low_per_s, w.rate_high_per_s])
    means = np.array([w.mean_low_s, w.mean_high_s])
    mean_rate = float((rates * means).sum() / means.sum())
    state = [int(rng.random() < means[1] / means.sum())]  # start in the stationary distribution

    def draw(k: int, t0: float) -> np.ndarray:
        n_periods = max(2, int(k / max(mean_rate * means.mean(), 1e-9)) + 2)
        states = (state[0] + np.arange(n_periods)) % 2
        lengths = rng.exponential(means[states])
        starts = t0 + np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
        counts = rng.poisson(rates[states] * lengths)
        state[0] = int((states[-1] + 1) % 2)
        offsets = rng.random(int(counts.sum())) * np.repeat(lengths, counts)
        times = np.repeat(starts, counts) + offsets
        times.sort()
        return times, float(starts[-1] + lengths[-1])

    return Arrivals(_batched(draw, mean_rate, n_max, t_max_s))


@ARRIVALS.register("diurnal", schema=DiurnalWorkloadConfig)
def diurnal(w: DiurnalWorkloadConfig, n_max: int, t_max_s: float | None, rng: np.random.Generator,
            dataset: Dataset) -> Arrivals:
    """Non-homogeneous Poisson by thinning a Poisson process at the peak rate."""
    peak = w.rate_per_s * (1.0 + w.amplitude)

    def draw(k: int, t0: float) -> np.ndarray:
        cand = t0 + np.cumsum(rng.exponential(1.0 / peak, int(k * (1 + w.amplitude)) + 16))
        rate = w.rate_per_s * (1.0 + w.amplitude * np.sin(2 * np.pi * (cand + w.phase_s) / w.period_s))
        keep = rng.random(len(cand)) * peak < rate
        return cand[keep], float(cand[-1])

    return Arrivals(_batched(draw, w.rate_per_s, n_max, t_max_s))


@ARRIVALS.register("trace", schema=TraceWorkloadConfig)
def trace(w: TraceWorkloadConfig, n_max: int, t_max_s: float | None, rng: np.random.Generator,
          dataset: Dataset) -> Arrivals:
    """Replay recorded times in order, shifted to start at 0 (dataset rows replayed in time order)."""
    rows = None
    if w.path is None:
        if "timestamp" not in dataset.frame.columns:
            raise RouterLabError(f"workload=trace: dataset {dataset.name} has no 'timestamp' column; "
                                 "expected one, or workload.path=<CSV of arrival times>")
        raw = dataset.frame["timestamp"].to_numpy(dtype=np.float64)
        rows = np.argsort(raw, kind="stable")
        times = raw[rows]
    else:
        try:
            frame = pd.read_csv(w.path)
        except (OSError, ValueError) as exc:
            raise RouterLabError(f"workload.path: cannot read {w.path}: {exc}") from exc
        if w.column not in frame.columns:
            raise RouterLabError(f"{w.path}: no column {w.column!r}; expected arrival times in seconds "
                                 f"(workload.column)")
        times = pd.to_numeric(frame[w.column], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(times) | (times < 0))
        if bad.size:
            value = frame[w.column].iloc[bad[0]]
            value = value.item() if hasattr(value, "item") else value  # a plain repr, not np.float64(...)
            raise RouterLabError(f"{w.path}: column {w.column!r}, row {bad[0] + 1}: got "
                                 f"{value!r}; expected a non-negative number of seconds")
        times = np.sort(times, kind="stable")
    if times.size == 0:
        raise RouterLabError(f"{w.path or 'dataset timestamp'}: no arrival times; expected at least one row")
    times = (times - times[0]) / w.time_scale
    keep = len(_clip(times, n_max, t_max_s))
    return Arrivals(times[:keep], None if rows is None else rows[:keep])


def arrival_times(w: WorkloadConfig, n_max: int, t_max_s: float | None, rng: np.random.Generator,
                  dataset: Dataset) -> Arrivals:
    """The arrivals of a workload config (looked up by ``w.kind``)."""
    arrivals = ARRIVALS.get(w.kind)(w, n_max, t_max_s, rng, dataset)
    if len(arrivals.times_s) == 0:
        raise RouterLabError(f"workload={w.kind}: no requests arrive (check sim.duration_s and the rates)")
    return arrivals
