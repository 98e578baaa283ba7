"""The `digits` dataset: real data (scikit-learn's bundled handwritten digits) and real models.

The on-device model is a logistic regression on the image average-pooled to 4x4; the cloud model
an RBF SVM on all 64 pixels; a third model between them, playing an edge box (a home or office
server on the LAN), is a logistic regression on all 64 pixels (``model_edge_correct``).  Every
row's outcomes and device confidence come from out-of-fold predictions, so no row is scored by a model that saw it.  The device model refitted on all rows is
kept (as plain JSON weights) for export to ONNX.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from router_lab.constants import SEED_BOUND
from router_lab.data.builders import BUILDERS, BuiltDataset, stratified_split
from router_lab.data.config import DigitsConfig
from router_lab.data.contract import MAX_COST_USD
from router_lab.errors import RouterLabError

IMAGE_SIDE = 8
OUTPUT_BYTES = 32  # a small JSON answer ({"label": 7, "p": 0.93}) sent back by the cloud
PROBA_CLIP = 1e-12  # probabilities are clipped to this before the log of the entropy


def confidence_features(proba: np.ndarray) -> dict[str, np.ndarray]:
    """The device's confidence features from its class probabilities: the top probability, the
    margin to the second, and the entropy normalised by log(number of classes).  The export's
    device graph computes the same in ONNX (router_lab.export.device_graph)."""
    ordered = np.sort(proba, axis=1)
    entropy = -(proba * np.log(np.clip(proba, PROBA_CLIP, 1.0))).sum(axis=1) / np.log(proba.shape[1])
    return {"device_confidence": ordered[:, -1], "device_margin": ordered[:, -1] - ordered[:, -2],
            "device_entropy": entropy}


def pooling_matrix(pool: int) -> np.ndarray:
    """Linear map from the 64 row-major pixels to the average-pooled image (side 8/pool)."""
    if pool < 1 or IMAGE_SIDE % pool:
        raise RouterLabError(f"dataset.pool: got {pool}; expected 1, 2, 4 or 8 (a divisor of 8)")
    side = IMAGE_SIDE // pool
    matrix = np.zeros((side * side, IMAGE_SIDE * IMAGE_SIDE))
    for r in range(IMAGE_SIDE):
        for c in range(IMAGE_SIDE):
            matrix[(r // pool) * side + c // pool, r * IMAGE_SIDE + c] = 1.0 / (pool * pool)
    return matrix


def _device_pipeline(cfg: DigitsConfig) -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(C=cfg.device_C, max_iter=5000))


def _setting(cfg: DigitsConfig, name: str) -> float:
    """An edge-model or price setting (a plain config written before the edge model has none)."""
    return float(getattr(cfg, name, getattr(DigitsConfig, name)))


def _edge_model(cfg: DigitsConfig) -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(C=_setting(cfg, "edge_C"), max_iter=5000))


def _cloud_model(cfg: DigitsConfig) -> Pipeline:
    return make_pipeline(StandardScaler(), SVC(C=cfg.cloud_C, gamma="scale"))


def fold_device_model(pipeline: Pipeline, pool_matrix: np.ndarray) -> LogisticRegression:
    """Fold pooling and scaling into one LogisticRegression on the 64 raw pixels.

    logits = W((P x - mu) / sigma) + b = (W / sigma) P x + (b - W mu / sigma): the same function,
    as a plain estimator that skl2onnx converts and the device runs on the raw image.
    """
    scaler: StandardScaler = pipeline[0]
    lr: LogisticRegression = pipeline[-1]
    coef = (lr.coef_ / scaler.scale_) @ pool_matrix
    intercept = lr.intercept_ - (lr.coef_ / scaler.scale_) @ scaler.mean_
    return logistic_from_weights(lr.classes_.copy(), coef, intercept)


def logistic_from_weights(classes: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> LogisticRegression:
    """A fitted multinomial LogisticRegression with the given weights."""
    model = LogisticRegression()
    model.classes_, model.coef_, model.intercept_ = classes, coef, intercept
    model.n_features_in_ = coef.shape[1]
    model.n_iter_ = np.array([0])
    return model


def device_model_to_json(model: LogisticRegression, cfg: DigitsConfig) -> str:
    payload = {
        "kind": "logistic_regression",
        "input": "64 pixel intensities 0..16, row-major 8x8 (columns px_00..px_63)",
        "pool": cfg.pool,
        "C": cfg.device_C,
        "classes": model.classes_.tolist(),
        "coef": model.coef_.tolist(),
        "intercept": model.intercept_.tolist(),
    }
    return json.dumps(payload, indent=1, sort_keys=True) + "\n"


def load_device_model(path: str | Path) -> LogisticRegression:
    """Rebuild the device LogisticRegression from its JSON weights (no pickle involved)."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        classes = np.asarray(payload["classes"])
        coef = np.asarray(payload["coef"], dtype=np.float64)
        intercept = np.asarray(payload["intercept"], dtype=np.float64)
    except FileNotFoundError as exc:
        raise RouterLabError(f"{path}: no such file; build the dataset first") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RouterLabError(f"{path}: not a device-model JSON file ({exc})") from exc
    if coef.shape != (len(classes), IMAGE_SIDE * IMAGE_SIDE) or intercept.shape != (len(classes),):
        raise RouterLabError(f"{path}: field 'coef' has shape {coef.shape}; expected ({len(classes)}, 64)")
    return logistic_from_weights(classes, coef, intercept)


