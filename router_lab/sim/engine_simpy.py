"""The event-driven engine: a simpy environment (integer ns clock) with one arrival process.

Each request costs one simpy event on arrival, one when it reaches the cloud and one per fallback;
the device and cloud are FIFO stations that fix a start time on admission (no event per service).
Stateful policies are asked ``decide(request, state)`` at arrival with a snapshot of the system.

Tie rule (shared with the fast path): events at the same nanosecond are processed in order of
request number, so requests entering a station (device or cloud, first visits and fallbacks
alike) or the rate limiter at the same nanosecond are admitted in order of request number.  Every
event of request ``i`` has simpy priority ``1 + i`` (simpy orders by time, then priority), which
gives exactly that order, also for events scheduled at the current time.
"""

from __future__ import annotations

import heapq
import sys
from collections import deque

import numpy as np
import simpy

from router_lab.data.contract import Dataset
from router_lab.policies.base import Policy, RequestView, Route, SystemState
from router_lab.sim.decisions import Decisions, decide_up_front
from router_lab.sim.draws import (
    NEVER,
    NS_PER_MS,
    NS_PER_S,
    Draws,
    RowSizes,
    attempts_begun,
    draw,
    retry_ns,
    timeout_ns,
)
from router_lab.sim.load import check_load
from router_lab.sim.records import Outcome, Records, Timeline, finish
from router_lab.sim.scenario import Scenario
from router_lab.sim.stations import REJECTED, Battery, FifoStation

CHUNK = 8192  # per-request draws are turned into Python lists this many at a time
WINDOW_NS = 60 * NS_PER_S  # rate-limit window (requests per minute)
RECENT_NS = 60 * NS_PER_S  # "recent" cloud rejections for the policy's state
LATENCY_EWMA = 0.05

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


def device_battery(sc: Scenario) -> Battery | None:
    d = sc.device
    return None if d.battery_j is None else Battery(d.battery_j, d.idle_w, d.energy_per_inference_j)


def progress_bar(total: int, enabled: bool):  # noqa: ANN201 - a tqdm bar or None
    if not enabled or total < 200_000 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="req", desc="simulate", leave=False)


