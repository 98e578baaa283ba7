"""`router-lab report PATH` on real simulate outputs: a single run, a multirun, damaged job folders."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest
from conftest import run_cli

from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError
from router_lab.report.build import build_report

FIGURES = ("accuracy_vs_cost", "p99_latency_vs_rate", "routing_curve", "latency_cdf", "over_time")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, digits: Dataset, datasets_dir: Path) -> dict[str, Path]:
    """One single run and one 2x2 multirun (serial launcher), small."""
    work = tmp_path_factory.mktemp("report")
    single = work / "single"
    result = run_cli("simulate", "policy=random", "sim.n_requests=400", f"hydra.run.dir={single}",
                     f"datasets_dir={datasets_dir}", cwd=work)
    assert result.returncode == 0, result.stderr
    sweep = work / "sweep"
    result = run_cli("simulate", "-m", "hydra/launcher=basic", "policy=always_local,always_cloud",
                     "workload.rate_per_s=2,5", "sim.n_requests=400", f"hydra.sweep.dir={sweep}",
                     f"datasets_dir={datasets_dir}", cwd=work)
    assert result.returncode == 0, result.stderr
    return {"work": work, "single": single, "sweep": sweep}


def _self_contained(page: str) -> None:
    assert len(re.findall(r"""src=["']data:image/png;base64,""", page)) >= 3
    assert not re.search(r"""(src|href)=['"]?(https?:|//|/)""", page), "the page loads something"


def test_report_from_a_single_run(runs: dict[str, Path]) -> None:
    result = build_report(runs["single"])
    out = runs["single"] / "report"
    assert (result.out_dir, result.html, result.n_jobs, result.left_out) == (out, out / "report.html", 1, ())
    frame = pd.read_csv(out / "summary.csv")
    assert len(frame) == 1 and frame.loc[0, "job"] == "." and frame.loc[0, "policy"] == "random"
    assert pd.read_parquet(out / "summary.parquet").shape == frame.shape
    metrics = json.loads((runs["single"] / "metrics.json").read_text())
    for key in ("accuracy", "latency_p99_ms", "cost_per_1k_usd", "cloud_fraction"):
        assert frame.loc[0, key] == pytest.approx(metrics[key], rel=1e-9)
    assert frame.loc[0, "accuracy_ci95_low"] == pytest.approx(metrics["ci95"]["accuracy"][0], rel=1e-9)
    page = (out / "report.html").read_text()
    _self_contained(page)
    # one run has no arrival-rate axis: that figure is explained, not faked
    assert not (out / "p99_latency_vs_rate.png").exists()
    assert "not drawn: the arrival rate did not vary" in page


def test_report_from_a_multirun(runs: dict[str, Path]) -> None:
    result = run_cli("report", str(runs["sweep"]), cwd=runs["work"])
    assert result.returncode == 0, result.stderr
    assert "report: 4 job(s) of 4 expected, 0 left out" in result.stdout
    out = runs["sweep"] / "report"
    frame = pd.read_csv(out / "summary.csv")
    assert len(frame) == 4
    assert sorted(zip(frame["policy"], frame["workload.rate_per_s"], strict=True)) == [
        ("always_cloud", 2.0), ("always_cloud", 5.0), ("always_local", 2.0), ("always_local", 5.0)]
    for column in ("device", "network", "cloud", "seed", "sim.n_requests", "accuracy",
                   "latency_p99_ms", "accuracy_ci95_low", "accuracy_ci95_high", "cost_per_1k_usd"):
        assert column in frame, column
    assert frame.loc[frame["policy"] == "always_local", "cost_per_1k_usd"].eq(0).all()
    table = (out / "summary.md").read_text().splitlines()
    assert table[0].startswith("| policy | workload.rate_per_s | accuracy | cloud_fraction |")
    assert len(table) == 2 + 4
    for name in FIGURES:
        image = matplotlib.image.imread(out / f"{name}.png")
        assert image.shape[0] > 300 and image.shape[1] > 500, name
    page = (out / "report.html").read_text()
    _self_contained(page)
    assert "varied: policy (2 values: always_local, always_cloud)" in page
    assert "varied: workload.rate_per_s (2 values: 2, 5)" in page
    best_cost = re.search(r"<b>lowest cloud cost per 1,000 requests</b>: ([^<]*)", page).group(1)
    assert best_cost.startswith("policy=always_local")


def test_damaged_jobs_are_named_and_left_out(runs: dict[str, Path], tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    shutil.copytree(runs["sweep"], sweep, ignore=shutil.ignore_patterns("report"))
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name[0].isdigit())
    metrics = json.loads((jobs[0] / "metrics.json").read_text())
    metrics["accuracy"] = 0.999  # edited after the run
    (jobs[0] / "metrics.json").write_text(json.dumps(metrics))
    (jobs[1] / "_complete.json").unlink()  # killed while writing its records
    (jobs[1] / "requests.parquet").write_bytes(b"PAR1")
    (jobs[2] / "_complete.json").write_text("{not json")
    result = run_cli("report", str(sweep), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    left = [line for line in result.stderr.splitlines() if "left out" in line]
    assert left == [
        f"router-lab: report: left out {jobs[0].name}: metrics.json changed after the job finished (sha256 mismatch)",
        f"router-lab: report: left out {jobs[1].name}: no _complete.json: the job did not finish (interrupted or still running)",
        f"router-lab: report: left out {jobs[2].name}: _complete.json is unreadable (JSONDecodeError)"]
    frame = pd.read_csv(sweep / "report" / "summary.csv")
    assert frame["job"].tolist() == [jobs[3].name]
    page = (sweep / "report" / "report.html").read_text()
    assert "Jobs left out" in page and "1 of the sweep's 4 jobs are complete" in html.unescape(page)


def test_report_without_any_complete_job_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "empty_sweep" / "0_policy=random" / ".hydra").mkdir(parents=True)  # started, no more
    with pytest.raises(RouterLabError, match="no complete job under .*0_policy=random: no _complete.json"):
        build_report(tmp_path / "empty_sweep")
    with pytest.raises(RouterLabError, match="is not a folder"):
        build_report(tmp_path / "nowhere")
    result = run_cli("report", str(tmp_path / "empty_sweep"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("router-lab: error: report: no complete job")
    assert not (tmp_path / "empty_sweep" / "report").exists()
