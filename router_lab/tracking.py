"""Optional experiment tracking: ``tracking=mlflow`` logs every job to a local MLflow store.

Each finished job (a run, a sweep point, a search trial) becomes one MLflow run named after its
folder: the flattened config as params (the columns of the report's ``summary.csv``), the numeric
metrics of ``metrics.json`` as metrics (the same flattening: ``<metric>_ci95_low/high``), the job's
files as artifacts, its command, status and folder as tags.  The store is a folder on this machine
(``tracking.uri``, default ``outputs/mlruns``, set as a ``file:`` URI); MLflow's telemetry is
switched off before it is imported, so nothing leaves the machine.  Off by default
(``tracking=none``); needs the ``mlflow`` extra (``pip install -e '.[mlflow]'``).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from router_lab.constants import CONFIG_FILE
from router_lab.errors import RouterLabError

BACKENDS = ("none", "mlflow")
DEFAULT_URI = "outputs/mlruns"
MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value (longer ones are cut, with a marker)


@dataclass
class TrackingConfig:
    backend: str = "none"  # none | mlflow
    uri: str = DEFAULT_URI  # a folder (made a file: URI) or a local URI such as sqlite:///…
    experiment: str | None = None  # None: "router_lab/<command>"


SCHEMAS: list[tuple[str, str, type]] = [("tracking", "schema_tracking", TrackingConfig)]


def enabled(config: Any) -> bool:
    backend = str(OmegaConf.select(config, "tracking.backend", default="none") or "none")
    if backend not in BACKENDS:
        raise RouterLabError(f"tracking.backend: got {backend!r}; expected one of {', '.join(BACKENDS)}")
    return backend == "mlflow"


def tracking_uri(config: Any) -> str:
    """``tracking.uri`` as MLflow wants it: a folder becomes an absolute ``file:`` URI."""
    from hydra.utils import to_absolute_path

    uri = str(OmegaConf.select(config, "tracking.uri", default=DEFAULT_URI) or DEFAULT_URI)
    if "://" in uri or uri.startswith("file:"):
        if not uri.startswith(("file:", "sqlite:")):
            raise RouterLabError(f"tracking.uri: got {uri!r}; expected a local folder, a file: URI or "
                                 "sqlite:/// (nothing is sent off this machine)")
        return uri
    return "file:" + str(Path(to_absolute_path(uri)).resolve())


def experiment_name(config: Any) -> str:
    given = OmegaConf.select(config, "tracking.experiment", default=None)
    return str(given) if given else f"router_lab/{config.get('command') or 'run'}"


def import_mlflow() -> Any:
    """mlflow, local-only: no telemetry; the file store allowed (MLflow 3 keeps it in maintenance)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        import mlflow
    except ImportError:
        raise RouterLabError("tracking=mlflow: mlflow is not installed; expected "
                             "pip install -e '.[mlflow]' (or tracking=none)") from None
    return mlflow


def _experiment_id(mlflow: Any, name: str) -> str:
    """The experiment's id, created when missing (a parallel worker may create it first)."""
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return mlflow.create_experiment(name)
    except Exception:  # noqa: BLE001 - created meanwhile by another process: use that one
        found = mlflow.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _param(value: Any) -> str:
    text = "None" if value is None else str(value)
    return text if len(text) <= MAX_PARAM_CHARS else text[:MAX_PARAM_CHARS - 3] + "..."


def check_tracking(config: Any) -> None:
    """Refuse a bad ``tracking`` section before a job runs (Hydra's callbacks only warn)."""
    if enabled(config):
        tracking_uri(config)
        import_mlflow()


def log_job(config: Any, job_dir: Path, status: str, error: str | None = None) -> str:
    """Log one job folder as an MLflow run; return the run id."""
    import json

    from router_lab.report.summary import METRICS_FILE, config_columns, metric_columns

    mlflow = import_mlflow()
    mlflow.set_tracking_uri(tracking_uri(config))
    experiment_id = _experiment_id(mlflow, experiment_name(config))
    params = config_columns(job_dir) if (job_dir / CONFIG_FILE).exists() else {}
    metrics: dict[str, float] = {}
    if (job_dir / METRICS_FILE).exists():
        raw = json.loads((job_dir / METRICS_FILE).read_text())
        metrics = {k: v for k, v in ((k, _numeric(v)) for k, v in metric_columns(raw).items()) if v is not None}
    tags = {"router_lab.command": str(config.get("command", "")), "router_lab.job_dir": str(job_dir),
            "router_lab.status": status}
    if error:
        tags["router_lab.error"] = error[:5000]
    with mlflow.start_run(experiment_id=experiment_id, run_name=job_dir.name, tags=tags) as run:
        if params:
            mlflow.log_params({k: _param(v) for k, v in params.items()})
        if metrics:
            mlflow.log_metrics(metrics)
        files = [p for p in sorted(job_dir.iterdir()) if p.is_file() and not p.name.startswith(".tmp-")]
        for path in files:
            mlflow.log_artifact(str(path))
        if status != "complete":
            mlflow.end_run(status="FAILED")
        return run.info.run_id


class TrackingCallback(Callback):
    """``hydra.callbacks.tracking`` in conf/config.yaml: acts only with ``tracking=mlflow``.

    The experiment is created once in the sweep's parent process, so parallel workers find it."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if enabled(config):
            mlflow = import_mlflow()
            mlflow.set_tracking_uri(tracking_uri(config))
            _experiment_id(mlflow, experiment_name(config))

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if not enabled(config):
            return
        from hydra.core.utils import JobStatus

        from router_lab.io import run_dir

        failed = job_return.status != JobStatus.COMPLETED
        error = str(job_return._return_value) if failed else None
        run_id = log_job(config, run_dir(), "failed" if failed else "complete", error)
        print(f"router-lab: tracking: logged {run_dir().name} as MLflow run {run_id} "
              f"({tracking_uri(config)})", file=sys.stderr)
