"""Routing decisions taken before a run: stateless policies decide every request in one batch.

Both engines use these, so they see identical routes (and a random policy's draws match).  The
decisions are the runtime's (``policy.core``): it pins sensitive requests to the device and counts
the attempts, and the policy's rule (``Policy.keep_local``) is applied once more on the result; cascade escalations depend on the request's own score only, so they are computed
here for every request, stateful policies included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError
from router_lab.policies.base import Policy, Route, sensitive_rows


@dataclass(frozen=True)
class Decisions:
    route: np.ndarray | None  # int8 per request; None: a stateful policy decides during the run
    escalate: np.ndarray  # bool per request: a CASCADE route goes on to the cloud
    sensitive: np.ndarray  # bool per request
    sensitive_blocked: int  # sensitive requests the policy tried to send off the device
    tier: np.ndarray | None = None  # tiered runs, stateless policies: int8 model index of the remote step (0: none)


def refuse_unserved_models(policy: Policy, rows: np.ndarray, dataset: Dataset) -> None:
    """A run with no remote tiers serves the device and the model named ``cloud`` only: an N-model
    policy (one that chooses tiers itself) sending a request to another model is a one-line error,
    not silently answered by the cloud."""
    if len(dataset.models) <= 2 or type(policy).decide_tiers is Policy.decide_tiers:
        return
    _, tiers = policy.decide_tiers(rows)
    served = {0, dataset.models.index("cloud")}
    unserved = sorted(set(np.unique(tiers).tolist()) - served)
    if unserved:
        name = dataset.models[int(unserved[0])]
        raise RouterLabError(f"policy {policy.name}: routes requests to model {name!r}, which this deployment "
                             f"does not serve; add its tier (e.g. +tier@tiers.{name}=<preset> "
                             f"tiers.{name}.model={name}, or deployment=three_tier for digits' edge)")


def decide_up_front(policy: Policy, rows: np.ndarray, dataset: Dataset, tiered: bool = False) -> Decisions:
    """The stateless policy's routes and every request's escalation, the policy's sensitive rule
    applied to the run's own flags too (:meth:`Policy.keep_local`); in a ``tiered`` run also each
    request's remote tier (:meth:`Policy.decide_tiers`; 0 where the route stays LOCAL)."""
    sensitive = sensitive_rows(dataset)[rows]
    before = policy.n_blocked
    route = tier = None
    if policy.stateless and tiered:
        routes, tiers = policy.decide_tiers(rows)
        route = np.asarray(routes, dtype=np.int8).copy()
        tier = np.asarray(tiers, dtype=np.int8).copy()
    elif policy.stateless:
        route = np.asarray(policy.decide_batch(rows), dtype=np.int8).copy()
        refuse_unserved_models(policy, rows, dataset)
    escalate = np.asarray(policy.escalate(rows), dtype=bool).copy()
    if route is not None:
        escalate &= route == Route.CASCADE
    route = policy.keep_local(sensitive, route, escalate)
    if tier is not None:
        tier[route == Route.LOCAL] = 0
    return Decisions(route, escalate, sensitive, policy.n_blocked - before, tier)
