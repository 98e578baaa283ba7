"""A FIFO station of c identical units (device or cloud): admission, start times, queue limit, battery.

FIFO with known service times and no abandonment fixes a request's start time when it is admitted
(Kiefer-Wolfowitz), so the event-driven engine admits one request per call to
:meth:`FifoStation.admit` and the fast path runs :func:`fifo_starts` over a whole sorted stream.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass

import numpy as np

from router_lab.sim.draws import NS_PER_S

REJECTED = -1  # the queue was full
DEAD = -2  # the battery was empty


@dataclass(frozen=True)
class Battery:
    capacity_j: float
    idle_w: float
    per_inference_j: float

    def empty(self, now_ns: int, n_admitted: int) -> bool:
        """Spent energy (idle since t=0 plus every admitted inference, this one included)."""
        return self.idle_w * (now_ns / NS_PER_S) + self.per_inference_j * (n_admitted + 1) > self.capacity_j


class FifoStation:
    """``units`` servers sharing one FIFO queue of at most ``queue_limit`` waiting requests."""

    def __init__(self, units: int, queue_limit: int | None = None, battery: Battery | None = None) -> None:
        self.units = units
        self.queue_limit = queue_limit
        self.battery = battery
        self.free_at = [0] * units  # heap of the times each unit becomes free
        self.waiting: deque[int] = deque()  # start times (> now) of admitted requests still queued
        self.n_admitted = 0

    def admit(self, now: int, service: int) -> int:
        """Admit a request arriving at ``now``: its start time, or REJECTED / DEAD (not admitted)."""
        waiting = self.waiting
        while waiting and waiting[0] <= now:
            waiting.popleft()
        if self.queue_limit is not None and len(waiting) >= self.queue_limit:
            return REJECTED
        if self.battery is not None and self.battery.empty(now, self.n_admitted):
            return DEAD
        free = self.free_at
        start = now if now >= free[0] else free[0]
        heapq.heapreplace(free, start + service)
        if start > now:
            waiting.append(start)
        self.n_admitted += 1
        return start

    def queue_length(self, now: int) -> int:
        waiting = self.waiting
        while waiting and waiting[0] <= now:
            waiting.popleft()
        return len(waiting)

    def busy(self, now: int) -> int:
        """Units serving at ``now`` (a unit with work assigned past ``now`` is busy now: FIFO)."""
        return sum(1 for t in self.free_at if t > now)


def _never_all_busy(enter_ns: np.ndarray, service_ns: np.ndarray, units: int, chunk: int = 1 << 16) -> bool:
    """Whether, with no waiting at all, fewer than ``units`` earlier requests are ever in service.

    Then no one waits and start = enter.  Request k finds ``k - #{done <= enter_k}`` earlier
    requests still in service (services are >= 1 ns, so later ones are never done by then).
    """
    done = enter_ns + service_ns
    done.sort()
    for lo in range(0, len(enter_ns), chunk):
        finished = np.searchsorted(done, enter_ns[lo:lo + chunk], side="right")
        if int((np.arange(lo, lo + len(finished)) - finished).max()) >= units:
            return False
    return True


def fifo_starts(enter_ns: np.ndarray, service_ns: np.ndarray, units: int,
                queue_limit: int | None = None, battery: Battery | None = None,
                scratch: bool = False) -> np.ndarray:
    """Start times (or REJECTED/DEAD) for requests entering at sorted ``enter_ns``, in that order.

    Identical to calling :meth:`FifoStation.admit` in order; vectorised when nothing can be
    refused (no queue limit, no battery) and either one unit or the units never all get busy.
    ``scratch=True`` lets it overwrite ``enter_ns`` (and return it) to save memory.
    """
    n = len(enter_ns)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    if queue_limit is None and battery is None:
        if units == 1:  # start_k = max over j <= k of (enter_j + s_j + ... + s_{k-1}), in place
            start = enter_ns if scratch else enter_ns.copy()
            cum = np.cumsum(service_ns)
            np.subtract(start[1:], cum[:-1], out=start[1:])
            np.maximum.accumulate(start, out=start)
            start[1:] += cum[:-1]
            return start
        if _never_all_busy(enter_ns, service_ns, units):
            return enter_ns if scratch else enter_ns.copy()
    station = FifoStation(units, queue_limit, battery)
    admit = station.admit
    return np.fromiter((admit(t, s) for t, s in zip(enter_ns.tolist(), service_ns.tolist(), strict=True)),
                       dtype=np.int64, count=n)
