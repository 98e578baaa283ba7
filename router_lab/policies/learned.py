"""The learned policies: a trained router's score against its chosen threshold.

``learned`` pre-routes on the request's own features; ``learned_cascade`` runs the device first and
escalates on the router's score with the device's confidence features.  The router comes from
``context.router``, ``model_path`` (a `router-lab train` folder), an exported ONNX file
(``backend=onnx``), or, when none is given, is trained here on the dataset's train split with the
run's `router` and `target` groups (``PolicyContext.router_cfg`` / ``target_cfg``; the defaults
without them; the text router for a dataset with only a text column).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError
from router_lab.features import exported_router_inputs
from router_lab.policies.base import PolicyContext
from router_lab.policies.config import LearnedCascadePolicyConfig, LearnedPolicyConfig
from router_lab.policies.registry import register_policy
from router_lab.policies.scored import ScoredPolicy
from router_lab.policies.seeds import child_seed

BACKENDS = ("sklearn", "onnx")


def resolve_router(context: PolicyContext, mode: str | None, model_path: str | None,
                   default_mode: str) -> Any:
    """The trained router a learned policy uses (see the module docstring for the order)."""
    from router_lab.train.artifacts import load_trained_router

    if model_path:
        router = load_trained_router(Path(model_path))
    elif context.router is not None and mode in (None, context.router.mode):
        router = context.router
    else:
        from router_lab.train.fit import train_router

        router_cfg, mode_here = context.router_cfg, mode or default_mode
        if mode is None and not context.dataset.feature_columns and context.dataset.has_text:
            router_cfg, mode_here = {"name": "text"}, "text"  # a text-only dataset: the text router
        router = train_router(context.dataset, router_cfg, context.target_cfg, mode_here, child_seed(context.rng))
    if mode is not None and router.mode != mode:
        raise RouterLabError(f"policy.mode: got {mode!r} but the router at {model_path} was trained "
                             f"with mode {router.mode!r}; drop policy.mode or train one for {mode!r}")
    return router


def onnx_scores(onnx_path: str, dataset: Dataset) -> tuple[np.ndarray, float, str]:
    """Scores for every row from an exported router (``router_lab.runtime``), its threshold and mode."""
    from router_lab.runtime import DeviceRouter

    device_router = DeviceRouter.load(onnx_path)
    result = device_router.route(exported_router_inputs(dataset, device_router.metadata, onnx_path))
    return np.asarray(result.score, dtype=np.float64), float(device_router.threshold), device_router.mode


@register_policy("learned", schema=LearnedPolicyConfig, uses_router=True,
                 summary="pre-routing: cloud when the trained router's score >= its threshold")
class LearnedPolicy(ScoredPolicy):
    """Pre-routing: cloud when the router's score (what escalating is worth, per `router.label`) >= its threshold (input features only)."""

    default_mode: ClassVar[str] = "input"

    def __init__(self, context: PolicyContext, mode: str | None, model_path: str | None, backend: str,
                 onnx_path: str | None, threshold: float | None) -> None:
        super().__init__(context)
        if backend not in BACKENDS:
            raise RouterLabError(f"policy.backend: got {backend!r}; expected one of {', '.join(BACKENDS)}")
        self.backend = backend
        self._onnx: tuple[np.ndarray, float, str] | None = None
        if backend == "onnx":
            if not onnx_path:
                raise RouterLabError("policy.onnx_path: missing; backend=onnx needs the exported "
                                     "router (router-lab export writes router.onnx)")
            self._onnx = onnx_scores(onnx_path, context.dataset)
            self.router = None
            self.mode, router_threshold = self._onnx[2], self._onnx[1]
            if mode is not None and mode != self.mode:
                raise RouterLabError(f"policy.mode: got {mode!r} but {onnx_path} is a router of mode "
                                     f"{self.mode!r}; drop policy.mode or export one for {mode!r}")
        else:
            self.router = resolve_router(context, mode, model_path, self.default_mode)
            self.mode, router_threshold = self.router.mode, self.router.threshold
        self.threshold = float(router_threshold if threshold is None else threshold)

    def _all_scores(self) -> np.ndarray:
        if self._onnx is not None:
            return self._onnx[0]
        return self.router.scores_for(self.context.dataset)


@register_policy("learned_cascade", schema=LearnedCascadePolicyConfig, uses_router=True,
                 exported_router="cascade_onnx",
                 summary="cascade: escalate on the router's score with the device's confidence")
class LearnedCascadePolicy(LearnedPolicy):
    """Cascade: the device answers first; escalate when the router, which also sees the device's
    confidence features, scores at or above its threshold."""

    default_mode = "input+confidence"
    cascade = True
