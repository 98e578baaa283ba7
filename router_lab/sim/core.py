"""What every engine shares: the run's constants, the setup before a run, and the record assembly.

Each engine (``engine_simpy``, ``engine_fast``) and the reference model (``reference``) runs the same
three steps around its own timeline: :func:`prepare` (draw the randomness, decide the stateless
routes up front, refuse an unstable load), the engine's pass over the timeline, and
:meth:`Setup.records` (quality, cost, energy, bytes and the accounting checks, via
:func:`router_lab.sim.records.finish`).  The constants derived from the scenario (router overhead,
client timeout, retry interval, battery, rate-limit window) are computed here once, so no engine
imports another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from router_lab.data.contract import Dataset
from router_lab.policies.base import Policy
from router_lab.sim.decisions import Decisions, decide_up_front
from router_lab.sim.draws import NS_PER_S, Draws, draw, retry_ns, router_overhead_ns, timeout_ns
from router_lab.sim.load import check_load
from router_lab.sim.records import DecisionLog, Records, Timeline, finish
from router_lab.sim.scenario import Scenario
from router_lab.sim.stations import Battery
from router_lab.sim.tiers import Tier, build_tiers, check_routed, with_every_model

WINDOW_NS = 60 * NS_PER_S  # the cloud's rate-limit window (requests per minute)
FAIL, FINISH = 0, 1  # kinds of what a requester learns; failures sort first at equal times


@dataclass(frozen=True)
class Constants:
    """Per-run constants of a scenario, in integer nanoseconds."""

    overhead_ns: int  # the router's own cost: a request is decided at arrival + overhead
    timeout_ns: int | None  # the client's timeout on a cloud request (None: waits forever)
    retry_ns: int  # the gap between upload attempts
    battery: Battery | None  # the device's battery (None: mains powered)

    @classmethod
    def of(cls, sc: Scenario) -> Constants:
        return cls(overhead_ns=router_overhead_ns(sc), timeout_ns=timeout_ns(sc), retry_ns=retry_ns(sc),
                   battery=device_battery(sc))


def device_battery(sc: Scenario) -> Battery | None:
    d = sc.device
    return None if d.battery_j is None else Battery(d.battery_j, d.idle_w, d.energy_per_inference_j)


@dataclass(frozen=True)
class Setup:
    """One run before its engine starts: the scenario, the draws, the up-front decisions."""

    sc: Scenario
    dataset: Dataset
    draws: Draws
    decisions: Decisions
    constants: Constants
    tiers: tuple[Tier, ...] = ()  # tiered scenarios: the remote tiers in tier order (else none)

    def records(self, timeline: Timeline, *, route: np.ndarray, engine: str, sensitive_blocked: int,
                decision_log: DecisionLog | None = None, decided_tier: np.ndarray | None = None) -> Records:
        """The run's records from the engine's filled ``timeline`` (checked by ``sim.audit``);
        ``decided_tier`` (tiered runs): the tier each request was decided for."""
        return finish(timeline=timeline, draws=self.draws, route=route, sensitive=self.decisions.sensitive,
                      scenario=self.sc, dataset=self.dataset, sensitive_blocked=sensitive_blocked,
                      engine=engine, decision_log=decision_log, tiers=self.tiers, decided_tier=decided_tier)


def prepare(sc: Scenario, policy: Policy, dataset: Dataset, seed: int | np.random.SeedSequence, *,
            load_check: bool = True) -> Setup:
    """Draw → decide → check the load: the steps every engine takes before its own pass.

    ``load_check=False`` (the reference model) skips the refusal of an unstable offered load;
    ``deployment=every_model``'s template becomes its tiers here (:func:`with_every_model`)."""
    sc = with_every_model(sc, dataset)
    draws = draw(sc, dataset, seed)
    decisions = decide_up_front(policy, draws.row, dataset, tiered=sc.tiered)
    tiers = tuple(build_tiers(sc, dataset, draws, seed)) if sc.tiered else ()
    if decisions.tier is not None:
        check_routed(list(tiers), decisions.tier, dataset.models)
    if load_check:
        check_load(sc, draws, decisions, list(tiers) or None)
    return Setup(sc, dataset, draws, decisions, Constants.of(sc), tiers)


def session_lookup(dataset: Dataset) -> Callable[[int], str | None]:
    """Per dataset row, its ``session_id`` (a column an app-traffic dataset may carry), else None."""
    if "session_id" not in dataset.frame.columns:
        return lambda row: None
    sessions = dataset.frame["session_id"].astype(str).to_numpy(dtype=object)
    return sessions.__getitem__
