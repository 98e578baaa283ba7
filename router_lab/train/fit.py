"""Fitting a router: inputs and labels, the train/val/test split, the fit, the threshold, the metrics.

The estimator is fitted on `train`, the threshold is chosen on `val` for the target, and the
metrics are measured on `test` (a seeded stratified split when the dataset has no `split` column).  Everything random comes from ``SeedSequence(seed)``.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn import config_context
from sklearn.calibration import CalibratedClassifierCV
from sklearn.exceptions import ConvergenceWarning

from router_lab.constants import SEED_BOUND, SPLIT_FRACTIONS
from router_lab.data.builders import stratified_split
from router_lab.data.contract import SPLITS, Dataset
from router_lab.errors import RouterLabError
from router_lab.features import (
    DEFAULT_LABEL,
    cloud_wins,
    outcome_strata,
    router_inputs,
    routing_labels,
)
from router_lab.policies.base import sensitive_rows
from router_lab.train.artifacts import TrainedRouter, dataset_hash, package_versions
from router_lab.train.config import LogisticRouterConfig, plain_config
from router_lab.train.curves import RoutingCurve, auroc, average_pgr, routing_curve
from router_lab.train.estimators import make_router_estimator
from router_lab.train.thresholds import DEFAULT_TARGET, select_threshold


def with_splits(dataset: Dataset, seed: int, label_margin: float = 0.0) -> Dataset:
    """``dataset`` itself when it has a `split` column, else a copy with a seeded split
    (stratified by the outcome pair), the same one for training and evaluation."""
    if "split" in dataset.frame.columns:
        return dataset
    split_seq = np.random.SeedSequence(int(seed)).spawn(1)[0]
    strata = outcome_strata(dataset, label_margin)
    assigned = stratified_split(strata, list(SPLIT_FRACTIONS), np.random.default_rng(split_seq))
    return dataclasses.replace(dataset, frame=dataset.frame.assign(split=assigned))


def split_masks(dataset: Dataset, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks of train/val/test from the `split` column; one-line errors when unusable."""
    masks = {name: dataset.split_mask(name) for name in SPLITS}
    for name, mask in masks.items():
        if not mask.any():
            raise RouterLabError(f"{dataset.source}: the '{name}' split is empty; expected rows in "
                                 "each of train, val and test")
    if np.unique(labels[masks["train"]]).size < 2:
        raise RouterLabError(f"{dataset.source}: in the train split escalating never (or always) "
                             "helps; a router needs both cases to learn from")
    return masks


def _finite(value: float) -> float | None:
    return round(float(value), 6) if math.isfinite(float(value)) else None


def curve_frame(curve: RoutingCurve) -> pd.DataFrame:
    return pd.DataFrame({"threshold": curve.thresholds, "cloud_fraction": curve.cloud_fraction,
                         "quality": curve.quality, "pgr": curve.pgr()})


def fit_router_estimator(estimator: Any, X: Any, dataset: Dataset, label: str, margin: float,
                         rows: np.ndarray, name: str) -> Any:
    """Fit ``estimator`` to the ``label`` of ``rows`` (sample weights for ``expected_gain``)."""
    target = routing_labels(dataset, label, margin, rows)
    if np.unique(target.y).size < 2:
        raise RouterLabError(f"router.label={label}: the training rows all have one label; a router "
                             "needs both cases to learn from")
    search = hasattr(estimator, "best_estimator_") or hasattr(estimator, "param_grid")
    fit_params: dict[str, Any] = {} if target.weight is None else {weight_key(estimator): target.weight}
    if search:
        fit_params["groups"] = target.rows  # a request's rows stay in one inner fold
    calibrated = isinstance(estimator, CalibratedClassifierCV) and target.weight is not None
    if calibrated:  # weights must reach the classifier inside, not only the calibration
        fit_params = {"sample_weight": target.weight}
    with warnings.catch_warnings(), config_context(enable_metadata_routing=calibrated):
        # an MLP that stops at max_iter still routes; its test metrics say how well
        warnings.simplefilter("ignore", ConvergenceWarning)
        if calibrated:
            request_weights(estimator.estimator)
        try:
            estimator.fit(X[target.rows], target.y, **fit_params)
        except ValueError as exc:  # e.g. calibration folds with too few rows of a class
            raise RouterLabError(f"router {name}: fit failed ({exc})") from exc
    return estimator.best_estimator_ if search else estimator


