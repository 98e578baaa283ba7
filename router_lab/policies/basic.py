"""Policies that need no model: all local, all cloud, and a seeded coin flip."""

from __future__ import annotations

from typing import Any

import numpy as np

from router_lab.errors import RouterLabError
from router_lab.policies.base import Policy, PolicyContext
from router_lab.policies.registry import register_policy
from router_lab.policies.seeds import child_seed


@register_policy("always_local")
class AlwaysLocal(Policy):
    def node(self) -> dict[str, Any]:
        return {"kind": "always_local", "params": {}}


@register_policy("always_cloud")
class AlwaysCloud(Policy):
    def node(self) -> dict[str, Any]:
        return {"kind": "always_cloud", "params": {}}


@register_policy("random")
class RandomPolicy(Policy):
    """Cloud with probability ``p_cloud``; the runtime draws from its own generator, seeded here
    from the context's (the seed ships in policy.json, so a replay draws the same coins)."""

    def __init__(self, context: PolicyContext, p_cloud: float = 0.3) -> None:
        super().__init__(context)
        if not 0.0 <= p_cloud <= 1.0:
            raise RouterLabError(f"policy.p_cloud: got {p_cloud}; expected a probability in [0, 1]")
        self.p_cloud = float(p_cloud)
        self.seed = child_seed(context.rng)

    def node(self) -> dict[str, Any]:
        return {"kind": "random", "params": {"p_cloud": self.p_cloud, "seed": self.seed}}

    def _all_scores(self) -> np.ndarray:
        """The same score for every request: swept, ties move together, giving the random line."""
        return np.full(len(self.context.dataset), self.p_cloud)
