"""Timing a scorer the way a device calls it: single requests (p50/p99) and batches (rows/s).

Wall-clock timings with ``time.perf_counter_ns`` after a warm-up, garbage collection paused; the
figures describe this machine at the moment of measuring and are reported, not asserted in tests.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

WARMUP_CALLS = 50


@dataclass(frozen=True)
class LatencyFigures:
    p50_us: float  # single request
    p99_us: float
    batch_rows_per_s: float  # batches of `batch_rows`
    n_calls: int
    batch_rows: int

    def as_dict(self, prefix: str) -> dict[str, float | int]:
        return {f"{prefix}_p50_us": self.p50_us, f"{prefix}_p99_us": self.p99_us,
                f"{prefix}_batch{self.batch_rows}_rows_per_s": self.batch_rows_per_s,
                f"{prefix}_n_calls": self.n_calls}


def _timed_ns(call: Callable[[Any], Any], inputs: list[Any]) -> np.ndarray:
    enabled = gc.isenabled()
    gc.disable()
    try:
        out = np.empty(len(inputs), dtype=np.int64)
        clock = time.perf_counter_ns
        for i, x in enumerate(inputs):
            start = clock()
            call(x)
            out[i] = clock() - start
        return out
    finally:
        if enabled:
            gc.enable()


def measure_latency(single: Callable[[Any], Any], batch: Callable[[Any], Any], rows: list[Any],
                    batch_input: Any, n_calls: int, batch_rows: int, batch_calls: int) -> LatencyFigures:
    """Time ``single`` on ``n_calls`` requests (cycling through ``rows``) and ``batch`` on
    ``batch_input`` (``batch_rows`` rows) ``batch_calls`` times."""
    if n_calls < 1 or batch_calls < 1 or not rows:
        raise ValueError("latency: need at least one call and one row")
    inputs = [rows[i % len(rows)] for i in range(n_calls)]
    _timed_ns(single, inputs[:WARMUP_CALLS])
    single_us = _timed_ns(single, inputs) / 1e3
    _timed_ns(batch, [batch_input])
    batch_s = _timed_ns(batch, [batch_input] * batch_calls) / 1e9
    return LatencyFigures(p50_us=float(np.percentile(single_us, 50)),
                          p99_us=float(np.percentile(single_us, 99)),
                          batch_rows_per_s=float(batch_rows / np.median(batch_s)),
                          n_calls=int(n_calls), batch_rows=int(batch_rows))


def tile_rows(x: Any, n_rows: int) -> Any:
    """``n_rows`` rows made by repeating ``x`` (the held-out rows) in order."""
    index = np.arange(n_rows) % len(x)
    return x[index]
