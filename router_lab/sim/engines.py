"""The engine contract ``run(scenario, policy, dataset, seed) -> Records`` and the engines by name.

``simpy`` is the event-driven model (any policy); ``fast`` the vectorised recursion (stateless
policies); ``auto`` (not an engine, an extra choice of ``sim.engine``) takes the fast path whenever
the policy allows it.  Engines register themselves in :data:`ENGINES` (``@ENGINES.register(name)``
in their module); the scenario check (``sim.scenario.validate``) and :func:`run` use the same
registry.  This module imports no engine, so the scenario can import it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from router_lab.errors import RouterLabError
from router_lab.registry import Registry

if TYPE_CHECKING:
    from router_lab.data.contract import Dataset
    from router_lab.policies.base import Policy
    from router_lab.sim.records import Records
    from router_lab.sim.scenario import Scenario

Engine = Callable[..., "Records"]
ENGINES: Registry[Engine] = Registry("engine", field="sim.engine",
                                     modules=("router_lab.sim.engine_simpy", "router_lab.sim.engine_fast"))
AUTO = "auto"  # the extra choice: the fast engine when the policy is stateless, else simpy


class FastPathUnsupported(RouterLabError):
    """The fast path cannot run this policy or scenario (the simpy engine can)."""


def engine_choices() -> list[str]:
    """What ``sim.engine`` accepts: every registered engine, then ``auto``."""
    return [*ENGINES.names(), AUTO]


def check_engine(name: object) -> None:
    """A one-line error unless ``name`` is a registered engine or ``auto``."""
    if name != AUTO and name not in ENGINES:
        raise RouterLabError(f"sim.engine: got {name!r}; expected one of {', '.join(engine_choices())}")


def engine_name(scenario: Scenario, policy: Policy) -> str:
    name = scenario.sim.engine
    check_engine(name)
    if name == AUTO:
        return "fast" if policy.stateless else "simpy"
    return name


def run(scenario: Scenario, policy: Policy, dataset: Dataset, seed: int | np.random.SeedSequence,
        progress: bool = False) -> Records:
    """Simulate one replication with the engine ``scenario.sim.engine`` names."""
    name = engine_name(scenario, policy)
    try:
        return ENGINES.get(name)(scenario, policy, dataset, seed, progress=progress)
    except FastPathUnsupported:
        if scenario.sim.engine != AUTO:
            raise
        return ENGINES.get("simpy")(scenario, policy, dataset, seed, progress=progress)
