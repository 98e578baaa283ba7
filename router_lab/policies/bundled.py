"""A policy as shipped: a loaded routing bundle, bound to a dataset for the simulator.

``router-lab simulate bundle=PATH`` runs this: the decisions are the bundle's own runtime policy
(built from its policy.json), and the scores come from the bundle's own router graph, run once over
the dataset's rows in a batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from router_lab.errors import RouterLabError
from router_lab.features import exported_router_inputs
from router_lab.policies.base import Policy, PolicyContext
from router_lab.runtime.bundle import Bundle
from router_lab.runtime.policy import RoutingPolicy

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

    def _all_scores(self) -> np.ndarray | None:
        dataset, scoring = self.context.dataset, self.bundle.policy_spec["scoring"]
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
