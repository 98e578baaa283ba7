"""The checks every registered policy passes (scikit-learn's ``parametrize_with_checks`` idea).

``tests/test_conformance.py`` runs them for every entry of the policy registry, and
``tests/test_extending.py`` for the throw-away policy that ``docs/extending.md`` registers: a new
policy is tested by registering it.  Each check is one function taking a :class:`Bench` (the small
shared dataset, trained routers and config composer) and the policy's name.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

from router_lab.config import CONF_DIR, all_schemas, register_configs
from router_lab.data.builders import build_dataset
from router_lab.data.config import SyntheticConfig
from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError
from router_lab.export.bundle import needs_router
from router_lab.export.commands import export
from router_lab.io import atomic_write_json
from router_lab.policies.base import PolicyContext, Route
from router_lab.policies.config import PolicyConfig
from router_lab.policies.registry import POLICIES, make_policy
from router_lab.registry import schema_defaults
from router_lab.report.progress import sweep_job_overrides
from router_lab.runtime.bundle import load_bundle
from router_lab.runtime.policy import Signals
from router_lab.sim.commands import requests_frame, simulate_config
from router_lab.sim.replay import replay
from router_lab.train.artifacts import save_trained_router
from router_lab.train.fit import train_router

N_ROWS = 600  # the synthetic dataset every check uses (25 sensitive rows at seed 0)
N_REQUESTS = 300  # per simulated run
FAST_EXPORT = ["export.latency_calls=20", "export.batch_calls=1", "export.batch_rows=50",
               "export.sklearn_latency_calls=0"]
OVERLOADED = Signals(local_in_flight=1, local_queued=50)
DATASET = ["dataset=synthetic", "dataset.name=conformance", f"dataset.n_rows={N_ROWS}"]


@dataclass
class Bench:
    """What the checks share: the dataset (built once), routers trained on it per feature mode."""

    datasets_dir: Path
    dataset: Dataset
    routers: dict[str, Path]  # feature mode -> a `router-lab train`-like folder

    def compose(self, *overrides: str, policy: dict[str, Any] | None = None) -> Any:
        """The composed config of the conformance scenario; ``policy`` replaces the policy node
        (a throw-away policy has no config file to select)."""
        register_configs()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=[f"datasets_dir={self.datasets_dir}", *DATASET,
                                               f"sim.n_requests={N_REQUESTS}", "sim.warmup_s=0", *overrides])
        if policy is not None:
            with open_dict(cfg):
                cfg.policy = OmegaConf.create(policy)
        return cfg

    def context(self, seed: int = 0) -> PolicyContext:
        return PolicyContext(self.dataset, np.random.default_rng(seed), slo_ms=200.0, device_units=1,
                             device_service_ms=50.0)

    def router_for(self, name: str) -> Path:
        """The trained router a policy scores with: one of the mode its class defaults to."""
        cls = POLICIES.get(name)
        return self.routers.get(getattr(cls, "default_mode", "input"), self.routers["input"])


def policy_node(name: str) -> dict[str, Any]:
    """The policy's config as its config file composes it: the name and the schema's defaults."""
    return {"name": name, **POLICIES.entry(name).defaults()}


def check_schema_holds_every_default(bench: Bench, name: str) -> None:
    """Every parameter of the policy's ``__init__`` is a field of its schema, with the default
    there and not in ``__init__`` (defaults live in one place)."""
    entry = POLICIES.entry(name)
    schema = entry.schema or PolicyConfig
    assert dataclasses.is_dataclass(schema), f"policy {name}: schema {schema!r} is not a dataclass"
    fields = {f.name for f in dataclasses.fields(schema)}
    params = [p for p in inspect.signature(entry.obj.__init__).parameters.values()
              if p.name not in ("self", "context")]
    missing = [p.name for p in params if p.name not in fields]
    assert not missing, f"policy {name}: __init__ parameters {missing} are not fields of {schema.__name__}"
    repeated = [p.name for p in params if p.default is not inspect.Parameter.empty]
    assert not repeated, (f"policy {name}: __init__ repeats the defaults of {repeated}; they belong in "
                          f"{schema.__name__} only")
    assert set(schema_defaults(schema)) >= {p.name for p in params}, f"policy {name}: a field has no default"


def check_offline(bench: Bench, name: str) -> None:
    """decide_batch runs; sensitive requests never leave (routes, escalations, the offline sweep);
    the same seed gives the same decisions and the same shipped node."""
    rows = np.arange(len(bench.dataset))
    sensitive = bench.dataset.frame["sensitive"].to_numpy().astype(bool)
    assert sensitive.any()
    policy = make_policy(OmegaConf.create(policy_node(name)), bench.context(0))
    routes = policy.decide_batch(rows)
    assert len(routes) == len(rows)
    assert (routes[sensitive] == Route.LOCAL).all(), f"policy {name} sends a sensitive request"
    assert not policy.escalate(rows[sensitive]).any(), f"policy {name} escalates a sensitive request"
    assert not policy.offline_cloud(rows)[sensitive].any(), f"policy {name} offloads a sensitive row offline"
    for row in rows[sensitive][:20]:  # one by one, idle or swamped: the runtime core pins them too
        for state in (Signals(), OVERLOADED):
            decision = policy.core.decide(policy.request(int(row), True), state)
            assert decision.route == Route.LOCAL and decision.reason == "sensitive", (name, row, state)
    # a request flagged sensitive at run time stays local too, even when the device is swamped
    free_row = int(np.flatnonzero(~sensitive)[0])
    assert policy.core.decide(policy.request(free_row, True), OVERLOADED).route == Route.LOCAL, name
    again = make_policy(OmegaConf.create(policy_node(name)), bench.context(0))
    np.testing.assert_array_equal(again.decide_batch(rows), routes)
    if not policy.upper_bound:
        assert again.node() == policy.node(), f"policy {name}: the node differs for the same seed"


def _simulate(cfg: Any) -> tuple[pd.DataFrame, dict[str, Any]]:
    runs, metrics = simulate_config(cfg)
    return requests_frame(runs), metrics


def check_engines(bench: Bench, name: str) -> None:
    """The simpy engine (always) and the fast path (for a stateless policy): no sensitive request
    offloaded, every request accounted for, and the same records for the same seed."""
    policy = make_policy(OmegaConf.create(policy_node(name)), bench.context(0))
    engines = ["simpy", "fast"] if policy.stateless else ["simpy"]
    for engine in engines:
        cfg = bench.compose(f"sim.engine={engine}", policy=policy_node(name))
        frame, metrics = _simulate(cfg)
        assert metrics["sensitive_offloaded"] == 0, (name, engine)
        assert len(frame) == N_REQUESTS, (name, engine)
        if engine == "simpy":  # determinism of the records (the fast path equals simpy: test_sim_properties)
            again, _ = _simulate(cfg)
            pd.testing.assert_frame_equal(frame, again, obj=f"{name} on {engine}, same seed")


def check_export_and_replay(bench: Bench, name: str, out: Path) -> None:
    """An upper bound is refused in one line; any other policy exports as a bundle, and a run
    simulated through that bundle replays through it with 0 mismatches."""
    cfg = bench.compose(f"out={out / 'bundle'}", *FAST_EXPORT, policy=policy_node(name))
    if needs_router(cfg.policy):  # it (or, for load_aware, its inner policy) scores with a router
        with open_dict(cfg):
            cfg.run_dir = str(bench.router_for(name))
    if POLICIES.get(name).upper_bound:
        with pytest.raises(RouterLabError) as info:
            export(cfg)
        assert "\n" not in str(info.value) and name in str(info.value) and "not deployable" in str(info.value)
        assert not (out / "bundle").exists()
        return
    export(cfg)
    bundle = load_bundle(out / "bundle")
    run = out / "run"
    cfg = bench.compose(f"bundle={out / 'bundle'}")
    runs, metrics = simulate_config(cfg)
    assert metrics["sensitive_offloaded"] == 0
    run.mkdir(parents=True)
    requests_frame(runs).to_parquet(run / "requests.parquet", index=False)
    atomic_write_json(run / "metrics.json", metrics)
    OmegaConf.save(cfg, run / "config.yaml")
    result = replay(run, bundle, datasets_dir=str(bench.datasets_dir))
    assert result["n"] == N_REQUESTS and result["mismatches"] == 0, (name, result.get("first_mismatch"))


POLICY_CHECKS = (check_schema_holds_every_default, check_offline, check_engines)


def run_policy_checks(bench: Bench, name: str, out: Path) -> None:
    """Every check, in order (what a new policy passes to join the comparisons)."""
    for check in POLICY_CHECKS:
        check(bench, name)
    check_export_and_replay(bench, name, out)


# -- completeness: the files a registered entry needs ---------------------------------------------
REPO_CONF = CONF_DIR.relative_to(CONF_DIR.parent.parent)  # router_lab/conf, for messages
COMPARISONS = ("compare_policies", "compare_policies_onnx")


def conf_file(group: str, name: str) -> Path:
    path = CONF_DIR / group / f"{name}.yaml"
    assert path.is_file(), f"{REPO_CONF}/{group}/{name}.yaml is missing: every registered {group} needs its config file"
    return path


def defaults_of(path: Path) -> list[str]:
    entries = (yaml.safe_load(path.read_text()) or {}).get("defaults", [])
    return [d if isinstance(d, str) else next(iter(d)) for d in entries]


@functools.cache
def composed(group: str, option: str) -> Any:
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=[f"{group}={option}"])


@functools.cache
def swept_policies(preset: str) -> frozenset[str]:
    """The policies a comparison preset's sweep runs (its jobs' policy choices)."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        sweep = compose("config", overrides=[f"+experiment={preset}"], return_hydra_config=True)
        jobs = sweep_job_overrides(sweep)
    policies = {o.split("=", 1)[1] for job in jobs for o in job if o.split("=", 1)[0] == "policy"}
    arms = {o.split("=", 1)[1] for job in jobs for o in job if o.startswith("+experiment/tier_arm=")}
    return frozenset(policies | {composed("+experiment/tier_arm", arm).policy.name for arm in arms})


