"""Routing decisions taken before a run: stateless policies decide every request in one batch.

Both engines use these, so they see identical routes (and a random policy's draws match).  The
sensitive rule is enforced again here: such requests stay local and never escalate; attempts count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from router_lab.data.contract import Dataset
from router_lab.policies.base import Policy, Route


@dataclass(frozen=True)
class Decisions:
    route: np.ndarray | None  # int8 per request; None: a stateful policy decides during the run
    escalate: np.ndarray  # bool per request: a CASCADE route goes on to the cloud
    sensitive: np.ndarray  # bool per request
    sensitive_blocked: int  # sensitive requests the policy tried to send off the device


def decide_up_front(policy: Policy, rows: np.ndarray, dataset: Dataset) -> Decisions:
    sensitive = dataset.column_or("sensitive", False).astype(bool)[rows]
    blocked = 0
    route = None
    if policy.stateless:
        route = np.asarray(policy.decide_batch(rows), dtype=np.int8).copy()
        off_device = sensitive & (route != Route.LOCAL)
        blocked = int(off_device.sum())
        route[off_device] = Route.LOCAL
        escalate = np.zeros(len(rows), dtype=bool)
        cascade = np.flatnonzero(route == Route.CASCADE)
        if cascade.size:
            escalate[cascade] = np.asarray(policy.escalate(rows[cascade]), dtype=bool)
    else:
        escalate = np.asarray(policy.escalate(rows), dtype=bool).copy()
    escalate &= ~sensitive  # a stateful policy's sensitive attempts are counted by the engine
    return Decisions(route, escalate, sensitive, blocked)
