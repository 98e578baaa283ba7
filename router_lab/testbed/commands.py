"""`router-lab testbed`: the simulator's scenario, run live on loopback; writes the simulator's files.

``testbed_config(cfg)`` is the library entry (records + metrics + what the run measured of itself);
``testbed(cfg)`` is the CLI handler: ``metrics.json`` and ``requests.parquet`` as ``simulate``
writes them, plus ``testbed.json`` (time scale, shaping, generator lateness, the service's counts).
``testbed.experiment=sim_vs_live`` (``+experiment=sim_vs_live``) runs the comparison instead.
"""

from __future__ import annotations

import importlib.metadata
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from router_lab.constants import METRICS_FILE, REQUESTS_FILE
from router_lab.data.builders import resolve_dataset
from router_lab.data.commands import datasets_dir
from router_lab.errors import RouterLabError
from router_lab.io import atomic_path, atomic_write_json, run_dir
from router_lab.policies.base import sensitive_rows
from router_lab.sim.commands import (
    configured_policy,
    format_summary,
    load_configured_bundle,
    policy_config,
    policy_context,
    quality_router,
    replication_seeds,
    requests_frame,
    shipped_node,
)
from router_lab.sim.draws import NS_PER_S, draw, sample_pool
from router_lab.sim.metrics import summarize
from router_lab.sim.records import Records
from router_lab.sim.scenario import Scenario, scenario_from_config
from router_lab.testbed.clock import run_precise, wake_summary
from router_lab.testbed.config import TestbedSection
from router_lab.testbed.live import LiveResult, LiveRun, lateness_summary
from router_lab.testbed.models import live_models
from router_lab.testbed.processes import (
    CloudProcess,
    SigTerm,
    bind_socket,
    loopback_host,
    sigterm_as_exit,
)
from router_lab.testbed.routing import LiveRouter
from router_lab.testbed.shaping import shaping_info


def testbed_section(cfg: Any) -> TestbedSection:
    node = cfg.get("testbed") if isinstance(cfg, DictConfig) else getattr(cfg, "testbed", None)
    tb = TestbedSection() if node is None else OmegaConf.to_object(node) if isinstance(node, DictConfig) else node
    if not isinstance(tb, TestbedSection):
        tb = TestbedSection(**tb)
    if not (tb.time_scale > 0 and np.isfinite(tb.time_scale)):
        raise RouterLabError(f"testbed.time_scale: got {tb.time_scale!r}; expected a positive number "
                             "(real seconds per configured second)")
    for name in ("startup_timeout_s", "max_wall_s", "max_rate_per_s", "drain_s", "max_lateness_ms"):
        if not getattr(tb, name) > 0:
            raise RouterLabError(f"testbed.{name}: got {getattr(tb, name)!r}; expected a positive number")
    loopback_host(tb.host)
    return tb


def check_drivable(sc: Scenario, arrival_ns: np.ndarray, tb: TestbedSection) -> None:
    """Refuse a load the generator cannot drive here: the real arrival rate above what it sustains."""
    n = len(arrival_ns)
    span_s = (int(arrival_ns[-1]) - int(arrival_ns[0])) / NS_PER_S if n > 1 else 0.0
    if n < 2:
        return
    real_rate = (n - 1) / (span_s * tb.time_scale) if span_s > 0 else float("inf")
    if real_rate > tb.max_rate_per_s:
        raise RouterLabError(
            f"workload: {(n - 1) / span_s if span_s > 0 else float('inf'):.4g} req/s at testbed.time_scale "
            f"{tb.time_scale:g} is {real_rate:.4g} real req/s, more than this machine's testbed drives "
            f"(testbed.max_rate_per_s = {tb.max_rate_per_s:g}, measured by benchmarks/bench_testbed.py); "
            "raise testbed.time_scale or lower the rate")


