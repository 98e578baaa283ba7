"""Built-in datasets: digits is honest (out-of-fold) and has a real gap; builds are deterministic."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from router_lab.data.builders import build_dataset, resolve_dataset
from router_lab.data.config import DigitsConfig, SyntheticConfig
from router_lab.data.contract import Dataset
from router_lab.data.digits import load_device_model, pooling_matrix
from router_lab.errors import RouterLabError


def _independent_folds(cfg: DigitsConfig) -> StratifiedKFold:
    # The builder draws its fold seed first from default_rng(cfg.seed); recompute it the same way.
    seed = int(np.random.default_rng(cfg.seed).integers(2**31 - 1))
    return StratifiedKFold(cfg.n_folds, shuffle=True, random_state=seed)


def test_digits_outcomes_are_out_of_fold(digits: Dataset) -> None:
    cfg = DigitsConfig()
    pixels, labels = load_digits(return_X_y=True)
    pooled = pixels @ pooling_matrix(cfg.pool).T
    folds = _independent_folds(cfg)
    device = make_pipeline(StandardScaler(), LogisticRegression(C=cfg.device_C, max_iter=5000))
    proba = cross_val_predict(device, pooled, labels, cv=folds, method="predict_proba")
    cloud = cross_val_predict(make_pipeline(StandardScaler(), SVC(C=cfg.cloud_C)), pixels, labels, cv=folds)
    frame = digits.frame
    np.testing.assert_array_equal(frame["device_correct"], (proba.argmax(1) == labels).astype(int))
    np.testing.assert_array_equal(frame["cloud_correct"], (cloud == labels).astype(int))
    np.testing.assert_allclose(frame["device_confidence"], proba.max(1), rtol=0, atol=1e-9)
    edge = make_pipeline(StandardScaler(), LogisticRegression(C=cfg.edge_C, max_iter=5000))
    np.testing.assert_array_equal(frame["model_edge_correct"],
                                  (cross_val_predict(edge, pixels, labels, cv=folds) == labels).astype(int))


def test_digits_edge_model_sits_between_device_and_cloud(digits: Dataset) -> None:
    assert digits.models == ("device", "edge", "cloud")
    assert [s.role for s in digits.model_specs] == ["device", "edge", "cloud"]
    accuracy = {m: digits.quality(m).mean() for m in digits.models}
    assert accuracy["device"] + 0.03 < accuracy["edge"] < accuracy["cloud"]
    assert digits.card["metrics"]["edge_accuracy"] == pytest.approx(accuracy["edge"])
    prices = [digits.cost(m)[0] for m in digits.models]
    assert prices[0] == 0 < prices[1] < prices[2]
    assert "model_edge_correct" not in digits.feature_columns + digits.confidence_columns


def test_in_sample_accuracy_is_higher_than_the_card_reports(digits: Dataset) -> None:
    cfg = DigitsConfig()
    pixels, labels = load_digits(return_X_y=True)
    pooled = pixels @ pooling_matrix(cfg.pool).T
    device = make_pipeline(StandardScaler(), LogisticRegression(C=cfg.device_C, max_iter=5000))
    in_sample = (device.fit(pooled, labels).predict(pooled) == labels).mean()
    assert in_sample > digits.card["metrics"]["device_accuracy"]


def test_digits_has_a_gap_worth_routing_over(digits: Dataset) -> None:
    metrics = digits.card["metrics"]
    assert 0.80 <= metrics["device_accuracy"] <= 0.92
    assert metrics["cloud_accuracy"] >= 0.97
    assert metrics["device_accuracy"] == pytest.approx(digits.device_quality().mean())


def test_kept_device_model_is_the_pooled_model_on_raw_pixels(digits: Dataset) -> None:
    cfg = DigitsConfig()
    pixels, labels = load_digits(return_X_y=True)
    pooled = pixels @ pooling_matrix(cfg.pool).T
    reference = make_pipeline(StandardScaler(), LogisticRegression(C=cfg.device_C, max_iter=5000)).fit(pooled, labels)
    model = load_device_model(Path(digits.card["path"]).with_name("digits.device_model.json"))
    np.testing.assert_allclose(model.predict_proba(pixels), reference.predict_proba(pooled), atol=1e-9)


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    outputs = {}
    for run, seed in (("a", 0), ("b", 0), ("c", 1)):
        cfg = SyntheticConfig(n_rows=3_000, seed=seed, drift=1.0)
        ds = build_dataset(cfg, tmp_path / run)
        outputs[run] = (Path(ds.card["path"]).read_bytes(), ds.card["content_hash"])
    assert outputs["a"] == outputs["b"]
    assert outputs["a"][1] != outputs["c"][1]


def test_digits_build_is_byte_identical(tmp_path: Path, digits: Dataset) -> None:
    again = build_dataset(DigitsConfig(), tmp_path)
    assert again.card["content_hash"] == digits.card["content_hash"]
    assert Path(again.card["path"]).read_bytes() == Path(digits.card["path"]).read_bytes()


def test_synthetic_drift_makes_later_requests_harder(tmp_path: Path) -> None:
    ds = build_dataset(SyntheticConfig(n_rows=20_000, drift=2.0), tmp_path)
    device = ds.device_quality()
    assert device[:2_000].mean() - device[-2_000:].mean() > 0.2
    assert ds.card["sensitive_fraction"] == pytest.approx(0.05, abs=0.01)
    assert np.all(np.diff(ds.frame["timestamp"].to_numpy()) > 0)


def test_synthetic_cloud_is_stronger_than_device(synthetic_small: Dataset) -> None:
    assert synthetic_small.cloud_quality().mean() > synthetic_small.device_quality().mean() + 0.1
    assert set(synthetic_small.frame["split"]) == {"train", "val", "test"}


def test_resolve_reuses_a_matching_build_and_rebuilds_on_change(tmp_path: Path) -> None:
    cfg = SyntheticConfig(n_rows=500)
    first = resolve_dataset(cfg, tmp_path)
    stamp = Path(first.card["path"]).stat().st_mtime_ns
    assert resolve_dataset(cfg, tmp_path).card["content_hash"] == first.card["content_hash"]
    assert Path(first.card["path"]).stat().st_mtime_ns == stamp
    changed = resolve_dataset(SyntheticConfig(n_rows=500, seed=3), tmp_path)
    assert changed.card["content_hash"] != first.card["content_hash"]


LADDER = [{"name": "edge", "role": "edge", "skill": 1.8, "price_usd_per_call": 2e-5},
          {"name": "cloud_small", "role": "cloud", "skill": 2.4, "price_usd_per_call": 5e-5}]


def test_synthetic_ladder_adds_tiers_without_changing_the_two_model_columns(tmp_path: Path,
                                                                             synthetic_small: Dataset) -> None:
    ds = build_dataset(SyntheticConfig(name="ladder", n_rows=5_000, tiers=LADDER), tmp_path)
    assert ds.models == ("device", "edge", "cloud_small", "cloud")
    assert [s.role for s in ds.model_specs] == ["device", "edge", "cloud", "cloud"]
    two = synthetic_small.frame
    assert ds.frame[list(two.columns)].equals(two)  # the ladder's draws come after every other draw
    accuracy = [ds.quality(m).mean() for m in ds.models]
    assert accuracy == sorted(accuracy) and accuracy[-1] - accuracy[0] > 0.15  # skills 1 < 1.8 < 2.4 < 3
    assert [ds.cost(m)[0] for m in ds.models] == [0.0, 2e-5, 5e-5, SyntheticConfig().cloud_price_usd_per_call]
    assert ds.card["params"]["tiers"] == LADDER and synthetic_small.models == ("device", "cloud")


@pytest.mark.parametrize(("cfg", "field"), [
    (SyntheticConfig(tiers=[{"name": "cloud", "skill": 1.0}]), "dataset.tiers[0].name"),
    (SyntheticConfig(tiers=[{"name": "edge", "role": "fog", "skill": 1.0}]), "dataset.tiers[0].role"),
    (SyntheticConfig(tiers=[{"name": "edge", "skill": 1.0}, {"name": "edge", "skill": 2.0}]), "dataset.tiers[1].name"),
    (SyntheticConfig(tiers=[{"name": "edge", "skill": 1.0, "price_usd_per_call": -1}]),
     "dataset.tiers[0].price_usd_per_call"),
    (SyntheticConfig(n_rows=0), "dataset.n_rows"),
    (SyntheticConfig(sensitive_fraction=1.5), "dataset.sensitive_fraction"),
    (SyntheticConfig(split_fractions=[0.5, 0.5, 0.5]), "dataset.split_fractions"),
    (DigitsConfig(pool=3), "dataset.pool"),
    (DigitsConfig(edge_price_usd_per_call=-1.0), "dataset.edge_price_usd_per_call"),
])
def test_bad_builder_config_is_a_named_error_and_writes_nothing(cfg, field: str, tmp_path: Path) -> None:  # noqa: ANN001
    with pytest.raises(RouterLabError, match=re.escape(field)):
        build_dataset(cfg, tmp_path)
    assert not any(tmp_path.iterdir())
