"""Routing curves, the routing metrics and threshold selection, on cases computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_lab.errors import RouterLabError
from router_lab.train.curves import (
    aiq,
    area_under_quality,
    auroc,
    average_pgr,
    call_performance_threshold,
    curve_aiq,
    curve_metrics,
    hull_areas,
    pgr_at,
    quality_at,
    quality_cost_hull,
    routing_curve,
    single_models_aiq,
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


def test_aiq_of_a_single_point_by_hand():
    # RouterBench: the hull starts at its cheapest point; beyond it, flat at the best quality
    assert aiq([0.5], [0.8], cost_range=(0.0, 1.0)) == pytest.approx(0.5 * 0.8)
    assert aiq([3.0], [0.8]) == pytest.approx(0.8)  # one cost: an empty range, the quality itself
    assert aiq([2.0, 2.0], [0.3, 0.6]) == pytest.approx(0.6)


def test_aiq_of_a_straight_line_is_its_mean_height():
    cost, quality = np.array([0.0, 0.25, 0.5, 1.0]), np.array([0.5, 0.6, 0.7, 0.9])
    assert aiq(cost, quality) == pytest.approx(0.7)
    hull_x, hull_y = quality_cost_hull(cost, quality)
    assert hull_x.tolist() == [0.0, 1.0] and hull_y.tolist() == [0.5, 0.9]  # collinear points drop out
    assert aiq(1e-4 + cost * 1e-2, quality) == pytest.approx(0.7)  # cost normalised between min and max


def test_aiq_hull_removes_a_dominated_point_and_stays_flat_past_the_best():
    below = aiq([0.0, 0.5, 1.0], [0.5, 0.6, 0.9])  # (0.5, 0.6) lies under the chord (0.5 -> 0.9)
    assert below == pytest.approx(0.7) == aiq([0.0, 1.0], [0.5, 0.9])
    # past the best point the hull is flat at 0.9, not the dearer but worse (1, 0.7)
    assert aiq([0.0, 0.5, 1.0], [0.5, 0.9, 0.7]) == pytest.approx(0.5 * (0.5 + 0.9) / 2 + 0.5 * 0.9)
    hull_x, hull_y = quality_cost_hull([1.0, 0.0, 0.5], [0.7, 0.5, 0.9])  # any order of points
    assert hull_x.tolist() == [0.0, 0.5, 1.0] and hull_y.tolist() == [0.5, 0.9, 0.9]


def test_aiq_errors_are_one_line():
    with pytest.raises(RouterLabError, match="expected as many finite costs as qualities"):
        aiq([0.0, 1.0], [0.5])
    with pytest.raises(RouterLabError, match="cost range"):
        aiq([0.0, 2.0], [0.5, 0.6], cost_range=(0.0, 1.0))


def _brute_hull_area(cost: np.ndarray, quality: np.ndarray) -> float:
    """The non-decreasing concave majorant on a fine grid: the best chord over every pair of points."""
    points = np.c_[np.r_[cost, 1.0], np.r_[quality, quality.max()]]
    grid = np.linspace(0.0, 1.0, 4001)
    best = np.full(grid.size, -np.inf)
    for x1, y1 in points:
        for x2, y2 in points:
            inside = (grid >= x1) & (grid <= x2)
            if x2 > x1:
                best[inside] = np.maximum(best[inside], y1 + (y2 - y1) * (grid[inside] - x1) / (x2 - x1))
            elif x2 == x1:
                best[inside] = np.maximum(best[inside], max(y1, y2))
    return float(np.trapezoid(np.where(np.isfinite(best), best, 0.0), grid))


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=2**31 - 1), st.integers(min_value=1, max_value=12))
def test_aiq_equals_the_brute_force_majorant_and_rows_are_independent(seed, n):
    rng = np.random.default_rng(seed)
    cost, quality = np.round(rng.random((3, n)), 1), rng.random((3, n))  # ties in cost on purpose
    for b in range(3):
        assert aiq(cost[b], quality[b], (0.0, 1.0)) == pytest.approx(_brute_hull_area(cost[b], quality[b]), abs=2e-3)
    order = np.argsort(cost, axis=1, kind="stable")
    rows = hull_areas(np.take_along_axis(cost, order, 1), np.take_along_axis(quality, order, 1))[0]
    assert rows.tolist() == pytest.approx([aiq(cost[b], quality[b], (0.0, 1.0)) for b in range(3)], abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=2**31 - 1), st.integers(min_value=2, max_value=60))
def test_aiq_orders_oracle_over_any_router_over_the_single_models(seed, n):
    rng = np.random.default_rng(seed)
    device, cloud = rng.integers(0, 2, n).astype(float), rng.integers(0, 2, n).astype(float)
    oracle = routing_curve(cloud - device, device, cloud)
    other = routing_curve(rng.integers(0, 4, n).astype(float), device, cloud)
    # the hull lies above the curve; the oracle's curve above every ordering's, so its hull too; every
    # curve (nothing sensitive) runs from all-device to all-cloud, so it holds both single models
    assert curve_aiq(other) >= area_under_quality(other) - 1e-12
    assert curve_aiq(oracle) >= curve_aiq(other) - 1e-12
    assert curve_aiq(other) >= single_models_aiq(device.mean(), cloud.mean()) - 1e-12
    assert curve_aiq(other) <= other.quality.max() + 1e-12  # never above the curve's best point
    assert curve_aiq(oracle) <= np.maximum(device, cloud).mean() + 1e-12  # no router beats the per-row best


def test_single_models_aiq_is_the_random_mix_or_the_better_model():
    assert single_models_aiq(0.6, 0.9) == pytest.approx(0.75)
    assert single_models_aiq(0.9, 0.6) == pytest.approx(0.9)  # a worse, dearer cloud adds nothing
