"""A trained router and its files: ``router.skops`` (the estimator), ``router.json``, the curve CSV.

``router.json`` records the features, mode, threshold, target, metrics, dataset hash, versions and
the model file's SHA-256.  The model is stored with ``skops.io`` and loaded through an allow-list of
the estimator types router_lab trains (``router_lab.train.persist``): a forged or hostile file is a
one-line error, never code that runs.  Nothing is ever unpickled; an old ``router.joblib`` is
refused with a request to retrain.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from router_lab.constants import ROUTER_META_FILE
from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError
from router_lab.features import router_inputs
from router_lab.io import atomic_path, atomic_write_bytes, atomic_write_json, sha256_bytes
from router_lab.train.persist import dumps_estimator, loads_estimator

PRODUCER = "router_lab"
SCHEMA_VERSION = 2  # 2: router.skops (1 was a pickled router.joblib, never loaded any more)
MODEL_FILE = "router.skops"
LEGACY_MODEL_FILE = "router.joblib"  # pickles from router_lab < 0.2: refused, never unpickled
META_FILE = ROUTER_META_FILE
CURVE_FILE = "validation_curve.csv"


@dataclass(frozen=True)
class TrainedRouter:
    """A fitted router: score = ``estimator.predict_proba(X)[:, 1]`` (its meaning depends on
    ``params["label"]``, see :data:`SCORE_MEANINGS`); cloud when score >= ``threshold``."""

    estimator: Any
    estimator_name: str
    feature_columns: tuple[str, ...]
    mode: str
    threshold: float
    target: dict[str, Any]
    dataset_name: str
    dataset_hash: str
    metrics: dict[str, Any]
    curve: pd.DataFrame  # the validation curve the threshold was chosen on
    versions: dict[str, str]
    params: dict[str, Any] = field(default_factory=dict)  # the `router` config it was trained with

    def scores(self, X: np.ndarray) -> np.ndarray:
        """The score per row of ``X`` (the router inputs in ``feature_columns`` order)."""
        return self.estimator.predict_proba(X)[:, 1]

    def scores_for(self, dataset: Dataset) -> np.ndarray:
        """Scores for every row of ``dataset`` (after checking its schema matches)."""
        return self.scores(check_compatible(self, dataset))


SCORE_MEANINGS = {
    "expected_gain": "predict_proba(X)[:, 1] = (1 + expected quality gain of the cloud) / 2; "
                     "cloud when score >= threshold",
    "win": "predict_proba(X)[:, 1] = P(cloud better than device); cloud when score >= threshold",
    "device_wrong": "predict_proba(X)[:, 1] = P(device answer is wrong); cloud when score >= threshold",
}


def score_meaning(label: str | None) -> str:
    """What a router's score means, from the `router.label` it was trained for (router.json)."""
    return SCORE_MEANINGS.get(str(label or "device_wrong"), SCORE_MEANINGS["device_wrong"])


VERSIONED_PACKAGES = ("router_lab", "numpy", "pandas", "scikit-learn", "skl2onnx", "onnx", "skops")


def package_versions() -> dict[str, str]:
    """Versions of the packages a trained router depends on (recorded in router.json)."""
    found = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def dataset_hash(dataset: Dataset) -> str:
    """The dataset's content hash (from its card, else a hash of the frame's values)."""
    recorded = dataset.card.get("content_hash")
    if recorded:
        return str(recorded)
    from router_lab.io import sha256_bytes

    return sha256_bytes(pd.util.hash_pandas_object(dataset.frame, index=False).to_numpy().tobytes())


def router_metadata(router: TrainedRouter, model_sha256: str) -> dict[str, Any]:
    return {
        "producer": PRODUCER,
        "schema_version": SCHEMA_VERSION,
        "model_file": MODEL_FILE,
        "model_sha256": model_sha256,
        "curve_file": CURVE_FILE,
        "estimator_name": router.estimator_name,
        "feature_columns": list(router.feature_columns),
        "n_features": len(router.feature_columns),
        "mode": router.mode,
        "score": score_meaning(router.params.get("label")),
        "threshold": float(router.threshold),
        "target": router.target,
        "dataset_name": router.dataset_name,
        "dataset_hash": router.dataset_hash,
        "metrics": router.metrics,
        "versions": router.versions,
        "params": router.params,
    }


