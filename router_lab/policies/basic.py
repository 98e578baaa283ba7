"""Policies that need no model: all local, all cloud, and a seeded coin flip."""

from __future__ import annotations

from typing import Any

import numpy as np

from router_lab.errors import RouterLabError
from router_lab.policies.base import Policy, PolicyContext
from router_lab.policies.config import RandomPolicyConfig
from router_lab.policies.registry import register_policy
from router_lab.policies.seeds import child_seed


@register_policy("always_local", summary="every request on the device (the floor of cost and quality)")
class AlwaysLocal(Policy):
    """Every request on the device (the floor of cost and of quality)."""

    def node(self) -> dict[str, Any]:
        return {"kind": "always_local", "params": {}}


@register_policy("always_cloud", summary="every request that may leave goes to the cloud")
class AlwaysCloud(Policy):
    """Every request that may leave to the cloud (the quality ceiling of the deployable policies)."""

    def node(self) -> dict[str, Any]:
        return {"kind": "always_cloud", "params": {}}


@register_policy("random", schema=RandomPolicyConfig, summary="cloud with probability p_cloud (a seeded coin)")
class RandomPolicy(Policy):
    """Cloud with probability ``p_cloud``; the runtime draws from its own generator, seeded here
    from the context's (the seed ships in policy.json, so a replay draws the same coins)."""

    def __init__(self, context: PolicyContext, p_cloud: float) -> None:
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
