"""Discrete-event simulation of routed requests through device, network and cloud (simpy + fast path).

Library entry points: ``simulate_config(cfg)`` (records + metrics, no files), ``run(scenario,
policy, dataset, seed)`` (one replication), ``summarize(records, scenario)`` and ``make_scenario``.
Imported lazily, so loading the configs (``router_lab.sim.config``) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "simulate_config": "router_lab.sim.commands", "run": "router_lab.sim.engines",
    "summarize": "router_lab.sim.metrics", "Outcome": "router_lab.sim.records",
    "Records": "router_lab.sim.records", "Scenario": "router_lab.sim.scenario",
    "make_scenario": "router_lab.sim.scenario", "scenario_from_config": "router_lab.sim.scenario",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'router_lab.sim' has no attribute {name!r}")