def save_trained_router(router: TrainedRouter, folder: str | Path) -> Path:
    """Write the model, ``router.json`` and the validation curve into ``folder``; return router.json.

    Each file is written atomically and router.json last, so a folder with a router.json is complete.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = dumps_estimator(router.estimator)
    atomic_write_bytes(folder / MODEL_FILE, data)
    with atomic_path(folder / CURVE_FILE) as tmp:
        router.curve.to_csv(tmp, index=False)
    return atomic_write_json(folder / META_FILE, router_metadata(router, sha256_bytes(data)))


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RouterLabError(f"{path}: no such file; expected a router trained by 'router-lab train'") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RouterLabError(f"{path}: not a readable router.json ({type(exc).__name__})") from exc
    if not isinstance(meta, dict) or meta.get("producer") != PRODUCER:
        raise RouterLabError(f"{path}: not written by router_lab (field 'producer' is missing or "
                             f"wrong); refusing to load the model it points to")
    if (meta.get("target") or {}).get("kind") == "per_model_quality":  # router_lab.train.quality_files
        raise RouterLabError(f"{path}: per-model quality heads ('router-lab train train.per_model=true'); "
                             "expected a two-model router here (the quality heads serve policy=cost_aware "
                             "or tier_cascade)")
    if meta.get("model_file") == LEGACY_MODEL_FILE or meta.get("schema_version") == 1:
        raise RouterLabError(f"{path}: a router from an older router_lab, pickled as "
                             f"{LEGACY_MODEL_FILE}; pickles are never loaded (unpickling runs code): "
                             "retrain it with 'router-lab train'")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise RouterLabError(f"{path}: field 'schema_version' is {meta.get('schema_version')!r}; "
                             f"expected {SCHEMA_VERSION}")
    if meta.get("model_file", MODEL_FILE) != MODEL_FILE:
        raise RouterLabError(f"{path}: field 'model_file' is {meta.get('model_file')!r}; expected "
                             f"{MODEL_FILE!r} beside it")
    for key in ("model_sha256", "feature_columns", "mode", "threshold", "estimator_name"):
        if key not in meta:
            raise RouterLabError(f"{path}: missing field '{key}'; expected a complete router.json")
    return meta


def _meta_path(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        return path / META_FILE
    if path.name in (MODEL_FILE, LEGACY_MODEL_FILE):
        return path.with_name(META_FILE)
    return path


def load_trained_router(path: str | Path) -> TrainedRouter:
    """Load a router from its folder (or its router.json): hash, then allow-listed skops load."""
    meta_path = _meta_path(path)
    legacy = meta_path.parent / LEGACY_MODEL_FILE
    if legacy.is_file() and not (meta_path.parent / MODEL_FILE).is_file():
        raise RouterLabError(f"{legacy}: a pickled router from an older router_lab; pickles are "
                             "never loaded (unpickling runs code): retrain it with 'router-lab train'")
    meta = _read_meta(meta_path)
    model_path = meta_path.parent / MODEL_FILE
    if not model_path.is_file():
        raise RouterLabError(f"{model_path}: no such file; router.json points to it")
    try:
        data = model_path.read_bytes()
    except OSError as exc:
        raise RouterLabError(f"{model_path}: cannot read ({exc.strerror or type(exc).__name__})") from exc
    digest = sha256_bytes(data)
    if digest != meta["model_sha256"]:
        raise RouterLabError(f"{model_path}: SHA-256 is {digest[:12]}… but router.json records "
                             f"{str(meta['model_sha256'])[:12]}…; the model file was changed or "
                             "corrupted (retrain, or restore the original file)")
    estimator = loads_estimator(data, model_path)
    if not callable(getattr(estimator, "predict_proba", None)):
        raise RouterLabError(f"{model_path}: holds a {type(estimator).__name__}, not a classifier "
                             "with predict_proba; the files do not belong together")
    columns = tuple(str(c) for c in meta["feature_columns"])
    n_in = getattr(estimator, "n_features_in_", None)
    if meta.get("mode") != "text" and n_in is not None and n_in != len(columns):
        raise RouterLabError(f"{meta_path}: field 'feature_columns' lists {len(columns)} features but "
                             f"the model expects {n_in}; the files do not belong together")
    curve_path = meta_path.parent / str(meta.get("curve_file", CURVE_FILE))
    curve = pd.read_csv(curve_path) if curve_path.is_file() else pd.DataFrame()
    return TrainedRouter(
        estimator=estimator, estimator_name=str(meta["estimator_name"]), feature_columns=columns,
        mode=str(meta["mode"]), threshold=float(meta["threshold"]), target=dict(meta.get("target") or {}),
        dataset_name=str(meta.get("dataset_name", "")), dataset_hash=str(meta.get("dataset_hash", "")),
        metrics=dict(meta.get("metrics") or {}), curve=curve, versions=dict(meta.get("versions") or {}),
        params=dict(meta.get("params") or {}),
    )


def check_compatible(router: TrainedRouter, dataset: Dataset) -> np.ndarray:
    """The router's input matrix for ``dataset``; a one-line error when the schemas differ."""
    X, columns = router_inputs(dataset, router.mode)
    if tuple(columns) != tuple(router.feature_columns):
        expected, got = list(router.feature_columns), list(columns)
        missing = [c for c in expected if c not in got]
        extra = [c for c in got if c not in expected]
        detail = (f"missing {missing[:3]}" if missing else "") + (f" extra {extra[:3]}" if extra else "")
        raise RouterLabError(
            f"{dataset.source}: the router (trained on '{router.dataset_name}', mode '{router.mode}') "
            f"expects {len(expected)} features, the dataset gives {len(got)}"
            f"{'; ' + detail.strip() if detail.strip() else '; same names in a different order'}"
        )
    return X
