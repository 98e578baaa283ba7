"""Structured configs of the `policy` group (one dataclass per policy that has parameters).

Each policy names its dataclass in its ``@register_policy(name, schema=...)`` line; the ConfigStore
registration (``router_lab.config.registry_schemas``) and the defaults ``make_policy`` fills in come
from there.  A new policy may as well define its dataclass in its own module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


@dataclass
class PolicyConfig:
    name: str = MISSING  # registry key


@dataclass
class RandomPolicyConfig(PolicyConfig):
    name: str = "random"
    p_cloud: float = 0.3  # probability of sending a request to the cloud


@dataclass
class ConfidencePolicyConfig(PolicyConfig):
    name: str = "confidence"
    min_confidence: float = 0.8  # escalate when the device's confidence is at or below this
    column: str = "device_confidence"  # the dataset column holding the device's confidence


@dataclass
class LearnedPolicyConfig(PolicyConfig):
    name: str = "learned"
    mode: str | None = None  # feature mode; None: the router's own (input when training here)
    model_path: str | None = None  # a `router-lab train` folder or its router.json
    backend: str = "sklearn"  # sklearn | onnx (scores from the exported file at onnx_path)
    onnx_path: str | None = None  # router.onnx (or its export folder) for backend=onnx
    threshold: float | None = None  # None: the threshold chosen for the router's target


@dataclass
class LearnedCascadePolicyConfig(LearnedPolicyConfig):
    name: str = "learned_cascade"


@dataclass
class LoadAwarePolicyConfig(PolicyConfig):
    name: str = "load_aware"
    inner: Any = field(default_factory=lambda: {"name": "learned"})  # the wrapped policy's config
    slo_ms: float | None = None  # latency SLO; None: the scenario's
    backoff_rejections: int = 1  # stay local while the cloud rejected this many recent requests
    backoff_window_s: float = 60.0  # "recent": rejections and timeouts learned in this window


@dataclass
class BudgetPolicyConfig(PolicyConfig):
    name: str = "budget"
    target_cloud_fraction: float = 0.3  # held online, whatever the drift of the score mix
    step: float = 0.2  # threshold step per request, in standard deviations of the router's score
    mode: str | None = None  # as for `learned`
    model_path: str | None = None
    backend: str = "sklearn"
    onnx_path: str | None = None

