"""The event-driven engine: a simpy environment (integer ns clock) with one arrival process.

Each request costs one simpy event on arrival, one when it reaches the cloud and one per fallback;
the device and cloud are FIFO stations that fix a start time on admission (no event per service).

Stateful policies are the runtime's (``policy.core``), driven exactly as an app drives them: at
each arrival the engine first feeds ``observe`` with everything the requester had learned strictly
before that instant (finished requests, failed cloud attempts), in the order (time, failures before
finishes, request number), then asks ``decide(request, signals)`` with what a device could see then
(its own units busy and queued, whether the network is up).  Nothing from the future: an outcome is
learned when its answer (or refusal) arrives, a cascade's upload only once the device has answered.
Each decision's signals and reason, and each failure's time and kind, go to the records
(:class:`~router_lab.sim.records.DecisionLog`) so that ``router-lab replay`` can drive a bundle the same way.

Tie rule (shared with the fast path): events at the same nanosecond are processed in order of
request number, so requests entering a station (device or cloud, first visits and fallbacks
alike) or the rate limiter at the same nanosecond are admitted in order of request number.  Every
event of request ``i`` has simpy priority ``1 + i`` (simpy orders by time, then priority), which
gives exactly that order, also for events scheduled at the current time.
"""

from __future__ import annotations

import heapq
import sys

import numpy as np
import simpy

from router_lab.data.contract import Dataset
from router_lab.policies.base import Policy, Route
from router_lab.runtime.policy import REASON_CODES, Signals, decision_tier
from router_lab.runtime.policy import Outcome as Learned
from router_lab.sim.core import FAIL, FINISH, WINDOW_NS, Setup, prepare, session_lookup
from router_lab.sim.draws import NEVER, NS_PER_MS, NS_PER_S, RowSizes, attempts_begun
from router_lab.sim.engines import ENGINES
from router_lab.sim.records import FAIL_ERRORS, DecisionLog, Outcome, Records, Timeline, cost_table
from router_lab.sim.scenario import Scenario
from router_lab.sim.stations import REJECTED, FifoStation
from router_lab.sim.tiers import check_routed

CHUNK = 8192  # per-request draws are turned into Python lists this many at a time
ERROR_CODE = {name: code for code, name in enumerate(FAIL_ERRORS)}
ANSWERED_BY = {Outcome.LOCAL: "local", Outcome.FALLBACK: "local", Outcome.CLOUD: "cloud",
               Outcome.CASCADE: "cloud"}

LOCAL, CLOUD, CASCADE = int(Route.LOCAL), int(Route.CLOUD), int(Route.CASCADE)


class At(simpy.Event):
    """An event ``delay`` ns from now for request ``i``, ordered among simultaneous events by ``i``
    (the tie rule); inlined like ``simpy.Timeout`` for speed."""

    def __init__(self, env: simpy.Environment, delay: int, i: int) -> None:
        self.env = env
        self.callbacks = []
        self._value = i
        self._ok = True
        env.schedule(self, 1 + i, delay)


class Lane:
    """One remote tier's network and station as the engine sees them (a two-tier run has one)."""

    def __init__(self, index: int, sc: Scenario, draws, timeout: int | None, retry: int,  # noqa: ANN001
                 lower: Lane | None) -> None:
        self.index, self.d, self.lower = index, draws, lower
        self.station = FifoStation(sc.cloud.units, sc.cloud.queue_limit)
        self.rpm = sc.cloud.rate_limit_rpm
        self.window, self.window_count = -1, 0
        self.timeout_ns, self.retry_ns = timeout, retry
        self.outages = draws.has_outages
        self.sc = sc

    def admitted_by_rate_limit(self, now: int) -> bool:
        if self.rpm is None:
            return True
        window = now // WINDOW_NS
        if window != self.window:
            self.window, self.window_count = window, 0
        self.window_count += 1
        return self.window_count <= self.rpm


def build_lanes(setup: Setup) -> dict[int, Lane]:
    """Model index -> lane, in tier order; each lane's ``lower`` is the next cheaper remote tier."""
    if not setup.tiers:
        c = setup.constants
        return {1: Lane(1, setup.sc, setup.draws, c.timeout_ns, c.retry_ns, None)}
    lanes: dict[int, Lane] = {}
    lower = None
    for t in setup.tiers:
        lower = lanes[t.index] = Lane(t.index, t.sc, t.draws, t.timeout_ns, t.retry_ns, lower)
    return lanes


def progress_bar(total: int, enabled: bool):  # noqa: ANN201 - a tqdm bar or None
    if not enabled or total < 200_000 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="req", desc="simulate", leave=False)