def check_lateness(result: LiveResult, tb: TestbedSection) -> dict[str, float]:
    """The generator's own lateness; over the tolerance the run measured the testbed, not the scenario."""
    late = lateness_summary(result.lateness_ns, tb.time_scale)
    if late and late["lateness_p99_ms"] > tb.max_lateness_ms:
        raise RouterLabError(
            f"testbed: the load generator fell behind its schedule (p99 lateness {late['lateness_p99_ms']:.1f} "
            f"configured ms = {late['lateness_p99_us_real']:.0f} real µs > testbed.max_lateness_ms "
            f"{tb.max_lateness_ms:g}); this machine cannot drive the load at time_scale {tb.time_scale:g}: "
            "raise testbed.time_scale or lower the rate")
    return late


def cloud_spec(sc: Scenario, tb: TestbedSection, tables_path: Path, model_path: Path | None,
               max_requests: int) -> dict[str, Any]:
    c = sc.cloud
    return {
        "units": c.units, "queue_limit": c.queue_limit, "rate_limit_rpm": c.rate_limit_rpm,
        "window_ns": int(round(60 * NS_PER_S * tb.time_scale)), "t0_ns": 0, "llm": bool(c.llm),
        "tpot_ns": int(round(c.tpot_ms * 1e6 * tb.time_scale)), "tables_path": str(tables_path),
        "model_path": None if model_path is None else str(model_path), "max_requests": max_requests,
        "max_wall_s": tb.max_wall_s * max(1, sc.sim.replications) + 60.0,
    }


def _versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in ("aiohttp", "onnxruntime", "numpy")}


def testbed_config(cfg: Any, scenario: Scenario | None = None) -> tuple[list[Records], dict[str, Any], dict[str, Any]]:
    """Run every replication live; return the records, the metrics and the testbed's own figures."""
    scenario = scenario or scenario_from_config(cfg)
    if scenario.tiered:
        raise RouterLabError("tiers: the testbed serves one remote tier (its cloud server); expected no tiers "
                             "(drop +tier@tiers.… / deployment=three_tier / every_model)")
    tb = testbed_section(cfg)
    host = loopback_host(tb.host)
    if tb.cloud_port:  # a port in use is an error before anything is built or started
        bind_socket(host, tb.cloud_port).close()
    dataset = resolve_dataset(cfg.dataset, datasets_dir(cfg))
    # The simulator's seeds (simulate_config): the same requests, draws and policy randomness.
    seeds = replication_seeds(int(cfg.seed), scenario.sim.replications)
    policy_cfg = policy_config(cfg)
    all_draws = [draw(scenario, dataset, sim_seed) for _, sim_seed in seeds]
    for d in all_draws:
        check_drivable(scenario, d.arrival_ns, tb)
    sensitive = sensitive_rows(dataset)
    bundle = load_configured_bundle(cfg, scenario)  # verified before anything starts
    device_graph = None if bundle is None else bundle.device_graph
    models = live_models(dataset, cfg.dataset, sample_pool(dataset, scenario.sim.split), device_graph)
    runs: list[Records] = []
    per_run: list[dict[str, Any]] = []
    lateness: list[np.ndarray] = []
    upper_bound, shipped = False, None
    heads = quality_router(cfg)  # an N-model policy's trained quality heads (model_path), loaded once
    with sigterm_as_exit(), tempfile.TemporaryDirectory(prefix="router_lab_testbed_") as tmp:
        work = Path(tmp)
        tables = {"sensitive": sensitive, "cloud_quality": dataset.cloud_quality().astype(np.float64)}
        if models.labels is not None:
            tables["label"] = models.labels
        np.savez(work / "tables.npz", **tables)
        model_path = None
        if models.cloud_onnx is not None:
            model_path = work / "cloud_model.onnx"
            model_path.write_bytes(models.cloud_onnx)
        spec = cloud_spec(scenario, tb, work / "tables.npz", model_path,
                          max_requests=sum(len(d) for d in all_draws) * 2 + 10)
        with CloudProcess(spec, host, tb.cloud_port, work, tb.startup_timeout_s) as cloud:
            for (policy_seed, _), draws in zip(seeds, all_draws, strict=True):
                policy = configured_policy(policy_cfg, policy_context(scenario, dataset, policy_seed,
                                                                      heads, cfg=cfg), bundle)
                router = LiveRouter(policy, dataset)
                upper_bound = router.upper_bound
                shipped = shipped_node(policy) if not runs else shipped
                live = LiveRun(scenario, router, dataset, draws, sensitive[draws.row], models, cloud.url,
                               tb.time_scale, tb.drain_s)
                result = run_precise(_bounded(live.run(), tb.max_wall_s))
                late = check_lateness(result, tb)
                runs.append(result.records)
                lateness.append(result.lateness_ns)
                per_run.append({"wall_s": result.wall_s, "wake_bias_us_real": live.wake_bias_ns / 1e3,
                                "http_round_trip_us_real": live.transport_ns / 1e3, "cloud_service": result.cloud_counts, **late,
                                "client_wake": wake_summary(),  # this process's holds (router, device, answers)
                                **live.llm_summary(),
                                "device_answers_real_model": result.device_answers_real,
                                "cloud_answers_real_model": result.cloud_answers_real})
    metrics = {**summarize(runs, scenario), "upper_bound": bool(upper_bound), "shipped_policy": shipped}
    if bundle is not None:
        metrics["bundle_sha256"] = bundle.sha256
    info = {
        "time_scale": tb.time_scale, "host": host, "http_stack": "aiohttp (server and client)",
        "versions": _versions(), **shaping_info(), "models": models.source,
        "routing": "bundle " + bundle.sha256 if bundle is not None else f"policy {cfg.policy.name} (runtime core)",
        "replications": per_run,
        "cloud_received_sensitive": int(sum(p["cloud_service"]["received_sensitive"] for p in per_run)),
        "cloud_received": int(sum(p["cloud_service"]["received"] for p in per_run)),
        "generator": lateness_summary(np.concatenate(lateness), tb.time_scale),
    }
    return runs, metrics, info


