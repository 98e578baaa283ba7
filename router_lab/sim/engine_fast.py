"""The fast path: for stateless policies the stations decouple into vectorised FIFO recursions.

One pass runs the device (Lindley / Kiefer-Wolfowitz over every request that needs it), then the
network and the cloud; cloud failures that fall back to the device feed the next pass, until the
fallbacks stop changing (usually one or two passes).  On the same draws it gives the simpy
engine's results to the nanosecond (times are integers, and both share the station rule and the
tie rule: requests entering a station or the rate limiter at the same nanosecond are admitted in
order of request number, first visits and fallbacks alike).  With several remote tiers
(:class:`TieredFastRun`) each pass runs the tiers from the most expensive down, a tier's failed
cloud routes joining the next cheaper tier's pass at the moment they learnt of the failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from router_lab.data.contract import Dataset
from router_lab.policies.base import Policy, Route
from router_lab.sim.core import WINDOW_NS, Setup, prepare
from router_lab.sim.draws import NEVER, RowSizes, attempts_begun
from router_lab.sim.engines import ENGINES, FastPathUnsupported
from router_lab.sim.records import Outcome, Records, Timeline, cost_table
from router_lab.sim.scenario import Scenario
from router_lab.sim.stations import REJECTED, fifo_starts

MAX_PASSES = 100


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


@dataclass
class CloudPass:
    """One cloud pass: the requests sent to the cloud and the failed attempts found so far.

    Positions (``at``, ``failures``) index ``requests``; a stage that drops requests keeps the
    positions of the rest, so every stage can still reach a request's number and kind."""

    requests: np.ndarray  # request numbers (direct cloud routes and escalated cascades), increasing
    cascade: np.ndarray  # per position: an escalated cascade (else a direct cloud route)
    failures: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (positions, learnt at)

    def fail(self, positions: np.ndarray, learnt_ns: np.ndarray) -> None:
        """These attempts failed; their requesters learn it at ``learnt_ns``."""
        self.failures.append((positions, learnt_ns))


