"""Config hygiene: '+' keys in typed sections are typos, documented top-level keys are honoured or
refused, numbers are finite and in range, and `simulate model_path=…` really uses that router."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from router_lab.config import register_configs
from router_lab.config_checks import TOP_LEVEL_KEYS, check_config
from router_lab.errors import RouterLabError
from router_lab.sim.commands import policy_config, simulate_config
from router_lab.train.artifacts import save_trained_router
from router_lab.train.fit import train_router

CONF = Path(__file__).resolve().parent.parent / "router_lab" / "conf"
COMMANDS = ("dataset_build", "dataset_check", "dataset_import", "train", "evaluate", "simulate",
            "export", "validate", "report", "keygen")


def composed(command: str, *overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=[f"command={command}", *overrides])


def check(command: str, *overrides: str) -> None:
    check_config(composed(command, *overrides), list(overrides))


@pytest.mark.parametrize("override", ["+sim.n_request=100", "+train.foo=1", "+export.x=1",
                                      "++sim.n_request=5", "+device.speed=2", "+network.lag_ms=3",
                                      "+report.colour=red", "+router.foo=1", "+target.bar=0.5"])
def test_appended_keys_in_typed_sections_are_refused_like_typos(override) -> None:
    key = override.lstrip("+").split("=")[0]
    with pytest.raises(RouterLabError, match=rf"^{key}: no such key in {key.split('.')[0]} ") as info:
        check("simulate", override)
    assert "expected one of" in str(info.value)


def test_appended_experiment_and_resume_are_still_accepted() -> None:
    check("simulate", "+experiment=compare_policies", "+resume=true")


@pytest.mark.parametrize(("override", "expected"), [
    ("+seeds=3", "seeds: no such top-level key; a key appended with '+' is not read by anything (did you mean seed?)"),
    ("+model_paths=x", "model_paths: no such top-level key; a key appended with '+' is not read by anything (did you mean model_path?)"),
    ("++zzz=1", "zzz: no such top-level key; a key appended with '+' is not read by anything (expected one of: bundle,"),
])
def test_appended_top_level_keys_nothing_reads_are_refused(override, expected) -> None:
    with pytest.raises(RouterLabError) as info:
        check("simulate", override)
    assert str(info.value).startswith(expected)


def test_the_onnx_presets_router_paths_are_plain_top_level_keys() -> None:
    # compare_policies_onnx's router policies score with the files these keys name
    check("simulate", "+experiment=compare_policies_onnx", "router_onnx=a.onnx", "cascade_onnx=b.onnx")
    with pytest.raises(RouterLabError, match="^router_onnx: 'train' does not use this key"):
        check("train", "router_onnx=a.onnx")


@pytest.fixture(scope="module")
def defaults() -> dict:
    return {command: composed(command) for command in COMMANDS}


@pytest.mark.parametrize("key", sorted(TOP_LEVEL_KEYS))
def test_each_documented_top_level_key_is_honoured_or_refused_per_command(key, defaults) -> None:
    value = "1" if key == "seed" else "somewhere"
    for command in COMMANDS:  # the check reads the command line's overrides, not the values
        if command in TOP_LEVEL_KEYS[key]:
            check_config(defaults[command], [f"{key}={value}"])
        else:
            with pytest.raises(RouterLabError, match=rf"^{key}: '{command.replace('_', ' ')}' does not use"):
                check_config(defaults[command], [f"{key}={value}"])


@pytest.mark.parametrize(("override", "expected"), [
    ("export.max_abs_diff=nan", "export.max_abs_diff: got nan; expected a finite number"),
    ("export.tie_band=-1e-6", "export.tie_band: got -1e-06; expected a non-negative number"),
    ("export.latency_calls=0", "export.latency_calls: got 0; expected an integer >= 1"),
    ("export.threads=-2", "export.threads: got -2"),
    ("export.max_p99_us=inf", "export.max_p99_us: got inf"),
    ("evaluate.folds=1", "evaluate.folds: got 1"),
    ("evaluate.repeats=0", "evaluate.repeats: got 0"),
    ("evaluate.level=1.5", "evaluate.level: got 1.5"),
    ("workload.rate_per_s=nan", "workload.rate_per_s: got nan"),
    ("sim.slo_ms=inf", "sim.slo_ms: got inf"),
    ("router.C=-inf", "router.C: got -inf"),
    ("target.max_cloud_fraction=nan", "target.max_cloud_fraction: got nan"),
])
def test_numbers_are_checked_up_front(override, expected) -> None:
    with pytest.raises(RouterLabError, match=expected):
        check("export" if override.startswith("export") else "simulate", override)


def test_defaults_pass_every_check(defaults) -> None:
    for cfg in defaults.values():
        check_config(cfg, [])


@pytest.fixture(scope="module")
def strict_router_dir(digits, tmp_path_factory) -> Path:
    """A router trained for a 5 % cloud budget (the default policy trains one for 30 %)."""
    folder = tmp_path_factory.mktemp("strict")
    save_trained_router(train_router(digits, None, {"name": "budget", "max_cloud_fraction": 0.05},
                                     "input", seed=0), folder)
    return folder


def test_simulate_model_path_sets_the_learned_policys_router(strict_router_dir, datasets_dir) -> None:
    base = ("policy=learned", "sim.n_requests=3000", "sim.progress=false", f"datasets_dir={datasets_dir}")
    _, default = simulate_config(composed("simulate", *base))
    _, strict = simulate_config(composed("simulate", *base, f"model_path={strict_router_dir}"))
    assert strict["cloud_fraction"] < 0.12 < default["cloud_fraction"]
    inner = policy_config(composed("simulate", "policy=load_aware", f"model_path={strict_router_dir}"))
    assert inner.inner.model_path == str(strict_router_dir)


def test_simulate_model_path_errors(tmp_path) -> None:
    with pytest.raises(RouterLabError, match="model_path=/nonexistent: no such file or folder"):
        policy_config(composed("simulate", "model_path=/nonexistent"))
    with pytest.raises(RouterLabError, match="policy 'random' uses no trained router"):
        policy_config(composed("simulate", "policy=random", f"model_path={tmp_path}"))
    with pytest.raises(RouterLabError, match="expected one router"):
        policy_config(composed("simulate", f"model_path={tmp_path}", "policy.model_path=/elsewhere"))


def test_cli_refuses_an_appended_typo_in_one_line(cli, tmp_path) -> None:
    result = cli("simulate", "+sim.n_request=100")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("router-lab: error: sim.n_request: no such key")
    assert not (tmp_path / "datasets").exists()  # refused before anything was built


def test_a_refused_config_leaves_the_failure_marker_in_its_run_folder(cli, tmp_path) -> None:
    run = tmp_path / "run"
    result = cli("simulate", "+seeds=3", f"hydra.run.dir={run}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "router-lab: error: seeds: no such top-level key; a key appended with '+' is not read by "
        "anything (did you mean seed?)"]
    marker = json.loads((run / "_failed.json").read_text())
    assert marker["status"] == "failed" and marker["error"].startswith("seeds: no such top-level key")
    assert not (run / "config.yaml").exists()  # the job never started
