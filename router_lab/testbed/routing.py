"""The one place the testbed asks the routing policy: :class:`LiveRouter` over the runtime's core.

The policy is the simulator's (``configured_policy``): the `policy` group's, or ``bundle=PATH``'s
as shipped (``load_bundle(PATH).make_policy()``, verified on load).  Either way the decisions are
the device runtime's :class:`~router_lab.runtime.policy.RoutingPolicy` (``policy.core``).  A
stateless core decides the run's rows in one batch up front, exactly as the simulator does
(``decide_up_front``); a stateful one decides each request on arrival from live
:class:`~router_lab.runtime.policy.Signals` and learns from ``observe`` as outcomes arrive.
"""

from __future__ import annotations

import numpy as np

from router_lab.data.contract import Dataset
from router_lab.policies.base import Policy
from router_lab.runtime.policy import Outcome as Learned
from router_lab.runtime.policy import Signals
from router_lab.sim.core import session_lookup
from router_lab.sim.decisions import Decisions, decide_up_front


class LiveRouter:
    def __init__(self, policy: Policy, dataset: Dataset) -> None:
        self.policy = policy
        self.core = policy.core
        self.upper_bound = bool(policy.upper_bound)
        self.session_of = session_lookup(dataset)
        self.decisions: Decisions | None = None
        self.blocked = 0

    def prepare(self, rows: np.ndarray, dataset: Dataset) -> None:
        """Before the run: the batch routes of a stateless core, and every row's escalation."""
        self.decisions = decide_up_front(self.policy, rows, dataset)
        self.blocked = self.decisions.sensitive_blocked
        self.n_blocked_before = self.policy.n_blocked

    @property
    def stateful(self) -> bool:
        return self.decisions is None or self.decisions.route is None

    def decide(self, i: int, row: int, sensitive: bool, signals: Signals) -> tuple[int, str]:
        """Request ``i``'s route (int :class:`Route`) and the decision's reason."""
        if not self.stateful:
            return int(self.decisions.route[i]), "batch"
        request = self.policy.request(row, sensitive, self.session_of(row))
        decision = self.policy.decide(request, signals)  # the policy's sensitive rule applied
        return int(decision.route), decision.reason

    def escalate(self, i: int) -> bool:
        """After the device answered a CASCADE route: whether it goes on to the cloud."""
        return bool(self.decisions.escalate[i])

    def observe(self, outcome: Learned) -> None:
        if self.stateful:
            self.core.observe(outcome)

    def sensitive_blocked(self) -> int:
        return self.blocked + (self.policy.n_blocked - self.n_blocked_before if self.stateful else 0)
