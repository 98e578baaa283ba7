"""Routing bundles: every deployable policy ships as one; the runtime refuses a damaged one; a
simulated run replays through the bundle with 0 mismatches, in four load scenarios."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from router_lab.cli import CONF_DIR
from router_lab.config import register_configs
from router_lab.errors import RouterLabError
from router_lab.export.commands import export
from router_lab.io import atomic_write_json, sha256_bytes
from router_lab.policies.registry import POLICIES
from router_lab.runtime.bundle import MANIFEST_FILE, load_bundle
from router_lab.sim.commands import requests_frame, simulate_config
from router_lab.sim.replay import replay
from router_lab.train.artifacts import save_trained_router
from router_lab.train.fit import train_router

# every registered policy that can ship (a new one joins), plus load_aware around the confidence cascade
DEPLOYABLE = [e.name for e in POLICIES.entries() if not e.obj.upper_bound] + ["load_aware_cascade"]
POLICY_OVERRIDES = {"load_aware_cascade": ["policy=load_aware", "policy.inner.name=confidence"],
                    # N-model policies run where every model they pick has its tier (digits' edge)
                    **{e.name: [f"policy={e.name}", "deployment=three_tier"] for e in POLICIES.entries()
                       if e.meta.get("n_models")}}
SCENARIOS = {
    "normal": [],
    "overload": ["workload.rate_per_s=9", "device.queue_limit=30"],  # the device queue breaks the SLO
    "rate_limited": ["cloud.rate_limit_rpm=40"],  # 429s: load_aware backs off
    "outage": ["network=flaky"],
}
FAST_EXPORT = ["export.latency_calls=20", "export.batch_calls=1"]


def compose_cfg(datasets_dir: Path, overrides: list[str]):
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=[f"datasets_dir={datasets_dir}", *overrides])


def policy_overrides(name: str) -> list[str]:
    return POLICY_OVERRIDES.get(name, [f"policy={name}"])


@pytest.fixture(scope="module")
def routers(digits, tmp_path_factory) -> dict[str, Path]:
    """Trained digits routers (logistic) for the two modes, saved as `router-lab train` would."""
    out = {}
    for mode in ("input", "input+confidence"):
        folder = tmp_path_factory.mktemp(mode.replace("+", "_"))
        save_trained_router(train_router(digits, None, None, mode, 0), folder)
        out[mode] = folder
    return out


def export_bundle(datasets_dir: Path, routers: dict[str, Path], name: str, out: Path, *extra: str) -> Path:
    run = routers["input+confidence" if name == "learned_cascade" else "input"]
    n_models = name in POLICIES and POLICIES.entry(name).meta.get("n_models")  # fits its own quality heads
    given = [] if n_models else [f"run_dir={run}"]
    cfg = compose_cfg(datasets_dir, [*policy_overrides(name), *given, f"out={out}", *FAST_EXPORT, *extra])
    export(cfg)
    return out


@pytest.fixture(scope="module")
def bundles(datasets_dir, digits, routers, tmp_path_factory) -> dict[str, Path]:
    return {name: export_bundle(datasets_dir, routers, name, tmp_path_factory.mktemp(f"bundle_{name}"))
            for name in DEPLOYABLE}


def simulate_into(folder: Path, cfg) -> dict:  # noqa: ANN001
    runs, metrics = simulate_config(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    requests_frame(runs).to_parquet(folder / "requests.parquet", index=False)
    atomic_write_json(folder / "metrics.json", metrics)
    OmegaConf.save(cfg, folder / "config.yaml")
    return metrics


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_deployable_policy_replays_with_zero_mismatches(datasets_dir, bundles, tmp_path, scenario):
    seen_reasons: set[str] = set()
    for name, bundle_dir in bundles.items():
        deployment = [o for o in policy_overrides(name) if o.startswith("deployment=")]
        cfg = compose_cfg(datasets_dir, [f"bundle={bundle_dir}", *deployment, "sim.n_requests=2000",
                                         *SCENARIOS[scenario]])
        run = tmp_path / name
        metrics = simulate_into(run, cfg)
        assert metrics["sensitive_offloaded"] == 0
        result = replay(run, load_bundle(bundle_dir))
        assert result["n"] == 2000 and result["same_bundle"]
        assert result["mismatches"] == 0, (name, scenario, result["first_mismatch"])
        if not deployment:  # a two-model bundle names no tier (N-model ones: see test_tiers.py)
            assert result["tiers_compared"] == 0
        else:  # the N-model cascades (digits' default mode): the tier of every escalation decision compared
            assert result["tiers_compared"] > 0, (name, result)
        if "reason" in (frame := __import__("pandas").read_parquet(run / "requests.parquet")).columns:
            seen_reasons |= set(frame["reason"].astype(str))
    # the scenarios exercise the controllers they are meant to (not only the inner policy)
    expected = {"normal": {"budget", "sensitive"}, "overload": {"slo"}, "rate_limited": {"backoff"},
                "outage": {"offline"}}[scenario]
    assert expected <= seen_reasons, seen_reasons


def test_replay_catches_a_policy_that_differs_from_the_simulated_one(datasets_dir, bundles, tmp_path):
    """The check can fail: the same run replayed with other signals, or through another bundle."""
    cfg = compose_cfg(datasets_dir, [f"bundle={bundles['load_aware']}", "sim.n_requests=2000",
                                     *SCENARIOS["overload"]])
    run = tmp_path / "run"
    simulate_into(run, cfg)
    frame = __import__("pandas").read_parquet(run / "requests.parquet")
    frame["signal_local_queued"] = 0  # the device never looks busy
    frame.to_parquet(run / "requests.parquet", index=False)
    assert replay(run, load_bundle(bundles["load_aware"]))["route_mismatches"] > 0
    simulate_into(run, cfg)
    assert replay(run, load_bundle(bundles["budget"]))["mismatches"] > 0


def test_replay_catches_an_n_model_cascade_that_escalates_to_another_tier(datasets_dir, bundles, tmp_path):
    """An N-model cascade's tier is compared where it is chosen, at the escalation: a run whose
    record says the edge where the bundle escalates to the cloud (or the reverse) is a mismatch."""
    cfg = compose_cfg(datasets_dir, [f"bundle={bundles['cost_aware']}", "deployment=three_tier",
                                     "sim.n_requests=1000"])
    run = tmp_path / "run"
    simulate_into(run, cfg)
    assert replay(run, load_bundle(bundles["cost_aware"]))["mismatches"] == 0
    frame = __import__("pandas").read_parquet(run / "requests.parquet")
    escalated = frame.index[frame["decided_tier"] > 0][:5]
    assert len(escalated) == 5 and (frame.loc[escalated, "route"].astype(str) == "cascade").all()
    frame.loc[escalated, "decided_tier"] = 3 - frame.loc[escalated, "decided_tier"]  # edge <-> cloud
    frame.to_parquet(run / "requests.parquet", index=False)
    result = replay(run, load_bundle(bundles["cost_aware"]))
    assert (result["tier_mismatches"], result["route_mismatches"], result["escalation_mismatches"]) == (5, 0, 0)
    assert {result["first_mismatch"]["simulated_tier"], result["first_mismatch"]["replayed_tier"]} == {"edge", "cloud"}


def test_the_oracle_is_refused_in_one_line(cli, datasets_dir, routers) -> None:  # noqa: ANN001
    result = cli("export", f"datasets_dir={datasets_dir}", f"run_dir={routers['input']}", "policy=oracle")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "oracle" in result.stderr and "not deployable" in result.stderr


def test_a_bundle_is_byte_identical_when_exported_twice(datasets_dir, routers, tmp_path):
    a = export_bundle(datasets_dir, routers, "budget", tmp_path / "a", "policy.target_cloud_fraction=0.2")
    b = export_bundle(datasets_dir, routers, "budget", tmp_path / "b", "policy.target_cloud_fraction=0.2")
    files = json.loads((a / MANIFEST_FILE).read_text())["files"]
    assert {f["role"] for f in files} >= {"policy", "router", "model_manifest"}
    for name in [f["file"] for f in files] + [MANIFEST_FILE]:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    spec = json.loads((a / "policy.json").read_text())
    assert spec["policy"]["params"]["target_cloud_fraction"] == 0.2  # the swept value, as simulated


def test_a_swept_threshold_is_compiled_into_the_shipped_graph(datasets_dir, routers, tmp_path):
    bundle = load_bundle(export_bundle(datasets_dir, routers, "learned", tmp_path / "b", "policy.threshold=0.3"))
    assert bundle.router.threshold == 0.3 == bundle.policy_spec["policy"]["params"]["threshold"]
    assert bundle.device_graph.threshold == 0.3


def refuse(folder: Path, *fragments: str) -> None:
    with pytest.raises(RouterLabError) as info:
        load_bundle(folder)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def reforge(folder: Path) -> None:
    """Rewrite the bundle manifest to match the files (what a careless or hostile editor does)."""
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    for entry in manifest["files"]:
        data = (folder / entry["file"]).read_bytes()
        entry.update(sha256=sha256_bytes(data), size_bytes=len(data))
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))


def test_tampered_bundles_are_refused_naming_the_file(bundles, tmp_path):
    def copy() -> Path:
        target = tmp_path / f"b{len(list(tmp_path.iterdir()))}"
        shutil.copytree(bundles["learned"], target)
        return target

    b = copy()  # a flipped byte in the model
    data = bytearray((b / "router.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (b / "router.onnx").write_bytes(bytes(data))
    refuse(b, "router.onnx", "sha256")
    b = copy()  # an edited policy.json
    (b / "policy.json").write_text((b / "policy.json").read_text().replace('"learned"', '"always_cloud"', 1))
    refuse(b, "policy.json")
    b = copy()  # a threshold that the graph does not use, manifest re-forged to match
    spec = json.loads((b / "policy.json").read_text())
    spec["policy"]["params"]["threshold"] = 0.99
    (b / "policy.json").write_text(json.dumps(spec))
    reforge(b)
    refuse(b, "router.onnx", "compiled threshold")
    b = copy()  # an unknown schema version, re-forged
    spec = json.loads((b / "policy.json").read_text())
    spec["schema_version"] = 2
    (b / "policy.json").write_text(json.dumps(spec))
    reforge(b)
    refuse(b, "policy.json", "schema_version")
    b = copy()  # an unknown parameter, re-forged
    spec = json.loads((b / "policy.json").read_text())
    spec["policy"]["params"]["shadow"] = 1
    (b / "policy.json").write_text(json.dumps(spec))
    reforge(b)
    refuse(b, "policy.json", "shadow")
    b = copy()  # a missing file
    (b / "device_graph.onnx").unlink()
    refuse(b, "device_graph.onnx", "missing")
    b = copy()  # an edited manifest
    manifest = json.loads((b / MANIFEST_FILE).read_text())
    manifest["files"][0]["sha256"] = "0" * 64
    (b / MANIFEST_FILE).write_text(json.dumps(manifest))
    refuse(b, manifest["files"][0]["file"], "sha256")
    b = copy()  # a manifest that is not JSON / is gone
    (b / MANIFEST_FILE).write_text("{not json")
    refuse(b, MANIFEST_FILE)
    (b / MANIFEST_FILE).unlink()
    refuse(b, MANIFEST_FILE, "no such file")
    b = copy()  # a stray model the manifest does not cover
    shutil.copy(b / "router.onnx", b / "other.onnx")
    refuse(b, "other.onnx")
    b = copy()  # a path outside the folder
    manifest = json.loads((b / MANIFEST_FILE).read_text())
    manifest["files"][0]["file"] = "../x.onnx"
    (b / MANIFEST_FILE).write_text(json.dumps(manifest))
    refuse(b, "../x.onnx")


def test_budget_holds_its_target_under_drift_in_the_simulator_and_in_replay(datasets_dir, tmp_path):
    """10,000 requests replayed in time order while the difficulty mix drifts (synthetic, drift 1)."""
    data = ["dataset=synthetic", "dataset.name=synthetic_drift1", "dataset.n_rows=10000", "dataset.drift=1.0"]
    train_dir = tmp_path / "train"
    cfg = compose_cfg(datasets_dir, data)
    from router_lab.data.builders import resolve_dataset

    dataset = resolve_dataset(cfg.dataset, datasets_dir)
    save_trained_router(train_router(dataset, None, None, "input", 0), train_dir)
    bundle_dir = tmp_path / "bundle"
    export(compose_cfg(datasets_dir, [*data, "policy=budget", "policy.target_cloud_fraction=0.3",
                                      f"run_dir={train_dir}", f"out={bundle_dir}", *FAST_EXPORT]))
    run = tmp_path / "run"
    scenario = ["workload=trace", "workload.time_scale=0.2", "device=laptop_cpu", "sim.n_requests=10000",
                "sim.warmup_s=0"]
    simulate_into(run, compose_cfg(datasets_dir, [*data, f"bundle={bundle_dir}", *scenario]))
    frame = __import__("pandas").read_parquet(run / "requests.parquet")
    assert len(frame) == 10_000
    sent = (frame["route"] == "cloud").to_numpy()
    assert abs(sent.mean() - 0.3) <= 0.02
    for quarter in np.array_split(sent, 4):  # and through the drift, not only on average
        assert abs(quarter.mean() - 0.3) <= 0.02
    assert replay(run, load_bundle(bundle_dir))["mismatches"] == 0
    # the drift is real: the learned policy's fixed threshold does not hold it
    learned_run = tmp_path / "learned"
    simulate_into(learned_run, compose_cfg(datasets_dir, [*data, "policy=learned", f"model_path={train_dir}",
                                                          "policy.model_path=" + str(train_dir), *scenario]))
    fixed = (__import__("pandas").read_parquet(learned_run / "requests.parquet")["route"] == "cloud").to_numpy()
    assert abs(np.array_split(fixed, 4)[-1].mean() - 0.3) > 0.05


def test_replay_runs_in_a_fresh_process_and_exits_2_on_a_mismatch(cli, datasets_dir, bundles, tmp_path):  # noqa: ANN001
    run = tmp_path / "run"
    simulate_into(run, compose_cfg(datasets_dir, [f"bundle={bundles['load_aware']}", "sim.n_requests=1000",
                                                  *SCENARIOS["overload"]]))
    ok = cli("replay", str(run), f"bundle={bundles['load_aware']}", f"out={tmp_path / 'ok.json'}")
    assert ok.returncode == 0, ok.stderr
    assert json.loads((tmp_path / "ok.json").read_text())["mismatches"] == 0
    bad = cli("replay", str(run), f"bundle={bundles['always_cloud']}", f"out={tmp_path / 'bad.json'}")
    assert bad.returncode == 2 and "differ" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert json.loads((tmp_path / "bad.json").read_text())["mismatches"] > 0


def test_a_bundle_routes_with_only_numpy_onnxruntime_and_the_stdlib_under_lang_c(bundles, digits):
    import subprocess
    import sys

    x = digits.features(tuple(digits.feature_columns)).astype(np.float32)[0].tolist()
    code = (
        "import sys, numpy as np\n"
        "from router_lab.runtime import Request, Signals, Outcome, load_bundle\n"
        "routes = []\n"
        f"for folder in {[str(bundles[n]) for n in ('learned', 'budget', 'load_aware', 'random')]!r}:\n"
        "    policy = load_bundle(folder).make_policy()\n"
        f"    d = policy.decide(Request(features=np.array({x!r}, dtype=np.float32)), Signals(now_s=1.0))\n"
        "    policy.observe(Outcome(2.0, 10.0, 'local'))\n"
        "    routes.append(d.route.name)\n"
        "top = {m.split('.')[0] for m in sys.modules}\n"
        "print(' '.join(sorted(top - set(sys.stdlib_module_names) - {'__main__'})), len(routes))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "LANG": "C", "LC_ALL": "C"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    modules, count = out.stdout.split()[:-1], out.stdout.split()[-1]
    assert count == "4"
    # besides numpy and onnxruntime (and their compiled helpers), only the interpreter's site hooks
    allowed = {"numpy", "onnxruntime", "router_lab", "cython_runtime", "_distutils_hack"}
    others = [m for m in modules if m not in allowed and not m.startswith(("_cython_", "__editable__"))]
    assert others == [], others


def test_a_signed_bundle_loads_only_with_its_key(datasets_dir, routers, tmp_path):
    from router_lab.runtime.signing import generate_keypair

    private, public = generate_keypair(tmp_path / "keys")
    other_private, other_public = generate_keypair(tmp_path / "other")
    signed = export_bundle(datasets_dir, routers, "budget", tmp_path / "signed", f"sign_key={private}")
    assert load_bundle(signed, trusted_keys=[public]).kind == "budget"
    refuse_keys = [(signed, [other_public], MANIFEST_FILE)]
    unsigned = export_bundle(datasets_dir, routers, "budget", tmp_path / "unsigned")
    refuse_keys.append((unsigned, [public], "unsigned"))
    tampered = tmp_path / "tampered"
    shutil.copytree(signed, tampered)
    spec = json.loads((tampered / "policy.json").read_text())
    spec["policy"]["params"]["target_cloud_fraction"] = 0.9
    (tampered / "policy.json").write_text(json.dumps(spec))
    manifest = json.loads((tampered / MANIFEST_FILE).read_text())
    for entry in manifest["files"]:  # re-forged hashes: only the signature can tell
        data = (tampered / entry["file"]).read_bytes()
        entry.update(sha256=sha256_bytes(data), size_bytes=len(data))
    (tampered / MANIFEST_FILE).write_text(json.dumps(manifest))
    refuse_keys.append((tampered, [public], MANIFEST_FILE))
    for folder, keys, fragment in refuse_keys:
        with pytest.raises(RouterLabError, match=fragment):
            load_bundle(folder, trusted_keys=keys)
    assert load_bundle(tampered).kind == "budget"  # without keys: whole and consistent, so it loads
