"""Threshold selection for a target, on a validation routing curve (a registry by target name).

``budget``: the best quality with at most X of requests in the cloud; ``accuracy``: the cheapest
threshold reaching quality Y; ``tradeoff``: maximise quality - lambda * cloud fraction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from router_lab.errors import RouterLabError
from router_lab.train.curves import RoutingCurve

TargetRule = Callable[[RoutingCurve, dict[str, Any]], int]  # -> index of the chosen curve point
TARGETS: dict[str, TargetRule] = {}
DEFAULT_TARGET: dict[str, Any] = {"name": "budget", "max_cloud_fraction": 0.3}


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float  # cloud when score >= threshold (finite; above every score when none go)
    cloud_fraction: float  # on the curve it was chosen from
    quality: float


def register_target(name: str) -> Callable[[TargetRule], TargetRule]:
    def decorate(rule: TargetRule) -> TargetRule:
        TARGETS[name] = rule
        return rule

    return decorate


def _number(target: dict[str, Any], key: str, low: float, high: float) -> float:
    value = target.get(key)
    if not isinstance(value, int | float) or not low <= float(value) <= high:
        raise RouterLabError(f"target.{key}: got {value!r}; expected a number in [{low}, {high}]")
    return float(value)


def _best(values: np.ndarray, feasible: np.ndarray) -> int:
    """The feasible point of highest value; ties go to the smallest cloud fraction (first)."""
    masked = np.where(feasible, values, -np.inf)
    return int(np.argmax(masked >= masked.max() - 1e-12))


@register_target("budget")
def _budget(curve: RoutingCurve, target: dict[str, Any]) -> int:
    limit = _number(target, "max_cloud_fraction", 0.0, 1.0)
    return _best(curve.quality, curve.cloud_fraction <= limit + 1e-12)


@register_target("accuracy")
def _accuracy(curve: RoutingCurve, target: dict[str, Any]) -> int:
    goal = _number(target, "min_quality", 0.0, 1.0)
    reached = np.flatnonzero(curve.quality >= goal - 1e-12)
    if reached.size == 0:
        best = int(np.argmax(curve.quality))
        raise RouterLabError(
            f"target.min_quality: {goal} is not reached on the validation split (best "
            f"{curve.quality[best]:.4f} at cloud fraction {curve.cloud_fraction[best]:.3f}); "
            "lower it or use target=budget"
        )
    return int(reached[0])


@register_target("tradeoff")
def _tradeoff(curve: RoutingCurve, target: dict[str, Any]) -> int:
    weight = _number(target, "cost_weight", 0.0, float("inf"))
    return _best(curve.quality - weight * curve.cloud_fraction, np.ones(len(curve.quality), bool))


def finite_threshold(curve: RoutingCurve, index: int) -> float:
    """The threshold of a curve point; the route-nothing point gets a number above every score."""
    value = float(curve.thresholds[index])
    if np.isfinite(value):
        return value
    top = float(curve.thresholds[1]) if len(curve.thresholds) > 1 else 1.0
    # above the top score also after rounding to float32 (the ONNX runtime's type)
    return float(np.nextafter(np.float32(max(top, 1.0)), np.float32(np.inf)))


def select_threshold(curve: RoutingCurve, target: dict[str, Any]) -> ThresholdChoice:
    """The threshold a target picks on ``curve`` (the validation curve)."""
    name = target.get("name")
    rule = TARGETS.get(str(name))
    if rule is None:
        raise RouterLabError(f"target.name: got {name!r}; expected one of {', '.join(sorted(TARGETS))}")
    index = rule(curve, target)
    return ThresholdChoice(threshold=finite_threshold(curve, index),
                           cloud_fraction=float(curve.cloud_fraction[index]),
                           quality=float(curve.quality[index]))
