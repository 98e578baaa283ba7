"""Threshold selection for a target, on a validation routing curve (a registry by target name).

``budget``: the best quality with at most X of requests in the cloud; ``accuracy``: the cheapest
threshold reaching quality Y; ``tradeoff``: maximise quality - lambda * cloud fraction.

With ``target.guarantee = DELTA`` the budget and accuracy targets hold on *new* traffic with
probability >= 1 - DELTA (over the draw of the validation rows), not only on the validation rows:
Learn-then-Test (Angelopoulos, Bates, Candès, Jordan, Lei, 2021, arXiv:2110.01052) with fixed-
sequence testing of one-sided binomial bounds (Clopper & Pearson, 1934); see :func:`guaranteed_index`.
The one assumption is exchangeability: validation rows and future requests are draws from one
distribution (no drift, no reordering by time), and the validation rows were not used to fit the
router.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from router_lab.errors import RouterLabError
from router_lab.registry import Registry
from router_lab.train.curves import RoutingCurve

TargetRule = Callable[[RoutingCurve, dict[str, Any]], int]  # -> index of the chosen curve point
TARGETS: Registry[TargetRule] = Registry("target", field="target.name")
DEFAULT_TARGET: dict[str, Any] = {"name": "budget", "max_cloud_fraction": 0.3}


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float  # cloud when score >= threshold (finite; above every score when none go)
    cloud_fraction: float  # on the curve it was chosen from
    quality: float
    guarantee: dict[str, Any] | None = None  # the bound that holds with prob >= 1 - delta, if asked


def register_target(name: str, summary: str = "") -> Callable[[TargetRule], TargetRule]:
    """Offer ``rule(curve, target) -> index of the chosen point`` as ``target=name``."""
    return TARGETS.register(name, summary=summary)


def _number(target: dict[str, Any], key: str, low: float, high: float) -> float:
    value = target.get(key)
    if not isinstance(value, int | float) or not low <= float(value) <= high:
        raise RouterLabError(f"target.{key}: got {value!r}; expected a number in [{low}, {high}]")
    return float(value)


def _best(values: np.ndarray, feasible: np.ndarray) -> int:
    """The feasible point of highest value; ties go to the smallest cloud fraction (first)."""
    masked = np.where(feasible, values, -np.inf)
    return int(np.argmax(masked >= masked.max() - 1e-12))


@register_target("budget", summary="best quality with at most max_cloud_fraction sent")
def _budget(curve: RoutingCurve, target: dict[str, Any]) -> int:
    limit = _number(target, "max_cloud_fraction", 0.0, 1.0)
    return _best(curve.quality, curve.cloud_fraction <= limit + 1e-12)


@register_target("accuracy", summary="fewest sent reaching min_quality")
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


@register_target("tradeoff", summary="best quality - cost_weight * cloud fraction")
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


def clopper_pearson_upper(k: np.ndarray, n: int, delta: float) -> np.ndarray:
    """One-sided (1 - delta) upper confidence bound of a binomial proportion from k of n."""
    k = np.asarray(k, dtype=np.float64)
    upper = stats.beta.ppf(1.0 - delta, k + 1.0, n - k)
    return np.where(k >= n, 1.0, upper)


def clopper_pearson_lower(k: np.ndarray, n: int, delta: float) -> np.ndarray:
    """One-sided (1 - delta) lower confidence bound of a binomial proportion from k of n."""
    k = np.asarray(k, dtype=np.float64)
    lower = stats.beta.ppf(delta, k, n - k + 1.0)
    return np.where(k <= 0, 0.0, lower)


def lower_quality_bound(quality: np.ndarray, n: int, delta: float, binary: bool) -> np.ndarray:
    """(1 - delta) lower bound of mean quality: Clopper-Pearson for 0/1 outcomes, Hoeffding for
    scores in [0, 1]."""
    if binary:
        return clopper_pearson_lower(np.round(np.asarray(quality) * n), n, delta)
    return np.asarray(quality) - np.sqrt(np.log(1.0 / delta) / (2.0 * n))


def guaranteed_index(curve: RoutingCurve, target: dict[str, Any], n_rows: int, binary: bool) -> tuple[int, dict[str, Any]]:
    """The curve point a target picks so that its goal holds on new traffic w.p. >= 1 - delta.

    Each curve point t is a hypothesis "t breaks the goal" (budget: P(score >= t) > budget;
    accuracy: mean quality at t < goal).  Points are tested in a fixed order, each at level delta
    with a one-sided binomial bound, stopping at the first that cannot be rejected (fixed-sequence
    testing, which controls the chance of accepting any bad point at delta without a multiplicity
    correction).  Budget: from no cloud upwards, then the best quality among the accepted points;
    accuracy: from all-cloud downwards, then the cheapest accepted point.
    """
    delta = _number(target, "guarantee", 1e-6, 0.5)
    n = int(n_rows)
    if target.get("name") == "budget":
        limit = _number(target, "max_cloud_fraction", 0.0, 1.0)
        bound = clopper_pearson_upper(np.round(curve.cloud_fraction * n), n, delta)
        ok = bound <= limit + 1e-12
        accepted = int(np.argmin(ok)) if not ok.all() else len(ok)  # the prefix that passes
        if accepted == 0:
            raise RouterLabError(f"target.guarantee: no threshold keeps the cloud fraction <= {limit} "
                                 f"with probability {1 - delta} on {n} validation rows")
        index = _best(curve.quality, np.arange(len(ok)) < accepted)
        return index, {"delta": delta, "method": "learn-then-test, fixed sequence, Clopper-Pearson",
                       "bound": "cloud_fraction_upper", "value": round(float(bound[index]), 6),
                       "n_val": n}
    if target.get("name") == "accuracy":
        goal = _number(target, "min_quality", 0.0, 1.0)
        bound = lower_quality_bound(curve.quality, n, delta, binary)
        ok = (bound >= goal - 1e-12)[::-1]  # from all-cloud down to no cloud
        accepted = int(np.argmin(ok)) if not ok.all() else len(ok)
        if accepted == 0:
            raise RouterLabError(f"target.guarantee: min_quality {goal} cannot be guaranteed with "
                                 f"probability {1 - delta} on {n} validation rows (best lower bound "
                                 f"{bound.max():.4f}); lower min_quality or raise target.guarantee")
        index = len(ok) - accepted  # the cheapest point of the accepted run
        method = "Clopper-Pearson" if binary else "Hoeffding"
        return index, {"delta": delta, "method": f"learn-then-test, fixed sequence, {method}",
                       "bound": "quality_lower", "value": round(float(bound[index]), 6), "n_val": n}
    raise RouterLabError(f"target.guarantee: applies to target=budget or target=accuracy; got "
                         f"target={target.get('name')}")


def select_threshold(curve: RoutingCurve, target: dict[str, Any], n_rows: int | None = None,
                     binary: bool = True) -> ThresholdChoice:
    """The threshold a target picks on ``curve`` (the validation curve of ``n_rows`` rows; needed
    with ``target.guarantee``, for binary (0/1) or score outcomes)."""
    name = target.get("name")
    rule = TARGETS.get(name)
    guarantee = None
    if target.get("guarantee") is not None:
        if n_rows is None:
            raise RouterLabError("target.guarantee: the number of validation rows is needed")
        index, guarantee = guaranteed_index(curve, target, n_rows, binary)
    else:
        index = rule(curve, target)
    return ThresholdChoice(threshold=finite_threshold(curve, index),
                           cloud_fraction=float(curve.cloud_fraction[index]),
                           quality=float(curve.quality[index]), guarantee=guarantee)