class FastRun:
    """One run of the fast path: device and cloud passes over the timeline until fallbacks settle."""

    def __init__(self, setup: Setup) -> None:
        self.sc, self.draws, self.decisions = setup.sc, setup.draws, setup.decisions
        self.route = self.decisions.route
        self.overhead_ns = setup.constants.overhead_ns
        self.timeout_ns = setup.constants.timeout_ns
        self.retry_ns = setup.constants.retry_ns
        self.battery = setup.constants.battery
        self.direct_mask = self.route == Route.CLOUD
        self.device_first = _indices(~self.direct_mask)

    def device_pass(self, tl: Timeline, fb: Fallbacks) -> None:
        """Stage: the device (a FIFO recurrence, Lindley / Kiefer-Wolfowitz) for every request that
        runs on it: local and cascade routes, and the cloud fallbacks of the previous pass."""
        dev = self.sc.device
        requests = self.device_first
        enter = self.draws.arrival_ns[requests] + self.overhead_ns
        if len(fb.index):
            requests, enter = _merge(requests, enter, fb.index, fb.at_ns)
        service = self.draws.device_service_ns[requests]
        tl.device_enter_ns[requests] = enter
        start = fifo_starts(enter, service, dev.units, dev.queue_limit, self.battery, scratch=True)
        refused = np.flatnonzero(start < 0)
        if refused.size:
            tl.end_ns[requests[refused]] = tl.device_enter_ns[requests[refused]]
            tl.outcome[requests[refused]] = np.where(start[refused] == REJECTED, Outcome.REJECTED, Outcome.FAILED)
            ok = np.flatnonzero(start >= 0)
            requests, start, service = requests[ok], start[ok], service[ok]
        del enter
        tl.device_start_ns[requests] = start
        start += service  # now the completion times
        tl.device_done_ns[requests] = start
        tl.end_ns[requests] = start
        if len(fb.index):
            admitted = fb.index[tl.device_start_ns[fb.index] >= 0]
            tl.outcome[admitted] = Outcome.FALLBACK

    def sent_at(self, tl: Timeline, requests: np.ndarray, cascade: np.ndarray) -> np.ndarray:
        """When these requests were uploaded: after the router, or after the device (cascades)."""
        sent = self.draws.arrival_ns[requests]
        sent += self.overhead_ns
        later = np.flatnonzero(cascade)  # (index arrays: much faster than boolean indexing here)
        sent[later] = tl.device_done_ns[requests[later]]
        return sent

    def cloud_pass(self, tl: Timeline) -> Fallbacks:
        """Network and cloud for direct cloud routes and escalated cascades; returns new fallbacks.

        The stages in order: upload, the cloud's queue and service, the download; each stage's
        failed attempts are collected and settled at the end (cascades keep the device's answer,
        cloud routes fall back to the device or fail)."""
        cp = self.cloud_requests(tl)
        at_cloud, done = self.cloud_service(tl, cp, *self.upload(tl, cp))
        self.download(tl, cp, at_cloud, done)
        return self.settle_failures(tl, cp)

    def cloud_requests(self, tl: Timeline) -> CloudPass:
        """Stage: who goes to the cloud (vectorised): direct cloud routes, and cascades the device
        ran that escalate; in request order (so ties keep request order)."""
        to_cloud = self.decisions.escalate & (self.route == Route.CASCADE) & (tl.device_start_ns >= 0)
        to_cloud |= self.direct_mask
        requests = _indices(to_cloud)
        return CloudPass(requests, ~self.direct_mask[requests])

    def upload(self, tl: Timeline, cp: CloudPass) -> tuple[np.ndarray, np.ndarray]:
        """Stage: the upload (vectorised): outages and lost attempts fail; returns the positions
        of the uploads that reach the cloud and their arrival times, in (time, request) order."""
        draws, requests = self.draws, cp.requests
        send = self.sent_at(tl, requests, cp.cascade)
        arrive = draws.uplink_ns[requests]
        arrive += send  # when the upload would complete
        going = np.ones(len(requests), bool)
        if draws.has_outages:
            self.upload_outages(tl, cp, send, arrive, going)
        sending = np.compress(going, requests)
        tl.sent[sending] = True
        tl.attempts[sending] = draws.uplink_attempts[sending]
        del sending
        lost = np.flatnonzero(going & draws.uplink_failed[requests])  # every attempt lost, or the timeout first
        cp.fail(lost, arrive[lost])
        going[lost] = False
        del send  # recomputed later where needed: it would double this pass's peak memory
        if going.all():
            at_cloud = np.arange(len(requests), dtype=np.int32)
        else:
            at_cloud = _indices(going)
            arrive = arrive.take(at_cloud)
        return _in_time_order(at_cloud, arrive)

    def upload_outages(self, tl: Timeline, cp: CloudPass, send: np.ndarray, arrive: np.ndarray,
                       going: np.ndarray) -> None:
        """Stage: the upload's outages (vectorised): down when sending (nothing sent, known at once),
        or an outage begins during the upload (the attempts begun by then count); clears ``going``."""
        requests = cp.requests
        cut = self.draws.first_down(send, arrive)
        down = np.flatnonzero(cut == send)
        cp.fail(down, send[down])
        going[down] = False
        hit = np.flatnonzero(going & (cut != NEVER))
        cp.fail(hit, cut[hit])
        going[hit] = False
        tl.sent[requests[hit]] = True
        tl.attempts[requests[hit]] = attempts_begun(cut[hit] - send[hit], self.draws.uplink_attempts[requests[hit]],
                                                    self.retry_ns)

    def cloud_service(self, tl: Timeline, cp: CloudPass, at_cloud: np.ndarray,
                      arrive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stage: the cloud's rate limiter (vectorised) and FIFO queue (a recurrence); refusals
        fail.  Returns the positions the cloud served and their completion times."""
        cloud = self.sc.cloud
        ids = cp.requests[at_cloud]
        tl.cloud_enter_ns[ids] = arrive
        admitted = np.ones(len(at_cloud), bool)
        if cloud.rate_limit_rpm is not None:
            admitted = within_rate_limit(arrive, cloud.rate_limit_rpm)
        service = self.draws.cloud_service_ns[ids]
        if admitted.all():
            start = fifo_starts(arrive.copy() if cloud.queue_limit is not None else arrive, service,
                                cloud.units, cloud.queue_limit, scratch=True)
        else:
            start = np.full(len(at_cloud), REJECTED, dtype=np.int64)
            start[admitted] = fifo_starts(arrive[admitted], service[admitted], cloud.units, cloud.queue_limit)
        refused = np.flatnonzero(start < 0)
        if refused.size:  # (then `arrive` was not overwritten: only a queue limit or the rate limit refuse)
            cp.fail(at_cloud[refused], self.refusal_learnt_at(tl, cp, at_cloud[refused], arrive[refused]))
            ok = np.flatnonzero(start >= 0)
            at_cloud, ids, start, service = at_cloud[ok], ids[ok], start[ok], service[ok]
        del arrive
        tl.cloud_start_ns[ids] = start
        start += service  # now the completion times
        tl.cloud_done_ns[ids] = start
        return at_cloud, start

    def refusal_learnt_at(self, tl: Timeline, cp: CloudPass, refused: np.ndarray, arrive: np.ndarray) -> np.ndarray:
        """Stage: a refusal's way back (vectorised): when its requester learns it — the refusal's
        download, cut short by an outage or by the client's timeout."""
        ids = cp.requests[refused]
        learnt = arrive + self.draws.downlink_ns[ids]
        if self.draws.has_outages:
            np.minimum(learnt, self.draws.first_down(arrive, learnt), out=learnt)
        if self.timeout_ns is not None:
            learnt = np.minimum(learnt, self.sent_at(tl, ids, cp.cascade[refused]) + self.timeout_ns)
        return learnt

    def download(self, tl: Timeline, cp: CloudPass, at_cloud: np.ndarray, done: np.ndarray) -> None:
        """Stage: the answer's download (vectorised): lost in an outage or later than the client's
        timeout, it fails (billed, but never arrives); else the request ends with it."""
        draws, timeout = self.draws, self.timeout_ns
        ids = cp.requests[at_cloud]
        answer = done.copy() if draws.has_outages else done
        answer += draws.downlink_ns[ids]
        cut = draws.first_down(done, answer) if draws.has_outages else None  # the answer lost in an outage
        del done
        if timeout is not None or cut is not None:
            late = np.zeros(len(at_cloud), bool) if cut is None else cut != NEVER
            if timeout is None:
                fail_at = cut
            else:
                fail_at = self.sent_at(tl, ids, cp.cascade[at_cloud])
                fail_at += timeout
                late |= answer > fail_at
                if cut is not None:
                    np.minimum(fail_at, cut, out=fail_at)
            late = np.flatnonzero(late)
            cp.fail(at_cloud[late], fail_at[late])
            del fail_at, cut
            keep = np.ones(len(at_cloud), bool)
            keep[late] = False
            at_cloud, ids, answer = at_cloud[keep], ids[keep], answer[keep]
        tl.end_ns[ids] = answer
        tl.outcome[ids] = np.where(cp.cascade[at_cloud], Outcome.CASCADE, Outcome.CLOUD)

    def settle_failures(self, tl: Timeline, cp: CloudPass) -> Fallbacks:
        """Stage: the failed cloud attempts (vectorised): cascades keep the device's answer; cloud
        routes fail (``on_cloud_failure=fail``) or become the next device pass's fallbacks."""
        requests = cp.requests
        pos = np.concatenate([p for p, _ in cp.failures])
        at = np.concatenate([t for _, t in cp.failures])
        kept = cp.cascade[pos]
        tl.outcome[requests[pos[kept]]] = Outcome.FALLBACK
        tl.end_ns[requests[pos[kept]]] = at[kept]
        pos, at = pos[~kept], at[~kept]
        if self.sc.sim.on_cloud_failure == "fail":
            tl.outcome[requests[pos]] = Outcome.FAILED
            tl.end_ns[requests[pos]] = at
            return Fallbacks(np.empty(0, np.int32), np.empty(0, np.int64))
        order = np.argsort(pos, kind="stable")  # a canonical order, to compare passes
        return Fallbacks(requests[pos[order]], at[order])

    def new_timeline(self) -> Timeline:
        return Timeline(len(self.draws))

    def remote_passes(self, tl: Timeline) -> Fallbacks:
        """The remote side of one pass (here the one cloud); returns the device fallbacks."""
        return self.cloud_pass(tl)

    def run(self) -> Timeline:
        """Alternate device and remote passes until the fallbacks stop changing."""
        fb = Fallbacks(np.empty(0, np.int32), np.empty(0, np.int64))
        tl = self.new_timeline()
        for _ in range(MAX_PASSES):
            self.device_pass(tl, fb)
            new = self.remote_passes(tl)
            if new.same_as(fb):
                return tl
            fb = new
            tl.reset()
        raise FastPathUnsupported(f"sim.engine=fast: cloud fallbacks and cascades did not settle in "
                                  f"{MAX_PASSES} passes; use sim.engine=simpy")


class TieredFastRun(FastRun):
    """The fast path with several remote tiers: each global pass runs the device, then the remote
    tiers from the most expensive down; a tier's failed cloud routes join the next cheaper tier's
    pass at the moment they learnt it (its ``hops``), the cheapest tier's become device fallbacks.
    Each tier's stages are FastRun's, run with that tier's draws, station, timeout and retries."""

    def __init__(self, setup: Setup, dataset: Dataset) -> None:
        super().__init__(setup)
        self.base_sc, self.base_draws = setup.sc, setup.draws
        self.tiers, self.tier = setup.tiers[::-1], setup.decisions.tier
        self.costs = {t.index: cost_table(t.sc, RowSizes.of(dataset)) for t in setup.tiers}
        self.n_models = len(dataset.models)
        self.hops = Fallbacks(np.empty(0, np.int32), np.empty(0, np.int64))

    def new_timeline(self) -> Timeline:
        return Timeline(len(self.draws), tiered=True, n_models=self.n_models)

    def remote_passes(self, tl: Timeline) -> Fallbacks:
        """Every remote tier in turn, most expensive first; returns the device fallbacks."""
        self.hops = Fallbacks(np.empty(0, np.int32), np.empty(0, np.int64))
        self.previous = None
        for t in self.tiers:
            self.lane = t
            self.sc, self.draws, self.timeout_ns, self.retry_ns = t.sc, t.draws, t.timeout_ns, t.retry_ns
            self.hops = self.cloud_pass(tl)
            self.previous = t
        self.sc, self.draws = self.base_sc, self.base_draws
        return self.hops

    def cloud_requests(self, tl: Timeline) -> CloudPass:
        """Stage: who goes to this tier: its direct routes and escalated cascades, and the cloud
        routes a more expensive tier failed (sent when they learnt it); in request order."""
        mine = self.tier == self.lane.index
        to_tier = self.decisions.escalate & (self.route == Route.CASCADE) & (tl.device_start_ns >= 0)
        to_tier |= self.direct_mask
        to_tier &= mine
        hops = self.hops.index
        to_tier[hops] = True
        requests = _indices(to_tier)
        cp = CloudPass(requests, ~self.direct_mask[requests])
        ran = hops[tl.cloud_start_ns[hops] >= 0]  # a more expensive tier ran it: its bill stays
        if ran.size:
            tl.tier_cost[ran, self.previous.index] = self.costs[self.previous.index][self.draws.row[ran]]
        for column in (tl.cloud_enter_ns, tl.cloud_start_ns, tl.cloud_done_ns):
            column[hops] = -1
        sent = super().sent_at(tl, requests, cp.cascade)
        hop_at = np.zeros(len(tl.tier), dtype=np.int64)
        hop_at[hops] = self.hops.at_ns
        is_hop = np.zeros(len(tl.tier), dtype=bool)
        is_hop[hops] = True
        np.copyto(sent, hop_at[requests], where=is_hop[requests])
        tl.tier[requests], tl.hop_sent_ns[requests] = self.lane.index, sent
        self.earlier_attempts = tl.attempts[requests].copy()
        tl.attempts[requests] = 0
        return cp

    def sent_at(self, tl: Timeline, requests: np.ndarray, cascade: np.ndarray) -> np.ndarray:
        return tl.hop_sent_ns[requests].copy()

    def settle_failures(self, tl: Timeline, cp: CloudPass) -> Fallbacks:
        """As FastRun's, the attempts of earlier tiers added back; failed cloud routes go on to
        the next cheaper tier (or, from the cheapest, to the device)."""
        tl.attempts[cp.requests] += self.earlier_attempts
        return super().settle_failures(tl, cp)


@ENGINES.register("fast")
def run_fast(sc: Scenario, policy: Policy, dataset: Dataset, seed: int | np.random.SeedSequence,
             progress: bool = False) -> Records:
    """Simulate ``sc`` under a stateless ``policy`` with the vectorised fast path."""
    if not policy.stateless:
        raise FastPathUnsupported(f"sim.engine=fast: policy {policy.name!r} decides from the system "
                                  "state; expected a stateless policy (use sim.engine=simpy or auto)")
    setup = prepare(sc, policy, dataset, seed)
    timeline = (TieredFastRun(setup, dataset) if setup.tiers else FastRun(setup)).run()
    return setup.records(timeline, route=setup.decisions.route, engine="fast",
                         sensitive_blocked=setup.decisions.sensitive_blocked, decided_tier=setup.decisions.tier)
