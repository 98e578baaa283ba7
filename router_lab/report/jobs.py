"""Job folders: the completion marker written last, and the check that a job's outputs are whole.

A job (one run, or one point of a sweep) is complete when ``_complete.json`` exists and every file
it lists still has the recorded sha256.  The marker is written atomically after the command
returns, so an interrupted job has none; a failed job gets ``_failed.json`` with the error instead.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router_lab.constants import CONFIG_FILE, METRICS_FILE
from router_lab.errors import RouterLabError
from router_lab.io import atomic_write_json, atomic_write_text, run_dir, sha256_bytes, sha256_file

COMPLETE_MARKER = "_complete.json"
FAILED_MARKER = "_failed.json"
MARKER_VERSION = 1
# Keys of the job config that say how to run it, not what it computes.
RUN_ONLY_KEYS = ("resume", "tracking")
# In a sweep, what a job prints goes here (its folder), not to the terminal: the sweep prints one
# line per finished job instead (router_lab.report.progress).
JOB_OUTPUT_FILE = "output.log"


@dataclass(frozen=True)
class JobCheck:
    """Whether a job folder holds a complete, untampered run, and if not, why."""

    path: Path
    complete: bool
    reason: str = ""  # one line, empty when complete
    failed: bool = False  # the job ran and raised (``_failed.json``)


def config_fingerprint(config: dict[str, Any]) -> str:
    """sha256 of the job's resolved config, without run-only keys such as ``resume``."""
    kept = {k: v for k, v in config.items() if k not in RUN_ONLY_KEYS}
    return sha256_bytes(json.dumps(kept, sort_keys=True, default=str).encode("utf-8"))


def _output_files(job_dir: Path) -> list[Path]:
    """Files a job wrote: everything except Hydra's own folder, logs, markers and temp files."""
    files = []
    for path in sorted(job_dir.rglob("*")):
        rel = path.relative_to(job_dir)
        if not path.is_file() or rel.parts[0] in (".hydra", ".submitit", "report"):
            continue
        if path.name in (COMPLETE_MARKER, FAILED_MARKER) or path.name.startswith(".tmp-"):
            continue
        if path.suffix == ".log":
            continue
        files.append(path)
    return files


def start_job(job_dir: Path) -> None:
    """Forget an earlier attempt's verdict before the job (re)writes its outputs."""
    for name in (COMPLETE_MARKER, FAILED_MARKER):
        (job_dir / name).unlink(missing_ok=True)


def mark_complete(job_dir: Path, command: str, fingerprint: str) -> Path:
    files = {str(p.relative_to(job_dir)): sha256_file(p) for p in _output_files(job_dir)}
    marker = {"status": "complete", "command": command, "config_sha256": fingerprint,
              "files": files, "marker_version": MARKER_VERSION}
    return atomic_write_json(job_dir / COMPLETE_MARKER, marker)


def mark_failed(job_dir: Path, command: str, error: BaseException) -> Path:
    from router_lab.errors import one_line

    marker = {"status": "failed", "command": command, "error_type": type(error).__name__,
              "error": one_line(str(error)) or type(error).__name__, "marker_version": MARKER_VERSION}
    return atomic_write_json(job_dir / FAILED_MARKER, marker)


def mark_config_failure(cfg, error: BaseException) -> None:  # noqa: ANN001 - a DictConfig
    """Leave ``_failed.json`` in the job folder of a job whose config was refused before it ran.

    Best effort: when the folder itself is the problem (read-only, a file), the error says so and
    nothing is written.
    """
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    try:
        job_dir = run_dir()
        if job_dir.is_dir():
            mark_failed(job_dir, str(cfg.get("command", "")), error)
    except (OSError, ValueError):
        pass


