"""A plain simpy model of the same deployment: one process per request, ``simpy.Resource`` queues.

The textbook way to write the model, kept as the benchmark's baseline and as an independent check
of the engine (same draws, same rules, nothing shared but ``sim.core``'s setup — draws, up-front
decisions, constants — and the record derivation).
Supports everything except the device battery and queue limits on the stations, including several
remote tiers: one ``simpy.Resource``, network draws, timeout and rate limit per tier, and a failed
cloud route going on to the next cheaper tier.  It follows the shared network rules
(``sim.draws``); simultaneous events run in simpy's own order, not by the engines' tie rule, so it
is compared with the engine on scenarios without ties.
"""

from __future__ import annotations

import numpy as np
import simpy

from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError
from router_lab.policies.base import Policy, Route
from router_lab.sim.core import WINDOW_NS, Setup, prepare
from router_lab.sim.draws import NEVER, RowSizes, attempts_begun
from router_lab.sim.records import Outcome, Records, Timeline, cost_table
from router_lab.sim.scenario import Scenario


class RefTier:
    """One remote tier as the textbook model sees it: its draws, its station (a ``simpy.Resource``),
    its timeout, retry time and rate-limit window, and the next cheaper tier (None: the device)."""

    def __init__(self, env: simpy.Environment, index: int, sc: Scenario, draws, timeout: int | None,  # noqa: ANN001
                 retry: int, lower: RefTier | None, cost: np.ndarray) -> None:
        self.index, self.sc, self.d, self.timeout, self.retry, self.lower = index, sc, draws, timeout, retry, lower
        self.station = simpy.Resource(env, sc.cloud.units)
        self.window, self.window_count = -1, 0
        self.cost = cost


def reference_tiers(env: simpy.Environment, setup: Setup) -> dict[int, RefTier]:
    """Model index -> tier (one tier, index 1, for a scenario without ``tiers``)."""
    if not setup.tiers:
        c = setup.constants
        return {1: RefTier(env, 1, setup.sc, setup.draws, c.timeout_ns, c.retry_ns, None, np.zeros(0))}
    sizes = RowSizes.of(setup.dataset)
    out: dict[int, RefTier] = {}
    lower = None
    for t in setup.tiers:  # tier order: cheapest first
        lower = out[t.index] = RefTier(env, t.index, t.sc, t.draws, t.timeout_ns, t.retry_ns, lower,
                                       cost_table(t.sc, sizes))
    return out


