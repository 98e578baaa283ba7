"""Policies that depend on the system or on their own history: `load_aware` and `budget`.

Both configure runtime controllers (:mod:`router_lab.runtime.policy`): ``load_aware`` wraps
another policy and overrides it from the signals (device queue vs the latency SLO, network down,
recent cloud rejections); ``budget`` holds a cloud fraction online by moving its threshold after
every request.  Here their parameters are resolved (the scenario's SLO and device, the budget's
starting threshold from the validation scores) into the node that ships in policy.json.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from router_lab.errors import RouterLabError
from router_lab.policies.base import Policy, PolicyContext
from router_lab.policies.config import BudgetPolicyConfig, LoadAwarePolicyConfig
from router_lab.policies.learned import LearnedPolicy
from router_lab.policies.registry import POLICIES, make_policy, register_policy
from router_lab.runtime.policy import LoadAwarePolicy as LoadAwareCore
from router_lab.runtime.policy import RoutingPolicy


def _inner_config(cfg: Any) -> DictConfig:
    if isinstance(cfg, str):
        return OmegaConf.create({"name": cfg})
    if isinstance(cfg, DictConfig | dict) and "name" in cfg:
        return OmegaConf.create(dict(cfg) if isinstance(cfg, dict) else cfg)
    raise RouterLabError(f"policy.inner: got {cfg!r}; expected a policy name or a mapping with 'name'")


@register_policy("load_aware", schema=LoadAwarePolicyConfig,
                 summary="wraps another policy; local when the network is down, cloud under SLO pressure")
class LoadAwarePolicy(Policy):
    """Wraps ``inner``: stays local while the network is down or the cloud has rejected
    ``backoff_rejections`` requests in the last ``backoff_window_s``; sends to the cloud when the
    predicted device time would break the SLO; otherwise does what ``inner`` says.  Offline (idle
    signals): ``inner``.  The device's units and mean service time come from the scenario."""

    def __init__(self, context: PolicyContext, inner: Any, slo_ms: float | None, backoff_rejections: int,
                 backoff_window_s: float) -> None:
        super().__init__(context)
        inner_cfg = _inner_config(inner)
        if inner_cfg.name == "load_aware":
            raise RouterLabError("policy.inner: load_aware cannot wrap itself; expected another policy")
        if inner_cfg.name in POLICIES and POLICIES.entry(str(inner_cfg.name)).meta.get("n_models"):
            raise RouterLabError(f"policy.inner: got {inner_cfg.name!r}, an N-model policy; load_aware wraps a "
                                 "two-model policy (its SLO and backoff rules send to one cloud), not one that "
                                 "picks among tiers")
        self.inner = make_policy(inner_cfg, context)
        self.upper_bound = self.inner.upper_bound  # type: ignore[misc]
        self.slo_ms = slo_ms if slo_ms is not None else context.slo_ms
        if self.slo_ms is not None and not self.slo_ms > 0:
            raise RouterLabError(f"policy.slo_ms: got {self.slo_ms}; expected a positive latency in ms")
        if backoff_rejections < 1:
            raise RouterLabError(f"policy.backoff_rejections: got {backoff_rejections}; expected >= 1")
        if not backoff_window_s > 0:
            raise RouterLabError(f"policy.backoff_window_s: got {backoff_window_s}; expected a positive "
                                 "number of seconds")
        self.backoff_rejections = int(backoff_rejections)
        self.backoff_window_s = float(backoff_window_s)

    def _params(self) -> dict[str, Any]:
        return {"slo_ms": None if self.slo_ms is None else float(self.slo_ms),
                "service_ms": float(self.context.device_service_ms), "units": int(self.context.device_units),
                "backoff_count": self.backoff_rejections, "backoff_window_s": self.backoff_window_s}

    def node(self) -> dict[str, Any]:
        return {"kind": "load_aware", "params": self._params(), "inner": self.inner.node()}

    def make_core(self) -> RoutingPolicy:
        if self.inner.upper_bound:  # an oracle inside: simulated, never shipped
            p = self._params()
            return LoadAwareCore(self.inner.core, p["slo_ms"], p["service_ms"], p["units"],
                                 p["backoff_count"], p["backoff_window_s"])
        return super().make_core()

    def _all_scores(self) -> np.ndarray | None:
        return self.inner.score_table


@register_policy("budget", schema=BudgetPolicyConfig, uses_router=True,
                 summary="holds target_cloud_fraction online by moving its threshold")
class BudgetPolicy(Policy):
    """Holds ``target_cloud_fraction`` online (the runtime's budget controller).  The step is
    ``step`` standard deviations of the router's validation scores; the starting threshold is the
    quantile of those scores that sends ``target`` of all requests (sensitive ones stay local)."""

    def __init__(self, context: PolicyContext, target_cloud_fraction: float, step: float,
                 mode: str | None, model_path: str | None, backend: str, onnx_path: str | None) -> None:
        super().__init__(context)
        if not 0.0 <= target_cloud_fraction <= 1.0:
            raise RouterLabError(f"policy.target_cloud_fraction: got {target_cloud_fraction}; "
                                 "expected a fraction in [0, 1]")
        if not step > 0:
            raise RouterLabError(f"policy.step: got {step}; expected a positive step")
        self.learned = LearnedPolicy(context, mode=mode, model_path=model_path, backend=backend,
                                     onnx_path=onnx_path, threshold=None)
        self.target = float(target_cloud_fraction)
        self.initial_threshold, self.step = self._start(float(step))

    def _start(self, step: float) -> tuple[float, float]:
        frame = self.context.dataset.frame
        rows = np.flatnonzero(frame["split"].to_numpy() == "val") if "split" in frame.columns else []
        rows = rows if len(rows) else np.arange(len(frame))
        allowed = rows[self.may_leave(rows)]
        reference = self.learned.scores(allowed if len(allowed) else rows)
        share = min(1.0, self.target * len(rows) / max(1, len(allowed)))
        spread = float(np.std(reference)) or 1.0
        return float(np.quantile(reference, 1.0 - share)), step * spread

    def node(self) -> dict[str, Any]:
        return {"kind": "budget", "params": {"target_cloud_fraction": self.target, "step": self.step,
                                             "initial_threshold": self.initial_threshold}}

    def _all_scores(self) -> np.ndarray:
        return self.learned.score_table
