"""Threshold policies on a per-request score: the shared core, the confidence cascade, the oracle.

A :class:`ScoredPolicy` computes one score per dataset row (once, vectorised) and ships a
threshold: cloud when ``score >= threshold`` — straight away, or (``cascade``) after the device
answered.  The offline evaluation sweeps the threshold over the same scores.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import numpy as np

from router_lab.errors import RouterLabError
from router_lab.policies.base import Policy, PolicyContext
from router_lab.policies.config import ConfidencePolicyConfig
from router_lab.policies.registry import register_policy
from router_lab.runtime.policy import RoutingPolicy, ThresholdPolicy


class ScoredPolicy(Policy):
    """Cloud (or escalation, when ``cascade``) for rows whose score is at least ``threshold``."""

    cascade: ClassVar[bool] = False  # run on the device first; escalate when score >= threshold

    def __init__(self, context: PolicyContext, threshold: float = 0.5) -> None:
        super().__init__(context)
        self.threshold = float(threshold)

    @abc.abstractmethod
    def _all_scores(self) -> np.ndarray:
        """One score per row of the dataset (called once)."""

    def node(self) -> dict[str, Any]:
        return {"kind": self.name, "params": {"threshold": self.threshold}}


@register_policy("confidence", schema=ConfidencePolicyConfig,
                 summary="cascade: escalate when the device's confidence <= min_confidence")
class ConfidencePolicy(ScoredPolicy):
    """Cascade: answer on the device, escalate when its confidence is at or below ``min_confidence``.

    Score = 1 - confidence (the device's top-class probability, column ``column``); threshold =
    1 - ``min_confidence``.
    """

    cascade = True

    def __init__(self, context: PolicyContext, min_confidence: float, column: str) -> None:
        if not 0.0 <= min_confidence <= 1.0:
            raise RouterLabError(f"policy.min_confidence: got {min_confidence}; expected a number in [0, 1]")
        if column not in context.dataset.frame.columns:
            raise RouterLabError(f"policy.column: the dataset {context.dataset.source} has no column "
                                 f"{column!r}; the confidence policy needs the device's confidence")
        super().__init__(context, threshold=1.0 - float(min_confidence))
        self.column = column

    def _all_scores(self) -> np.ndarray:
        return 1.0 - self.context.dataset.frame[self.column].to_numpy(dtype=np.float64)


@register_policy("oracle", summary="UPPER BOUND, not deployable: cloud exactly when its answer is better")
class OraclePolicy(ScoredPolicy):
    """UPPER BOUND, not deployable: knows both answers and sends a request to the cloud exactly when
    the cloud's answer is better.  Score = cloud quality - device quality."""

    upper_bound = True

    def __init__(self, context: PolicyContext) -> None:
        super().__init__(context, threshold=float(np.finfo(np.float64).tiny))

    def node(self) -> dict[str, Any]:
        return Policy.node(self)  # refuses: the oracle cannot ship

    def make_core(self) -> RoutingPolicy:
        return ThresholdPolicy(self.threshold, cascade=False, kind="oracle")

    def _all_scores(self) -> np.ndarray:
        dataset = self.context.dataset
        return dataset.cloud_quality() - dataset.device_quality()
