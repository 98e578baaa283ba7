"""Aggregate a run or a sweep folder into one tidy table: one row per complete job.

Columns: ``job`` (folder, relative to the report's root), the config groups' choices
(``policy``, ``device``, …), the flattened config (``workload.rate_per_s``, ``seed``, …), then the
metrics of ``metrics.json`` with confidence intervals as ``<metric>_ci95_low``/``_high``.
Incomplete, failed or tampered job folders are left out and listed with the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from router_lab.constants import METRICS_FILE, REQUESTS_FILE
from router_lab.errors import RouterLabError
from router_lab.report.jobs import COMPLETE_MARKER, CONFIG_FILE, FAILED_MARKER, JobCheck, check_job
from router_lab.report.progress import SWEEP_MANIFEST

GROUPS = ("dataset", "router", "target", "policy", "workload", "device", "network", "cloud")
CONFIG_SECTIONS = (*GROUPS, "sim", "tiers")  # tiers: tiered jobs only (tiers.<key>.model, …)
CONFIG_SCALARS = ("seed", "command")
REQUIRED_METRICS = ("accuracy", "n_requests")
_JOB_SIGNS = (COMPLETE_MARKER, FAILED_MARKER, METRICS_FILE, CONFIG_FILE, ".hydra")


@dataclass(frozen=True)
class Job:
    """One complete job: its folder, config columns and metric columns."""

    path: Path
    name: str  # folder relative to the report's root ("." for a single run)
    config: dict[str, Any]
    metrics: dict[str, Any]

    @property
    def requests_path(self) -> Path:
        return self.path / REQUESTS_FILE


@dataclass(frozen=True)
class Collection:
    """What a report is built from: the complete jobs and the folders left out (with reasons)."""

    root: Path
    jobs: tuple[Job, ...]
    left_out: tuple[JobCheck, ...]
    expected_jobs: int | None  # from sweep.json, when the folder is a sweep


def find_job_dirs(root: Path) -> list[Path]:
    """Job folders at or under ``root`` (a single run, a sweep, or a folder of sweeps)."""
    if any((root / sign).exists() for sign in _JOB_SIGNS):
        return [root]
    found = []
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        if child.name.startswith(".") or child.name in ("report", "mlruns"):  # mlruns: tracking's copies
            continue
        found += find_job_dirs(child)
    return found


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    elif isinstance(value, list | tuple):
        out[prefix] = json.dumps(value)
    else:
        out[prefix] = value


def config_columns(job_dir: Path) -> dict[str, Any]:
    """The job's group choices and flattened config (sections that shape a simulation)."""
    from omegaconf import OmegaConf

    path = job_dir / CONFIG_FILE
    if not path.exists():
        path = job_dir / ".hydra" / CONFIG_FILE  # Hydra's own copy, by the same name
    config = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    columns: dict[str, Any] = {}
    choices_path = job_dir / ".hydra" / "hydra.yaml"
    choices = {}
    if choices_path.exists():
        choices = OmegaConf.to_container(OmegaConf.load(choices_path).hydra.runtime.choices)
    for group in GROUPS:
        section = config.get(group)
        name = choices.get(group) or (section.get("name") if isinstance(section, dict) else None)
        if name is not None:
            columns[group] = str(name)
    for key in CONFIG_SCALARS:
        if key in config:
            columns[key] = config[key]
    for section in CONFIG_SECTIONS:
        if isinstance(config.get(section), dict):
            _flatten(section, config[section], columns)
    return columns


def metric_columns(metrics: dict[str, Any]) -> dict[str, Any]:
    """Flatten ``metrics.json``: intervals ``{"ci95": {m: [lo, hi]}}`` become ``m_ci95_low/high``."""
    columns: dict[str, Any] = {}
    for key, value in metrics.items():
        if key.startswith("ci") and isinstance(value, dict):
            for metric, interval in value.items():
                if isinstance(interval, list | tuple) and len(interval) == 2:
                    columns[f"{metric}_{key}_low"], columns[f"{metric}_{key}_high"] = interval
                elif isinstance(interval, dict) and {"low", "high"} <= set(interval):
                    columns[f"{metric}_{key}_low"] = interval["low"]
                    columns[f"{metric}_{key}_high"] = interval["high"]
        elif isinstance(value, dict):
            flat: dict[str, Any] = {}
            _flatten(key, value, flat)
            columns.update(flat)
        elif isinstance(value, list | tuple):
            columns[key] = json.dumps(value)
        else:
            columns[key] = value
    return columns