class SimpyRun:
    """One run of the event-driven model; ``run()`` returns the filled :class:`Timeline`."""

    def __init__(self, setup: Setup, policy: Policy) -> None:
        sc, dataset, draws, decisions, constants = (setup.sc, setup.dataset, setup.draws, setup.decisions,
                                                    setup.constants)
        self.sc, self.policy, self.dataset, self.d, self.dec = sc, policy, dataset, draws, decisions
        n = len(draws)
        self.env = simpy.Environment()
        self.tl = Timeline(n)
        self.route = decisions.route if decisions.route is not None else np.zeros(n, dtype=np.int8)
        self.device = FifoStation(sc.device.units, sc.device.queue_limit, constants.battery)
        self.lanes = build_lanes(setup)
        self.setup_tiers = setup.tiers
        self.base = next(iter(self.lanes.values())) if not setup.tiers else None
        self.tiered = bool(setup.tiers)
        if self.tiered:
            self.tl = Timeline(n, tiered=True, n_models=len(dataset.models))
            self.tier = (decisions.tier if decisions.tier is not None else np.zeros(n, dtype=np.int8)).copy()
        self.overhead_ns = constants.overhead_ns
        self.outages = draws.has_outages
        self.fail_mode = sc.sim.on_cloud_failure
        self.stateful = decisions.route is None
        # For stateful policies only (kept off the hot path otherwise): what requesters will learn
        # (a heap of (time, FAIL|FINISH, request)) and what each decision saw.
        self.core = policy.core
        self.learned: list[tuple[int, int, int]] = []
        self.log = DecisionLog.empty(n) if self.stateful else None

    # -- the arrival process -------------------------------------------------------------------
    def arrivals(self, bar):  # noqa: ANN001, ANN201 - a simpy process generator
        env, d = self.env, self.d
        n = len(d)
        for c0 in range(0, n, CHUNK):
            c1 = min(n, c0 + CHUNK)
            t0s = (d.arrival_ns[c0:c1] + self.overhead_ns).tolist()
            svcs = d.device_service_ns[c0:c1].tolist()
            routes = self.route[c0:c1].tolist()
            escs = self.dec.escalate[c0:c1].tolist()
            requests = self.requests(c0, c1) if self.stateful else None
            for k in range(c1 - c0):
                i = c0 + k
                yield At(env, t0s[k] - env.now, i)
                route = self.decide(i, requests[k]) if self.stateful else routes[k]
                lane = self.base or self.lane_of(i)
                if route == CLOUD:
                    self.send(i, t0s[k], False, lane)
                else:
                    self.run_on_device(i, t0s[k], svcs[k], route == CASCADE and escs[k], lane)
            if bar is not None:
                bar.update(c1 - c0)

    def lane_of(self, i: int) -> Lane | None:
        """The lane of request ``i``'s remote step (tiered runs; None where it stays local)."""
        k = int(self.tier[i])
        return self.lanes.get(k) if k else None

    def run_on_device(self, i: int, now: int, service: int, escalate: bool, lane: Lane | None = None) -> None:
        tl = self.tl
        tl.device_enter_ns[i] = now
        start = self.device.admit(now, service)
        if start < 0:
            tl.outcome[i] = Outcome.REJECTED if start == REJECTED else Outcome.FAILED
            tl.end_ns[i] = now
            if self.stateful:
                heapq.heappush(self.learned, (now, FINISH, i))
            return
        done = start + service
        tl.device_start_ns[i] = start
        tl.device_done_ns[i] = done
        if escalate:
            self.send(i, done, True, lane)
        else:
            tl.end_ns[i] = done
            if self.stateful:
                heapq.heappush(self.learned, (done, FINISH, i))

    # -- network and cloud ---------------------------------------------------------------------
    def send(self, i: int, at: int, cascade: bool, lane: Lane) -> None:
        """Upload request ``i`` at time ``at`` (now, a cascade's device completion, or when a more
        expensive tier failed) to ``lane``."""
        d = lane.d
        if self.tiered:
            self.tl.tier[i], self.tl.hop_sent_ns[i] = lane.index, at
        uplink = int(d.uplink_ns[i])
        cut = d.first_down(at, at + uplink) if lane.outages else NEVER
        if cut == at:  # down when sending: nothing is sent
            self.fail(i, at, cascade, "network", lane)
            return
        tl = self.tl
        tl.sent[i] = True
        earlier = int(tl.attempts[i]) if self.tiered else 0  # attempts at more expensive tiers
        if cut != NEVER:  # an outage begins during the upload
            tl.attempts[i] = earlier + attempts_begun(cut - at, int(d.uplink_attempts[i]), lane.retry_ns)
            self.fail(i, cut, cascade, "network", lane)
            return
        tl.attempts[i] = earlier + d.uplink_attempts[i]
        if d.uplink_failed[i]:  # every attempt lost, or the timeout came first (then uplink = timeout)
            timed_out = lane.timeout_ns is not None and uplink >= lane.timeout_ns
            self.fail(i, at + uplink, cascade, "timeout" if timed_out else "network", lane)
        else:
            event = At(self.env, at + uplink - self.env.now, i)
            event.callbacks.append(lambda ev, lane=lane: self.cloud_arrive(ev, lane))

    def refusal(self, i: int, now: int, lane: Lane, gave_up_at: int) -> tuple[int, str]:
        """When and how a refused request learns it: the refusal's download, unless an outage or
        the client's timeout comes first."""
        d = lane.d
        refused_at, refused = now + int(d.downlink_ns[i]), "rejected"
        if lane.outages:
            cut = d.first_down(now, refused_at)
            if cut < refused_at:
                refused_at, refused = cut, "network"
        if gave_up_at <= refused_at:
            refused_at, refused = gave_up_at, "timeout"
        return refused_at, refused

    def cloud_arrive(self, event: simpy.Event, lane: Lane) -> None:
        i = event.value
        now = self.env.now
        d, tl = lane.d, self.tl
        tl.cloud_enter_ns[i] = now
        cascade = int(self.route[i]) == CASCADE
        if self.tiered:
            sent_at = int(tl.hop_sent_ns[i])
        else:
            sent_at = int(tl.device_done_ns[i]) if cascade else int(d.arrival_ns[i]) + self.overhead_ns
        downlink = int(d.downlink_ns[i])
        gave_up_at = NEVER if lane.timeout_ns is None else sent_at + lane.timeout_ns
        service = int(d.cloud_service_ns[i])
        start = lane.station.admit(now, service) if lane.admitted_by_rate_limit(now) else REJECTED
        if start < 0:
            refused_at, refused = self.refusal(i, now, lane, gave_up_at)
            self.fail(i, refused_at, cascade, refused, lane)
            return
        done = start + service
        tl.cloud_start_ns[i] = start
        tl.cloud_done_ns[i] = done
        answer = done + downlink
        cut = d.first_down(done, answer) if lane.outages else NEVER
        if cut != NEVER or answer > gave_up_at:  # lost in an outage, or the client gave up first
            self.fail(i, min(cut, gave_up_at), cascade, "timeout" if gave_up_at <= cut else "network", lane)
            return
        tl.end_ns[i] = answer
        tl.outcome[i] = Outcome.CASCADE if cascade else Outcome.CLOUD
        if self.stateful:
            heapq.heappush(self.learned, (answer, FINISH, i))

    def fail(self, i: int, at: int, cascade: bool, error: str, lane: Lane) -> None:
        """A cloud attempt failed (``error``: rejected, timeout, network); the requester learns it
        at ``at`` (>= now).  A cloud route then tries the next cheaper remote tier, if any (tiered
        runs), else the device (or fails, ``on_cloud_failure=fail``)."""
        if self.stateful:
            self.log.fail_ns[i] = at
            self.log.fail_error[i] = ERROR_CODE[error]
            heapq.heappush(self.learned, (at, FAIL, i))
        if cascade:  # the device's answer is already there
            self.tl.outcome[i] = Outcome.FALLBACK
            self.tl.end_ns[i] = at
            if self.stateful:
                heapq.heappush(self.learned, (at, FINISH, i))
        elif self.fail_mode == "fail":
            self.tl.outcome[i] = Outcome.FAILED
            self.tl.end_ns[i] = at
            if self.stateful:
                heapq.heappush(self.learned, (at, FINISH, i))
        elif lane.lower is not None:
            event = At(self.env, at - self.env.now, i)
            event.callbacks.append(lambda ev, lane=lane: self.hop(ev.value, self.env.now, lane))
        elif at == self.env.now:
            self.fall_back(i, at)
        else:
            event = At(self.env, at - self.env.now, i)
            event.callbacks.append(self.fall_back_event)

    def hop(self, i: int, now: int, failed: Lane) -> None:
        """Tiered runs: request ``i`` failed on ``failed``; it goes on to the next cheaper tier (its
        cloud columns then describe that tier; a bill the failed tier ran stays in ``tier_cost``)."""
        tl = self.tl
        if tl.cloud_start_ns[i] >= 0:
            tl.tier_cost[i, failed.index] = self.costs[failed.index][int(self.d.row[i])]
        tl.cloud_enter_ns[i] = tl.cloud_start_ns[i] = tl.cloud_done_ns[i] = -1
        self.send(i, now, False, failed.lower)

    def fall_back_event(self, event: simpy.Event) -> None:
        self.fall_back(event.value, self.env.now)

    def fall_back(self, i: int, now: int) -> None:
        self.run_on_device(i, now, int(self.d.device_service_ns[i]), escalate=False)
        if self.tl.outcome[i] == Outcome.LOCAL:
            self.tl.outcome[i] = Outcome.FALLBACK

    # -- stateful policies ---------------------------------------------------------------------
    def learn_before(self, now: int) -> None:
        """Feed the policy what requesters learned strictly before ``now``, in (time, kind, i) order."""
        learned, core, tl, d = self.learned, self.core, self.tl, self.d
        while learned and learned[0][0] < now:
            t, kind, i = heapq.heappop(learned)
            if kind == FAIL:
                core.observe(Learned(t / NS_PER_S, cloud_failed=True,
                                     error=FAIL_ERRORS[int(self.log.fail_error[i])]))
                continue
            by = ANSWERED_BY.get(int(tl.outcome[i]))
            cost = 0.0
            if by == "cloud":
                cost = float((self.costs[int(tl.tier[i])] if self.tiered else self.costs)[int(d.row[i])])
            core.observe(Learned(t / NS_PER_S, latency_ms=(t - int(d.arrival_ns[i])) / NS_PER_MS,
                                 answered_by=by, cost_usd=cost))

    def requests(self, c0: int, c1: int) -> list:
        """The runtime requests of arrivals c0..c1 (scores looked up in one batch)."""
        rows = self.d.row[c0:c1]
        sessions = [self.session_of(int(r)) for r in rows] if self.has_sessions else None
        return self.policy.requests(rows, self.dec.sensitive[c0:c1], sessions)

    def decide(self, i: int, request) -> int:  # noqa: ANN001 - a runtime Request
        now = self.env.now
        if self.learned and self.learned[0][0] < now:
            self.learn_before(now)
        d = self.d
        busy, queued = self.device.busy(now), self.device.queue_length(now)
        up = not (self.has_outages and bool(d.network_down(now)))
        decision = self.policy.decide(request, Signals(now / NS_PER_S, busy, queued, up))  # the rule applied
        self.signal_log.append((busy, queued, up, REASON_CODES[decision.reason]))
        route = int(decision.route)
        self.route[i] = route
        if self.tiered:
            self.tier[i] = self.tier_of(decision, route)
        return route

    def tier_of(self, decision, route: int) -> int:  # noqa: ANN001 - a runtime Decision
        """The model index a stateful decision names (two-model decisions: the model ``cloud``)."""
        if route == LOCAL:
            return 0
        k = decision_tier(decision)
        models = self.dataset.models
        k = models.index("cloud") if k is None and "cloud" in models else k
        if k not in self.lanes:
            check_routed(list(self.setup_tiers), np.array([-1 if k is None else k]), models)
        return int(k)

    def run(self, progress: bool = False) -> Timeline:
        sizes = RowSizes.of(self.dataset)
        self.costs = cost_table(self.sc, sizes) if not self.tiered else \
            {k: cost_table(lane.sc, sizes) for k, lane in self.lanes.items()}
        self.session_of = session_lookup(self.dataset)
        self.has_sessions = "session_id" in self.dataset.frame.columns
        self.has_outages = bool(self.outages)
        self.signal_log: list[tuple[int, int, bool, int]] = []
        bar = progress_bar(len(self.d), progress)
        self.env.process(self.arrivals(bar))
        self.env.run()
        if bar is not None:
            bar.close()
        if self.stateful and self.signal_log:
            log = self.log
            columns = np.array(self.signal_log, dtype=np.int64).T
            log.local_in_flight[:], log.local_queued[:] = columns[0], columns[1]
            log.network_up[:], log.reason[:] = columns[2].astype(bool), columns[3]
        return self.tl


@ENGINES.register("simpy")
def run_simpy(sc: Scenario, policy: Policy, dataset: Dataset, seed: int | np.random.SeedSequence,
              progress: bool = False) -> Records:
    """Simulate ``sc`` under ``policy`` with the event-driven engine."""
    setup = prepare(sc, policy, dataset, seed)
    sim = SimpyRun(setup, policy)
    timeline = sim.run(progress)
    blocked = setup.decisions.sensitive_blocked + (policy.n_blocked if sim.stateful else 0)
    return setup.records(timeline, route=sim.route, engine="simpy", sensitive_blocked=blocked,
                         decision_log=sim.log, decided_tier=sim.tier if sim.tiered else None)