def check_policy_files(name: str) -> None:
    """conf/policy/<name>.yaml naming the policy's schema, the schema in Hydra's ConfigStore, and
    both comparisons (compare_policies, compare_policies_onnx) sweeping it."""
    entry = POLICIES.entry(name)
    path = conf_file("policy", name)
    schema = entry.schema or PolicyConfig
    expected = "schema_policy" if schema is PolicyConfig else f"schema_{name}"
    assert expected in defaults_of(path), f"{REPO_CONF}/policy/{name}.yaml: its defaults list must name {expected}"
    assert (expected, schema) in [(n, s) for g, n, s in all_schemas() if g == "policy"], \
        f"policy {name}: {expected} is not in Hydra's ConfigStore"
    assert composed("policy", name).policy.name == name, path
    n_models = bool(entry.meta.get("n_models"))
    for preset in COMPARISONS:  # the two-model comparisons: every two-model policy, no N-model one
        swept = name in swept_policies(preset)
        assert swept != n_models, (f"{REPO_CONF}/experiment/{preset}.yaml: policy {name} "
                                   + ("is an N-model policy; exclude it" if n_models else "is not swept"))
    if n_models:
        assert name in swept_policies("tiers"), f"{REPO_CONF}/experiment/tier_arm/: no arm runs policy {name}"


def make_bench(datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Bench:
    """The small synthetic dataset (built once) and a logistic router per feature mode."""
    dataset = build_dataset(SyntheticConfig(name="conformance", n_rows=N_ROWS), datasets_dir)
    routers = {}
    for mode in ("input", "input+confidence"):
        folder = tmp_path_factory.mktemp(f"conformance_{mode.replace('+', '_')}")
        save_trained_router(train_router(dataset, None, None, mode, 0), folder)
        routers[mode] = folder
    return Bench(datasets_dir, dataset, routers)
