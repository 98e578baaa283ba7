"""Policies that depend on the system or on their own history: `load_aware` and `budget`.

``load_aware`` wraps another policy and overrides it from the system state (device queue vs the
latency SLO, network down, cloud rejections).  ``budget`` holds a cloud fraction online by moving
its threshold after every request (a running quantile of the router's scores).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from router_lab.errors import RouterLabError
from router_lab.policies.base import Policy, PolicyContext, RequestView, Route, SystemState
from router_lab.policies.learned import LearnedPolicy
from router_lab.policies.registry import make_policy, register_policy


def predicted_device_ms(state: SystemState) -> float:
    """Expected time on the device for a request arriving now: FIFO wait behind the requests
    ahead of it (spread over the device's units) plus its own mean service time."""
    ahead = max(0, state.device_queue_len + state.device_busy - state.device_units + 1)
    units = max(1, state.device_units)
    return 1000.0 * state.device_mean_service_s * (1.0 + ahead / units)


def _inner_config(cfg: Any) -> DictConfig:
    if isinstance(cfg, str):
        return OmegaConf.create({"name": cfg})
    if isinstance(cfg, DictConfig | dict) and "name" in cfg:
        return OmegaConf.create(dict(cfg) if isinstance(cfg, dict) else cfg)
    raise RouterLabError(f"policy.inner: got {cfg!r}; expected a policy name or a mapping with 'name'")


@register_policy("load_aware")
class LoadAwarePolicy(Policy):
    """Wraps ``inner``: stays local while the network is down or the cloud has rejected
    ``backoff_rejections`` recent requests; sends to the cloud when the predicted device time
    would break the SLO; otherwise does what ``inner`` says.  Offline (no state): ``inner``."""

    stateless = False

    def __init__(self, context: PolicyContext, inner: Any = "learned", slo_ms: float | None = None,
                 backoff_rejections: int = 1) -> None:
        super().__init__(context)
        inner_cfg = _inner_config(inner)
        if inner_cfg.name == "load_aware":
            raise RouterLabError("policy.inner: load_aware cannot wrap itself; expected another policy")
        self.inner = make_policy(inner_cfg, context)
        self.scored = self.inner.scored
        self.slo_ms = slo_ms if slo_ms is not None else context.slo_ms
        if self.slo_ms is not None and self.slo_ms <= 0:
            raise RouterLabError(f"policy.slo_ms: got {self.slo_ms}; expected a positive latency in ms")
        if backoff_rejections < 1:
            raise RouterLabError(f"policy.backoff_rejections: got {backoff_rejections}; expected >= 1")
        self.backoff_rejections = int(backoff_rejections)

    def _routes(self, indices: np.ndarray) -> np.ndarray:
        return self.inner.decide_batch(indices)

    def escalate(self, indices: np.ndarray) -> np.ndarray:
        return self.inner.escalate(indices)

    def scores(self, indices: np.ndarray) -> np.ndarray:
        return self.inner.scores(indices)

    def decide(self, request: RequestView, state: SystemState) -> Route:
        if request.sensitive or self._sensitive[request.index]:
            return Route.LOCAL
        route = self.inner.decide(request, state)
        if not state.network_up or state.recent_cloud_rejections >= self.backoff_rejections:
            return Route.LOCAL  # the cloud is unreachable or pushing back: answer on the device
        if route != Route.CLOUD and self.slo_ms is not None and predicted_device_ms(state) > self.slo_ms:
            return Route.CLOUD
        return route


@register_policy("budget")
class BudgetPolicy(Policy):
    """Holds ``target_cloud_fraction`` online.  After each request the threshold moves by
    ``step`` (in standard deviations of the router's validation scores) times (sent - target):
    the Robbins-Monro tracker of the (1 - target) quantile of recent scores.  The realised
    fraction over T requests is off by at most (threshold drift) / (step * T), so it holds under
    drift.  Requests are decided in the order they come (``decide_batch`` walks its indices)."""

    stateless = False
    scored = True

    def __init__(self, context: PolicyContext, target_cloud_fraction: float = 0.3, step: float = 0.2,
                 mode: str | None = None, model_path: str | None = None, backend: str = "sklearn",
                 onnx_path: str | None = None) -> None:
        super().__init__(context)
        if not 0.0 <= target_cloud_fraction <= 1.0:
            raise RouterLabError(f"policy.target_cloud_fraction: got {target_cloud_fraction}; "
                                 "expected a fraction in [0, 1]")
        if not step > 0:
            raise RouterLabError(f"policy.step: got {step}; expected a positive step")
        self.learned = LearnedPolicy(context, mode=mode, model_path=model_path, backend=backend,
                                     onnx_path=onnx_path)
        self.target = float(target_cloud_fraction)
        self.threshold, self.step = self._start(float(step))
        self.n_decided = 0
        self.n_cloud = 0

    def _start(self, step: float) -> tuple[float, float]:
        """Initial threshold: the quantile of the validation scores that sends ``target`` of all
        requests (sensitive ones stay local); the step in score units."""
        frame = self.context.dataset.frame
        rows = np.flatnonzero(frame["split"].to_numpy() == "val") if "split" in frame.columns else []
        rows = rows if len(rows) else np.arange(len(frame))
        allowed = rows[~self._sensitive[rows]]
        reference = self.learned.scores(allowed if len(allowed) else rows)
        share = min(1.0, self.target * len(rows) / max(1, len(allowed)))
        spread = float(np.std(reference)) or 1.0
        return float(np.quantile(reference, 1.0 - share)), step * spread

    def scores(self, indices: np.ndarray) -> np.ndarray:
        return self.learned.scores(indices)

    def _route_one(self, score: float, sensitive: bool) -> bool:
        to_cloud = bool(score >= self.threshold) and not sensitive
        self.threshold += self.step * (float(to_cloud) - self.target)
        self.n_decided += 1
        self.n_cloud += int(to_cloud)
        return to_cloud

    def _routes(self, indices: np.ndarray) -> np.ndarray:
        scores = self.scores(indices)
        sensitive = self._sensitive[indices]
        sent = [self._route_one(float(s), bool(p)) for s, p in zip(scores, sensitive, strict=True)]
        return np.where(np.asarray(sent, dtype=bool), Route.CLOUD, Route.LOCAL).astype(np.int8)

    def decide(self, request: RequestView, state: SystemState) -> Route:
        score = float(self.scores(np.array([request.index]))[0])
        sensitive = bool(request.sensitive or self._sensitive[request.index])
        return Route.CLOUD if self._route_one(score, sensitive) else Route.LOCAL
