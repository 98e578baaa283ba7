"""The engine contract ``run(scenario, policy, dataset, seed) -> Records`` and the engines by name.

``simpy`` is the event-driven model (any policy); ``fast`` the vectorised recursion (stateless
policies); ``auto`` takes the fast path whenever the policy allows it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError
from router_lab.policies.base import Policy
from router_lab.sim.engine_fast import FastPathUnsupported, run_fast
from router_lab.sim.engine_simpy import run_simpy
from router_lab.sim.records import Records
from router_lab.sim.scenario import Scenario

Engine = Callable[..., Records]
ENGINES: dict[str, Engine] = {"simpy": run_simpy, "fast": run_fast}


def engine_name(scenario: Scenario, policy: Policy) -> str:
    name = scenario.sim.engine
    if name == "auto":
        return "fast" if policy.stateless else "simpy"
    if name not in ENGINES:
        raise RouterLabError(f"sim.engine: got {name!r}; expected one of {', '.join(ENGINES)}, auto")
    return name


def run(scenario: Scenario, policy: Policy, dataset: Dataset, seed: int | np.random.SeedSequence,
        progress: bool = False) -> Records:
    """Simulate one replication with the engine ``scenario.sim.engine`` names."""
    name = engine_name(scenario, policy)
    try:
        return ENGINES[name](scenario, policy, dataset, seed, progress=progress)
    except FastPathUnsupported:
        if scenario.sim.engine != "auto":
            raise
        return run_simpy(scenario, policy, dataset, seed, progress=progress)
