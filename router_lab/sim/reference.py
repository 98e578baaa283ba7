"""A plain simpy model of the same deployment: one process per request, ``simpy.Resource`` queues.

The textbook way to write the model, kept as the benchmark's baseline and as an independent check
of the engine (same draws, same rules, nothing shared but the draws and the record derivation).
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
from router_lab.sim.core import WINDOW_NS, prepare
from router_lab.sim.draws import NEVER, attempts_begun
from router_lab.sim.records import Outcome, Records, Timeline
from router_lab.sim.scenario import Scenario


def run_reference(sc: Scenario, policy: Policy, dataset: Dataset, seed: int | np.random.SeedSequence) -> Records:
    if sc.device.battery_j is not None or sc.device.queue_limit is not None or sc.cloud.queue_limit is not None:
        raise RouterLabError("the reference model has no battery or queue limits; set them to null")
    setup = prepare(sc, policy, dataset, seed, load_check=False)
    d, dec = setup.draws, setup.decisions
    env = simpy.Environment()
    device = simpy.Resource(env, sc.device.units)
    cloud = simpy.Resource(env, sc.cloud.units)
    tl = Timeline(len(d))
    overhead, timeout, retry = setup.constants.overhead_ns, setup.constants.timeout_ns, setup.constants.retry_ns
    limiter = {"window": -1, "count": 0}

    def later(delay: int, i: int, last: bool = False) -> simpy.Event:
        """A timeout for request ``i``; simultaneous ones fire in order of request number (the tie
        rule), after simpy's own events at that time; ``last``: after request i's other events (the
        client's timeout: an answer arriving exactly at the timeout is in time)."""
        event = env.event()
        event._ok, event._value = True, None
        env.schedule(event, 2 + 2 * i + last, delay)
        return event

    def on_device(i: int, outcome: Outcome):  # noqa: ANN202 - simpy process
        tl.device_enter_ns[i] = env.now
        with device.request() as slot:
            yield slot
            tl.device_start_ns[i] = env.now
            yield env.timeout(int(d.device_service_ns[i]))
        tl.device_done_ns[i] = tl.end_ns[i] = env.now
        tl.outcome[i] = outcome

    def back(i: int, answered: simpy.Event, ok: bool):  # noqa: ANN202 - the answer (or refusal) travels back
        downlink = int(d.downlink_ns[i])
        cut = d.first_down(env.now, env.now + downlink) if d.has_outages else NEVER
        if cut != NEVER:  # lost in an outage: the connection drops when it begins
            yield later(cut - env.now, i)
            ok = False
        else:
            yield later(downlink, i)
        if not answered.triggered:
            answered.succeed(ok)

    def in_cloud(i: int, answered: simpy.Event):  # noqa: ANN202 - the server side of one request
        yield later(int(d.uplink_ns[i]), i)
        tl.cloud_enter_ns[i] = env.now
        if sc.cloud.rate_limit_rpm is not None:
            window = env.now // WINDOW_NS
            if window != limiter["window"]:
                limiter["window"], limiter["count"] = window, 0
            limiter["count"] += 1
            if limiter["count"] > sc.cloud.rate_limit_rpm:
                yield env.process(back(i, answered, False))
                return
        with cloud.request() as slot:
            yield slot
            tl.cloud_start_ns[i] = env.now
            yield env.timeout(int(d.cloud_service_ns[i]))
            tl.cloud_done_ns[i] = env.now
        yield env.process(back(i, answered, True))

    def via_cloud(i: int, cascade: bool):  # noqa: ANN202 - the client side
        ok = False
        uplink = int(d.uplink_ns[i])
        cut = d.first_down(env.now, env.now + uplink) if d.has_outages else NEVER
        if cut != env.now:  # else the network is down: nothing is sent
            tl.sent[i] = True
            tl.attempts[i] = d.uplink_attempts[i]
            if cut != NEVER:  # an outage begins during the upload
                tl.attempts[i] = attempts_begun(cut - env.now, int(d.uplink_attempts[i]), retry)
                yield later(cut - env.now, i)
            elif d.uplink_failed[i]:  # every attempt lost, or the client's timeout came first
                yield later(uplink, i)
            else:
                answered = env.event()
                env.process(in_cloud(i, answered))
                waits = [answered] if timeout is None else [answered, later(timeout, i, last=True)]
                result = yield env.any_of(waits)
                ok = answered in result and answered.value is True
        if ok:
            tl.end_ns[i] = env.now
            tl.outcome[i] = Outcome.CASCADE if cascade else Outcome.CLOUD
        elif cascade:
            tl.end_ns[i], tl.outcome[i] = env.now, Outcome.FALLBACK
        elif sc.sim.on_cloud_failure == "fail":
            tl.end_ns[i], tl.outcome[i] = env.now, Outcome.FAILED
        else:
            yield env.process(on_device(i, Outcome.FALLBACK))

    def request(i: int):  # noqa: ANN202 - one process per request
        route = int(dec.route[i])
        if route == Route.CLOUD:
            yield env.process(via_cloud(i, cascade=False))
            return
        yield env.process(on_device(i, Outcome.LOCAL))
        if route == Route.CASCADE and dec.escalate[i]:
            yield env.process(via_cloud(i, cascade=True))

    def source():  # noqa: ANN202
        for i, t in enumerate((d.arrival_ns + overhead).tolist()):
            yield later(t - env.now, i)
            env.process(request(i))

    env.process(source())
    env.run()
    return setup.records(tl, route=dec.route, engine="reference", sensitive_blocked=dec.sensitive_blocked)
