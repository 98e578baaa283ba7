"""The one place the testbed asks a routing policy: ``make_live_router(cfg, context)``.

Today it wraps router_lab.policies (``decide(RequestView, SystemState)`` and ``escalate(rows)``);
``bundle=PATH`` goes through the device runtime's ``load_bundle(PATH).make_policy()`` instead
(``RuntimeRouter``).  The live engine only sees :class:`LiveRouter`'s three methods.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError
from router_lab.policies.base import Policy, PolicyContext, RequestView, Route, SystemState
from router_lab.sim.decisions import Decisions, decide_up_front


class LiveRouter:
    """A router_lab.policies policy behind the testbed's interface.

    A stateless policy decides the whole run's rows in one batch up front, exactly as the
    simulator does (``decide_up_front``: same routes, same random draws); a stateful one decides
    each request on arrival from the live :class:`SystemState`.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.upper_bound = bool(policy.upper_bound)
        self.decisions: Decisions | None = None

    def prepare(self, rows: np.ndarray, dataset: Dataset) -> int:
        """Before the run: batch decisions for a stateless policy; the sensitive attempts it made."""
        self.decisions = decide_up_front(self.policy, rows, dataset)
        return self.decisions.sensitive_blocked

    def decide(self, i: int, request: RequestView, state: SystemState, features: np.ndarray | None) -> int:
        if self.decisions is not None and self.decisions.route is not None:
            return int(self.decisions.route[i])
        return int(self.policy.decide(request, state))

    def escalate(self, i: int, request: RequestView, device_outputs: dict[str, Any] | None) -> bool:
        if self.decisions is not None:
            return bool(self.decisions.escalate[i])
        return bool(self.policy.escalate(np.array([request.index]))[0])

    def observe(self, now_s: float, latency_ms: float | None, answered_by: str | None,
                cloud_failed: bool, cost_usd: float) -> None:
        """Policies of router_lab.policies learn from the SystemState instead."""


class RuntimeRouter(LiveRouter):
    """A bundle's policy from the device runtime (issue 11's API), fed live signals."""

    def __init__(self, bundle_path: str) -> None:
        try:
            from router_lab.runtime import load_bundle
        except ImportError as exc:
            raise RouterLabError(f"bundle={bundle_path}: this build has no routing-bundle runtime "
                                 "(router_lab.runtime.load_bundle); expected a build with issue 11 merged") from exc
        import router_lab.runtime as rt

        self.rt = rt
        self.bundle = load_bundle(bundle_path)  # verifies the manifest; a bad bundle is a one-line error
        self.policy = self.bundle.make_policy()
        self.upper_bound = False
        self.decisions = None

    def prepare(self, rows: np.ndarray, dataset: Dataset) -> int:
        return 0  # the runtime policy decides every request on arrival

    def _request(self, request: RequestView, features: np.ndarray | None, score: float | None = None) -> Any:
        return self.rt.Request(features=features, text=None, sensitive=request.sensitive, session_id=None,
                               score=score)

    def decide(self, i: int, request: RequestView, state: SystemState, features: np.ndarray | None) -> int:
        signals = self.rt.Signals(now_s=state.now_s, local_in_flight=state.device_busy,
                                  local_queued=state.device_queue_len, network_up=state.network_up)
        self._last = self._request(request, features)
        return int(self.policy.decide(self._last, signals).route)

    def escalate(self, i: int, request: RequestView, device_outputs: dict[str, Any] | None) -> bool:
        score = math.nan if not device_outputs else float(device_outputs.get("score", math.nan))
        decision = self.policy.escalate(self._request(request, None, score), score=score)
        return int(decision.route) == int(Route.CLOUD)

    def observe(self, now_s: float, latency_ms: float | None, answered_by: str | None,
                cloud_failed: bool, cost_usd: float) -> None:
        self.policy.observe(self.rt.Outcome(now_s=now_s, latency_ms=latency_ms, answered_by=answered_by,
                                            cloud_failed=cloud_failed, cost_usd=cost_usd))


def make_live_router(cfg: Any, context: PolicyContext) -> LiveRouter:
    """The routing of a testbed run: the bundle's runtime policy, or the configured policy."""
    bundle = cfg.get("bundle") if hasattr(cfg, "get") else None
    if bundle:
        return RuntimeRouter(str(bundle))
    from router_lab.policies import make_policy

    return LiveRouter(make_policy(cfg.policy, context))
