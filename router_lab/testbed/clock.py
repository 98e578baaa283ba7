"""The testbed's timers: one monotonic clock, a select()-based event loop, and wake-up calibration.

Every wait is "until a deadline" (time.monotonic_ns, shared by all processes on the machine), so
lateness never adds up along a request.  asyncio's epoll loop rounds timeouts up to whole
milliseconds, which at time_scale 0.1 is up to 10 configured ms per wait; a select() loop waits in
microseconds.  What remains is the OS's wake-up latency (on this shared VM: a few hundred µs at the
median, several ms in its tail).  Timers aim early by the *mean* wake-up lateness, so that a hold
ends at its deadline on average and the testbed's own instrument error does not bias every stage's
mean: :func:`calibrate` measures the median at start-up as the first estimate, then every wait
updates a running mean of its own lateness (:func:`sleep_until`).  What is left of it is reported
(the generator's lateness, the wake-up summary in testbed.json).
"""

from __future__ import annotations

import asyncio
import selectors
import time
from typing import Any

MAX_BIAS_NS = 2_000_000  # never aim more than 2 ms early
MAX_SAMPLE_NS = 10_000_000  # one wake-up counts at most 10 ms toward the running mean
LATENESS_EWMA = 0.02  # weight of the latest wake-up in the running mean (~50 waits)
_bias = {"ns": 0, "mean": 0.0, "waits": 0, "late_sum": 0, "late_sq": 0.0}


def run_precise(coro: Any) -> Any:
    """``asyncio.run`` on a select()-based event loop (microsecond timeouts)."""
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


async def calibrate(samples: int = 200, delay_ns: int = 1_000_000) -> int:
    """Measure the median wake-up lateness of a timer wait here and now; aim that much early."""
    _bias["ns"] = 0
    late = []
    for _ in range(samples):
        target = time.monotonic_ns() + delay_ns
        await asyncio.sleep(delay_ns / 1e9)
        late.append(time.monotonic_ns() - target)
    late.sort()
    _bias["ns"] = max(0, min(MAX_BIAS_NS, late[len(late) // 2]))
    _bias["mean"] = float(_bias["ns"])
    reset_wake_stats()
    return _bias["ns"]


def reset_wake_stats() -> None:
    """Start counting waits afresh for :func:`wake_summary` (the running bias is kept)."""
    _bias.update(waits=0, late_sum=0, late_sq=0.0)


def wake_bias_ns() -> int:
    return _bias["ns"]


def wake_summary() -> dict[str, float]:
    """The waits since :func:`calibrate`: how many, and their mean and sd lateness past the deadline
    (real µs; ~0 mean is what the running calibration aims for), and the bias now."""
    n = _bias["waits"]
    mean = _bias["late_sum"] / n if n else 0.0
    sd = max(0.0, _bias["late_sq"] / n - mean * mean) ** 0.5 if n else 0.0
    return {"waits": n, "wake_late_mean_us_real": mean / 1e3, "wake_late_sd_us_real": sd / 1e3,
            "wake_bias_end_us_real": _bias["ns"] / 1e3}


async def sleep_until(deadline_ns: int) -> None:
    """Wait until ``deadline_ns`` (monotonic), aiming early by the running mean wake-up lateness.

    Always yields to the event loop, even when the deadline has passed: a loop of waits can never
    starve the other tasks."""
    aim = deadline_ns - _bias["ns"]
    delay = aim - time.monotonic_ns()
    if delay <= 0:
        await asyncio.sleep(0)
        return
    await asyncio.sleep(delay / 1e9)
    woke = time.monotonic_ns()
    raw = min(MAX_SAMPLE_NS, max(0, woke - aim))  # this wait's lateness past where it aimed
    _bias["mean"] += LATENESS_EWMA * (raw - _bias["mean"])
    _bias["ns"] = max(0, min(MAX_BIAS_NS, int(_bias["mean"])))
    late = woke - deadline_ns
    _bias["waits"] += 1
    _bias["late_sum"] += late
    _bias["late_sq"] += float(late) * late
