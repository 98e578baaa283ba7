"""A plain simpy model of the same deployment: one process per request, ``simpy.Resource`` queues.

The textbook way to write the model, kept as the benchmark's baseline and as an independent check
of the engine (same draws, same rules, nothing shared but ``sim.core``'s setup — draws, up-front
decisions, constants — and the record derivation).
Supports everything except the device battery and queue limits on the stations.  It follows the
shared network rules (``sim.draws``); simultaneous events run in simpy's own order, not by the
engines' tie rule, so it is compared with the engine on scenarios without ties.
"""

from __future__ import annotations

import numpy as np
import simpy

from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError
from router_lab.policies.base import Policy, Route
from router_lab.sim.core import WINDOW_NS, Setup, prepare
from router_lab.sim.draws import NEVER, attempts_begun
from router_lab.sim.records import Outcome, Records, Timeline
from router_lab.sim.scenario import Scenario


class ReferenceRun:
    """The model's processes: one per request (device, then network and cloud), plain simpy."""

    def __init__(self, setup: Setup) -> None:
        sc = setup.sc
        self.sc, self.d, self.dec = sc, setup.draws, setup.decisions
        self.env = env = simpy.Environment()
        self.device = simpy.Resource(env, sc.device.units)
        self.cloud = simpy.Resource(env, sc.cloud.units)
        self.tl = Timeline(len(self.d))
        self.overhead, self.timeout, self.retry = (setup.constants.overhead_ns, setup.constants.timeout_ns,
                                                   setup.constants.retry_ns)
        self.window, self.window_count = -1, 0

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

    def back(self, i: int, answered: simpy.Event, ok: bool):  # noqa: ANN201 - the answer (or refusal) travels back
        env, d = self.env, self.d
        downlink = int(d.downlink_ns[i])
        cut = d.first_down(env.now, env.now + downlink) if d.has_outages else NEVER
        if cut != NEVER:  # lost in an outage: the connection drops when it begins
            yield self.later(cut - env.now, i)
            ok = False
        else:
            yield self.later(downlink, i)
        if not answered.triggered:
            answered.succeed(ok)

    def over_rate_limit(self) -> bool:
        """Count an arrival at the cloud in its one-minute window; True past the limit."""
        if self.sc.cloud.rate_limit_rpm is None:
            return False
        window = self.env.now // WINDOW_NS
        if window != self.window:
            self.window, self.window_count = window, 0
        self.window_count += 1
        return self.window_count > self.sc.cloud.rate_limit_rpm

    def in_cloud(self, i: int, answered: simpy.Event):  # noqa: ANN201 - the server side of one request
        env, tl = self.env, self.tl
        yield self.later(int(self.d.uplink_ns[i]), i)
        tl.cloud_enter_ns[i] = env.now
        if self.over_rate_limit():
            yield env.process(self.back(i, answered, False))
            return
        with self.cloud.request() as slot:
            yield slot
            tl.cloud_start_ns[i] = env.now
            yield env.timeout(int(self.d.cloud_service_ns[i]))
            tl.cloud_done_ns[i] = env.now
        yield env.process(self.back(i, answered, True))

    def upload(self, i: int):  # noqa: ANN201 - the client's upload and wait; returns: answered in time
        env, d, tl = self.env, self.d, self.tl
        uplink = int(d.uplink_ns[i])
        cut = d.first_down(env.now, env.now + uplink) if d.has_outages else NEVER
        if cut == env.now:  # the network is down: nothing is sent
            return False
        tl.sent[i] = True
        tl.attempts[i] = d.uplink_attempts[i]
        if cut != NEVER:  # an outage begins during the upload
            tl.attempts[i] = attempts_begun(cut - env.now, int(d.uplink_attempts[i]), self.retry)
            yield self.later(cut - env.now, i)
            return False
        if d.uplink_failed[i]:  # every attempt lost, or the client's timeout came first
            yield self.later(uplink, i)
            return False
        answered = env.event()
        env.process(self.in_cloud(i, answered))
        waits = [answered] if self.timeout is None else [answered, self.later(self.timeout, i, last=True)]
        result = yield env.any_of(waits)
        return answered in result and answered.value is True

    def via_cloud(self, i: int, cascade: bool):  # noqa: ANN201 - the client side
        env, tl = self.env, self.tl
        ok = yield from self.upload(i)  # (a generator, not a process: the same events as inline)
        if ok:
            tl.end_ns[i] = env.now
            tl.outcome[i] = Outcome.CASCADE if cascade else Outcome.CLOUD
        elif cascade:
            tl.end_ns[i], tl.outcome[i] = env.now, Outcome.FALLBACK
        elif self.sc.sim.on_cloud_failure == "fail":
            tl.end_ns[i], tl.outcome[i] = env.now, Outcome.FAILED
        else:
            yield env.process(self.on_device(i, Outcome.FALLBACK))

    def request(self, i: int):  # noqa: ANN201 - one process per request
        route = int(self.dec.route[i])
        if route == Route.CLOUD:
            yield self.env.process(self.via_cloud(i, cascade=False))
            return
        yield self.env.process(self.on_device(i, Outcome.LOCAL))
        if route == Route.CASCADE and self.dec.escalate[i]:
            yield self.env.process(self.via_cloud(i, cascade=True))

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
    if sc.tiered:
        raise RouterLabError("tiers: the reference model runs one remote tier; expected a scenario without tiers")
    setup = prepare(sc, policy, dataset, seed, load_check=False)
    timeline = ReferenceRun(setup).run()
    return setup.records(timeline, route=setup.decisions.route, engine="reference",
                         sensitive_blocked=setup.decisions.sensitive_blocked)
