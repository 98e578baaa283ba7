"""The experiment presets: each composes, and every job of its sweep is a valid scenario."""

from __future__ import annotations

import functools

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from router_lab.cli import CONF_DIR
from router_lab.config import register_configs
from router_lab.policies.registry import router_policies, two_model_policies
from router_lab.report.progress import sweep_job_overrides
from router_lab.sim.scenario import scenario_from_config

PRESETS = {  # preset: (jobs, the swept keys); the comparisons: one job per registered policy
    "compare_policies": (len(two_model_policies()), {"policy"}),
    "compare_policies_onnx": (len(two_model_policies()), {"policy"}),
    "load_sweep": (30, {"policy", "workload.rate_per_s"}),
    "threshold_sweep": (20, {"policy", "policy.threshold"}),
    "outage": (16, {"policy", "network.mean_down_s"}),
    "device_sweep": (12, {"device", "policy"}),
    "tiers": (15, {"+experiment/tier_arm"}),
}
LEARNED = router_policies()  # the policies that score with a trained router


@pytest.fixture(scope="module", autouse=True)
def hydra_conf():
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        yield


@functools.cache
def jobs_of(preset: str, *extra: str) -> list[tuple[list[str], object]]:
    """Each job's overrides and composed config, as the sweeper would launch them."""
    overrides = [f"+experiment={preset}", *extra]
    sweep = compose("config", overrides=overrides, return_hydra_config=True)
    jobs = sweep_job_overrides(sweep)
    return [(job, compose("config", overrides=job, return_hydra_config=True)) for job in jobs]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_job_of_the_preset_composes_to_a_valid_scenario(preset: str) -> None:
    n_jobs, keys = PRESETS[preset]
    jobs = jobs_of(preset, "router_onnx=out/router.onnx")
    assert len(jobs) == n_jobs
    seen = set()
    for overrides, cfg in jobs:
        seen |= {o.split("=", 1)[0] for o in overrides if not o.startswith(("+experiment=", "router_onnx"))}
        scenario_from_config(cfg)  # raises a one-line error on a bad value
        assert cfg.hydra.runtime.choices.policy == cfg.policy.name
    assert seen == keys
    distinct = {OmegaConf.to_yaml({k: v for k, v in cfg.items() if k != "hydra"}) for _, cfg in jobs}
    assert len(distinct) == n_jobs, "two jobs of the sweep have the same config"


def test_onnx_preset_scores_learned_policies_with_the_exported_file() -> None:
    """What simulate runs (``policy_config``): every router policy scoring with its exported file."""
    from router_lab.sim.commands import policy_config

    paths = ("router_onnx=out/router.onnx", "cascade_onnx=cascade/router.onnx")
    for _, cfg in jobs_of("compare_policies_onnx", *paths):
        policy = policy_config(cfg)
        if policy.name == "learned_cascade":  # its own router, trained on input + confidence
            assert (policy.backend, policy.onnx_path) == ("onnx", "cascade/router.onnx")
        elif policy.name in LEARNED:
            assert (policy.backend, policy.onnx_path) == ("onnx", "out/router.onnx")
        elif policy.name == "load_aware":
            assert (policy.inner.backend, policy.inner.onnx_path) == ("onnx", "out/router.onnx")
        else:
            assert "backend" not in policy
    # the same policies as the plain preset, in the same order
    plain = [cfg.policy.name for _, cfg in jobs_of("compare_policies", "router_onnx=out/router.onnx")]
    onnx = [cfg.policy.name for _, cfg in jobs_of("compare_policies_onnx", "router_onnx=out/router.onnx")]
    assert onnx == plain


def test_a_router_policy_without_its_exported_file_is_a_one_line_error() -> None:
    from router_lab.errors import RouterLabError
    from router_lab.sim.commands import policy_config

    cascade = next(cfg for _, cfg in jobs_of("compare_policies_onnx", "router_onnx=out/router.onnx")
                   if cfg.policy.name == "learned_cascade")
    with pytest.raises(RouterLabError, match="^cascade_onnx: policy learned_cascade scores with the router "
                                             "cascade_onnx names; got only router_onnx=out/router.onnx"):
        policy_config(cascade)
    # a policy's own onnx_path wins over the top-level key
    _, learned = next((j, c) for j, c in jobs_of("compare_policies", "router_onnx=out/router.onnx")
                      if c.policy.name == "learned")
    learned = OmegaConf.merge(learned, {"policy": {"backend": "onnx", "onnx_path": "mine.onnx"}})
    assert policy_config(learned).onnx_path == "mine.onnx"


def test_load_sweep_reaches_overload_of_the_default_device() -> None:
    jobs = jobs_of("load_sweep", "router_onnx=out/router.onnx")
    rates = {cfg.workload.rate_per_s for _, cfg in jobs}
    _, cfg = jobs[0]
    capacity_per_s = cfg.device.units / (cfg.device.service_mean_ms / 1000)
    assert min(rates) < 0.3 * capacity_per_s and max(rates) > 1.5 * capacity_per_s
