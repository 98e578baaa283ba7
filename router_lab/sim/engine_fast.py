"""The fast path: for stateless policies the stations decouple into vectorised FIFO recursions.

One pass runs the device (Lindley / Kiefer-Wolfowitz over every request that needs it), then the
network and the cloud; cloud failures that fall back to the device feed the next pass, until the
fallbacks stop changing (usually one or two passes).  On the same draws it gives the simpy
engine's results to the nanosecond (times are integers, and both share the station rule and the
tie rule: requests entering a station or the rate limiter at the same nanosecond are admitted in
order of request number, first visits and fallbacks alike).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError
from router_lab.policies.base import Policy, Route
from router_lab.sim.core import WINDOW_NS, Setup, prepare
from router_lab.sim.draws import NEVER, attempts_begun
from router_lab.sim.records import Outcome, Records, Timeline
from router_lab.sim.scenario import Scenario
from router_lab.sim.stations import REJECTED, fifo_starts

MAX_PASSES = 100


class FastPathUnsupported(RouterLabError):
    """The fast path cannot run this policy or scenario (the simpy engine can)."""


@dataclass(frozen=True)
class Fallbacks:
    index: np.ndarray  # requests (cloud routes) that fall back to the device
    at_ns: np.ndarray  # when they join the device queue

    def same_as(self, other: Fallbacks) -> bool:
        return np.array_equal(self.index, other.index) and np.array_equal(self.at_ns, other.at_ns)


def _in_time_order(idx: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort a stream by time (stable, so ties keep their order; ``at`` is sorted in place).

    With ``idx`` in increasing request order, ties end up in request order (the tie rule).
    """
    if len(at) < 2 or bool((at[1:] >= at[:-1]).all()):
        return idx, at
    idx = idx[np.argsort(at, kind="stable")]
    at.sort(kind="stable")  # the same values as at[order], without a second copy
    return idx, at


