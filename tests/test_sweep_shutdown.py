"""Killing a sweep stops its workers (SIGTERM, SIGINT, and SIGKILL of the parent), and the sweep
can be resumed afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli

SWEEP = ["simulate", "-m", "policy=random,always_local,always_cloud,confidence",
         "sim.n_requests=300000", "hydra.launcher.n_jobs=2", "hydra.sweep.dir=sweep"]
N_JOBS = 4


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process (from /proc)."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            table[int(name)] = (int(fields[1]), fields[0])
    return table


def _descendants(pid: int) -> set[int]:
    table, found, frontier = _processes(), set(), [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, _) in table.items():
            if ppid == parent and child not in found:
                found.add(child)
                frontier.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    table = _processes()
    return {p for p in pids if p in table and table[p][1] != "Z"}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_killed_sweep_leaves_no_worker_and_resumes(tmp_path: Path, signum: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "router_lab", *SWEEP], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            workers |= _descendants(proc.pid)
            started = list((tmp_path / "sweep").glob("*/config.yaml"))
            done = list((tmp_path / "sweep").glob("*/_complete.json"))
            if started and len(done) <= N_JOBS - 3 and len(workers) >= 2:
                break  # workers are up, a job runs, and at least two jobs are still to finish
            time.sleep(0.2)
        assert proc.poll() is None, "the sweep ended before it could be killed"
        assert len(workers) >= 2, workers
        os.kill(proc.pid, signum)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 5
        while _alive(workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _alive(workers)
        assert not left, f"{len(left)} process(es) left after {signal.Signals(signum).name}"
    finally:
        for pid in _alive(workers):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=60)
    if signum != signal.SIGKILL:
        assert proc.returncode == 128 + signum
    if signum == signal.SIGTERM:  # resume finishes exactly the unfinished jobs
        before = {p.parent.name for p in (tmp_path / "sweep").glob("*/_complete.json")}
        resumed = run_cli(*SWEEP, "+resume=true", cwd=tmp_path, env=env)
        assert resumed.returncode == 0, resumed.stderr
        done = sorted(tmp_path.glob("sweep/*/_complete.json"))
        assert len(done) == N_JOBS
        assert resumed.stderr.count("complete, skipped (resume)") == len(before)
        assert all(json.loads(p.read_text())["status"] == "complete" for p in done)
