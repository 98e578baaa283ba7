"""Assembling a routing bundle: policy.json, the model files the policy needs, one manifest.

The policy comes from the same `policy` group and keys as `simulate`, resolved against the same
scenario groups (the SLO, the device's units and service time) and the same seed derivation as a
simulation's first replication, so what a sweep recommended is what the bundle ships.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

import router_lab
from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError
from router_lab.io import atomic_write_bytes, dumps_json, sha256_bytes
from router_lab.runtime.bundle import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    MANIFEST_FILE,
    POLICY_FILE,
    SIGNATURE_FIELD,
    signed_bytes,
)
from router_lab.runtime.spec import (
    POLICY_FORMAT,
    POLICY_SCHEMA_VERSION,
    score_source,
    validate_spec,
)


def needs_router(policy_cfg: Any) -> bool:
    """Whether the configured policy scores with a trained router (load_aware: its inner's)."""
    from router_lab.policies.registry import router_policies

    name = policy_cfg.name
    if name == "load_aware":
        inner = policy_cfg.inner
        return (inner if isinstance(inner, str) else inner.name) in router_policies()
    return name in router_policies()


def refuse_upper_bounds(policy_cfg: Any) -> None:
    """An upper-bound policy (the oracle) needs the answers: refused before any work is done."""
    from router_lab.policies.registry import POLICIES

    names = [policy_cfg.name]
    if policy_cfg.name == "load_aware":
        inner = policy_cfg.inner
        names.append(inner if isinstance(inner, str) else inner.name)
    for name in names:
        cls = POLICIES.get(name) if name in POLICIES else None
        if cls is not None and cls.upper_bound:
            deployable = [e.name for e in POLICIES.entries() if not e.obj.upper_bound]
            raise RouterLabError(f"policy {name}: not deployable (it needs the answers); expected one of "
                                 f"{', '.join(deployable)}")


def configured_policy_for_export(cfg: DictConfig, dataset: Dataset, router: Any):  # noqa: ANN201
    """The configured policy, built as `simulate` builds it for its first replication."""
    from router_lab.policies.registry import make_policy
    from router_lab.sim.commands import policy_context, replication_seeds
    from router_lab.sim.scenario import scenario_from_config

    scenario = scenario_from_config(cfg)
    policy_seed, _ = replication_seeds(int(cfg.seed), 1)[0]
    return make_policy(cfg.policy, policy_context(scenario, dataset, policy_seed, router=router, cfg=cfg))


def policy_document(node: dict[str, Any], router_file: str | None, spec: Any, cfg: DictConfig,
                    source: Path | None, dataset: Dataset) -> dict[str, Any]:
    """policy.json: the node, what scores it, and where the numbers came from (no timestamps)."""
    scoring: dict[str, Any] = {"source": score_source(node)}
    if scoring["source"] == "router":
        scoring.update(file=router_file, mode=spec.mode,
                       input_dtype="string" if spec.mode == "text" else "float32",
                       feature_names=["text"] if spec.mode == "text" else list(spec.feature_columns))
    elif scoring["source"] == "device_confidence":
        scoring["column"] = str(OmegaConf.select(cfg, "policy.column", default="device_confidence"))
    provenance = {
        "router_lab_version": router_lab.__version__,
        "policy_config": OmegaConf.to_container(cfg.policy, resolve=True),
        "scenario": {"device_units": int(cfg.device.units), "device_service_mean_ms": float(cfg.device.service_mean_ms),
                     "slo_ms": None if cfg.sim.slo_ms is None else float(cfg.sim.slo_ms)},
        "seed": int(cfg.seed),
        "dataset_name": dataset.name, "dataset_hash": str(dataset.card.get("content_hash", "")),
    }
    if spec is not None:  # the router: a `router-lab train` run's, or fitted by the policy (N-model)
        if source is not None:
            provenance["train_run"] = str(source)
        else:
            provenance["router_source"] = "fitted by the policy at export, on its train split"
        provenance.update(estimator=spec.estimator_name, target=spec.target, router_dataset_hash=spec.dataset_hash)
    document = {"format": POLICY_FORMAT, "schema_version": POLICY_SCHEMA_VERSION, "policy": node,
                "scoring": scoring, "provenance": provenance}
    return validate_spec(document, POLICY_FILE)


def write_bundle(folder: Path, files: dict[str, tuple[bytes, str]], sign_key: Path | None = None) -> Path:
    """Write every file (name -> (bytes, role)), then the manifest that covers them, last; with
    ``sign_key`` the manifest carries an Ed25519 signature over its canonical content."""
    entries = []
    for name in sorted(files):
        data, role = files[name]
        atomic_write_bytes(folder / name, data)
        entries.append({"file": name, "role": role, "sha256": sha256_bytes(data), "size_bytes": len(data)})
    manifest: dict[str, Any] = {"format": BUNDLE_FORMAT, "bundle_version": BUNDLE_VERSION, "files": entries}
    if sign_key is not None:
        from router_lab.runtime.signing import sign_bytes

        manifest[SIGNATURE_FIELD] = sign_bytes(signed_bytes(manifest), sign_key)
    atomic_write_bytes(folder / MANIFEST_FILE, json_bytes(manifest))
    return folder / MANIFEST_FILE


def json_bytes(obj: Any) -> bytes:
    return dumps_json(obj).encode("utf-8")