class SimpyRun:
    """One run of the event-driven model; ``run()`` returns the filled :class:`Timeline`."""

    def __init__(self, sc: Scenario, policy: Policy, dataset: Dataset, draws: Draws,
                 decisions: Decisions) -> None:
        self.sc, self.policy, self.dataset, self.d, self.dec = sc, policy, dataset, draws, decisions
        n = len(draws)
        self.env = simpy.Environment()
        self.tl = Timeline(n)
        self.route = decisions.route if decisions.route is not None else np.zeros(n, dtype=np.int8)
        self.device = FifoStation(sc.device.units, sc.device.queue_limit, device_battery(sc))
        self.cloud = FifoStation(sc.cloud.units, sc.cloud.queue_limit)
        self.overhead_ns = int(round(sc.device.router_overhead_ms * NS_PER_MS))
        self.timeout_ns = timeout_ns(sc)
        self.retry_ns = retry_ns(sc)
        self.outages = draws.has_outages
        self.rpm = sc.cloud.rate_limit_rpm
        self.window, self.window_count = -1, 0
        self.fail_mode = sc.sim.on_cloud_failure
        self.blocked = decisions.sensitive_blocked
        self.stateful = decisions.route is None
        # State for stateful policies only (kept off the hot path otherwise).
        self.pending_latency: list[tuple[int, int]] = []
        self.recent_latency_ms = 0.0
        self.pending_rejections: list[int] = []  # heap: times at which requesters learn of a rejection
        self.recent_rejections: deque[int] = deque()  # those learned in the last RECENT_NS
        self.spent_usd = 0.0
        self.n_decided = self.n_cloud = 0

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
            for k in range(c1 - c0):
                i = c0 + k
                yield At(env, t0s[k] - env.now, i)
                route = self.decide(i) if self.stateful else routes[k]
                if route == CLOUD:
                    self.send(i, t0s[k], cascade=False)
                else:
                    self.run_on_device(i, t0s[k], svcs[k], route == CASCADE and escs[k])
            if bar is not None:
                bar.update(c1 - c0)

    def run_on_device(self, i: int, now: int, service: int, escalate: bool) -> None:
        tl = self.tl
        tl.device_enter_ns[i] = now
        start = self.device.admit(now, service)
        if start < 0:
            tl.outcome[i] = Outcome.REJECTED if start == REJECTED else Outcome.FAILED
            tl.end_ns[i] = now
            return
        done = start + service
        tl.device_start_ns[i] = start
        tl.device_done_ns[i] = done
        if escalate:
            self.send(i, done, cascade=True)
        else:
            tl.end_ns[i] = done
            if self.stateful:
                heapq.heappush(self.pending_latency, (done, done - int(self.d.arrival_ns[i])))

    # -- network and cloud ---------------------------------------------------------------------
    def send(self, i: int, at: int, cascade: bool) -> None:
        """Upload request ``i`` at time ``at`` (now, or a cascade's device completion)."""
        d = self.d
        if self.stateful:
            self.n_cloud += 1
        uplink = int(d.uplink_ns[i])
        cut = d.first_down(at, at + uplink) if self.outages else NEVER
        if cut == at:  # down when sending: nothing is sent
            self.fail(i, at, cascade)
            return
        tl = self.tl
        tl.sent[i] = True
        if cut != NEVER:  # an outage begins during the upload
            tl.attempts[i] = attempts_begun(cut - at, int(d.uplink_attempts[i]), self.retry_ns)
            self.fail(i, cut, cascade)
            return
        tl.attempts[i] = d.uplink_attempts[i]
        if d.uplink_failed[i]:  # every attempt lost, or the timeout came first (then uplink = timeout)
            self.fail(i, at + uplink, cascade)
        else:
            event = At(self.env, at + uplink - self.env.now, i)
            event.callbacks.append(self.cloud_arrive)

    def cloud_arrive(self, event: simpy.Event) -> None:
        i = event.value
        now = self.env.now
        d, tl = self.d, self.tl
        tl.cloud_enter_ns[i] = now
        cascade = int(self.route[i]) == CASCADE
        sent_at = int(tl.device_done_ns[i]) if cascade else int(d.arrival_ns[i]) + self.overhead_ns
        downlink = int(d.downlink_ns[i])
        refused_at = now + downlink  # the refusal travels back, unless an outage or the timeout comes first
        if self.outages:
            refused_at = min(refused_at, d.first_down(now, refused_at))
        gave_up_at = NEVER if self.timeout_ns is None else sent_at + self.timeout_ns
        refused_at = min(refused_at, gave_up_at)
        if self.rpm is not None:
            window = now // WINDOW_NS
            if window != self.window:
                self.window, self.window_count = window, 0
            self.window_count += 1
            if self.window_count > self.rpm:
                self.fail(i, refused_at, cascade, rejected=True)
                return
        service = int(d.cloud_service_ns[i])
        start = self.cloud.admit(now, service)
        if start < 0:
            self.fail(i, refused_at, cascade, rejected=True)
            return
        done = start + service
        tl.cloud_start_ns[i] = start
        tl.cloud_done_ns[i] = done
        if self.stateful:
            self.spent_usd += self.cost_usd(i)
        answer = done + downlink
        cut = d.first_down(done, answer) if self.outages else NEVER
        if cut != NEVER or answer > gave_up_at:  # lost in an outage, or the client gave up first
            self.fail(i, min(cut, gave_up_at), cascade, rejected=gave_up_at <= cut)
            return
        tl.end_ns[i] = answer
        tl.outcome[i] = Outcome.CASCADE if cascade else Outcome.CLOUD
        if self.stateful:
            heapq.heappush(self.pending_latency, (answer, answer - int(d.arrival_ns[i])))

    def fail(self, i: int, at: int, cascade: bool, rejected: bool = False) -> None:
        """A cloud attempt failed; the requester learns it at ``at`` (>= now)."""
        if self.stateful and rejected:
            heapq.heappush(self.pending_rejections, at)  # learned at ``at``, possibly later
        if cascade:  # the device's answer is already there
            self.tl.outcome[i] = Outcome.FALLBACK
            self.tl.end_ns[i] = at
        elif self.fail_mode == "fail":
            self.tl.outcome[i] = Outcome.FAILED
            self.tl.end_ns[i] = at
        elif at == self.env.now:
            self.fall_back(i, at)
        else:
            event = At(self.env, at - self.env.now, i)
            event.callbacks.append(self.fall_back_event)

    def fall_back_event(self, event: simpy.Event) -> None:
        self.fall_back(event.value, self.env.now)

    def fall_back(self, i: int, now: int) -> None:
        self.run_on_device(i, now, int(self.d.device_service_ns[i]), escalate=False)
        if self.tl.outcome[i] == Outcome.LOCAL:
            self.tl.outcome[i] = Outcome.FALLBACK

    # -- stateful policies ---------------------------------------------------------------------
    def cost_usd(self, i: int) -> float:
        c, sizes, row = self.sc.cloud, self.sizes, int(self.d.row[i])
        return (c.cost_per_request_usd + int(sizes.tokens_in[row]) * c.cost_per_1k_input_tokens_usd / 1000
                + int(sizes.tokens_out[row]) * c.cost_per_1k_output_tokens_usd / 1000)

    def state(self, now: int) -> SystemState:
        while self.pending_latency and self.pending_latency[0][0] <= now:
            _, latency = heapq.heappop(self.pending_latency)
            self.recent_latency_ms += LATENCY_EWMA * (latency / NS_PER_MS - self.recent_latency_ms)
        recent = self.recent_rejections  # in time order, so the window is trimmed at the front
        while self.pending_rejections and self.pending_rejections[0] <= now:
            recent.append(heapq.heappop(self.pending_rejections))
        while recent and recent[0] <= now - RECENT_NS:
            recent.popleft()
        d = self.d
        return SystemState(
            now_s=now / NS_PER_S, device_queue_len=self.device.queue_length(now),
            device_busy=self.device.busy(now), device_units=self.sc.device.units,
            device_mean_service_s=self.sc.device.service_mean_ms / 1000.0,
            network_up=not bool(len(d.outage_start_ns) and d.network_down(now)),
            cloud_queue_len=self.cloud.queue_length(now), cloud_in_flight=self.cloud.busy(now),
            recent_latency_ms=self.recent_latency_ms,
            recent_cloud_rejections=len(recent),
            cloud_spent_usd=self.spent_usd, n_decided=self.n_decided, n_cloud=self.n_cloud,
        )

    def decide(self, i: int) -> int:
        sizes, row = self.sizes, int(self.d.row[i])
        sensitive = bool(self.dec.sensitive[i])
        request = RequestView(index=row, input_bytes=int(sizes.input_bytes[row]),
                              output_bytes=int(sizes.output_bytes[row]), tokens_in=int(sizes.tokens_in[row]),
                              tokens_out=int(sizes.tokens_out[row]), sensitive=sensitive)
        route = int(self.policy.decide(request, self.state(self.env.now)))
        if sensitive and route != LOCAL:
            self.blocked += 1
            route = LOCAL
        self.route[i] = route
        self.n_decided += 1
        return route

    def run(self, progress: bool = False) -> Timeline:
        self.sizes = RowSizes.of(self.dataset)
        bar = progress_bar(len(self.d), progress)
        self.env.process(self.arrivals(bar))
        self.env.run()
        if bar is not None:
            bar.close()
        return self.tl


def run_simpy(sc: Scenario, policy: Policy, dataset: Dataset, seed: int | np.random.SeedSequence,
              progress: bool = False) -> Records:
    """Simulate ``sc`` under ``policy`` with the event-driven engine."""
    draws = draw(sc, dataset, seed)
    decisions = decide_up_front(policy, draws.row, dataset)
    check_load(sc, draws, decisions)
    sim = SimpyRun(sc, policy, dataset, draws, decisions)
    timeline = sim.run(progress)
    return finish(timeline, draws, sim.route, decisions.sensitive, sc, dataset, sim.blocked, "simpy")
