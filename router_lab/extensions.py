"""The extension points: which registry holds the options of which setting.

One list, read by the CLI's help (``router-lab --help`` and ``router-lab COMMAND --help`` list
every option with its one-line summary), by the conformance suite (``tests/test_conformance.py``
checks that every registered entry has its config file, its schema and its slot in the comparison
presets) and by ``docs/extending.md``.  Each registry is named as ``"module:ATTRIBUTE"`` and
imported only when asked for, so importing this module costs nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from router_lab.registry import Registry


@dataclass(frozen=True)
class ExtensionPoint:
    title: str  # what an option is, for --help: "policies (policy=NAME)"
    registry: str  # "module:ATTRIBUTE" of its Registry
    group: str = ""  # the config group whose options are exactly the registry's names (conf/<group>/)

    def load(self) -> Any:
        module, _, attribute = self.registry.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def help_lines(self) -> list[str]:
        """``name  summary`` per option (a registry's summaries; a plain mapping's docstrings)."""
        found = self.load()
        if isinstance(found, Registry):
            return found.help_lines()
        if isinstance(found, Mapping):  # an extension point not (yet) on the Registry helper
            names = sorted(found)
            width = max((len(n) for n in names), default=0)
            return [f"{n:<{width}}  {_first_line(found[n])}".rstrip() for n in names]
        return [str(n) for n in found]


def _first_line(obj: Any) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0].strip() if doc else ""


EXTENSION_POINTS: tuple[ExtensionPoint, ...] = (
    ExtensionPoint("policies (policy=NAME)", "router_lab.policies.registry:POLICIES", group="policy"),
    ExtensionPoint("routers (router=NAME)", "router_lab.train.estimators:ESTIMATORS", group="router"),
    ExtensionPoint("threshold targets (target=NAME)", "router_lab.train.thresholds:TARGETS", group="target"),
    ExtensionPoint("dataset builders (dataset.kind; datasets: dataset=NAME)", "router_lab.data.builders:BUILDERS"),
    ExtensionPoint("workloads (workload.kind)", "router_lab.sim.arrivals:ARRIVALS"),
    ExtensionPoint("feature modes (train.mode)", "router_lab.features:FEATURE_MODES"),
    ExtensionPoint("router labels (router.label)", "router_lab.features:ROUTING_LABELS"),
    ExtensionPoint("importers (dataset import NAME)", "router_lab.data.importers:IMPORTERS"),
    ExtensionPoint("export targets (export.targets=[...])", "router_lab.export.targets:TARGETS"),
)


def options_help() -> str:
    """Every extension point's options with their summaries, for ``--help``."""
    lines = ["options (from the registries; a new module registers its own):"]
    for point in EXTENSION_POINTS:
        lines.append(f"  {point.title}:")
        lines += [f"    {line}" for line in point.help_lines()]
    return "\n".join(lines)
