"""Routing curves, the routing metrics and threshold selection, on cases computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_lab.errors import RouterLabError
from router_lab.train.curves import (
    area_under_quality,
    auroc,
    average_pgr,
    call_performance_threshold,
    curve_metrics,
    pgr_at,
    quality_at,
    routing_curve,
)
from router_lab.train.thresholds import select_threshold

# Four requests.  Sorted by score: row 1 (gain +1), row 2 (+1), row 3 (-1), row 0 (0).
SCORES = np.array([0.1, 0.9, 0.5, 0.3])
DEVICE = np.array([1.0, 0.0, 0.0, 1.0])
CLOUD = np.array([1.0, 1.0, 1.0, 0.0])


def hand_curve():
    return routing_curve(SCORES, DEVICE, CLOUD)


def test_curve_points_match_hand_computation():
    curve = hand_curve()
    np.testing.assert_allclose(curve.cloud_fraction, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(curve.quality, [0.5, 0.75, 1.0, 0.75, 0.75])
    np.testing.assert_allclose(curve.thresholds, [np.inf, 0.9, 0.5, 0.3, 0.1])
    assert curve.device_quality == 0.5 and curve.cloud_quality == 0.75
    np.testing.assert_allclose(curve.pgr(), [0, 1, 2, 1, 1])


def test_pgr_apgr_cpt_and_area_match_hand_computation():
    curve = hand_curve()
    # PGR at 20 %: quality interpolated 0.5 + 0.2 / 0.25 * 0.25 = 0.7 -> (0.7 - 0.5) / 0.25
    assert float(pgr_at(curve, 0.2)) == pytest.approx(0.8)
    # trapezoids of width 0.25 over PGR 0, 1, 2, 1, 1
    assert average_pgr(curve) == pytest.approx(0.25 * (0.5 + 1.5 + 1.5 + 1.0))
    assert call_performance_threshold(curve, 0.5) == pytest.approx(0.125)
    assert call_performance_threshold(curve, 0.8) == pytest.approx(0.2)
    assert np.isnan(call_performance_threshold(curve, 2.5))
    assert area_under_quality(curve) == pytest.approx(0.25 * (0.625 + 0.875 + 0.875 + 0.75))
    row = curve_metrics(curve, (0.2, 0.5))
    assert row["pgr_at_20"] == pytest.approx(0.8) and row["pgr_at_50"] == pytest.approx(2.0)


def test_auroc_of_a_perfect_and_a_reversed_score():
    wrong = (DEVICE < 0.5).astype(int)
    assert auroc(SCORES, wrong) == 1.0
    assert auroc(-SCORES, wrong) == 0.0
    assert np.isnan(auroc(SCORES, np.zeros(4)))


def test_tied_scores_give_the_random_line():
    curve = routing_curve(np.full(4, 0.3), DEVICE, CLOUD)
    np.testing.assert_allclose(curve.cloud_fraction, [0, 1])
    assert average_pgr(curve) == pytest.approx(0.5)
    assert float(quality_at(curve, 0.5)) == pytest.approx(0.625)


def test_rows_that_may_not_leave_stay_local_but_count():
    curve = routing_curve(SCORES, DEVICE, CLOUD, allowed=np.array([True, False, True, True]))
    np.testing.assert_allclose(curve.cloud_fraction, [0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(curve.quality, [0.5, 0.75, 0.5, 0.5])
    assert float(quality_at(curve, 1.0)) == pytest.approx(0.5)  # flat beyond the last point


def test_bad_scores_are_a_clear_error():
    with pytest.raises(RouterLabError, match="NaN or inf"):
        routing_curve(np.array([0.1, np.nan, 0.2, 0.3]), DEVICE, CLOUD)
    with pytest.raises(RouterLabError, match="one score per row"):
        routing_curve(np.array([0.1, 0.2]), DEVICE, CLOUD)


@pytest.mark.parametrize(("target", "threshold", "cloud_fraction"), [
    ({"name": "budget", "max_cloud_fraction": 0.5}, 0.5, 0.5),
    ({"name": "budget", "max_cloud_fraction": 0.3}, 0.9, 0.25),
    ({"name": "accuracy", "min_quality": 0.75}, 0.9, 0.25),
    ({"name": "accuracy", "min_quality": 0.9}, 0.5, 0.5),
    ({"name": "tradeoff", "cost_weight": 0.5}, 0.5, 0.5),
])
def test_threshold_selection_on_a_hand_curve(target, threshold, cloud_fraction):
    choice = select_threshold(hand_curve(), target)
    assert choice.threshold == threshold and choice.cloud_fraction == cloud_fraction


def test_route_nothing_threshold_is_above_every_score_in_float32():
    choice = select_threshold(hand_curve(), {"name": "tradeoff", "cost_weight": 2.0})
    assert choice.cloud_fraction == 0.0
    assert np.float32(choice.threshold) > np.float32(1.0)
    assert np.isfinite(choice.threshold)


def test_unreachable_or_invalid_targets_are_one_line_errors():
    with pytest.raises(RouterLabError, match="not reached on the validation split"):
        select_threshold(routing_curve(SCORES, DEVICE, DEVICE * 0.5), {"name": "accuracy", "min_quality": 0.9})
    with pytest.raises(RouterLabError, match="target.max_cloud_fraction"):
        select_threshold(hand_curve(), {"name": "budget", "max_cloud_fraction": 1.5})
    with pytest.raises(RouterLabError, match="target.name"):
        select_threshold(hand_curve(), {"name": "nosuch"})


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=2**31 - 1), st.integers(min_value=2, max_value=60))
def test_the_oracle_curve_is_above_every_ordering(seed, n):
    rng = np.random.default_rng(seed)
    device, cloud = rng.integers(0, 2, n).astype(float), rng.integers(0, 2, n).astype(float)
    allowed = rng.random(n) > 0.2
    oracle = routing_curve(cloud - device, device, cloud, allowed)
    other = routing_curve(rng.integers(0, 4, n).astype(float), device, cloud, allowed)
    grid = np.linspace(0, 1, 201)
    assert (quality_at(oracle, grid) >= quality_at(other, grid) - 1e-12).all()
    assert average_pgr(oracle) >= average_pgr(other) - 1e-12 or np.isnan(average_pgr(other))
