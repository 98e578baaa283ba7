"""A trained per-model quality router on disk (``router-lab train train.per_model=true``).

``router.json`` (the same name as a two-model router's, so every reader finds the run's dataset the
same way) with ``target.kind = per_model_quality`` and one entry per head — its model, its skops
file (``quality_head_<k>.skops``) and that file's SHA-256 — beside the heads.  Loading checks each
hash and loads each head through the same allow-listed skops loader as the two-model routers
(:mod:`router_lab.train.persist`): nothing is unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from router_lab.constants import QUALITY_HEAD_FILE, ROUTER_META_FILE
from router_lab.errors import RouterLabError
from router_lab.io import atomic_write_bytes, atomic_write_json, sha256_bytes
from router_lab.train.artifacts import PRODUCER, package_versions
from router_lab.train.persist import dumps_estimator, loads_estimator
from router_lab.train.quality import QualityRouter

QUALITY_KIND = "per_model_quality"
QUALITY_SCHEMA_VERSION = 1


def is_quality_router(path: str | Path) -> bool:
    """Whether ``path`` (a train run folder or its router.json) holds per-model quality heads."""
    meta = Path(path) / ROUTER_META_FILE if Path(path).is_dir() else Path(path)
    try:
        record = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and (record.get("target") or {}).get("kind") == QUALITY_KIND


def save_quality_router(router: QualityRouter, folder: str | Path, dataset_name: str, dataset_hash: str) -> Path:
    """Write each head, then router.json (last, so a folder with one is complete); return its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    heads = []
    for k, (model, head) in enumerate(zip(router.models, router.heads, strict=True)):
        data = dumps_estimator(head)
        name = QUALITY_HEAD_FILE.format(index=k)
        atomic_write_bytes(folder / name, data)
        heads.append({"model": model, "file": name, "sha256": sha256_bytes(data)})
    meta: dict[str, Any] = {
        "producer": PRODUCER, "schema_version": QUALITY_SCHEMA_VERSION, "target": {"kind": QUALITY_KIND},
        "models": list(router.models), "heads": heads, "estimator_name": router.estimator_name,
        "feature_columns": list(router.feature_columns), "mode": router.mode, "metrics": router.metrics,
        "dataset_name": dataset_name, "dataset_hash": dataset_hash, "versions": package_versions(),
    }
    return atomic_write_json(folder / ROUTER_META_FILE, meta)


def load_quality_router(path: str | Path) -> QualityRouter:
    """The quality router of a train run folder (or its router.json); one-line errors."""
    meta_path = Path(path) / ROUTER_META_FILE if Path(path).is_dir() else Path(path)
    if not is_quality_router(meta_path):
        raise RouterLabError(f"{meta_path}: not a per-model quality router; expected a 'router-lab train "
                             "train.per_model=true' run (N-model policies: cost_aware, tier_cascade)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("producer") != PRODUCER or meta.get("schema_version") != QUALITY_SCHEMA_VERSION:
        raise RouterLabError(f"{meta_path}: field 'producer'/'schema_version' is {meta.get('producer')!r}/"
                             f"{meta.get('schema_version')!r}; expected {PRODUCER!r}/{QUALITY_SCHEMA_VERSION}")
    fields = ("models", "heads", "feature_columns", "estimator_name", "mode")
    missing = [k for k in fields if k not in meta]
    entries = meta.get("heads")
    if missing or not isinstance(entries, list) or not all(
            isinstance(e, dict) and {"file", "sha256"} <= set(e) for e in entries) or len(entries) != len(meta["models"]):
        raise RouterLabError(f"{meta_path}: field {(missing or ['heads'])[0]!r} is missing or malformed; expected "
                             f"{', '.join(fields)} with one {{model, file, sha256}} entry per model (retrain)")
    heads = []
    for entry in entries:
        file = meta_path.parent / Path(str(entry["file"])).name
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise RouterLabError(f"{file}: cannot read ({exc.strerror or type(exc).__name__}); "
                                 "router.json points to it") from exc
        if sha256_bytes(data) != entry["sha256"]:
            raise RouterLabError(f"{file}: SHA-256 differs from the one router.json records; the head was "
                                 "changed or corrupted (retrain, or restore the original file)")
        heads.append(loads_estimator(data, file))
    return QualityRouter(models=tuple(meta["models"]), heads=tuple(heads),
                         feature_columns=tuple(meta["feature_columns"]), estimator_name=str(meta["estimator_name"]),
                         mode=str(meta["mode"]), metrics=dict(meta.get("metrics") or {}))
