"""Sweeps through the real `router-lab simulate -m`: launchers agree, resume, failed jobs.

A 2x2 sweep (policy x arrival rate, small runs) is the unit of every test; `router-lab report`
turns each sweep folder into summary.csv, which is what must come out identical.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli

from router_lab.data.contract import Dataset
from router_lab.report.build import build_report
from router_lab.report.summary import collect, summary_csv, summary_frame

SWEEP = ["simulate", "-m", "policy=always_local,random", "workload.rate_per_s=2,4",
         "sim.n_requests=300", "seed=7"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, digits: Dataset, datasets_dir: Path) -> Path:
    """A project folder for this module's sweeps, using the session's built digits dataset."""
    return tmp_path_factory.mktemp("sweeps")


def sweep(workdir: Path, *extra: str, datasets: Path | None = None) -> subprocess.CompletedProcess[str]:
    args = [*SWEEP, *extra]
    if datasets is not None:
        args.append(f"datasets_dir={datasets}")
    return run_cli(*args, cwd=workdir)


def summary(sweep_dir: Path) -> pd.DataFrame:
    """The report's summary.csv of a sweep (built in-process; the CLI is tested in test_report)."""
    result = build_report(sweep_dir)
    assert not result.left_out, result.left_out
    return pd.read_csv(result.summary_csv)


