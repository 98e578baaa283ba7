"""Sweep progress: a Hydra callback that counts finished jobs while the launcher runs them.

Jobs run in other processes (joblib workers, submitit, a cluster), so the parent process watches
the sweep folder for job markers instead: one line per finished job, in job order (a job's own
output goes to its folder's output.log), under a tqdm bar on a terminal; then the count.
A search's lines say ``trial`` and end with the trial's verdict (its objective, feasible or not).
It also writes ``sweep.json`` (the number of jobs and their overrides) for the report.
"""

from __future__ import annotations

import functools
import importlib
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from router_lab.io import atomic_write_json
from router_lab.report.jobs import COMPLETE_MARKER, CONFIG_FILE, FAILED_MARKER

SWEEP_MANIFEST = "sweep.json"
# The sweep folder of the multirun running in this process (read by the CLI after a failure),
# and its watcher (stopped by the CLI when the sweep raises before on_multirun_end).
current_sweep_dir: Path | None = None
_active: SweepProgress | None = None
# Commands whose multirun is not a plain sweep: (label, noun, "module:function" that describes a
# finished job from its folder and the sweep's config), e.g. a search's trial and its verdict.
JOB_WORDING = {"search": ("search", "trial", "router_lab.search.commands:describe_trial")}
# (what the job ran, shown instead of its folder's overrides; what it found, after the line)
Describe = Callable[[Path], tuple[str | None, str | None]]


def sweep_job_overrides(config: DictConfig) -> list[list[str]]:
    """Each job's overrides, as Hydra's basic sweeper will split them (sweeper params first)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    arguments = [f"{k}={v}" for k, v in params.items()]
    arguments += [str(x) for x in config.hydra.overrides.task]
    # the config loader lists a group's options for a glob(*) sweep (the comparison presets)
    loader = GlobalHydra.instance().config_loader() if GlobalHydra.instance().is_initialized() else None
    overrides = OverridesParser.create(config_loader=loader).parse_overrides(arguments)
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def stop_watching() -> None:
    """End the progress watcher of this process's sweep, if one runs (e.g. after a failure)."""
    if _active is not None:
        _active.stop()


def count_markers(sweep_dir: Path, since_s: float = 0.0) -> tuple[int, int]:
    """(complete jobs, jobs failed since ``since_s``) under ``sweep_dir``."""
    complete = sum(1 for _ in sweep_dir.rglob(COMPLETE_MARKER))
    failed = sum(1 for p in sweep_dir.rglob(FAILED_MARKER) if p.stat().st_mtime >= since_s)
    return complete, failed


_JOB_FOLDER = re.compile(r"^(\d+)_(.*)$")


def finished_jobs(sweep_dir: Path, since_s: float = 0.0, noun: str = "job",
                  describe: Describe | None = None) -> dict[int, str]:
    """{job number: its line} for the finished jobs directly under ``sweep_dir``
    (folders ``<num>_<overrides>``, hydra.sweep.subdir's default here); ``describe(job folder)``
    may name what a complete job ran and add what it found (``…: cost_per_1k_usd 0.019, feasible``)."""
    lines: dict[int, str] = {}
    try:
        children = list(sweep_dir.iterdir())
    except OSError:
        return lines
    for child in children:
        match = _JOB_FOLDER.match(child.name)
        if match is None or not child.is_dir():
            continue
        num, overrides = int(match.group(1)), match.group(2) or "no overrides"
        complete, failed = child / COMPLETE_MARKER, child / FAILED_MARKER
        try:
            if complete.exists():
                ended_s = complete.stat().st_mtime
                what, found = describe(child) if describe is not None else (None, None)
                what = what or overrides
                if ended_s < since_s:
                    line = f"{noun} {num} complete before this run ({what})"
                else:
                    took_s = ended_s - (child / CONFIG_FILE).stat().st_mtime
                    line = f"{noun} {num} complete ({what}) in {max(took_s, 0.0):,.1f} s"
                lines[num] = f"{line}: {found}" if found else line
            elif failed.exists() and failed.stat().st_mtime >= since_s:
                lines[num] = f"{noun} {num} FAILED ({overrides}): see {child.name}/{FAILED_MARKER}"
        except OSError:  # a marker moved between the check and the stat: seen next time
            continue
    return lines


