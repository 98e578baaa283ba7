"""A routing bundle: the policy that ships, its models, and one manifest covering every file.

    bundle = load_bundle("outputs/export/<time>/")   # every file verified before it is parsed
    policy = bundle.make_policy()                    # a fresh RoutingPolicy (its own state)
    decision = policy.decide(Request(features=x), Signals(now_s=t, local_queued=q))

Layout (written by ``router-lab export``)::

    bundle.manifest.json   format, bundle_version, files: [{file, role, sha256, size_bytes}]
    policy.json            the policy's kind and parameters (router_lab.runtime.spec)
    router.onnx            the router graph (policies that score with it), + router.manifest.json
    device_graph.onnx      digits: device model + router in one graph, + its manifest

The loader refuses a bundle whose manifest does not list a file it needs, whose files do not hash
to the manifest, whose policy.json does not validate, or whose policy threshold differs from the
one compiled into the router graph.  ``validation.json`` beside the files is a report about the
bundle (its timings vary run to run), not part of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from router_lab.errors import RouterLabError
from router_lab.io import dumps_json, sha256_bytes
from router_lab.runtime.device_router import DeviceRouter
from router_lab.runtime.policy import Request, RoutingPolicy
from router_lab.runtime.spec import (
    build_policy,
    innermost,
    policy_models,
    policy_threshold,
    validate_spec,
)
from router_lab.runtime.tiers import runs_after_device

BUNDLE_FORMAT = "router_lab.bundle"
BUNDLE_VERSION = 1
MANIFEST_FILE = "bundle.manifest.json"
POLICY_FILE = "policy.json"
ROLES = ("policy", "router", "device_graph", "model_manifest", "target")
MODEL_SUFFIXES = (".onnx", ".ort")
THRESHOLD_TOLERANCE = 1e-12
SIGNATURE_FIELD = "signature"  # optional: Ed25519 over the manifest's canonical JSON without it
TOP_KEYS = {"format", "bundle_version", "files", SIGNATURE_FIELD}


def signed_bytes(manifest: dict[str, Any]) -> bytes:
    """What a bundle signature covers: the manifest's canonical JSON without the signature (the
    manifest holds every file's sha256 and size, so the signature covers every file)."""
    return dumps_json({k: v for k, v in manifest.items() if k != SIGNATURE_FIELD}).encode("utf-8")