async def _bounded(coro: Any, seconds: float) -> Any:
    import asyncio

    try:
        return await asyncio.wait_for(coro, seconds)
    except TimeoutError:
        raise RouterLabError(f"testbed: a replication ran longer than testbed.max_wall_s = {seconds:g} s "
                             "(real); lower sim.n_requests or raise testbed.time_scale") from None


def write_run(out: Path, runs: list[Records], metrics: dict[str, Any], info: dict[str, Any]) -> None:
    with atomic_path(out / REQUESTS_FILE) as tmp:
        requests_frame(runs).to_parquet(tmp, index=False)
    atomic_write_json(out / "testbed.json", info)
    atomic_write_json(out / METRICS_FILE, metrics)


def testbed(cfg: Any) -> dict[str, Any]:
    """CLI handler: run live (or the sim-vs-live comparison), write the simulator's files, print a table."""
    tb = testbed_section(cfg)
    if tb.experiment == "sim_vs_live":
        from router_lab.testbed.sim_vs_live import sim_vs_live

        return sim_vs_live(cfg)
    if tb.experiment is not None:
        raise RouterLabError(f"testbed.experiment: got {tb.experiment!r}; expected sim_vs_live or null")
    try:
        runs, metrics, info = testbed_config(cfg)
    except SigTerm:  # everything started has been stopped on the way out
        print("router-lab: testbed stopped by SIGTERM; nothing written", file=sys.stderr)
        raise SystemExit(128 + signal.SIGTERM) from None
    out = run_dir()
    write_run(out, runs, metrics, info)
    print(format_summary(metrics).replace("simulate:", "testbed:", 1))
    reps = info["replications"]
    print(f"  live: time_scale {tb.time_scale:g}, shaping {info['shaping']}, generator p99 lateness "
          f"{max(r.get('lateness_p99_ms', 0.0) for r in reps):.2f} configured ms; cloud service received "
          f"{info['cloud_received']:,} request(s), {info['cloud_received_sensitive']} sensitive")
    print(f"  wrote {out / 'metrics.json'}, {out / 'requests.parquet'} and {out / 'testbed.json'}")
    return metrics
