"""References over N models (single models, zero router, oracle frontier) on cases done by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_lab.train.bootstrap import weighted_metrics
from router_lab.train.curves import curve_aiq, routing_curve
from router_lab.train.multimodel import (
    ModelTable,
    area_on_unit,
    cost_axis_is_cloud_fraction,
    oracle_frontier,
    policy_aiq,
    single_models,
)

NAMES = ("device", "edge", "cloud")
# row 0: every model right; row 1: the edge fixes the device; row 2: only the cloud is right
QUALITY = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
COST = np.tile([0.0, 0.2, 1.0], (3, 1))
ONE = np.ones((1, 3))


def hand_table(allowed: np.ndarray | None = None) -> ModelTable:
    return ModelTable(NAMES, QUALITY, COST, np.ones(3, bool) if allowed is None else allowed)


def test_single_models_and_the_zero_router_by_hand():
    got = single_models(hand_table(), ONE)
    assert [got[f"quality_{m}"][0] for m in NAMES] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert [got[f"cost_{m}"][0] for m in NAMES] == pytest.approx([0.0, 0.2, 1.0])
    # hull (0, 1/3) -> (0.2, 2/3) -> (1, 1): 0.2 * 1/2 + 0.8 * 5/6
    assert got["zero_router_aiq"][0] == pytest.approx(23 / 30)
    assert got["best_single_quality"][0] == 1.0


def test_oracle_frontier_by_hand():
    # start all on the device (1/3); row 1 moves to the edge (slope 5), then row 2 to the cloud (slope 1)
    got = oracle_frontier(hand_table(), ONE)
    assert got["oracle_quality"][0] == 1.0 and got["oracle_cost"][0] == pytest.approx(0.4)
    assert got["oracle_aiq"][0] == pytest.approx(1 / 30 + 5 / 18 + 3 / 5)


def test_a_sensitive_request_stays_on_the_device_in_the_oracle():
    got = oracle_frontier(hand_table(np.array([True, True, False])), ONE)
    assert got["oracle_quality"][0] == pytest.approx(2 / 3) and got["oracle_cost"][0] == pytest.approx(0.2 / 3)


def test_a_two_model_policy_on_the_model_axis_by_hand_and_as_the_aiq_metric():
    scores = np.array([0.0, 1.0, 2.0])  # rows 2, 1, 0 go to the cloud in turn: +1, +1, +0
    table = hand_table()
    assert cost_axis_is_cloud_fraction(table)
    got = policy_aiq(scores, table.allowed, table, ONE)[0]
    assert got == pytest.approx((2 / 3) * (1 / 3 + 1) / 2 + 1 / 3)
    curve = routing_curve(scores, QUALITY[:, 0], QUALITY[:, 2])
    assert got == pytest.approx(curve_aiq(curve))


def test_area_on_unit_cuts_what_lies_outside_and_stays_flat_after_the_end():
    x, y = np.array([[-0.5, 0.5, 2.0]]), np.array([[0.0, 1.0, 1.0]])
    assert area_on_unit(x, y)[0] == pytest.approx(0.5 * (0.5 + 1.0) / 2 + 0.5)
    assert area_on_unit(np.array([[0.5, 0.5]]), np.array([[0.2, 0.8]]))[0] == pytest.approx(0.4)


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=2**31 - 1), st.integers(min_value=2, max_value=40),
       st.integers(min_value=2, max_value=5))
def test_the_oracle_bounds_every_two_model_policy_and_the_zero_router(seed, n, n_models):
    rng = np.random.default_rng(seed)
    names = ("device", *[f"m{k}" for k in range(n_models - 2)], "cloud")
    quality = rng.integers(0, 2, (n, n_models)).astype(float)
    cost = rng.random((n, n_models)) * np.arange(1, n_models + 1)  # per-row costs, any order
    table = ModelTable(names, quality, cost, rng.random(n) > 0.2)
    W = np.vstack([np.ones(n), rng.multinomial(n, np.full(n, 1 / n), size=3).astype(float)])
    oracle = oracle_frontier(table, W)["oracle_aiq"]
    zero = single_models(table, W)["zero_router_aiq"]
    router = policy_aiq(rng.integers(0, 4, n).astype(float), table.allowed, table, W)
    assert (oracle >= router - 1e-9).all()
    assert (oracle >= zero - 1e-9).all() or not table.allowed.all()  # single models ignore sensitivity
    assert (router <= quality.max() + 1e-12).all()


def test_on_a_device_free_cloud_dearest_axis_the_model_aiq_is_the_aiq_metric():
    rng = np.random.default_rng(4)
    n = 200
    quality = rng.integers(0, 2, (n, 3)).astype(float)
    table = ModelTable(NAMES, quality, np.tile([0.0, 3e-5, 1e-4], (n, 1)), rng.random(n) > 0.1)
    W = np.vstack([np.ones(n), rng.multinomial(n, np.full(n, 1 / n), size=20).astype(float)])
    scores = np.round(rng.random(n), 2)
    want = weighted_metrics(scores, scores > 0.5, quality[:, 0], quality[:, 2], table.allowed,
                            np.zeros(n), W)["aiq"]
    assert cost_axis_is_cloud_fraction(table)
    np.testing.assert_allclose(policy_aiq(scores, table.allowed, table, W), want, atol=1e-12)