def _read_manifest(folder: Path) -> tuple[dict[str, Any], bytes]:
    path = folder / MANIFEST_FILE
    if not folder.is_dir():
        raise RouterLabError(f"{folder}: not a folder; expected a bundle written by 'router-lab export'")
    if not path.is_file():
        raise RouterLabError(f"{path}: no such file; expected a bundle folder written by 'router-lab export'")
    raw = path.read_bytes()
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RouterLabError(f"{path}: not a readable JSON manifest ({type(exc).__name__})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise RouterLabError(f"{path}: field 'format' is not {BUNDLE_FORMAT!r}; expected a bundle manifest")
    if manifest.get("bundle_version") != BUNDLE_VERSION:
        raise RouterLabError(f"{path}: field 'bundle_version' is {manifest.get('bundle_version')!r}; this "
                             f"runtime reads version {BUNDLE_VERSION}")
    unknown = sorted(set(manifest) - TOP_KEYS)
    if unknown:
        raise RouterLabError(f"{path}: unknown field {unknown[0]!r}; expected {', '.join(sorted(TOP_KEYS))}")
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        raise RouterLabError(f"{path}: field 'files' must be a non-empty list")
    seen: set[str] = set()
    for k, entry in enumerate(files):
        ok = (isinstance(entry, dict) and set(entry) == {"file", "role", "sha256", "size_bytes"}
              and isinstance(entry["file"], str) and isinstance(entry["sha256"], str)
              and isinstance(entry["size_bytes"], int) and entry["role"] in ROLES)
        if not ok:
            raise RouterLabError(f"{path}: field 'files[{k}]' must have exactly file, role (one of "
                                 f"{', '.join(ROLES)}), sha256, size_bytes")
        name = entry["file"]
        if name in seen or "/" in name or "\\" in name or name in ("", ".", "..") or name == MANIFEST_FILE:
            raise RouterLabError(f"{path}: field 'files[{k}].file' is {name!r}; expected a unique plain "
                                 "file name inside the bundle folder")
        seen.add(name)
    return manifest, raw


def _verified_files(folder: Path, manifest: dict[str, Any]) -> dict[str, bytes]:
    """Every listed file's bytes, checked against its size and sha256 (before any is parsed)."""
    out: dict[str, bytes] = {}
    for entry in manifest["files"]:
        path = folder / entry["file"]
        if not path.is_file():
            raise RouterLabError(f"{path}: missing; the bundle manifest lists it ({entry['role']})")
        data = path.read_bytes()
        if len(data) != entry["size_bytes"]:
            raise RouterLabError(f"{path}: {len(data):,} bytes, but the bundle manifest records "
                                 f"{entry['size_bytes']:,}; the file was modified after export, refusing the bundle")
        digest = sha256_bytes(data)
        if digest != entry["sha256"]:
            raise RouterLabError(f"{path}: sha256 {digest[:12]}… does not match the bundle manifest's "
                                 f"{entry['sha256'][:12]}…; the file was modified after export, refusing the bundle")
        out[entry["file"]] = data
    listed = set(out)
    strays = sorted(p.name for p in folder.iterdir() if p.suffix in MODEL_SUFFIXES and p.name not in listed)
    if strays:
        raise RouterLabError(f"{folder / strays[0]}: a model file the bundle manifest does not list; "
                             "refusing the bundle (remove it or re-export)")
    return out


class Bundle:
    """A verified bundle: the parsed policy.json and the routers it needs, ready to route."""

    def __init__(self, folder: Path, manifest: dict[str, Any], manifest_sha256: str, spec: dict[str, Any],
                 router: DeviceRouter | None, device_graph: DeviceRouter | None) -> None:
        self.folder = folder
        self.manifest = manifest
        self.sha256 = manifest_sha256  # identity of the bundle (the manifest covers every file)
        self.policy_spec = spec
        self.router = router
        self.device_graph = device_graph

    @property
    def kind(self) -> str:
        return self.policy_spec["policy"]["kind"]

    def make_policy(self) -> RoutingPolicy:
        """A fresh policy from policy.json; it calls the bundle's router for requests without a score."""
        scorer = self.score_one if self.router is not None else None
        return build_policy(self.policy_spec["policy"], scorer)

    @property
    def models(self) -> tuple[str, ...]:
        """An N-model policy's models in tier order (its ``decide`` returns a TierDecision whose
        ``tier`` indexes them); () for a two-model policy."""
        return policy_models(self.policy_spec["policy"])

    def score_one(self, request: Request) -> Any:
        """The router's score for one request: a float, or for an N-model policy the vector of
        predicted qualities (float64 [M], one per model)."""
        x = request.text if self.router.is_text else request.features
        if x is None:
            raise RouterLabError(f"{self.folder}: the router needs the request's "
                                 f"{'text' if self.router.is_text else 'features'}; got none")
        if self.models:
            return np.asarray(self.router.qualities(x), dtype=np.float64)
        return float(self.router.route(x).score)

    def score_batch(self, x: Any) -> np.ndarray:
        """The router's scores for many requests at once (float64 of the graph's float32 output;
        for an N-model policy the predicted qualities, [n, M])."""
        if self.models:
            return np.asarray(self.router.qualities(x), dtype=np.float64)
        return np.asarray(self.router.route(x).score, dtype=np.float64)


def load_bundle(path: str | Path, threads: int = 1, trusted_keys: list[Any] | None = None) -> Bundle:
    """Load and verify a bundle folder (or its manifest's path); one-line errors naming the file.
    With ``trusted_keys`` (Ed25519 public keys: PEM files or bytes) only a bundle whose manifest is
    signed by one of them loads (``router-lab export sign_key=…``)."""
    folder = Path(path)
    if folder.name == MANIFEST_FILE:
        folder = folder.parent
    manifest, raw = _read_manifest(folder)
    if trusted_keys:
        verify_signature(manifest, trusted_keys, folder / MANIFEST_FILE)
    files = _verified_files(folder, manifest)
    roles = {e["file"]: e["role"] for e in manifest["files"]}
    if roles.get(POLICY_FILE) != "policy":
        raise RouterLabError(f"{folder / MANIFEST_FILE}: lists no {POLICY_FILE} with role 'policy'")
    source = str(folder / POLICY_FILE)
    try:
        spec = json.loads(files[POLICY_FILE].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RouterLabError(f"{source}: not valid JSON ({type(exc).__name__})") from exc
    validate_spec(spec, source)
    router = graph = None
    scoring = spec["scoring"]
    if scoring["source"] == "router":
        name = scoring["file"]
        if roles.get(name) != "router":
            raise RouterLabError(f"{source}: field 'scoring.file' is {name!r}, which the bundle manifest "
                                 "does not list with role 'router'")
        router = DeviceRouter.from_bytes(files[name], str(folder / name), threads=threads)
        _check_router(router, spec, source)
    for name, role in roles.items():
        if role == "device_graph":
            graph = DeviceRouter.from_bytes(files[name], str(folder / name), threads=threads)
            _check_router(graph, spec, source)
    return Bundle(folder, manifest, sha256_bytes(raw), spec, router, graph)


def verify_signature(manifest: dict[str, Any], trusted_keys: list[Any], path: Path) -> None:
    if SIGNATURE_FIELD not in manifest:
        raise RouterLabError(f"{path}: unsigned, but trusted keys were given, so only a bundle signed "
                             "by one of them loads ('router-lab export sign_key=…')")
    from router_lab.runtime.signing import verify_bytes

    verify_bytes(signed_bytes(manifest), manifest[SIGNATURE_FIELD], list(trusted_keys), source=str(path))


def _check_router(router: DeviceRouter, spec: dict[str, Any], source: str) -> None:
    """The graph's compiled threshold and input schema must be the ones policy.json ships."""
    wanted = policy_threshold(spec["policy"])
    if wanted is not None and abs(router.threshold - wanted) > THRESHOLD_TOLERANCE:
        raise RouterLabError(f"{router.source}: compiled threshold {router.threshold!r} differs from "
                             f"{source}'s policy threshold {wanted!r}; refusing the bundle")
    models = policy_models(spec["policy"])
    if models and tuple(router.metadata.get("models") or ()) != models:
        raise RouterLabError(f"{router.source}: predicts the quality of {router.metadata.get('models')}, but "
                             f"{source}'s policy routes among {list(models)}; the files do not belong together")
    cascade = bool(innermost(spec["policy"])["params"].get("cascade", False))
    if models and cascade != runs_after_device(router.metadata.get("mode")):
        raise RouterLabError(f"{source}: field 'policy.params.cascade' is {str(cascade).lower()}, but {router.source} "
                             f"reads mode {router.metadata.get('mode')!r}; a cascade (the tier chosen after the device) "
                             "needs the device's confidence among the inputs, pre-routing must not")
    names = spec["scoring"].get("feature_names")
    if router.metadata.get("kind") == "router" and names is not None and list(names) != list(router.feature_names):
        raise RouterLabError(f"{router.source}: input features {list(router.feature_names)[:3]}… differ from "
                             f"{source}'s scoring.feature_names; the files do not belong together")