@pytest.fixture(scope="module")
def reference_run(workdir: Path, datasets_dir: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The uninterrupted 2x2 sweep through the default (joblib) launcher, and what it printed."""
    sweep_dir = workdir / "reference"
    result = sweep(workdir, f"hydra.sweep.dir={sweep_dir}", datasets=datasets_dir)
    assert result.returncode == 0, result.stderr
    assert "4/4 jobs complete" in result.stderr  # the progress line of the sweep
    return sweep_dir, result


@pytest.fixture(scope="module")
def reference(reference_run: tuple[Path, subprocess.CompletedProcess[str]]) -> tuple[Path, pd.DataFrame]:
    """The reference sweep and its summary."""
    return reference_run[0], summary(reference_run[0])


def test_sweep_prints_one_line_per_finished_job_in_order_and_nothing_else(
        reference_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    sweep_dir, result = reference_run
    printed = (result.stdout + result.stderr).splitlines()
    jobs = [line for line in printed if re.match(r"router-lab: sweep: \[\d/4\] job \d", line)]
    assert [re.search(r"\[(\d)/4\] job (\d) complete", line).groups() for line in jobs] == [
        ("1", "0"), ("2", "1"), ("3", "2"), ("4", "3")]
    assert jobs[2].startswith("router-lab: sweep: [3/4] job 2 complete "
                              "(policy=random,sim.n_requests=300,workload.rate_per_s=2) in ")
    # no Hydra per-job dumps ("#0 : policy=…"), no job's own summary: that is in the job's folder
    assert printed == [f"router-lab: sweep: 4 jobs in {sweep_dir}", *jobs, "router-lab: sweep: 4/4 jobs complete"]
    for job in sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name[0].isdigit()):
        assert "accuracy" in (job / "output.log").read_text()


def test_sweep_jobs_have_config_metrics_requests_and_marker(reference: tuple[Path, pd.DataFrame]) -> None:
    sweep_dir, frame = reference
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name[0].isdigit())
    assert [p.name for p in jobs] == [
        "0_policy=always_local,sim.n_requests=300,workload.rate_per_s=2",
        "1_policy=always_local,sim.n_requests=300,workload.rate_per_s=4",
        "2_policy=random,sim.n_requests=300,workload.rate_per_s=2",
        "3_policy=random,sim.n_requests=300,workload.rate_per_s=4"]
    for job in jobs:
        for name in ("config.yaml", "metrics.json", "requests.parquet", "_complete.json"):
            assert (job / name).is_file(), f"{job.name} lacks {name}"
    assert json.loads((sweep_dir / "sweep.json").read_text())["n_jobs"] == 4
    assert len(frame) == 4 and frame["n_requests"].eq(300).all()
    # the seed is the config's: the same for every job whatever the launcher or the order
    assert frame["seed"].eq(7).all()


def test_joblib_and_submitit_local_sweeps_give_the_same_summary(
        workdir: Path, datasets_dir: Path, reference: tuple[Path, pd.DataFrame]) -> None:
    # submitit_local runs each job in its own process: the code path of submitit_slurm.
    sweep_dir = workdir / "by_submitit_local"
    result = sweep(workdir, "hydra/launcher=submitit_local", f"hydra.sweep.dir={sweep_dir}",
                   datasets=datasets_dir)
    assert result.returncode == 0, result.stderr
    pd.testing.assert_frame_equal(summary(sweep_dir), reference[1], check_exact=True)
    assert (sweep_dir / "report" / "summary.csv").read_bytes() == \
        (reference[0] / "report" / "summary.csv").read_bytes()


RAY_TRIALS = 3  # of the small search's 7 (its sampler's random start-up trials)
RAY_LOCAL = ["hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2",
             "+hydra.launcher.ray.init.include_dashboard=false", "+hydra.launcher.ray.init.log_to_driver=false"]
# Two `router-lab` commands in one process, so that the second finds Ray running (the launcher
# reuses the instance the first started) and its workers warm: Ray's start-up is most of a Ray
# sweep's time. At exit the instance stops with the process that started it, as after one command.
TWO_COMMANDS = """
import sys
from router_lab.cli import main
cut = sys.argv.index("--then")
sys.exit(main(sys.argv[1:cut]) or main(sys.argv[cut + 1:]))
"""


@pytest.fixture(scope="module")
def by_ray(workdir: Path, datasets_dir: Path, searched) -> tuple[Path, Path, str, str]:  # noqa: ANN001
    """The 2x2 sweep, then the small search of tests/test_search.py cut to its first
    ``RAY_TRIALS`` trials, on one local Ray instance with 2 CPUs: (sweep folder, search folder,
    the sweep's stderr, the search's stderr). `make test` installs the launcher (the `test`
    extra), so under CI a missing launcher fails; elsewhere (a bare `pip install -e .`) the Ray
    tests skip."""
    try:
        import hydra_plugins.hydra_ray_launcher  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("hydra-ray-launcher is not installed (pip install -e '.[test]' or '.[ray]')")
    from search_case import search_args

    search_work = searched[0]  # the serial search's folder: the same preset and search path
    sweep_dir, search_dir = workdir / "by_ray", search_work / "by_ray"
    sweep_args = [*SWEEP, *RAY_LOCAL, f"hydra.sweep.dir={sweep_dir}", f"datasets_dir={datasets_dir}"]
    search = [*search_args(search_work, search_dir, datasets_dir), f"hydra.sweeper.n_trials={RAY_TRIALS}"]
    result = subprocess.run([sys.executable, "-c", TWO_COMMANDS, *sweep_args, "--then", *search, *RAY_LOCAL],
                            cwd=search_work, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    cut = result.stderr.index("router-lab: search: ")
    return sweep_dir, search_dir, result.stderr[:cut], result.stderr[cut:]


def test_ray_sweep_gives_the_same_summary(by_ray, reference: tuple[Path, pd.DataFrame]) -> None:  # noqa: ANN001
    sweep_dir, _, stderr, _ = by_ray
    assert "Ray Launcher is launching 4 jobs" not in stderr  # Hydra's INFO lines stay quiet
    assert "router-lab: sweep: 4/4 jobs complete" in stderr
    assert json.loads((sweep_dir / "sweep.json").read_text())["launcher"].endswith(".RayLauncher")
    # summary.csv's bytes, as `router-lab report` writes them (the report's figures take seconds)
    assert summary_csv(summary_frame(collect(sweep_dir))) == (reference[0] / "report" / "summary.csv").read_text()


def test_ray_search_gives_the_same_trials_summary_and_best(by_ray, searched, tmp_path: Path) -> None:  # noqa: ANN001
    """Through Ray the search draws the serial search's first trials (its seeded sampler does not
    depend on the launcher) and comes to the same answer as those trials give: search.json (trials,
    best with its intervals and export command, Pareto front) and the summary are equal."""
    from omegaconf import OmegaConf

    from router_lab.search.commands import summarize_search

    _, ray_dir, _, stderr = by_ray
    assert "Ray Launcher is launching" not in stderr
    assert re.findall(r"\[\d/\d\] trial (\d) complete", stderr) == [str(k) for k in range(RAY_TRIALS)]
    assert f"router-lab: search: {RAY_TRIALS}/{RAY_TRIALS} trials complete" in stderr
    assert json.loads((ray_dir / "sweep.json").read_text())["launcher"].endswith(".RayLauncher")
    # The serial search's folder with only its first RAY_TRIALS trials, judged as a search does.
    serial_dir = tmp_path / "serial"
    first = {p.name for p in searched[1].iterdir() if p.name.split("_")[0].isdigit()
             and int(p.name.split("_")[0]) < RAY_TRIALS}
    shutil.copytree(searched[1], serial_dir, ignore=lambda d, names: [
        n for n in names if d == str(searched[1]) and n.split("_")[0].isdigit() and n not in first])
    want = summarize_search(OmegaConf.load(serial_dir / "multirun.yaml"), serial_dir)
    got = json.loads((ray_dir / "search.json").read_text())
    assert got["n_trials"] == RAY_TRIALS and got["best"] is not None

    def same_paths(value: object, *dirs: Path) -> object:
        text = json.dumps(value)
        for d in dirs:
            text = text.replace(str(d), "SWEEP")
        return json.loads(text)
    assert same_paths(got, ray_dir) == same_paths(want, serial_dir, searched[1])

    def frame(d: Path, *dirs: Path) -> pd.DataFrame:  # each search trains its router into its own folder
        out = summary_frame(collect(d))
        for folder in dirs:
            out = out.replace(re.escape(str(folder)), "SWEEP", regex=True)
        return out
    pd.testing.assert_frame_equal(frame(ray_dir, ray_dir), frame(serial_dir, serial_dir, searched[1]),
                                  check_exact=True)


def _mtimes(job: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in job.iterdir() if p.is_file() and p.suffix != ".log"}


def test_sweep_killed_midway_resumes_to_the_same_summary_without_rerunning(
        tmp_path: Path, datasets_dir: Path, reference: tuple[Path, pd.DataFrame]) -> None:
    # Serial launcher, killed (SIGKILL, no cleanup) as soon as the first job has finished.
    args = [sys.executable, "-m", "router_lab", *SWEEP, "hydra/launcher=basic", f"datasets_dir={datasets_dir}"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env={**os.environ})
    root = tmp_path / "outputs" / "multirun" / "simulate"
    deadline = time.monotonic() + 120
    while not list(root.glob("*/*/_complete.json")) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    (sweep_dir,) = root.iterdir()
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name[0].isdigit())
    if len(jobs) == 4 and all((j / "_complete.json").exists() for j in jobs):
        (jobs[3] / "_complete.json").unlink()  # the kill came late: leave one job unfinished anyway
    finished = [j for j in jobs if (j / "_complete.json").exists()]
    assert 1 <= len(finished) < 4
    before = {job.name: _mtimes(job) for job in finished}

    # The same command with +resume=true finds the sweep folder and runs only what is missing,
    # here through the parallel launcher.
    resumed = run_cli(*SWEEP, "+resume=true", f"datasets_dir={datasets_dir}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"continuing the sweep in outputs/multirun/simulate/{sweep_dir.name}" in resumed.stderr
    # Finished jobs keep their files untouched (a re-run would rewrite them). Their "skipped" lines
    # come from joblib's worker processes, so they are not counted here; the serial test below does.
    for job in finished:
        assert _mtimes(job) == before[job.name], f"{job.name} was re-run"
    assert list(root.iterdir()) == [sweep_dir]
    pd.testing.assert_frame_equal(summary(sweep_dir), reference[1], check_exact=True)


def test_resume_reruns_a_job_whose_files_were_damaged(tmp_path: Path, reference: tuple[Path, pd.DataFrame],
                                                      datasets_dir: Path) -> None:
    sweep_dir = tmp_path / "damaged"
    shutil.copytree(reference[0], sweep_dir, ignore=shutil.ignore_patterns("report"))
    job = next(sweep_dir.glob("2_*"))
    (job / "requests.parquet").write_bytes(b"PAR1 half-written")  # marker kept: sha256 now wrong
    untouched = {j.name: _mtimes(j) for j in sweep_dir.glob("[013]_*")}
    resumed = run_cli(*SWEEP, "+resume=true", "hydra/launcher=basic", f"hydra.sweep.dir={sweep_dir}",
                      f"datasets_dir={datasets_dir}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count("complete, skipped (resume)") == 3
    assert {j.name: _mtimes(j) for j in sweep_dir.glob("[013]_*")} == untouched
    pd.testing.assert_frame_equal(summary(sweep_dir), reference[1], check_exact=True)


def test_failed_job_is_reported_recorded_and_left_out(tmp_path: Path, datasets_dir: Path) -> None:
    sweep_dir = tmp_path / "with_failure"
    result = run_cli("simulate", "-m", "policy=random", "policy.p_cloud=0.5,2.0", "sim.n_requests=200",
                     f"hydra.sweep.dir={sweep_dir}", f"datasets_dir={datasets_dir}", cwd=tmp_path)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("router-lab: error: 1 job(s) of the sweep in") and "Traceback" not in result.stderr
    assert "job 1 (policy.p_cloud=2.0,policy=random,sim.n_requests=200) failed: policy.p_cloud" in last
    assert "+resume=true" in last
    # every stderr line is router-lab's own: Hydra's "Error executing job with overrides" is not repeated
    assert all(line.startswith("router-lab: ") for line in result.stderr.strip().splitlines()), result.stderr
    failed = json.loads((sweep_dir / "1_policy.p_cloud=2.0,policy=random,sim.n_requests=200"
                         / "_failed.json").read_text())
    assert failed["status"] == "failed" and "p_cloud" in failed["error"]

    report = build_report(sweep_dir)
    assert [job for job, _ in report.left_out] == ["1_policy.p_cloud=2.0,policy=random,sim.n_requests=200"]
    assert report.left_out[0][1].startswith("failed: policy.p_cloud")
    assert report.n_jobs == 1 and len(pd.read_csv(report.summary_csv)) == 1
    assert "Jobs left out" in report.html.read_text()

