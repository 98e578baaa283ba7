"""Policies that need no model: all local, all cloud, and a seeded coin flip."""

from __future__ import annotations

import numpy as np

from router_lab.errors import RouterLabError
from router_lab.policies.base import Policy, PolicyContext, Route
from router_lab.policies.registry import register_policy


@register_policy("always_local")
class AlwaysLocal(Policy):
    def _routes(self, indices: np.ndarray) -> np.ndarray:
        return np.full(len(indices), Route.LOCAL, dtype=np.int8)


@register_policy("always_cloud")
class AlwaysCloud(Policy):
    def _routes(self, indices: np.ndarray) -> np.ndarray:
        return np.full(len(indices), Route.CLOUD, dtype=np.int8)


@register_policy("random")
class RandomPolicy(Policy):
    """Cloud with probability ``p_cloud``; draws come from the context's generator in call order."""

    def __init__(self, context: PolicyContext, p_cloud: float = 0.3) -> None:
        super().__init__(context)
        if not 0.0 <= p_cloud <= 1.0:
            raise RouterLabError(f"policy.p_cloud: got {p_cloud}; expected a probability in [0, 1]")
        self.p_cloud = float(p_cloud)

    scored = True

    def scores(self, indices: np.ndarray) -> np.ndarray:
        """The same score for every request: swept, ties move together, giving the random line."""
        return np.full(len(indices), self.p_cloud)

    def _routes(self, indices: np.ndarray) -> np.ndarray:
        coin = self.context.rng.random(len(indices)) < self.p_cloud
        return np.where(coin, Route.CLOUD, Route.LOCAL).astype(np.int8)