class SweepProgress(Callback):
    """``hydra.callbacks.progress`` in router_lab/conf/config.yaml: progress of a multirun, in the parent."""

    def __init__(self, poll_s: float = 0.5) -> None:
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # Launchers pickle the callbacks with the task for their workers; the watcher stays here.
    def __getstate__(self) -> dict[str, Any]:
        return {"poll_s": self.poll_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global current_sweep_dir, _active
        from router_lab.errors import RouterLabError
        from router_lab.report.launcher import check_n_jobs

        try:
            check_n_jobs(OmegaConf.select(config, "hydra.launcher.n_jobs", default=-1))
        except RouterLabError:  # the launcher refuses the sweep in one line before any job
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        current_sweep_dir, _active = sweep_dir, self
        n_trials = OmegaConf.select(config, "hydra.sweeper.n_trials", default=None)
        try:  # a search (Optuna) draws its trials as it goes: only their number is known
            jobs = [] if n_trials is not None else sweep_job_overrides(config)
        except Exception:  # noqa: BLE001 - a sweeper we cannot mirror: no count, still no harm
            return
        n_jobs = int(n_trials) if n_trials is not None else len(jobs)
        try:
            sweep_dir.mkdir(parents=True, exist_ok=True)
        except OSError:  # the launcher reports the same error in one line
            return
        atomic_write_json(sweep_dir / SWEEP_MANIFEST, {
            "command": str(config.get("command", "")), "n_jobs": n_jobs, "jobs": jobs,
            "launcher": str(OmegaConf.select(config, "hydra.launcher._target_", default="")),
        })
        label, noun, describe = "sweep", "job", None
        if str(config.get("command", "")) in JOB_WORDING:
            label, noun, spec = JOB_WORDING[str(config.command)]
            module, name = spec.split(":")
            # a finished job's description does not change: read once, not at every poll
            describe = functools.cache(functools.partial(getattr(importlib.import_module(module), name),
                                                         config=config))
        self._thread = threading.Thread(target=self._watch, args=(sweep_dir, n_jobs, label, noun, describe),
                                        daemon=True)
        self._thread.start()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.stop()

    def stop(self) -> None:
        """Print the final count and end the watcher."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _watch(self, sweep_dir: Path, n_jobs: int, label: str = "sweep", noun: str = "job",
               describe: Describe | None = None) -> None:
        started_s = time.time()
        bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            bar = tqdm(total=n_jobs, desc=label, unit=noun, file=sys.stderr)
        say = bar.write if bar is not None else (lambda line: print(line, file=sys.stderr, flush=True))
        say(f"router-lab: {label}: {n_jobs} {noun}s in {sweep_dir}")
        next_num, printed, last = 0, 0, (-1, -1)
        while True:
            stopping = self._stop.wait(self.poll_s)
            done, failed = count_markers(sweep_dir, started_s)
            lines = finished_jobs(sweep_dir, started_s, noun, describe)
            # one line per finished job, in job order: a job waits for the ones before it
            while next_num in lines or (stopping and any(n > next_num for n in lines)):
                if next_num in lines:
                    printed += 1
                    say(f"router-lab: {label}: [{printed}/{n_jobs}] {lines[next_num]}")
                next_num += 1
            if bar is not None and (done, failed) != last:
                bar.n = min(done + failed, n_jobs)
                bar.set_postfix(failed=failed, refresh=True)
            last = (done, failed)
            if stopping:
                break
        if bar is not None:
            bar.close()
        print(f"router-lab: {label}: {done}/{n_jobs} {noun}s complete" + (f", {failed} failed" if failed else ""),
              file=sys.stderr, flush=True)
