"""Progress: a line per step of a long command, silence in the library and in sweep jobs, and the
sweep's one line per finished job in job order (whatever order the jobs finish in)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from router_lab.report import steps
from router_lab.report.jobs import COMPLETE_MARKER, CONFIG_FILE, FAILED_MARKER
from router_lab.report.progress import SweepProgress, finished_jobs


def test_a_reporting_command_prints_a_line_per_step_then_its_time(capsys) -> None:  # noqa: ANN001
    with steps.reporting("evaluate", total=2):
        steps.step("load the digits dataset")
        steps.expect(3)
        for fold in (1, 2, 3):
            steps.step(f"fold {fold} of 3")
        steps.step("write the evaluation")
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert err == ""  # stderr is for the one-line error
    assert [line.split(" (")[0] for line in lines[:-1]] == [
        "router-lab: evaluate: [1/2] load the digits dataset", "router-lab: evaluate: [2/5] fold 1 of 3",
        "router-lab: evaluate: [3/5] fold 2 of 3", "router-lab: evaluate: [4/5] fold 3 of 3",
        "router-lab: evaluate: [5/5] write the evaluation"]
    assert lines[-1].startswith("router-lab: evaluate: done in ") and lines[-1].endswith(" s")


def test_steps_are_silent_outside_a_command_and_nested_commands_do_not_repeat(capsys) -> None:  # noqa: ANN001
    steps.step("a library call")  # e.g. train_router from a notebook
    assert capsys.readouterr().out == ""
    with steps.reporting("evaluate"):
        with steps.reporting("train"):  # a command used by another: one report, the outer one's
            steps.step("fit")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("router-lab: evaluate: fit") and len(lines) == 2


def test_a_failing_step_prints_no_done_line(capsys) -> None:  # noqa: ANN001
    try:
        with steps.reporting("export", total=2):
            steps.step("validate")
            raise ValueError("gate failed")
    except ValueError:
        pass
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "validate" in lines[0]


def _finish(sweep: Path, num: int, overrides: str, marker: str = COMPLETE_MARKER) -> None:
    job = sweep / f"{num}_{overrides}"
    job.mkdir()
    (job / CONFIG_FILE).write_text("seed: 0\n")
    (job / marker).write_text(json.dumps({"status": "complete"}))


def test_finished_jobs_names_each_job_and_how_it_ended(tmp_path: Path) -> None:
    _finish(tmp_path, 0, "policy=random")
    _finish(tmp_path, 1, "policy=oracle", FAILED_MARKER)
    (tmp_path / "2_policy=budget").mkdir()  # running
    lines = finished_jobs(tmp_path)
    assert sorted(lines) == [0, 1]
    assert lines[0].startswith("job 0 complete (policy=random) in ")
    assert lines[1] == f"job 1 FAILED (policy=oracle): see 1_policy=oracle/{FAILED_MARKER}"
    assert finished_jobs(tmp_path, since_s=time.time() + 60)[0].startswith("job 0 complete before this run")


def test_sweep_prints_finished_jobs_in_job_order(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    watcher = SweepProgress(poll_s=0.02)
    thread = threading.Thread(target=watcher._watch, args=(tmp_path, 3))
    thread.start()
    try:
        _finish(tmp_path, 1, "b")  # job 1 ends first: its line waits for job 0's
        time.sleep(0.2)
        early = capsys.readouterr().err
        _finish(tmp_path, 0, "a")
        _finish(tmp_path, 2, "c")
        time.sleep(0.2)
    finally:
        watcher._stop.set()
        thread.join(timeout=5)
    assert early == f"router-lab: sweep: 3 jobs in {tmp_path}\n"
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" complete")[0] for line in lines] == [
        "router-lab: sweep: [1/3] job 0", "router-lab: sweep: [2/3] job 1", "router-lab: sweep: [3/3] job 2",
        "router-lab: sweep: 3/3 jobs"]