def _command(job_dir: Path) -> str:
    try:
        return str(json.loads((job_dir / COMPLETE_MARKER).read_text()).get("command", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def load_job(job_dir: Path, root: Path) -> Job | JobCheck | None:
    """A complete job, the check saying why the folder is left out, or None for another
    command's run (train, export, report: not simulations, nothing to aggregate)."""
    check = check_job(job_dir)
    if not check.complete:
        return check
    try:
        metrics = json.loads((job_dir / METRICS_FILE).read_text())
    except FileNotFoundError:
        if _command(job_dir) not in ("simulate", ""):
            return None
        return JobCheck(job_dir, False, f"no {METRICS_FILE}")
    except ValueError as exc:
        return JobCheck(job_dir, False, f"{METRICS_FILE} is not valid JSON ({exc})")
    missing = [k for k in REQUIRED_METRICS if not isinstance(metrics, dict) or k not in metrics]
    if missing:
        return JobCheck(job_dir, False, f"{METRICS_FILE} lacks {', '.join(missing)}")
    if not (job_dir / REQUESTS_FILE).exists():
        return JobCheck(job_dir, False, f"no {REQUESTS_FILE}")
    try:
        config = config_columns(job_dir)
    except Exception as exc:  # noqa: BLE001 - any unreadable config leaves the job out, named
        return JobCheck(job_dir, False, f"its config is unreadable ({type(exc).__name__})")
    name = str(job_dir.relative_to(root)) if job_dir != root else "."
    return Job(job_dir, name, config, metric_columns(metrics))


def collect(path: str | Path) -> Collection:
    root = Path(path)
    if not root.is_dir():
        raise RouterLabError(f"report: {root} is not a folder; expected a run folder or a multirun "
                             "folder under outputs/")
    jobs: list[Job] = []
    left_out: list[JobCheck] = []
    for job_dir in find_job_dirs(root):
        loaded = load_job(job_dir, root)
        if loaded is not None:
            (jobs if isinstance(loaded, Job) else left_out).append(loaded)
    expected = None
    manifest = root / SWEEP_MANIFEST
    if manifest.exists():
        try:
            expected = int(json.loads(manifest.read_text())["n_jobs"])
        except (ValueError, KeyError, TypeError):
            expected = None
    return Collection(root, tuple(jobs), tuple(left_out), expected)


def summary_frame(collection: Collection) -> pd.DataFrame:
    """One row per complete job, ordered by job folder (sweep job number first)."""
    rows = [{"job": job.name, **job.config, **job.metrics} for job in collection.jobs]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    order = sorted(range(len(frame)), key=lambda i: _job_order(frame["job"].iloc[i]))
    return frame.iloc[order].reset_index(drop=True)


def summary_csv(frame: pd.DataFrame) -> str:
    """``summary.csv``'s text: ten significant digits, so that equal runs give equal bytes."""
    return frame.to_csv(index=False, float_format="%.10g")


def _job_order(name: str) -> tuple[int, str]:
    head = Path(name).name.split("_", 1)[0]
    return (int(head), name) if head.isdigit() else (-1, name)


def varied_columns(frame: pd.DataFrame, candidates: list[str]) -> list[str]:
    """The config columns whose value differs between jobs (what the sweep varied).

    File locations (``*path``, ``*_dir``) are not factors: a sweep whose learned policies read an
    exported router differs from the others in a path, which says nothing a reader compares."""
    return [c for c in candidates if c in frame and as_text(frame[c]).nunique() > 1
            and not c.rsplit(".", 1)[-1].endswith(("path", "_dir"))]


def as_text(column: pd.Series) -> pd.Series:
    """A config column's values as text, an unset value (NaN/None) as its own value: a setting one
    job makes and the others leave unset varies (pandas >= 3 keeps NaN through ``astype(str)``)."""
    return column.astype(object).where(column.notna(), "<unset>").astype(str)


def swept_factors(frame: pd.DataFrame, varied: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """The varied columns a reader compares, and the ones that only follow another's choice.

    A sweep over ``device`` also varies ``device.units``, ``device.queue_limit``, …: each is set
    by the device chosen, so it names nothing new.  A column whose value is a function of a varied
    column that prefixes it (``device`` → ``device.*``) is listed under that column instead; one
    that varies on its own within it (``policy.threshold`` within ``policy=confidence``) stays."""
    factors: list[str] = []
    follows: dict[str, list[str]] = {}
    for column in varied:
        owner = next((o for o in varied if o != column and column.startswith(o + ".")
                      and _determined_by(frame, o, column)), None)
        if owner is None:
            factors.append(column)
        else:
            follows.setdefault(owner, []).append(column)
    return factors, follows


def _determined_by(frame: pd.DataFrame, owner: str, column: str) -> bool:
    pair = pd.DataFrame({owner: as_text(frame[owner]), column: as_text(frame[column])})
    return bool((pair.groupby(owner)[column].nunique() <= 1).all())