def _merge(idx: np.ndarray, at: np.ndarray, fb_idx: np.ndarray, fb_at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge fallbacks into a stream sorted by (time, request) whose requests increase with time.

    The result is sorted by (time, request number): the tie rule, without sorting the whole stream.
    """
    order = np.lexsort((fb_idx, fb_at))
    fb_idx, fb_at = fb_idx[order], fb_at[order]
    lo = np.searchsorted(at, fb_at, side="left")
    hi = np.searchsorted(at, fb_at, side="right")
    before = np.clip(np.searchsorted(idx, fb_idx), lo, hi)  # stream entries ahead of each fallback
    return np.insert(idx, before, fb_idx), np.insert(at, before, fb_at)


def _indices(mask: np.ndarray) -> np.ndarray:
    return np.flatnonzero(mask).astype(np.int32)


def within_rate_limit(arrive_ns: np.ndarray, per_window: int) -> np.ndarray:
    """For sorted arrivals: True for the first ``per_window`` of each fixed one-minute window."""
    admitted = np.ones(len(arrive_ns), dtype=bool)
    if len(arrive_ns) <= per_window:
        return admitted
    first, last = int(arrive_ns[0]) // WINDOW_NS, int(arrive_ns[-1]) // WINDOW_NS
    edges = np.searchsorted(arrive_ns, np.arange(first, last + 2, dtype=np.int64) * WINDOW_NS)
    full = np.flatnonzero(np.diff(edges) > per_window)
    marks = np.zeros(len(arrive_ns) + 1, dtype=np.int8)  # +1 from the limit-th arrival to the window's end
    marks[edges[full] + per_window] += 1
    marks[edges[full + 1]] -= 1
    np.cumsum(marks, dtype=np.int8, out=marks)
    admitted &= marks[:-1] == 0
    return admitted


class FastRun:
    def __init__(self, setup: Setup) -> None:
        self.sc, self.d, self.dec = setup.sc, setup.draws, setup.decisions
        self.route = self.dec.route
        self.overhead_ns = setup.constants.overhead_ns
        self.timeout_ns = setup.constants.timeout_ns
        self.retry_ns = setup.constants.retry_ns
        self.battery = setup.constants.battery
        self.direct_mask = self.route == Route.CLOUD
        self.device_first = _indices(~self.direct_mask)

    def device_pass(self, tl: Timeline, fb: Fallbacks) -> None:
        """Every request that runs on the device: local and cascade routes, and cloud fallbacks."""
        d, dev = self.d, self.sc.device
        idx = self.device_first
        enter = d.arrival_ns[idx] + self.overhead_ns
        if len(fb.index):
            idx, enter = _merge(idx, enter, fb.index, fb.at_ns)
        service = d.device_service_ns[idx]
        tl.device_enter_ns[idx] = enter
        start = fifo_starts(enter, service, dev.units, dev.queue_limit, self.battery, scratch=True)
        refused = np.flatnonzero(start < 0)
        if refused.size:
            tl.end_ns[idx[refused]] = tl.device_enter_ns[idx[refused]]
            tl.outcome[idx[refused]] = np.where(start[refused] == REJECTED, Outcome.REJECTED, Outcome.FAILED)
            ok = np.flatnonzero(start >= 0)
            idx, start, service = idx[ok], start[ok], service[ok]
        del enter
        tl.device_start_ns[idx] = start
        start += service  # now the completion times
        tl.device_done_ns[idx] = start
        tl.end_ns[idx] = start
        if len(fb.index):
            admitted = fb.index[tl.device_start_ns[fb.index] >= 0]
            tl.outcome[admitted] = Outcome.FALLBACK

    def sent_at(self, tl: Timeline, requests: np.ndarray, cascade: np.ndarray) -> np.ndarray:
        """When these requests were uploaded: after the router, or after the device (cascades)."""
        sent = self.d.arrival_ns[requests]
        sent += self.overhead_ns
        later = np.flatnonzero(cascade)
        sent[later] = tl.device_done_ns[requests[later]]
        return sent

    def cloud_pass(self, tl: Timeline) -> Fallbacks:
        """Network and cloud for direct cloud routes and escalated cascades; returns new fallbacks."""
        d, cloud, T = self.d, self.sc.cloud, self.timeout_ns
        # Direct cloud routes and escalated cascades, in request order (so ties keep request order).
        to_cloud = self.dec.escalate & (self.route == Route.CASCADE) & (tl.device_start_ns >= 0)
        to_cloud |= self.direct_mask
        idx = _indices(to_cloud)
        del to_cloud
        cascade = ~self.direct_mask[idx]
        send = d.arrival_ns[idx]
        send += self.overhead_ns
        later = np.flatnonzero(cascade)  # (index arrays: much faster than boolean indexing here)
        send[later] = tl.device_done_ns[idx[later]]
        del later
        fails: list[tuple[np.ndarray, np.ndarray]] = []  # (positions in idx, when the requester learns it)
        arrive = d.uplink_ns[idx]
        arrive += send  # when the upload would complete
        going = np.ones(len(idx), bool)
        if d.has_outages:
            cut = d.first_down(send, arrive)
            down = np.flatnonzero(cut == send)
            fails.append((down, send[down]))  # down when sending: known at once, nothing sent
            going[down] = False
            hit = np.flatnonzero(going & (cut != NEVER))  # an outage begins during the upload
            fails.append((hit, cut[hit]))
            going[hit] = False
            tl.sent[idx[hit]] = True
            tl.attempts[idx[hit]] = attempts_begun(cut[hit] - send[hit], d.uplink_attempts[idx[hit]], self.retry_ns)
            del cut
        sending = np.compress(going, idx)
        tl.sent[sending] = True
        tl.attempts[sending] = d.uplink_attempts[sending]
        del sending
        lost = np.flatnonzero(going & d.uplink_failed[idx])  # every attempt lost, or the timeout first
        fails.append((lost, arrive[lost]))
        going[lost] = False
        del send  # recomputed below where needed: it would double this pass's peak memory
        # Requests reaching the cloud, in arrival order.
        if going.all():
            g = np.arange(len(idx), dtype=np.int32)
        else:
            g = _indices(going)
            arrive = arrive.take(g)
        g, arrive = _in_time_order(g, arrive)
        del going
        ci = idx[g]
        tl.cloud_enter_ns[ci] = arrive
        admitted = np.ones(len(g), bool)
        if cloud.rate_limit_rpm is not None:
            admitted = within_rate_limit(arrive, cloud.rate_limit_rpm)
        service = d.cloud_service_ns[ci]
        if admitted.all():
            start = fifo_starts(arrive.copy() if cloud.queue_limit is not None else arrive, service,
                                cloud.units, cloud.queue_limit, scratch=True)
        else:
            start = np.full(len(g), REJECTED, dtype=np.int64)
            start[admitted] = fifo_starts(arrive[admitted], service[admitted], cloud.units, cloud.queue_limit)
        refused = np.flatnonzero(start < 0)
        if refused.size:  # (then `arrive` was not overwritten: only a queue limit or the rate limit refuse)
            refused_at = arrive[refused] + d.downlink_ns[ci[refused]]
            if d.has_outages:
                np.minimum(refused_at, d.first_down(arrive[refused], refused_at), out=refused_at)
            if T is not None:
                refused_at = np.minimum(refused_at, self.sent_at(tl, ci[refused], cascade[g[refused]]) + T)
            fails.append((g[refused], refused_at))
            ok = np.flatnonzero(start >= 0)
            g, ci, start, service = g[ok], ci[ok], start[ok], service[ok]
        del arrive
        tl.cloud_start_ns[ci] = start
        start += service  # now the completion times
        del service
        tl.cloud_done_ns[ci] = start
        answer = start.copy() if d.has_outages else start
        answer += d.downlink_ns[ci]
        cut = d.first_down(start, answer) if d.has_outages else None  # the answer lost in an outage
        del start
        if T is not None or cut is not None:
            late = np.zeros(len(g), bool) if cut is None else cut != NEVER
            if T is None:
                fail_at = cut
            else:
                fail_at = self.sent_at(tl, ci, cascade[g])
                fail_at += T
                late |= answer > fail_at
                if cut is not None:
                    np.minimum(fail_at, cut, out=fail_at)
            late = np.flatnonzero(late)
            fails.append((g[late], fail_at[late]))  # billed, but the answer never arrives
            del fail_at, cut
            keep = np.ones(len(g), bool)
            keep[late] = False
            g, ci, answer = g[keep], ci[keep], answer[keep]
        tl.end_ns[ci] = answer
        tl.outcome[ci] = np.where(cascade[g], Outcome.CASCADE, Outcome.CLOUD)
        # Failed cloud attempts: cascades keep the device's answer; cloud routes fall back or fail.
        pos = np.concatenate([p for p, _ in fails])
        at = np.concatenate([t for _, t in fails])
        kept = cascade[pos]
        tl.outcome[idx[pos[kept]]] = Outcome.FALLBACK
        tl.end_ns[idx[pos[kept]]] = at[kept]
        pos, at = pos[~kept], at[~kept]
        if self.sc.sim.on_cloud_failure == "fail":
            tl.outcome[idx[pos]] = Outcome.FAILED
            tl.end_ns[idx[pos]] = at
            return Fallbacks(np.empty(0, np.int32), np.empty(0, np.int64))
        order = np.argsort(pos, kind="stable")  # a canonical order, to compare passes
        return Fallbacks(idx[pos[order]], at[order])

    def run(self) -> Timeline:
        fb = Fallbacks(np.empty(0, np.int32), np.empty(0, np.int64))
        tl = Timeline(len(self.d))
        for _ in range(MAX_PASSES):
            self.device_pass(tl, fb)
            new = self.cloud_pass(tl)
            if new.same_as(fb):
                return tl
            fb = new
            tl.reset()
        raise FastPathUnsupported(f"sim.engine=fast: cloud fallbacks and cascades did not settle in "
                                  f"{MAX_PASSES} passes; use sim.engine=simpy")


def run_fast(sc: Scenario, policy: Policy, dataset: Dataset, seed: int | np.random.SeedSequence,
             progress: bool = False) -> Records:
    """Simulate ``sc`` under a stateless ``policy`` with the vectorised fast path."""
    if not policy.stateless:
        raise FastPathUnsupported(f"sim.engine=fast: policy {policy.name!r} decides from the system "
                                  "state; expected a stateless policy (use sim.engine=simpy or auto)")
    setup = prepare(sc, policy, dataset, seed)
    timeline = FastRun(setup).run()
    return setup.records(timeline, route=setup.decisions.route, engine="fast",
                         sensitive_blocked=setup.decisions.sensitive_blocked)
