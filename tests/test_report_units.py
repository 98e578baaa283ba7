"""Unit tests of the report's and the sweep's building blocks (no simulation needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from router_lab.cli import flags_first
from router_lab.report.figures import pareto_front
from router_lab.report.jobs import (
    COMPLETE_MARKER,
    FAILED_MARKER,
    check_job,
    config_fingerprint,
    mark_complete,
    mark_failed,
    start_job,
)
from router_lab.report.resume import find_sweep_to_resume, task_overrides, wants_resume
from router_lab.report.summary import metric_columns
from router_lab.report.timeline import windowed


def test_pareto_front_keeps_only_undominated_points() -> None:
    cost = np.array([0.0, 1.0, 1.0, 2.0, 3.0, 0.5])
    accuracy = np.array([0.80, 0.90, 0.85, 0.88, 0.95, 0.79])
    front = pareto_front(cost, accuracy)
    # (0.5, 0.79) is beaten by (0, 0.80); (1, 0.85) by (1, 0.90); (2, 0.88) by (1, 0.90)
    assert front.tolist() == [0, 1, 4]


def test_pareto_front_of_random_points_is_undominated_and_complete() -> None:
    rng = np.random.default_rng(3)
    cost, accuracy = rng.random(200), rng.random(200)
    front = set(pareto_front(cost, accuracy).tolist())
    for i in range(200):
        dominated = np.any((cost <= cost[i]) & (accuracy >= accuracy[i])
                           & ((cost < cost[i]) | (accuracy > accuracy[i])))
        assert (i not in front) == dominated


def _job(tmp_path: Path) -> Path:
    job = tmp_path / "0_policy=random"
    job.mkdir()
    (job / "metrics.json").write_text('{"accuracy": 0.9}')
    (job / "requests.parquet").write_bytes(b"rows")
    (job / ".hydra").mkdir()
    (job / ".hydra" / "overrides.yaml").write_text("- policy=random\n")
    return job


def test_complete_marker_detects_changed_missing_and_foreign_config(tmp_path: Path) -> None:
    job = _job(tmp_path)
    fingerprint = config_fingerprint({"seed": 0, "policy": {"name": "random"}})
    assert not check_job(job).complete  # no marker yet: an interrupted job
    mark_complete(job, "simulate", fingerprint)
    assert check_job(job, fingerprint).complete
    # Hydra rewrites .hydra/ on a resumed run: that must not invalidate the job
    (job / ".hydra" / "overrides.yaml").write_text("- policy=random\n- +resume=true\n")
    assert check_job(job, fingerprint).complete
    other = config_fingerprint({"seed": 1, "policy": {"name": "random"}})
    assert "config differs" in check_job(job, other).reason
    (job / "metrics.json").write_text('{"accuracy": 0.1}')
    assert "metrics.json changed" in check_job(job).reason
    (job / "metrics.json").unlink()
    assert "metrics.json is missing" in check_job(job).reason


def test_fingerprint_ignores_resume_flag_only() -> None:
    base = {"seed": 0, "sim": {"n_requests": 10}}
    assert config_fingerprint(base) == config_fingerprint({**base, "resume": True})
    assert config_fingerprint(base) != config_fingerprint({**base, "seed": 1})


def test_failed_marker_is_reported_and_cleared_on_restart(tmp_path: Path) -> None:
    job = _job(tmp_path)
    mark_failed(job, "simulate", ValueError("policy.p_cloud: got 2\nexpected [0, 1]"))
    check = check_job(job)
    assert check.failed and "policy.p_cloud: got 2; expected [0, 1]" in check.reason
    start_job(job)
    assert not (job / FAILED_MARKER).exists() and not (job / COMPLETE_MARKER).exists()


def test_flags_first_lets_multirun_flag_sit_anywhere() -> None:
    args = ["command=simulate", "hydra.job.name=simulate", "-m", "policy=a,b", "--cfg", "job", "seed=1"]
    assert flags_first(args) == ["-m", "--cfg", "job", "command=simulate", "hydra.job.name=simulate",
                                 "policy=a,b", "seed=1"]


def test_resume_finds_newest_sweep_with_the_same_overrides(tmp_path: Path) -> None:
    root = tmp_path / "multirun"
    for stamp, task in [("2026-01-01_00", ["command=simulate", "policy=a,b"]),
                        ("2026-01-02_00", ["command=simulate", "policy=a,b", "+resume=true"]),
                        ("2026-01-03_00", ["command=simulate", "policy=a,c"])]:
        folder = root / "simulate" / stamp
        folder.mkdir(parents=True)
        OmegaConf.save(OmegaConf.create({"hydra": {"overrides": {"task": task}}}), folder / "multirun.yaml")
    args = ["command=simulate", "hydra.job.name=simulate", "-m", "policy=a,b", "+resume=true"]
    assert wants_resume(args) and not wants_resume(["+resume=false"])
    assert task_overrides(args) == ["command=simulate", "policy=a,b"]
    assert find_sweep_to_resume("simulate", args, root) == root / "simulate" / "2026-01-02_00"
    assert find_sweep_to_resume("simulate", [*args, "seed=3"], root) is None


def test_metric_columns_flatten_confidence_intervals() -> None:
    metrics = json.loads('{"accuracy": 0.9, "ci95": {"accuracy": [0.88, 0.92]}, "n_requests": 5}')
    columns = metric_columns(metrics)
    assert columns == {"accuracy": 0.9, "accuracy_ci95_low": 0.88, "accuracy_ci95_high": 0.92,
                       "n_requests": 5}


def test_windowed_means_match_a_direct_computation() -> None:
    t = np.array([0.1, 0.2, 1.5, 2.5, 2.6, 2.9])
    v = np.array([1, 0, 1, 1, 1, 0])
    edges = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    means = windowed(t, v, edges)
    assert np.allclose(means[:3], [0.5, 1.0, 2 / 3]) and np.isnan(means[3])


def test_jobs_are_grouped_by_deployment_and_each_groups_front_is_marked() -> None:
    from router_lab.report import deployments

    frame = pd.DataFrame({
        "job": [f"{i}_j" for i in range(6)], "policy": ["a", "b", "c", "a", "b", "c"],
        "tiers.edge.model": [None, None, None, "edge", "edge", "edge"],
        "accuracy": [0.90, 0.95, 0.94, 0.90, 0.96, 0.97],
        "cost_per_1k_usd": [0.0, 0.05, 0.06, 0.0, 0.02, 0.03],
        "latency_p99_ms": [900.0, 200.0, 300.0, 900.0, 250.0, 150.0]})
    out = deployments.annotate(frame)
    assert list(out["deployment"].unique()) == ["device → cloud", "device → edge → cloud"]
    # c (two-tier) is worse than b on all three; in three-tier c beats b on accuracy and p99, b is cheaper
    assert out["pareto_in_deployment"].tolist() == [True, True, False, True, True, True]
    table = deployments.pareto_table(out, ["policy"]).splitlines()
    assert table[0] == "| deployment | policy | accuracy | cost_per_1k_usd | latency_p99_ms | job |"
    assert len(table) == 2 + 5
    drawn = deployments.pareto_figure(out, "digits")
    assert drawn.figure is not None and len(drawn.figure.axes) == 2
    one = frame.iloc[:3]
    assert deployments.annotate(one) is one  # one deployment: the report is unchanged
    assert deployments.pareto_figure(one, "digits").figure is None