class ReferenceRun:
    """The model's processes: one per request (device, then network and cloud), plain simpy."""

    def __init__(self, setup: Setup) -> None:
        sc = setup.sc
        self.sc, self.d, self.dec = sc, setup.draws, setup.decisions
        self.env = env = simpy.Environment()
        self.device = simpy.Resource(env, sc.device.units)
        self.tiered = bool(setup.tiers)
        self.tiers = reference_tiers(env, setup)
        self.tl = Timeline(len(self.d), tiered=self.tiered, n_models=len(setup.dataset.models))
        self.overhead = setup.constants.overhead_ns

    def later(self, delay: int, i: int, last: bool = False) -> simpy.Event:
        """A timeout for request ``i``; simultaneous ones fire in order of request number (the tie
        rule), after simpy's own events at that time; ``last``: after request i's other events (the
        client's timeout: an answer arriving exactly at the timeout is in time)."""
        event = self.env.event()
        event._ok, event._value = True, None
        self.env.schedule(event, 2 + 2 * i + last, delay)
        return event

    def on_device(self, i: int, outcome: Outcome):  # noqa: ANN201 - simpy process
        env, tl = self.env, self.tl
        tl.device_enter_ns[i] = env.now
        with self.device.request() as slot:
            yield slot
            tl.device_start_ns[i] = env.now
            yield env.timeout(int(self.d.device_service_ns[i]))
        tl.device_done_ns[i] = tl.end_ns[i] = env.now
        tl.outcome[i] = outcome

    def back(self, i: int, answered: simpy.Event, ok: bool, tier: RefTier):  # noqa: ANN201 - the answer (or refusal) travels back
        env, d = self.env, tier.d
        downlink = int(d.downlink_ns[i])
        cut = d.first_down(env.now, env.now + downlink) if d.has_outages else NEVER
        if cut != NEVER:  # lost in an outage: the connection drops when it begins
            yield self.later(cut - env.now, i)
            ok = False
        else:
            yield self.later(downlink, i)
        if not answered.triggered:
            answered.succeed(ok)

    def over_rate_limit(self, tier: RefTier) -> bool:
        """Count an arrival at the tier's station in its one-minute window; True past the limit."""
        if tier.sc.cloud.rate_limit_rpm is None:
            return False
        window = self.env.now // WINDOW_NS
        if window != tier.window:
            tier.window, tier.window_count = window, 0
        tier.window_count += 1
        return tier.window_count > tier.sc.cloud.rate_limit_rpm

    def in_cloud(self, i: int, answered: simpy.Event, tier: RefTier):  # noqa: ANN201 - the server side of one request
        env, tl = self.env, self.tl
        yield self.later(int(tier.d.uplink_ns[i]), i)
        tl.cloud_enter_ns[i] = env.now
        if self.over_rate_limit(tier):
            yield env.process(self.back(i, answered, False, tier))
            return
        with tier.station.request() as slot:
            yield slot
            if self.tiered and tl.tier[i] != tier.index:  # the client gave up and went on: this tier still bills it
                tl.tier_cost[i, tier.index] = tier.cost[int(self.d.row[i])]
            else:
                tl.cloud_start_ns[i] = env.now
            yield env.timeout(int(tier.d.cloud_service_ns[i]))
            if not self.tiered or tl.tier[i] == tier.index:
                tl.cloud_done_ns[i] = env.now
        yield env.process(self.back(i, answered, True, tier))

    def upload(self, i: int, tier: RefTier):  # noqa: ANN201 - the client's upload and wait; returns: answered in time
        env, d, tl = self.env, tier.d, self.tl
        if self.tiered:
            tl.tier[i], tl.hop_sent_ns[i] = tier.index, env.now
        earlier = int(tl.attempts[i]) if self.tiered else 0  # attempts at more expensive tiers
        uplink = int(d.uplink_ns[i])
        cut = d.first_down(env.now, env.now + uplink) if d.has_outages else NEVER
        if cut == env.now:  # the network is down: nothing is sent
            return False
        tl.sent[i] = True
        tl.attempts[i] = earlier + d.uplink_attempts[i]
        if cut != NEVER:  # an outage begins during the upload
            tl.attempts[i] = earlier + attempts_begun(cut - env.now, int(d.uplink_attempts[i]), tier.retry)
            yield self.later(cut - env.now, i)
            return False
        if d.uplink_failed[i]:  # every attempt lost, or the client's timeout came first
            yield self.later(uplink, i)
            return False
        answered = env.event()
        env.process(self.in_cloud(i, answered, tier))
        waits = [answered] if tier.timeout is None else [answered, self.later(tier.timeout, i, last=True)]
        result = yield env.any_of(waits)
        return answered in result and answered.value is True

    def via_cloud(self, i: int, cascade: bool, tier: RefTier):  # noqa: ANN201 - the client side
        env, tl = self.env, self.tl
        ok = yield from self.upload(i, tier)  # (a generator, not a process: the same events as inline)
        if ok:
            tl.end_ns[i] = env.now
            tl.outcome[i] = Outcome.CASCADE if cascade else Outcome.CLOUD
        elif cascade:
            tl.end_ns[i], tl.outcome[i] = env.now, Outcome.FALLBACK
        elif self.sc.sim.on_cloud_failure == "fail":
            tl.end_ns[i], tl.outcome[i] = env.now, Outcome.FAILED
        elif tier.lower is not None:  # the next cheaper tier; a bill this tier ran stays
            if tl.cloud_start_ns[i] >= 0:
                tl.tier_cost[i, tier.index] = tier.cost[int(self.d.row[i])]
            tl.cloud_enter_ns[i] = tl.cloud_start_ns[i] = tl.cloud_done_ns[i] = -1
            yield env.process(self.via_cloud(i, False, tier.lower))
        else:
            yield env.process(self.on_device(i, Outcome.FALLBACK))

    def request(self, i: int):  # noqa: ANN201 - one process per request
        route = int(self.dec.route[i])
        tier = self.tiers[int(self.dec.tier[i]) if self.tiered else 1] if route != Route.LOCAL else None
        if route == Route.CLOUD:
            yield self.env.process(self.via_cloud(i, False, tier))
            return
        yield self.env.process(self.on_device(i, Outcome.LOCAL))
        if route == Route.CASCADE and self.dec.escalate[i]:
            yield self.env.process(self.via_cloud(i, True, tier))

    def source(self):  # noqa: ANN201 - the arrival process
        env = self.env
        for i, t in enumerate((self.d.arrival_ns + self.overhead).tolist()):
            yield self.later(t - env.now, i)
            env.process(self.request(i))

    def run(self) -> Timeline:
        self.env.process(self.source())
        self.env.run()
        return self.tl


def run_reference(sc: Scenario, policy: Policy, dataset: Dataset, seed: int | np.random.SeedSequence) -> Records:
    """Simulate ``sc`` under a stateless ``policy`` with the textbook model."""
    if sc.device.battery_j is not None or sc.device.queue_limit is not None or sc.cloud.queue_limit is not None:
        raise RouterLabError("the reference model has no battery or queue limits; set them to null")
    if any(t.cloud.queue_limit is not None for t in sc.tiers):
        raise RouterLabError("the reference model has no queue limits; set every tier's cloud.queue_limit to null")
    setup = prepare(sc, policy, dataset, seed, load_check=False)
    timeline = ReferenceRun(setup).run()
    return setup.records(timeline, route=setup.decisions.route, engine="reference",
                         sensitive_blocked=setup.decisions.sensitive_blocked, decided_tier=setup.decisions.tier)
