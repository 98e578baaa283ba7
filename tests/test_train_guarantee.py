"""Thresholds with a guarantee (`target.guarantee=DELTA`): on new traffic the budget or the quality
goal holds with probability >= 1 - DELTA.

The population is the digits dataset itself (every row, with a fixed trained router's scores), so
the cloud fraction and quality a threshold gives on new traffic are known exactly; validation sets
are re-drawn from it (with replacement, i.e. i.i.d. from the population) 300 times.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from router_lab.errors import RouterLabError
from router_lab.train.curves import routing_curve
from router_lab.train.fit import train_router
from router_lab.train.thresholds import (
    clopper_pearson_lower,
    clopper_pearson_upper,
    select_threshold,
)

REDRAWS = 300
N_VAL = 400
DELTA = 0.1


@pytest.fixture(scope="module")
def population(digits):
    router = train_router(digits, None, None, "input", 0)
    scores = router.scores_for(digits)
    allowed = ~digits.column_or("sensitive", False).astype(bool)
    return scores, digits.device_quality(), digits.cloud_quality(), allowed


def _on_population(population, threshold: float) -> tuple[float, float]:
    scores, device_q, cloud_q, allowed = population
    sent = (scores >= threshold) & allowed
    return float(sent.mean()), float(np.where(sent, cloud_q, device_q).mean())


def _redraws(population, target: dict) -> tuple[np.ndarray, np.ndarray]:
    """Population (cloud fraction, quality) of the threshold chosen on each re-drawn val set."""
    scores, device_q, cloud_q, allowed = population
    rng = np.random.default_rng(20261201)
    out = []
    for _ in range(REDRAWS):
        rows = rng.integers(len(scores), size=N_VAL)
        curve = routing_curve(scores[rows], device_q[rows], cloud_q[rows], allowed[rows])
        choice = select_threshold(curve, target, n_rows=N_VAL, binary=True)
        out.append(_on_population(population, choice.threshold))
    fraction, quality = np.array(out).T
    return fraction, quality


def _tolerated(delta: float) -> int:
    """Violations allowed in REDRAWS draws when the true rate is delta (a 99.9 % binomial quantile)."""
    return int(stats.binom.ppf(0.999, REDRAWS, delta))


def test_budget_guarantee_holds_on_new_traffic_and_is_not_needlessly_conservative(population):
    budget = 0.05  # below where digits' quality curve saturates, so the whole budget is used
    guaranteed, _ = _redraws(population, {"name": "budget", "max_cloud_fraction": budget, "guarantee": DELTA})
    point, _ = _redraws(population, {"name": "budget", "max_cloud_fraction": budget})
    violations, point_violations = int((guaranteed > budget + 1e-12).sum()), int((point > budget + 1e-12).sum())
    print(f"\nbudget {budget}: violation rate {violations / REDRAWS:.3f} with guarantee {DELTA} "
          f"(point estimate {point_violations / REDRAWS:.3f}); mean realised cloud fraction "
          f"{guaranteed.mean():.3f} (point estimate {point.mean():.3f})")
    assert violations <= _tolerated(DELTA)
    assert point_violations > 3 * _tolerated(DELTA) // 2  # the point estimate does break the budget
    # the price of the guarantee: about one standard error of a proportion at n_val, not more
    standard_error = np.sqrt(budget * (1 - budget) / N_VAL)
    assert point.mean() - 3 * standard_error < guaranteed.mean() < point.mean()


def test_accuracy_guarantee_holds_on_new_traffic(population):
    goal = 0.94
    target = {"name": "accuracy", "min_quality": goal}
    guaranteed_fraction, guaranteed = _redraws(population, {**target, "guarantee": DELTA})
    point_fraction, point = _redraws(population, target)
    violations, point_violations = int((guaranteed < goal - 1e-12).sum()), int((point < goal - 1e-12).sum())
    print(f"\naccuracy {goal}: violation rate {violations / REDRAWS:.3f} with guarantee {DELTA} "
          f"(point estimate {point_violations / REDRAWS:.3f}); mean realised cloud fraction "
          f"{guaranteed_fraction.mean():.3f} (point estimate {point_fraction.mean():.3f})")
    assert violations <= _tolerated(DELTA)
    assert point_violations > 3 * _tolerated(DELTA) // 2
    assert guaranteed_fraction.mean() > point_fraction.mean()  # it pays in cloud calls, boundedly
    assert guaranteed_fraction.mean() < point_fraction.mean() + 0.25


def test_clopper_pearson_bounds_cover_at_their_level():
    rng = np.random.default_rng(5)
    p, n = 0.3, 200
    k = rng.binomial(n, p, size=4000)
    assert (clopper_pearson_upper(k, n, 0.05) < p).mean() <= 0.05 + 0.01
    assert (clopper_pearson_lower(k, n, 0.05) > p).mean() <= 0.05 + 0.01
    assert clopper_pearson_upper(np.array([n]), n, 0.05)[0] == 1.0
    assert clopper_pearson_lower(np.array([0]), n, 0.05)[0] == 0.0


def test_guarantee_is_recorded_and_checked(digits):
    router = train_router(digits, None, {"name": "budget", "max_cloud_fraction": 0.3, "guarantee": 0.05},
                          "input", 0)
    g = router.metrics["guarantee"]
    assert g["delta"] == 0.05 and g["bound"] == "cloud_fraction_upper" and g["value"] <= 0.3
    assert router.target["guarantee"] == 0.05
    assert router.metrics["val_cloud_fraction"] < 0.3
    with pytest.raises(RouterLabError, match="target.guarantee"):
        train_router(digits, None, {"name": "tradeoff", "cost_weight": 0.1, "guarantee": 0.05}, "input", 0)
    with pytest.raises(RouterLabError, match="target.guarantee"):
        train_router(digits, None, {"name": "budget", "max_cloud_fraction": 0.3, "guarantee": 2}, "input", 0)
    no_guarantee = train_router(digits, None, None, "input", 0)
    assert "guarantee" not in no_guarantee.metrics and "guarantee" not in no_guarantee.target
