"""The sweep launcher: Hydra's joblib launcher, with its options checked and its workers stopped.

joblib keeps its loky workers alive after a sweep ends and does not stop them when the parent is
interrupted or killed, so a killed sweep used to leave ~270 MB workers running for minutes.  Here:

* SIGTERM in the parent is turned into KeyboardInterrupt (as Ctrl-C is); on any exit from the
  sweep — done, failed or interrupted — the workers are shut down and killed;
* every worker runs a watchdog thread that ends the worker soon after its parent dies, even by
  SIGKILL (no handler runs then): the worker's parent pid changes when it is re-parented.

An interrupted job has no ``_complete.json``, so ``+resume=true`` re-runs exactly those jobs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher

from router_lab.errors import RouterLabError

PARENT_ENV = "ROUTER_LAB_SWEEP_PARENT"  # the sweep's parent pid, inherited by its workers
WATCHDOG_POLL_S = 0.5
_watchdog: threading.Thread | None = None


class StoppingJoblibLauncher(JoblibLauncher):
    """Hydra's joblib launcher (same options) that checks n_jobs and stops its workers."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        check_n_jobs(self.joblib.get("n_jobs"))
        os.environ[PARENT_ENV] = str(os.getpid())
        with _sigterm_as_interrupt(), _workers_stopped_after():
            return [_quiet(result) for result in super().launch(job_overrides, initial_job_idx)]


class QuietJobReturn(JobReturn):
    """A job's result whose failure re-raises without Hydra's "Error executing job with overrides"
    line: the sweep names each failed job itself (router_lab.report.progress, jobs.sweep_failure)."""

    @property
    def return_value(self) -> Any:
        if self.status == JobStatus.COMPLETED:
            return self._return_value
        raise self._return_value

    @return_value.setter
    def return_value(self, value: Any) -> None:
        self._return_value = value


def _quiet(result: Any) -> Any:
    if not isinstance(result, JobReturn):
        return result
    return QuietJobReturn(**{f.name: getattr(result, f.name) for f in dataclasses.fields(result)})


def check_n_jobs(n_jobs: Any) -> None:
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise RouterLabError(f"hydra.launcher.n_jobs: got {n_jobs!r}; expected a whole number other "
                             "than 0 (N parallel jobs, or -1 for one per core)")


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal handler signature
        raise KeyboardInterrupt(signum)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _workers_stopped_after() -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:
        stop_workers()
        print("router-lab: sweep interrupted; workers stopped (re-run with +resume=true to finish "
              "the unfinished jobs)", file=sys.stderr)
        raise
    finally:
        stop_workers()


def stop_workers() -> None:
    """Shut down and kill joblib's reusable loky workers of this process, if any."""
    from joblib.externals.loky import reusable_executor

    executor = getattr(reusable_executor, "_executor", None)
    if executor is not None:
        with contextlib.suppress(Exception):
            executor.shutdown(wait=True, kill_workers=True)


def watch_parent() -> None:
    """In a sweep worker: end this process soon after the sweep's parent process dies."""
    global _watchdog
    parent = os.environ.get(PARENT_ENV)
    if _watchdog is not None or not parent or int(parent) == os.getpid():
        return
    parent_pid = int(parent)

    def watch() -> None:
        import time

        while True:
            if os.getppid() != parent_pid:
                os._exit(1)  # the parent is gone: nobody will collect this job's result
            time.sleep(WATCHDOG_POLL_S)

    if os.getppid() != parent_pid:
        os._exit(1)
    _watchdog = threading.Thread(target=watch, name="router-lab-parent-watchdog", daemon=True)
    _watchdog.start()
