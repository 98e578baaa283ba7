"""The sidecar manifest beside an exported model: its SHA-256 and size, checked before loading.

``router.onnx`` has ``router.manifest.json`` beside it.  Every field is checked against the file
before any of it is parsed: ``format``, ``manifest_version``, ``file`` (the model's own name),
``kind`` (one the runtime knows; compared with the model's metadata once it is open),
``size_bytes`` and ``sha256``.  A manifest proves the file was not damaged; who made it is proved
only by a signature (``router_lab.runtime.signing``, optional).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from router_lab.errors import RouterLabError
from router_lab.io import dumps_json, sha256_bytes
from router_lab.runtime.schema import KINDS

MANIFEST_FORMAT = "router_lab.model_manifest"
MANIFEST_VERSION = 1
SIGNATURE_FIELD = "signature"  # optional: Ed25519 over the manifest without this field


def manifest_path(model_path: str | Path) -> Path:
    path = Path(model_path)
    stem = path.name[: -len(".onnx")] if path.name.endswith(".onnx") else path.name
    return path.with_name(f"{stem}.manifest.json")


def make_manifest(model_bytes: bytes, file_name: str, kind: str, **extra: Any) -> dict[str, Any]:
    """The manifest of ``model_bytes`` written as ``file_name`` (extra keys are kept as given)."""
    return {"format": MANIFEST_FORMAT, "manifest_version": MANIFEST_VERSION, "file": file_name,
            "kind": kind, "sha256": sha256_bytes(model_bytes), "size_bytes": len(model_bytes), **extra}


def signed_content(manifest: dict[str, Any]) -> bytes:
    """The bytes a manifest's signature covers: its canonical JSON without the signature field
    (the manifest holds the model's sha256 and size, so the signature covers the model too)."""
    return dumps_json({k: v for k, v in manifest.items() if k != SIGNATURE_FIELD}).encode("utf-8")


def sign_manifest(manifest: dict[str, Any], private_key_path: str | Path) -> dict[str, Any]:
    from router_lab.runtime.signing import sign_bytes

    unsigned = {k: v for k, v in manifest.items() if k != SIGNATURE_FIELD}
    return {**unsigned, SIGNATURE_FIELD: sign_bytes(signed_content(unsigned), private_key_path)}


def verify_manifest(manifest: dict[str, Any], trusted_keys: list[Any], model_path: str | Path) -> None:
    """With trusted keys, a manifest must carry a signature by one of them over its content."""
    path = manifest_path(model_path)
    if SIGNATURE_FIELD not in manifest:
        raise RouterLabError(f"{path}: unsigned, but trusted keys were given, so only an export "
                             "signed by one of them loads ('router-lab export sign_key=…')")
    from router_lab.runtime.signing import verify_bytes

    verify_bytes(signed_content(manifest), manifest[SIGNATURE_FIELD], list(trusted_keys), source=str(path))


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
    if manifest.get("manifest_version") != MANIFEST_VERSION:
        raise RouterLabError(f"{path}: field 'manifest_version' is {manifest.get('manifest_version')!r}; "
                             f"expected {MANIFEST_VERSION}")
    if not isinstance(manifest.get("sha256"), str):
        raise RouterLabError(f"{path}: field 'sha256' missing; expected the model file's sha256")
    if manifest.get("file") != Path(model_path).name:
        raise RouterLabError(f"{path}: field 'file' is {manifest.get('file')!r} but the model is "
                             f"{Path(model_path).name!r}; the manifest belongs to another file")
    if manifest.get("kind") not in KINDS:
        raise RouterLabError(f"{path}: field 'kind' is {manifest.get('kind')!r}; expected one of "
                             f"{', '.join(KINDS)}")
    size = manifest.get("size_bytes")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RouterLabError(f"{path}: field 'size_bytes' is {size!r}; expected the model's size in bytes")
    return manifest


def check_kind(manifest: dict[str, Any], metadata_kind: str, model_path: str | Path) -> None:
    """The manifest's ``kind`` must be the kind the model's own metadata declares."""
    if manifest.get("kind") != metadata_kind:
        raise RouterLabError(f"{manifest_path(model_path)}: field 'kind' is {manifest.get('kind')!r} "
                             f"but {Path(model_path).name} is a {metadata_kind!r} model; the "
                             "manifest does not describe this file")


def read_verified(model_path: str | Path,
                  trusted_keys: list[Any] | None = None) -> tuple[bytes, dict[str, Any]]:
    """The model file's bytes, after checking them against the manifest (one-line errors); with
    ``trusted_keys`` (PEM paths or bytes), the manifest must also be signed by one of them."""
    path = Path(model_path)
    if not path.exists():
        raise RouterLabError(f"{path}: no such file; expected an ONNX model written by 'router-lab export'")
    if path.is_dir():
        raise RouterLabError(f"{path}: is a folder; expected an .onnx file")
    manifest = read_manifest(path)
    if trusted_keys:
        verify_manifest(manifest, trusted_keys, path)
    data = path.read_bytes()
    digest = sha256_bytes(data)
    if len(data) != manifest["size_bytes"]:
        raise RouterLabError(f"{path}: {len(data):,} bytes, not {manifest['size_bytes']:,} (truncated?) "
                             "as its manifest's 'size_bytes' records; refusing to load it")
    if digest != manifest["sha256"]:
        raise RouterLabError(f"{path}: sha256 {digest[:12]}… does not match the manifest's "
                             f"{manifest['sha256'][:12]}…; the file was modified after "
                             "export, refusing to load it")
    return data, manifest
