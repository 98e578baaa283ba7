"""`router-lab simulate`: build the scenario, dataset and policy from the config, run, summarise.

``simulate_config(cfg)`` is the library entry (no files written); ``simulate(cfg)`` is the CLI
handler that also writes ``metrics.json`` and ``requests.parquet`` into the run folder.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra.utils import to_absolute_path
from omegaconf import OmegaConf, open_dict

from router_lab import metric_catalogue as catalogue
from router_lab.constants import METRICS_FILE, REQUESTS_FILE
from router_lab.data.builders import resolve_dataset
from router_lab.data.commands import datasets_dir
from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError
from router_lab.io import atomic_path, atomic_write_json, run_dir
from router_lab.policies.base import Policy, PolicyContext
from router_lab.policies.bundled import BundlePolicy
from router_lab.policies.registry import (
    EXPORTED_ROUTER_KEYS,
    POLICIES,
    make_policy,
    router_policies,
)
from router_lab.runtime.bundle import Bundle, load_bundle
from router_lab.sim.engines import run
from router_lab.sim.metrics import summarize
from router_lab.sim.records import Records
from router_lab.sim.scenario import Scenario, scenario_from_config
from router_lab.sim.tiers import with_every_model


def policy_context(scenario: Scenario, dataset: Dataset, seed: Any, router: Any = None,
                   cfg: Any = None) -> PolicyContext:
    """What a policy is configured from: the dataset, a seeded generator, the scenario's SLO and
    device (a load-aware policy ships the device's units and mean service time), and the run's
    `router` / `target` groups (what a policy given no trained router trains)."""
    return PolicyContext(dataset, np.random.default_rng(seed), router=router, slo_ms=scenario.sim.slo_ms,
                         device_units=scenario.device.units, device_service_ms=scenario.device.service_mean_ms,
                         router_cfg=OmegaConf.select(cfg, "router", default=None) if cfg is not None else None,
                         target_cfg=OmegaConf.select(cfg, "target", default=None) if cfg is not None else None)


def configured_policy(policy_cfg: Any, context: PolicyContext, bundle: Bundle | None = None) -> Policy:
    """The run's policy: the bundle as shipped (``bundle=PATH``), else the `policy` group's."""
    if bundle is not None:
        return BundlePolicy(context, bundle)
    return make_policy(policy_cfg, context)


def load_configured_bundle(cfg: Any, scenario: Scenario | None = None) -> Bundle | None:
    given = OmegaConf.select(cfg, "bundle", default=None)
    if not given:
        return None
    bundle = load_bundle(to_absolute_path(str(given)))
    if scenario is not None:
        warn_if_exported_for_another_device(bundle, scenario)
    return bundle


def warn_if_exported_for_another_device(bundle: Bundle, scenario: Scenario) -> None:
    """A load-aware bundle predicts the device's wait with the device it was exported for; say so
    when the simulated device differs (the bundle runs as shipped, which may be the point)."""
    node = bundle.policy_spec["policy"]
    if node["kind"] != "load_aware":
        return
    p, d = node["params"], scenario.device
    if (p["units"], p["service_ms"]) != (d.units, d.service_mean_ms):
        print(f"note: the bundle's load_aware policy assumes a device of {p['units']} unit(s) at "
              f"{p['service_ms']:g} ms; this scenario's device has {d.units} at {d.service_mean_ms:g} ms "
              "(export with the same device=… to match)", file=sys.stderr)


def replication_seeds(seed: int, replications: int) -> list[tuple[np.random.SeedSequence, np.random.SeedSequence]]:
    """(policy seed, simulation seed) per replication; replication 0's policy seed is also the one
    `router-lab export` builds a policy with, so an exported random policy draws the same coins."""
    return [tuple(r.spawn(2)) for r in np.random.SeedSequence(int(seed)).spawn(replications)]


def policy_config(cfg: Any) -> Any:
    """``cfg.policy``, with the top-level ``model_path`` (if given) as its trained router's path
    (for ``load_aware``, its inner policy's) — an error for a policy that uses no trained router —
    and the top-level exported routers (``router_onnx``, ``cascade_onnx``) as its scorer."""
    return with_exported_router(cfg, with_model_path(cfg))


def _router_node(policy: Any) -> Any:
    """The node of a policy config that names the router: the policy's, or load_aware's inner one."""
    if str(policy.get("name")) == "load_aware":
        if isinstance(policy.get("inner"), str):
            policy.inner = {"name": policy.inner}
        return policy.inner
    return policy


def with_exported_router(cfg: Any, policy: Any) -> Any:
    """``policy`` scoring with the exported router the top-level ``router_onnx`` / ``cascade_onnx``
    names (the one its registry entry's ``exported_router`` says), when the command line gives
    one: ``backend=onnx`` and ``onnx_path`` set, unless the policy's config set an ``onnx_path``
    itself.  This is how ``+experiment=compare_policies_onnx`` scores every router policy through
    what ships, with nothing per policy to write: it applies to a router policy whose schema has
    ``backend`` and ``onnx_path`` (the others run as configured)."""
    given = {key: OmegaConf.select(cfg, key, default=None) for key in EXPORTED_ROUTER_KEYS} \
        if OmegaConf.is_config(cfg) else {}
    if not any(given.values()):
        return policy
    policy = OmegaConf.create(OmegaConf.to_container(policy, resolve=True))
    node = _router_node(policy)
    name = str(node.get("name"))
    if name not in POLICIES or not POLICIES.entry(name).meta.get("uses_router"):
        return policy
    schema = POLICIES.entry(name).schema
    if schema is None or not {"backend", "onnx_path"} <= {f.name for f in dataclasses.fields(schema)}:
        return policy
    if node.get("onnx_path"):
        return policy
    key = POLICIES.entry(name).meta.get("exported_router", "router_onnx")
    if not given.get(key):
        other = next(k for k in EXPORTED_ROUTER_KEYS if k != key)
        raise RouterLabError(f"{key}: policy {name} scores with the router {key} names; got only "
                             f"{other}={given[other]} (give {key}=PATH/router.onnx too)")
    node.backend = "onnx"
    node.onnx_path = str(given[key])
    return policy


def with_model_path(cfg: Any) -> Any:
    """``cfg.policy`` with the top-level ``model_path`` as its trained router's path (an N-model
    policy's quality heads come in through its context instead: :func:`quality_router`)."""
    path = OmegaConf.select(cfg, "model_path", default=None) if OmegaConf.is_config(cfg) else None
    if not path:
        return cfg.policy
    if not Path(to_absolute_path(str(path))).exists():
        raise RouterLabError(f"model_path={path}: no such file or folder; expected a 'router-lab "
                             "train' run folder or its router.json")
    if n_model_policy(cfg.policy):  # its quality heads come in through the context (quality_router)
        quality_router_path(cfg)
        return cfg.policy
    policy = OmegaConf.create(OmegaConf.to_container(cfg.policy, resolve=True))
    node = _router_node(policy)
    if str(node.get("name")) not in router_policies():
        raise RouterLabError(f"model_path: policy {policy.get('name')!r} uses no trained router; drop "
                             f"model_path or choose a learned policy ({', '.join(router_policies())}, "
                             "load_aware)")
    if node.get("model_path") not in (None, path):
        raise RouterLabError(f"model_path={path} and policy.model_path={node.get('model_path')}: "
                             "expected one router")
    node.model_path = str(path)
    return policy


def n_model_policy(policy: Any) -> bool:
    """Whether the `policy` config names an N-model policy (cost_aware, tier_cascade)."""
    name = str(policy.get("name")) if policy is not None else ""
    return name in POLICIES and bool(POLICIES.entry(name).meta.get("n_models"))


def quality_router_path(cfg: Any) -> Path | None:
    """The folder of the per-model quality heads the top-level ``model_path`` names, for an N-model
    policy (checked to be one; None without ``model_path`` or for another policy)."""
    path = OmegaConf.select(cfg, "model_path", default=None) if OmegaConf.is_config(cfg) else None
    if not path or not n_model_policy(cfg.policy):
        return None
    from router_lab.train.quality_files import is_quality_router

    full = Path(to_absolute_path(str(path)))
    if not is_quality_router(full):
        raise RouterLabError(f"model_path={path}: policy {cfg.policy.name} needs per-model quality heads; "
                             "expected a 'router-lab train train.per_model=true' run folder")
    return full


def quality_router(cfg: Any) -> Any:
    """The trained per-model quality router the top-level ``model_path`` names, for an N-model
    policy (None without one: the policy then fits its own heads on the train split)."""
    from router_lab.train.quality_files import load_quality_router

    path = quality_router_path(cfg)
    return None if path is None else load_quality_router(path)


def shipped_node(policy: Policy) -> dict[str, Any] | None:
    """The policy.json node the first replication's policy ran (the one `router-lab export` ships
    for the same config: the λ or threshold chosen on val, the cascade flag, ...); None for a
    policy that does not ship (the oracle)."""
    try:
        return json.loads(json.dumps(policy.node()))
    except RouterLabError:
        return None


def simulate_config(cfg: Any) -> tuple[list[Records], dict[str, Any]]:
    """Run every replication of the configured simulation; return their records and the metrics."""
    scenario = scenario_from_config(cfg)
    policy_cfg = policy_config(cfg)
    dataset = resolve_dataset(cfg.dataset, datasets_dir(cfg))
    scenario = with_every_model(scenario, dataset)  # deployment=every_model: a tier per remote model
    bundle = load_configured_bundle(cfg, scenario)
    router = quality_router(cfg)
    runs, shipped = [], None
    for k, (policy_seed, sim_seed) in enumerate(replication_seeds(int(cfg.seed), scenario.sim.replications)):
        policy = configured_policy(policy_cfg, policy_context(scenario, dataset, policy_seed, router, cfg=cfg),
                                   bundle)
        runs.append(run(scenario, policy, dataset, sim_seed, progress=scenario.sim.progress))
        shipped = shipped_node(policy) if k == 0 else shipped
    # An upper bound (the oracle) needs the answers: the report shows it, never recommends it.
    extra = {"upper_bound": bool(policy.upper_bound), "shipped_policy": shipped}
    if bundle is not None:
        extra["bundle_sha256"] = bundle.sha256
    return runs, {**summarize(runs, scenario), **extra}


def requests_frame(runs: list[Records]) -> pd.DataFrame:
    frames = [r.to_frame() for r in runs]
    for k, frame in enumerate(frames):
        frame.insert(0, "replication", np.full(len(frame), k, dtype=np.int16))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def format_summary(m: dict[str, Any]) -> str:
    """The short table `simulate` prints (each value in its catalogue format)."""
    def v(key: str) -> str:
        return catalogue.metric(key).text(m[key])

    def ci(key: str) -> str:
        lo, hi = m["ci95"].get(key) or (None, None)
        return "" if lo is None else f"  (95% CI {catalogue.metric(key).text(lo)} – {catalogue.metric(key).text(hi)})"

    lines = [
        f"simulate: {v('n_requests')} measured requests ({m['replications']} replication(s), engine {m['engine']})",
        f"  accuracy            {v('accuracy')}{ci('accuracy')}",
        f"  latency mean/p95/p99 {v('latency_mean_ms')} / {v('latency_p95_ms')} / "
        f"{v('latency_p99_ms')} ms{ci('latency_mean_ms')}",
        f"  SLO miss (>{m['slo_ms']:g} ms) {v('slo_miss_rate')}",
        f"  cloud fraction      {v('cloud_fraction')}   cost/1k {v('cost_per_1k_usd')} USD",
        f"  energy/request      {v('energy_per_request_j')} J   utilisation device "
        f"{v('device_utilization')}, cloud {v('cloud_utilization')}",
        f"  fallbacks {v('fallbacks')}  rejections {v('rejections')}  failures {v('failures')}  "
        f"off-device bytes {v('offdevice_bytes')}  sensitive offloaded {v('sensitive_offloaded')}",
    ]
    return "\n".join(lines)


def effective_config(cfg: Any) -> Any:
    """``cfg`` with its policy as it runs (``policy_config``: the top-level ``model_path``,
    ``router_onnx`` and ``cascade_onnx`` written into it), for the job's config.yaml."""
    policy = policy_config(cfg)
    if policy is not cfg.policy:
        with open_dict(cfg):
            cfg.policy = policy
    return cfg


def simulate(cfg: Any) -> dict[str, Any]:
    """CLI handler: run, write metrics.json and requests.parquet atomically, print a short table."""
    runs, metrics = simulate_config(cfg)
    out = run_dir()
    with atomic_path(out / REQUESTS_FILE) as tmp:
        requests_frame(runs).to_parquet(tmp, index=False)
    atomic_write_json(out / METRICS_FILE, metrics)
    print(format_summary(metrics))
    print(f"  wrote {out / METRICS_FILE} and {out / REQUESTS_FILE}")
    return metrics


simulate.effective_config = effective_config  # read by report.jobs.run_job before config.yaml is written