def request_weights(estimator: Any) -> None:
    """Route sample weights to the final classifier of ``estimator`` (and to no step before it)."""
    steps = [step for _, step in estimator.steps] if hasattr(estimator, "steps") else [estimator]
    for step in steps[:-1]:
        if "sample_weight" in inspect.signature(step.fit).parameters:
            step.set_fit_request(sample_weight=False)
    steps[-1].set_fit_request(sample_weight=True)


def weight_key(estimator: Any) -> str:
    """The fit keyword that carries sample weights to ``estimator``'s classifier."""
    estimator = getattr(estimator, "estimator", estimator) if hasattr(estimator, "param_grid") else estimator
    if hasattr(estimator, "steps"):
        return f"{estimator.steps[-1][0]}__sample_weight"
    return "sample_weight"


def train_router(dataset: Dataset, router_cfg: Any = None, target_cfg: Any = None,
                 mode: str = "input", seed: int = 0) -> TrainedRouter:
    """Fit a router on `train`, choose its threshold on `val` for the target, measure on `test`."""
    router_params = plain_config(router_cfg, vars(LogisticRouterConfig()))
    target = {k: v for k, v in plain_config(target_cfg, DEFAULT_TARGET).items()
              if not (k == "guarantee" and v is None)}  # no guarantee: router.json as before
    margin = float(router_params.get("label_margin", 0.0))
    label = str(router_params.get("label") or DEFAULT_LABEL)
    router_params["label"] = label
    dataset = with_splits(dataset, seed, margin)
    X, columns = router_inputs(dataset, mode)
    helps = cloud_wins(dataset, margin)
    fit_seq = np.random.SeedSequence(int(seed)).spawn(2)[1]
    masks = split_masks(dataset, outcome_strata(dataset, margin))
    random_state = int(np.random.default_rng(fit_seq).integers(SEED_BOUND))
    estimator = make_router_estimator(router_params, random_state)
    train = masks["train"]
    searched = hasattr(estimator, "param_grid")
    estimator = fit_router_estimator(estimator, X, dataset, label, margin, np.flatnonzero(train),
                                     str(router_params.get("name")))
    scores = estimator.predict_proba(X)[:, 1]
    device_q, cloud_q = dataset.device_quality(), dataset.cloud_quality()
    allowed = ~sensitive_rows(dataset)  # sensitive rows never leave the device

    def curve_on(split: str) -> RoutingCurve:
        m = masks[split]
        return routing_curve(scores[m], device_q[m], cloud_q[m], allowed[m])

    val_curve, test_curve = curve_on("val"), curve_on("test")
    val = masks["val"]
    choice = select_threshold(val_curve, target, n_rows=int(val.sum()),
                              binary=dataset.outcome == "correct")
    test = masks["test"]
    to_cloud = (scores[test] >= choice.threshold) & allowed[test]
    test_quality = np.where(to_cloud, cloud_q[test], device_q[test]).mean()
    metrics = {
        "n_train": int(train.sum()), "n_val": int(val.sum()), "n_test": int(test.sum()),
        "label": label, "label_rate_train": _finite(helps[train].mean()),
        "val_cloud_fraction": _finite(choice.cloud_fraction), "val_quality": _finite(choice.quality),
        "test_cloud_fraction": _finite(to_cloud.mean()), "test_quality": _finite(test_quality),
        "test_device_quality": _finite(test_curve.device_quality),
        "test_cloud_quality": _finite(test_curve.cloud_quality),
        "test_apgr": _finite(average_pgr(test_curve)),
        # AUROC of the routing target: does escalating this request help (cloud beats device)?
        "val_auroc": _finite(auroc(scores[val], helps[val])),
        "test_auroc": _finite(auroc(scores[test], helps[test])),
    }
    if searched:  # the hyper-parameters inner cross-validation chose
        metrics["inner_cv_choice"] = {k.split("__")[-1]: v for k, v in estimator.get_params().items()
                                      if k == "classifier__C"}
    if choice.guarantee is not None:
        metrics["guarantee"] = choice.guarantee
    return TrainedRouter(
        estimator=estimator, estimator_name=str(router_params.get("name", "logistic")),
        feature_columns=tuple(columns), mode=mode, threshold=choice.threshold, target=target,
        dataset_name=dataset.name, dataset_hash=dataset_hash(dataset), metrics=metrics,
        curve=curve_frame(val_curve), versions=package_versions(),
        params=router_params,
    )