def check_job(job_dir: Path, fingerprint: str | None = None) -> JobCheck:
    """Is ``job_dir`` complete (marker present, files intact, same config when ``fingerprint``)?"""
    job_dir = Path(job_dir)
    marker_path = job_dir / COMPLETE_MARKER
    if not marker_path.exists():
        failed = job_dir / FAILED_MARKER
        if failed.exists():
            try:
                error = json.loads(failed.read_text()).get("error", "unknown error")
            except (OSError, ValueError, AttributeError):
                error = "unknown error"
            return JobCheck(job_dir, False, f"failed: {error}", failed=True)
        return JobCheck(job_dir, False, f"no {COMPLETE_MARKER}: the job did not finish "
                                        "(interrupted or still running)")
    try:
        marker = json.loads(marker_path.read_text())
        files = dict(marker["files"])
        recorded = marker["config_sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return JobCheck(job_dir, False, f"{COMPLETE_MARKER} is unreadable ({type(exc).__name__})")
    if fingerprint is not None and recorded != fingerprint:
        return JobCheck(job_dir, False, "its config differs from this sweep's job")
    for rel, digest in files.items():
        path = job_dir / rel
        if not path.is_file():
            return JobCheck(job_dir, False, f"{rel} is missing")
        if sha256_file(path) != digest:
            return JobCheck(job_dir, False, f"{rel} changed after the job finished (sha256 mismatch)")
    return JobCheck(job_dir, True)


def read_metrics(job_dir: Path) -> dict[str, Any] | None:
    """The job's ``metrics.json`` (what a skipped job returns to the sweep), or None."""
    path = Path(job_dir) / METRICS_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text())


def run_job(handler: Callable[..., object], cfg) -> object:  # noqa: ANN001 - a DictConfig
    """Run one job in its folder: skip it when resuming and it is complete; mark how it ended.

    The job writes ``config.yaml`` first and ``_complete.json`` (sha256 of every output) last, so
    a folder without the marker is an interrupted job; a raising job leaves ``_failed.json``.
    """
    from omegaconf import OmegaConf

    from router_lab.tracking import check_tracking

    job_dir = run_dir()
    OmegaConf.resolve(cfg)  # the handler sees exactly the values config.yaml records
    # A handler may complete its config first (simulate: the top-level model_path / router_onnx
    # written into the policy), so that config.yaml records what ran.
    cfg = getattr(handler, "effective_config", lambda c: c)(cfg)
    check_tracking(cfg)  # tracking=mlflow with a bad URI or no mlflow fails here, in one line
    config = OmegaConf.to_container(cfg)
    fingerprint = config_fingerprint(config)
    if cfg.get("resume", False):
        check = check_job(job_dir, fingerprint)
        if check.complete:
            print(f"router-lab: {job_label()}: complete, skipped (resume)", file=sys.stderr)
            # A handler may say what a skipped job returns (a search trial: its objective).
            return getattr(handler, "resumed_result", read_metrics)(job_dir)
        print(f"router-lab: {job_label()}: running ({check.reason})", file=sys.stderr)
    start_job(job_dir)
    kept = {k: v for k, v in config.items() if k not in RUN_ONLY_KEYS}
    atomic_write_text(job_dir / CONFIG_FILE, OmegaConf.to_yaml(OmegaConf.create(kept)))
    try:
        if in_multirun():
            with open(job_dir / JOB_OUTPUT_FILE, "w", encoding="utf-8") as out, \
                    contextlib.redirect_stdout(out):
                result = handler(cfg)
        else:
            result = handler(cfg)
    except Exception as exc:
        mark_failed(job_dir, str(cfg.command), exc)
        raise
    mark_complete(job_dir, str(cfg.command), fingerprint)
    return result


def job_label() -> str:
    from hydra.core.hydra_config import HydraConfig

    if not in_multirun():
        return "run"
    job = HydraConfig.get().job
    return f"job {job.num} ({job.override_dirname or 'no overrides'})"


def sweep_failure(exc: RouterLabError, sweep_dir: Path | None) -> RouterLabError:
    """One line for a sweep with failed jobs: how many, the first error, where, how to retry."""
    if sweep_dir is None:
        return exc
    from router_lab.report.progress import count_markers  # progress imports this module

    _, failed = count_markers(sweep_dir)
    if failed == 0:  # the sweep failed before any job ran (e.g. a launcher option)
        return exc
    return RouterLabError(f"{failed} job(s) of the sweep in {sweep_dir} failed (each folder has "
                          f"_failed.json); first: {exc}; fix it and re-run the same command with "
                          "+resume=true to run only the unfinished jobs")


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
