"""Threshold policies on a per-request score: the shared core, the confidence cascade, the oracle.

A :class:`ScoredPolicy` computes one score per dataset row (once, vectorised) and routes by
``score >= threshold``: straight to the cloud, or (``cascade``) on the device first and escalated.
The offline evaluation sweeps the threshold over the same ``scores``.
"""

from __future__ import annotations

import abc
from functools import cached_property
from typing import ClassVar

import numpy as np

from router_lab.errors import RouterLabError
from router_lab.policies.base import Policy, PolicyContext, Route
from router_lab.policies.registry import register_policy


class ScoredPolicy(Policy):
    """Cloud (or escalation, when ``cascade``) for rows whose score is at least ``threshold``."""

    scored = True
    cascade: ClassVar[bool] = False  # run on the device first; escalate when score >= threshold

    def __init__(self, context: PolicyContext, threshold: float = 0.5) -> None:
        super().__init__(context)
        self.threshold = float(threshold)

    @abc.abstractmethod
    def _all_scores(self) -> np.ndarray:
        """One score per row of the dataset (called once)."""

    @cached_property
    def _score_table(self) -> np.ndarray:
        table = np.asarray(self._all_scores(), dtype=np.float64)
        if table.shape != (len(self.context.dataset),):
            raise RouterLabError(f"policy {self.name}: got {table.shape[0]} scores for "
                                 f"{len(self.context.dataset)} rows; expected one per row")
        return table

    def scores(self, indices: np.ndarray) -> np.ndarray:
        return self._score_table[np.asarray(indices, dtype=np.int64)]

    def _above(self, indices: np.ndarray) -> np.ndarray:
        return self.scores(indices) >= self.threshold

    def _routes(self, indices: np.ndarray) -> np.ndarray:
        if self.cascade:
            return np.full(len(indices), Route.CASCADE, dtype=np.int8)
        return np.where(self._above(indices), Route.CLOUD, Route.LOCAL).astype(np.int8)

    def escalate(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        if not self.cascade:
            return np.zeros(len(indices), dtype=bool)
        return self._above(indices) & ~self._sensitive[indices]


@register_policy("confidence")
class ConfidencePolicy(ScoredPolicy):
    """Cascade: answer on the device, escalate when its confidence is at or below ``min_confidence``.

    Score = 1 - confidence (the device's top-class probability, column ``column``).
    """

    cascade = True

    def __init__(self, context: PolicyContext, min_confidence: float = 0.8,
                 column: str = "device_confidence") -> None:
        if not 0.0 <= min_confidence <= 1.0:
            raise RouterLabError(f"policy.min_confidence: got {min_confidence}; expected a number in [0, 1]")
        if column not in context.dataset.frame.columns:
            raise RouterLabError(f"policy.column: the dataset {context.dataset.source} has no column "
                                 f"{column!r}; the confidence policy needs the device's confidence")
        super().__init__(context, threshold=1.0 - float(min_confidence))
        self.column = column

    def _all_scores(self) -> np.ndarray:
        return 1.0 - self.context.dataset.frame[self.column].to_numpy(dtype=np.float64)


@register_policy("oracle")
class OraclePolicy(ScoredPolicy):
    """UPPER BOUND, not deployable: knows both answers and sends a request to the cloud exactly when
    the cloud's answer is better.  Score = cloud quality - device quality."""

    upper_bound = True

    def __init__(self, context: PolicyContext) -> None:
        super().__init__(context, threshold=float(np.finfo(np.float64).tiny))

    def _all_scores(self) -> np.ndarray:
        dataset = self.context.dataset
        return dataset.cloud_quality() - dataset.device_quality()
