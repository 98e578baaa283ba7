"""Router training: estimators, inputs, thresholds that hold on held-out data, artifacts, the CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from router_lab.data.builders import build_dataset
from router_lab.data.config import SyntheticConfig
from router_lab.errors import RouterLabError
from router_lab.features import device_wrong, router_inputs, routing_labels
from router_lab.train.artifacts import (
    META_FILE,
    MODEL_FILE,
    check_compatible,
    load_trained_router,
    save_trained_router,
)
from router_lab.train.curves import routing_curve
from router_lab.train.estimators import make_router_estimator, offered_estimators
from router_lab.train.fit import train_router


@pytest.fixture(scope="module")
def synthetic_50k(datasets_dir: Path):
    """Large enough that val/test fractions are precise (10,000 rows each)."""
    return build_dataset(SyntheticConfig(name="synthetic_50k", n_rows=50_000), datasets_dir)


@pytest.fixture(scope="module")
def digits_router(digits):
    return train_router(digits, None, None, "input+confidence", 0)


def test_router_inputs_per_mode(digits):
    X, columns = router_inputs(digits, "input")
    assert X.dtype == np.float32 and X.shape == (len(digits), 64) and columns[0] == "px_00"
    X, columns = router_inputs(digits, "input+confidence")
    assert X.shape == (len(digits), 67)
    assert columns[-3:] == ("device_confidence", "device_margin", "device_entropy")
    with pytest.raises(RouterLabError, match="feature mode"):
        router_inputs(digits, "pixels")


def test_label_is_device_wrong(digits):
    labels = device_wrong(digits)
    assert set(np.unique(labels)) == {0, 1}
    np.testing.assert_array_equal(labels, 1 - digits.frame["device_correct"].to_numpy())


def test_expected_gain_label_is_a_soft_target_of_half_one_plus_the_gain(synthetic_small):
    gain = synthetic_small.cloud_quality() - synthetic_small.device_quality()
    target = routing_labels(synthetic_small, "expected_gain")
    per_row_weight = np.bincount(target.rows, weights=target.weight, minlength=len(gain))
    per_row_positive = np.bincount(target.rows, weights=target.weight * target.y, minlength=len(gain))
    np.testing.assert_allclose(per_row_weight, 1.0)
    np.testing.assert_allclose(per_row_positive, (1 + gain) / 2)
    win = routing_labels(synthetic_small, "win")
    np.testing.assert_array_equal(win.y, (gain > 0).astype(int))
    with pytest.raises(RouterLabError, match="router.label"):
        routing_labels(synthetic_small, "cloud_right")


def test_expected_gain_router_scores_the_expected_gain(synthetic_small):
    router = train_router(synthetic_small, {"name": "gbdt", "max_iter": 60}, None, "input", 0)
    assert router.params["label"] == "expected_gain"
    X, _ = router_inputs(synthetic_small, "input")
    gain = synthetic_small.cloud_quality() - synthetic_small.device_quality()
    estimated = 2 * router.scores(X) - 1
    # calibrated on average (a proper scoring rule), and ranking by it finds the gains
    assert abs(estimated.mean() - gain.mean()) < 0.03
    assert np.corrcoef(estimated, gain)[0, 1] > 0.2


@pytest.mark.parametrize(("name", "params"), [("logistic", {}), ("gbdt", {"max_iter": 40}),
                                              ("random_forest", {"n_estimators": 30}), ("mlp", {})])
def test_every_offered_estimator_trains_and_beats_chance(synthetic_small, name, params):
    assert name in offered_estimators()
    router = train_router(synthetic_small, {"name": name, **params}, None, "input", 0)
    assert router.metrics["test_auroc"] > 0.6  # AUROC of "cloud wins", the routing target
    assert router.estimator_name == name


def test_calibration_wraps_the_estimator(synthetic_small):
    from sklearn.calibration import CalibratedClassifierCV

    estimator = make_router_estimator({"name": "logistic", "calibration": "sigmoid"}, 0)
    assert isinstance(estimator, CalibratedClassifierCV)
    router = train_router(synthetic_small, {"name": "gbdt", "max_iter": 30, "calibration": "sigmoid"},
                          None, "input", 0)
    assert router.metrics["test_auroc"] > 0.6  # AUROC of "cloud wins", the routing target
    assert make_router_estimator({"name": "logistic", "calibration": "isotonic"}, 0).method == "isotonic"
    with pytest.raises(RouterLabError, match="router.calibration"):
        make_router_estimator({"name": "logistic", "calibration": "platt"}, 0)


def test_unknown_estimator_or_hyperparameter_is_a_clear_error():
    with pytest.raises(RouterLabError, match="router.name: got 'svm'"):
        make_router_estimator({"name": "svm"}, 0)
    with pytest.raises(RouterLabError, match="conf/router"):
        make_router_estimator({"name": "logistic", "depth": 3}, 0)


def test_training_is_deterministic(synthetic_small):
    a = train_router(synthetic_small, {"name": "random_forest", "n_estimators": 20}, None, "input", 3)
    b = train_router(synthetic_small, {"name": "random_forest", "n_estimators": 20}, None, "input", 3)
    X, _ = router_inputs(synthetic_small, "input")
    np.testing.assert_array_equal(a.scores(X), b.scores(X))
    assert a.threshold == b.threshold and a.metrics == b.metrics


def test_seeded_stratified_split_when_the_dataset_has_none(synthetic_small):
    # stratified by the four (device right, cloud right) pairs: each rounds on its own
    unsplit = dataclasses.replace(synthetic_small, frame=synthetic_small.frame.drop(columns="split"))
    router = train_router(unsplit, None, None, "input", 0)
    counts = [router.metrics[f"n_{s}"] for s in ("train", "val", "test")]
    assert sum(counts) == 5000 and all(abs(c - f * 5000) <= 8 for c, f in zip(counts, (0.6, 0.2, 0.2), strict=True))
    assert train_router(unsplit, None, None, "input", 0).metrics == router.metrics


def test_budget_target_holds_on_held_out_data(synthetic_50k):
    for limit in (0.1, 0.3, 0.5):
        router = train_router(synthetic_50k, None, {"name": "budget", "max_cloud_fraction": limit}, "input", 0)
        assert router.metrics["val_cloud_fraction"] <= limit
        assert abs(router.metrics["test_cloud_fraction"] - limit) <= 0.03


def test_accuracy_target_holds_on_held_out_data(synthetic_50k):
    device, cloud = 0.64, 0.87  # about; the goals below lie between
    for goal in (0.70, 0.80):
        router = train_router(synthetic_50k, None, {"name": "accuracy", "min_quality": goal}, "input", 0)
        assert device < goal < cloud
        assert router.metrics["val_quality"] >= goal
        assert router.metrics["test_quality"] >= goal - 0.02
        assert router.metrics["test_cloud_fraction"] < 0.9  # cheaper than sending everything


def test_tradeoff_target_is_near_the_best_on_held_out_data(synthetic_50k):
    weight = 0.2
    router = train_router(synthetic_50k, None, {"name": "tradeoff", "cost_weight": weight}, "input", 0)
    test = synthetic_50k.split_mask("test")
    X, _ = router_inputs(synthetic_50k, "input")
    allowed = ~synthetic_50k.column_or("sensitive", 0).astype(bool)[test]
    curve = routing_curve(router.scores(X[test]), synthetic_50k.device_quality()[test],
                          synthetic_50k.cloud_quality()[test], allowed)
    best = (curve.quality - weight * curve.cloud_fraction).max()
    chosen = router.metrics["test_quality"] - weight * router.metrics["test_cloud_fraction"]
    assert chosen >= best - 0.01


def test_save_and_load_round_trip(digits_router, digits, tmp_path):
    meta_path = save_trained_router(digits_router, tmp_path)
    meta = json.loads(meta_path.read_text())
    assert meta["producer"] == "router_lab" and meta["n_features"] == 67
    assert meta["dataset_hash"] == digits.card["content_hash"]
    assert {"scikit-learn", "numpy", "python"} <= set(meta["versions"])
    for path in (tmp_path, meta_path, tmp_path / MODEL_FILE):
        loaded = load_trained_router(path)
        np.testing.assert_array_equal(loaded.scores_for(digits), digits_router.scores_for(digits))
        assert loaded.threshold == digits_router.threshold and loaded.mode == "input+confidence"
    assert len(loaded.curve) == len(digits_router.curve)
    save_trained_router(digits_router, tmp_path / "again")
    assert (tmp_path / "again" / META_FILE).read_bytes() == meta_path.read_bytes()


def test_corrupt_model_file_is_refused_before_loading(digits_router, tmp_path):
    save_trained_router(digits_router, tmp_path)
    model = tmp_path / MODEL_FILE
    model.write_bytes(model.read_bytes()[:-10])
    with pytest.raises(RouterLabError, match="SHA-256 .* changed or corrupted"):
        load_trained_router(tmp_path)


def test_router_json_not_from_router_lab_is_refused(digits_router, tmp_path):
    meta_path = save_trained_router(digits_router, tmp_path)
    meta = json.loads(meta_path.read_text())
    meta["producer"] = "someone"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(RouterLabError, match="not written by router_lab"):
        load_trained_router(tmp_path)
    meta_path.write_text("{not json")
    with pytest.raises(RouterLabError, match="not a readable router.json"):
        load_trained_router(meta_path)
    with pytest.raises(RouterLabError, match="no such file"):
        load_trained_router(tmp_path / "nowhere" / META_FILE)


def test_wrong_feature_count_in_router_json_is_a_clear_error(digits_router, tmp_path):
    meta_path = save_trained_router(digits_router, tmp_path)
    meta = json.loads(meta_path.read_text())
    meta["feature_columns"] = meta["feature_columns"][:10]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(RouterLabError, match="lists 10 features but the model expects 67"):
        load_trained_router(tmp_path)


def test_router_on_a_dataset_with_another_schema_is_a_clear_error(digits_router, synthetic_small):
    with pytest.raises(RouterLabError, match="expects 67 features, the dataset gives 9"):
        check_compatible(digits_router, synthetic_small)
    renamed = dataclasses.replace(synthetic_small, feature_columns=("x1", "x0", *synthetic_small.feature_columns[2:]))
    router = train_router(synthetic_small, None, None, "input", 0)
    with pytest.raises(RouterLabError, match="different order"):
        check_compatible(router, renamed)


def test_train_cli_writes_the_artifacts(cli, tmp_path):
    result = cli("train", "train.mode=input+confidence", "target=tradeoff", "target.cost_weight=0.05")
    assert result.returncode == 0, result.stderr
    assert "threshold" in result.stdout
    steps = [line for line in result.stdout.splitlines() if line.startswith("router-lab: train: ")]
    assert [line.split("] ")[0] for line in steps[:3]] == [f"router-lab: train: [{i}/3" for i in (1, 2, 3)]
    assert "fit the logistic router (mode input+confidence" in steps[1] and steps[3].startswith(
        "router-lab: train: done in ")
    [meta_path] = list((tmp_path / "outputs" / "train").glob(f"*/{META_FILE}"))
    router = load_trained_router(meta_path)
    assert router.mode == "input+confidence" and router.target == {"name": "tradeoff", "cost_weight": 0.05}
    assert (meta_path.parent / "validation_curve.csv").is_file()


def test_train_cli_bad_values_are_one_line_errors(cli):
    for args, expected in [(("router=nosuch",), "router=nosuch: no such option"),
                           (("target=accuracy", "target.min_quality=0.999"), "not reached")]:
        result = cli("train", *args)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], (args, result.stderr)


def test_calibrated_expected_gain_router_passes_the_weights_to_its_classifier(synthetic_small):
    import warnings

    with warnings.catch_warnings():
        # scikit-learn warns "sample weights will only be used for the calibration" otherwise
        warnings.simplefilter("error", UserWarning)
        router = train_router(synthetic_small, {"name": "logistic", "calibration": "sigmoid"}, None, "input", 0)
    assert router.metrics["test_auroc"] > 0.6
