"""The sidecar manifest beside an exported model: its SHA-256 and size, checked before loading.

``router.onnx`` has ``router.manifest.json`` beside it.  A model whose bytes do not hash to the
recorded value (edited, truncated, swapped) is refused before any of it is parsed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from router_lab.errors import RouterLabError
from router_lab.io import sha256_bytes

MANIFEST_FORMAT = "router_lab.model_manifest"
MANIFEST_VERSION = 1


def manifest_path(model_path: str | Path) -> Path:
    path = Path(model_path)
    stem = path.name[: -len(".onnx")] if path.name.endswith(".onnx") else path.name
    return path.with_name(f"{stem}.manifest.json")


def make_manifest(model_bytes: bytes, file_name: str, kind: str, **extra: Any) -> dict[str, Any]:
    """The manifest of ``model_bytes`` written as ``file_name`` (extra keys are kept as given)."""
    return {"format": MANIFEST_FORMAT, "manifest_version": MANIFEST_VERSION, "file": file_name,
            "kind": kind, "sha256": sha256_bytes(model_bytes), "size_bytes": len(model_bytes), **extra}


def read_manifest(model_path: str | Path) -> dict[str, Any]:
    path = manifest_path(model_path)
    if not path.exists():
        raise RouterLabError(f"{model_path}: no manifest {path.name} beside it; expected the "
                             "folder written by 'router-lab export' (the manifest holds the file's sha256)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RouterLabError(f"{path}: not a readable JSON manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise RouterLabError(f"{path}: field 'format' is not {MANIFEST_FORMAT!r}; expected a manifest "
                             "written by 'router-lab export'")
    if not isinstance(manifest.get("sha256"), str):
        raise RouterLabError(f"{path}: field 'sha256' missing; expected the model file's sha256")
    return manifest


def read_verified(model_path: str | Path) -> tuple[bytes, dict[str, Any]]:
    """The model file's bytes, after checking them against the manifest (one-line errors)."""
    path = Path(model_path)
    if not path.exists():
        raise RouterLabError(f"{path}: no such file; expected an ONNX model written by 'router-lab export'")
    if path.is_dir():
        raise RouterLabError(f"{path}: is a folder; expected an .onnx file")
    manifest = read_manifest(path)
    data = path.read_bytes()
    digest = sha256_bytes(data)
    if digest != manifest["sha256"]:
        recorded = manifest.get("size_bytes")
        size_note = ("" if not isinstance(recorded, int) or len(data) == recorded else
                     f" and it is {len(data):,} bytes, not {recorded:,} (truncated?)")
        raise RouterLabError(f"{path}: sha256 {digest[:12]}… does not match the manifest's "
                             f"{manifest['sha256'][:12]}…{size_note}; the file was modified after "
                             "export, refusing to load it")
    return data, manifest
