"""A policy as shipped: a loaded routing bundle, bound to a dataset for the simulator.

``router-lab simulate bundle=PATH`` runs this: the decisions are the bundle's own runtime policy
(built from its policy.json), and the scores come from the bundle's own router graph, run once over
the dataset's rows in a batch.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from router_lab.errors import RouterLabError
from router_lab.features import exported_router_inputs
from router_lab.policies.base import Policy, PolicyContext
from router_lab.policies.tiered import tier_escalations, tier_routes
from router_lab.runtime.bundle import Bundle
from router_lab.runtime.policy import Request, RoutingPolicy

CONFIDENCE_COLUMN = "device_confidence"


class BundlePolicy(Policy):
    def __init__(self, context: PolicyContext, bundle: Bundle) -> None:
        super().__init__(context)
        self.bundle = bundle
        self.name = bundle.kind  # type: ignore[misc]

    def node(self) -> dict[str, Any]:
        return self.bundle.policy_spec["policy"]

    def make_core(self) -> RoutingPolicy:
        return self.bundle.make_policy()

    # -- an N-model bundle: the graph's predicted qualities, tiers per row -------------------------
    @cached_property
    def quality_table(self) -> np.ndarray:
        router = self.bundle.router
        return self.bundle.score_batch(exported_router_inputs(self.context.dataset, router.metadata, router.source))

    def requests(self, rows: np.ndarray, sensitive: np.ndarray, sessions: list | None = None) -> list[Request]:
        if not self.bundle.models:
            return super().requests(rows, sensitive, sessions)
        Q = self.quality_table[np.asarray(rows, dtype=np.int64)]
        sessions = sessions if sessions is not None else [None] * len(Q)
        return [Request(score=q, sensitive=p, session_id=se)
                for q, p, se in zip(Q.tolist(), np.asarray(sensitive, dtype=bool).tolist(), sessions, strict=True)]

    def decide_tiers(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self.bundle.models:
            return super().decide_tiers(indices)
        indices = np.asarray(indices, dtype=np.int64)
        return tier_routes(self.core, self.quality_table[indices], self.pinned(indices))

    def escalate(self, indices: np.ndarray) -> np.ndarray:
        if not self.bundle.models:
            return super().escalate(indices)
        indices = np.asarray(indices, dtype=np.int64)
        return tier_escalations(self.core, self.quality_table[indices], self.pinned(indices))

    def decide_batch(self, indices: np.ndarray) -> np.ndarray:
        if not self.bundle.models:
            return super().decide_batch(indices)
        return self.decide_tiers(indices)[0]

    def _all_scores(self) -> np.ndarray | None:
        dataset, scoring = self.context.dataset, self.bundle.policy_spec["scoring"]
        if self.bundle.models:  # the two-model score the graph also gives: q_cloud - q_device
            router = self.bundle.router
            return np.asarray(router.route(exported_router_inputs(dataset, router.metadata, router.source)).score,
                              dtype=np.float64)
        if scoring["source"] == "router":
            router = self.bundle.router
            return self.bundle.score_batch(exported_router_inputs(dataset, router.metadata, router.source))
        if scoring["source"] == "device_confidence":
            column = scoring.get("column", CONFIDENCE_COLUMN)
            if column not in dataset.frame.columns:
                raise RouterLabError(f"{dataset.source}: no column {column!r}; the bundle's "
                                     f"{self.name} policy escalates on the device's confidence")
            return 1.0 - dataset.frame[column].to_numpy(dtype=np.float64)
        return None
