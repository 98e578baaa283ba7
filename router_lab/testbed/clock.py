"""The testbed's timers: one monotonic clock, a select()-based event loop, and wake-up calibration.

Every wait is "until a deadline" (time.monotonic_ns, shared by all processes on the machine), so
lateness never adds up along a request.  asyncio's epoll loop rounds timeouts up to whole
milliseconds, which at time_scale 0.1 is up to 10 configured ms per wait; a select() loop waits in
microseconds.  What remains is the OS's wake-up latency: :func:`calibrate` measures its median at
start-up and timers aim that much early, so the testbed's own instrument error does not bias every
hold (what is left is reported as the generator's lateness).
"""

from __future__ import annotations

import asyncio
import selectors
import time
from typing import Any

MAX_BIAS_NS = 2_000_000  # never aim more than 2 ms early
_bias = {"ns": 0}


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
    return _bias["ns"]


def wake_bias_ns() -> int:
    return _bias["ns"]


async def sleep_until(deadline_ns: int) -> None:
    delay = deadline_ns - time.monotonic_ns() - _bias["ns"]
    if delay > 0:
        await asyncio.sleep(delay / 1e9)
