"""Calibrated routers export (README: `router.calibration=sigmoid` still exports), the text router
included, and the calibration is recorded in the ONNX metadata; isotonic is refused."""

from __future__ import annotations

import numpy as np
import pytest

from router_lab.errors import RouterLabError
from router_lab.export.commands import write_model
from router_lab.export.convert import RouterSpec, convert_router
from router_lab.runtime import DeviceRouter
from router_lab.train.estimators import calibration_of, make_router_estimator

WORDS = ["add", "two", "prove", "theorem", "sum", "why", "what", "cost", "3.5", "x", "Total", "?"]


def prompts(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    texts = np.array([" ".join(rng.choice(WORDS, size=rng.integers(2, 9))) for _ in range(n)], dtype=object)
    labels = np.array([("prove" in t) ^ (rng.random() < 0.2) for t in texts], dtype=int)
    return texts, labels


def text_spec(calibration: str) -> RouterSpec:
    texts, labels = prompts(400, 0)
    estimator = make_router_estimator({"name": "text", "min_df": 1, "calibration": calibration}, 0)
    estimator.fit(texts, labels)
    return RouterSpec(estimator, "text", ("text",), "text", 0.4, {"name": "budget"}, "toy", "0")


def test_sigmoid_text_router_exports_with_parity_and_records_its_calibration(tmp_path) -> None:
    spec = text_spec("sigmoid")
    assert calibration_of(spec.estimator) == "sigmoid"
    router = DeviceRouter.load(write_model(tmp_path / "router.onnx",
                                           convert_router(spec).SerializeToString(), "router"))
    assert router.metadata["calibration"] == "sigmoid"
    held_out, _ = prompts(300, 1)
    result = router.route(list(held_out))
    expected = spec.scores(held_out)
    assert np.abs(result.score - expected).max() <= 1e-5
    # the calibrated scores are not the raw classifier's: calibration really is in the graph
    raw = text_spec("none")
    assert np.abs(raw.scores(held_out) - expected).max() > 1e-3
    far = np.abs(expected - spec.threshold) > 1e-6
    np.testing.assert_array_equal(result.decision[far], (expected >= spec.threshold)[far])


def test_numeric_sigmoid_router_records_its_calibration(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    y = (x[:, 0] + rng.normal(size=400) > 0).astype(int)
    estimator = make_router_estimator({"name": "logistic", "calibration": "sigmoid"}, 0).fit(x, y)
    spec = RouterSpec(estimator, "logistic", ("a", "b", "c"), "input", 0.5)
    router = DeviceRouter.load(write_model(tmp_path / "router.onnx",
                                           convert_router(spec).SerializeToString(), "router"))
    assert router.metadata["calibration"] == "sigmoid"
    assert np.abs(router.route(x).score - spec.scores(x)).max() <= 1e-5


def test_isotonic_text_router_is_refused_with_the_reason() -> None:
    with pytest.raises(RouterLabError, match="isotonic calibration"):
        convert_router(text_spec("isotonic"))
