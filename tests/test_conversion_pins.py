"""The pinned converter stack (scikit-learn / skl2onnx / onnx / protobuf in pyproject.toml) converts
every router estimator training offers, with scikit-learn's probabilities and decisions.

A change of pins that breaks one estimator's conversion or parity fails here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from router_lab.data.contract import validate_frame
from router_lab.export.config import ExportSection
from router_lab.export.convert import RouterSpec, convert_router
from router_lab.export.validate import validate_router
from router_lab.train.estimators import ESTIMATORS, offered_estimators
from router_lab.train.fit import train_router

WORDS = ("add", "sum", "prove", "integral", "matrix", "count", "apples", "train", "speed", "prime")


def router_config(name: str) -> dict:
    """The `router` config option of that name with its defaults (router_lab/conf/router/<name>.yaml)."""
    return {"name": name, **ESTIMATORS.entry(name).defaults()}


def text_dataset(n: int = 300, seed: int = 0):
    """Prompts whose hard words make the device wrong more often (a tiny contract-valid dataset)."""
    rng = np.random.default_rng(seed)
    texts, wrong = [], []
    for _ in range(n):
        words = rng.choice(WORDS, size=rng.integers(3, 12))
        hard = np.isin(words, ("prove", "integral", "matrix")).sum()
        texts.append(" ".join(words).capitalize() + f" {int(rng.integers(0, 100))}?")
        wrong.append(rng.random() < 0.15 + 0.25 * hard)
    frame = pd.DataFrame({"request_id": np.arange(n), "text": texts,
                          "device_correct": (~np.array(wrong)).astype(int), "cloud_correct": 1,
                          "split": np.array(["train", "val", "test"])[np.arange(n) % 3]})
    return validate_frame(frame, "text_pins")


def check_parity(spec: RouterSpec, dataset) -> dict:
    data = convert_router(spec).SerializeToString()
    report = validate_router(data, spec.estimator_name, spec, dataset, ExportSection(), measure=False)
    assert report.passed, report.to_dict()
    return report.figures


@pytest.mark.parametrize("name", offered_estimators())
def test_every_offered_estimator_converts_with_parity(name: str, digits) -> None:
    if name == "text":
        dataset, mode = text_dataset(), "text"
    else:
        dataset, mode = digits, "input+confidence"
    with threadpool_limits(1):  # OpenMP threads of the boosted trees thrash on a busy machine
        spec = RouterSpec.from_trained(train_router(dataset, router_config(name), None, mode, seed=0))
    figures = check_parity(spec, dataset)
    assert figures["max_abs_diff"] <= 1e-5
    assert figures["decision_agreement"] == 1.0
    assert figures["n_rows"] == int(dataset.split_mask("test").sum())


@pytest.mark.parametrize("name", ["gbdt", "logistic", "mlp", "random_forest"])
def test_sigmoid_calibrated_estimators_convert_with_parity(name: str, digits) -> None:
    # (logistic and mlp are Pipelines: export asks skl2onnx for the raw decision function the
    # calibration was fitted on; without that, calibrated pipelines convert with wrong scores)
    small = {"gbdt": {"max_iter": 20}, "random_forest": {"n_estimators": 20}}.get(name, {})  # 3 fits each
    cfg = {**router_config(name), **small, "calibration": "sigmoid"}
    with threadpool_limits(1):
        spec = RouterSpec.from_trained(train_router(digits, cfg, None, "input", seed=0))
    assert type(spec.estimator).__name__ == "CalibratedClassifierCV"
    check_parity(spec, digits)


def test_pinned_versions_are_the_ones_installed() -> None:
    import onnx
    import skl2onnx
    import sklearn
    from google import protobuf

    assert (sklearn.__version__, skl2onnx.__version__, onnx.__version__) == ("1.9.1", "1.20.0", "1.23.2")
    assert int(protobuf.__version__.split(".")[0]) < 7