@BUILDERS.register("digits", summary="scikit-learn digits: a small device model vs a large cloud one")
def build_digits(cfg: DigitsConfig, rng: np.random.Generator) -> BuiltDataset:
    pixels, labels = load_digits(return_X_y=True)
    n = len(labels)
    pool = pooling_matrix(cfg.pool)
    pooled = pixels @ pool.T
    if cfg.n_folds < 2:
        raise RouterLabError(f"dataset.n_folds: got {cfg.n_folds}; expected at least 2")
    for name in ("edge_C", "edge_price_usd_per_call", "cloud_price_usd_per_call"):
        value = _setting(cfg, name)
        if not (value > 0 if name == "edge_C" else 0 <= value <= MAX_COST_USD):
            raise RouterLabError(f"dataset.{name}: got {value}; expected "
                                 + ("a positive number" if name == "edge_C" else f"a price in [0, {MAX_COST_USD:,.0f}] USD"))
    folds = StratifiedKFold(cfg.n_folds, shuffle=True, random_state=int(rng.integers(SEED_BOUND)))

    device_proba = np.zeros((n, 10))
    cloud_pred = np.zeros(n, dtype=labels.dtype)
    edge_pred = np.zeros(n, dtype=labels.dtype)
    for train_idx, test_idx in folds.split(pixels, labels):
        device = _device_pipeline(cfg).fit(pooled[train_idx], labels[train_idx])
        device_proba[test_idx] = device.predict_proba(pooled[test_idx])
        cloud = _cloud_model(cfg).fit(pixels[train_idx], labels[train_idx])
        cloud_pred[test_idx] = cloud.predict(pixels[test_idx])
        edge = _edge_model(cfg).fit(pixels[train_idx], labels[train_idx])
        edge_pred[test_idx] = edge.predict(pixels[test_idx])

    device_pred = device_proba.argmax(axis=1)
    confidence = confidence_features(device_proba)
    images = pixels.astype(np.uint8)

    frame = pd.DataFrame({"request_id": np.arange(n, dtype=np.int64)})
    for j in range(pixels.shape[1]):
        frame[f"px_{j:02d}"] = pixels[:, j].astype(np.float32)
    frame["device_margin"] = confidence["device_margin"].astype(np.float32)
    frame["device_entropy"] = confidence["device_entropy"].astype(np.float32)
    frame["device_confidence"] = confidence["device_confidence"]
    frame["device_correct"] = (device_pred == labels).astype(np.int8)
    frame["cloud_correct"] = (cloud_pred == labels).astype(np.int8)
    frame["label"] = labels.astype(np.int64)
    frame["input_bytes"] = [len(zlib.compress(img.tobytes(), 9)) for img in images]
    frame["output_bytes"] = OUTPUT_BYTES
    frame["sensitive"] = (rng.random(n) < cfg.sensitive_fraction).astype(np.int8)
    frame["split"] = stratified_split(labels, cfg.split_fractions, rng)
    # last, and drawing nothing from rng: the two-model columns stay as they were before the edge
    frame["model_edge_correct"] = (edge_pred == labels).astype(np.int8)

    device_model = fold_device_model(_device_pipeline(cfg).fit(pooled, labels), pool)
    card: dict[str, Any] = {
        "name": cfg.name,
        "task": "handwritten digit classification (10 classes, 8x8 images)",
        "source": "scikit-learn's bundled copy of the UCI ML hand-written digits test set "
                  "(sklearn.datasets.load_digits); 1,797 images by 43 writers",
        "license": "CC BY 4.0 (UCI Machine Learning Repository); shipped with scikit-learn (BSD-3)",
        "outcomes": (
            f"{cfg.n_folds}-fold out-of-fold predictions: device = StandardScaler + "
            f"LogisticRegression(C={cfg.device_C}) on the image average-pooled {cfg.pool}x{cfg.pool} "
            f"to {IMAGE_SIDE // cfg.pool}x{IMAGE_SIDE // cfg.pool}; cloud = StandardScaler + "
            f"SVC(rbf, C={cfg.cloud_C}) on all 64 pixels; edge (model_edge_correct) = StandardScaler + "
            f"LogisticRegression(C={_setting(cfg, 'edge_C')}) on all 64 pixels. device_confidence/margin/entropy are the "
            "device model's out-of-fold class probabilities (max, top1-top2, normalised entropy)."
        ),
        "features": {
            "px_00..px_63": "pixel intensities 0..16 of the 8x8 image, row-major (the router's input)",
            "device_confidence": "device model's top class probability (post-routing feature)",
            "device_margin": "top-1 minus top-2 class probability (post-routing feature)",
            "device_entropy": "entropy of the device's class probabilities / log(10) (post-routing)",
            "input_bytes": "zlib-compressed size of the 8-bit image (what an upload would send)",
            "output_bytes": f"{OUTPUT_BYTES} bytes: a small JSON answer",
            "sensitive": f"drawn at random with probability {cfg.sensitive_fraction} (seeded)",
            "model_edge_correct": "the edge box's out-of-fold correctness (an outcome, not a feature)",
        },
        "metrics": {
            "device_accuracy": round(float(frame["device_correct"].mean()), 6),
            "cloud_accuracy": round(float(frame["cloud_correct"].mean()), 6),
            "edge_accuracy": round(float(frame["model_edge_correct"].mean()), 6),
            "measured": "out of fold",
        },
        "models": [
            {"name": "device", "role": "device", "price_usd_per_call": 0.0},
            {"name": "edge", "role": "edge", "price_usd_per_call": _setting(cfg, "edge_price_usd_per_call")},
            {"name": "cloud", "role": "cloud", "price_usd_per_call": _setting(cfg, "cloud_price_usd_per_call")},
        ],
        "prices": "assumed, not measured: the device's answer is free; the edge box and the cloud "
                  "charge the per-call prices of dataset.edge_price_usd_per_call and "
                  "dataset.cloud_price_usd_per_call",
        "device_model": "digits.device_model.json: LogisticRegression on 64 raw pixels "
                        "(pooling and scaling folded in), refitted on all rows",
    }
    return BuiltDataset(frame=frame, card=card,
                        artifacts={"device_model.json": device_model_to_json(device_model, cfg)})
