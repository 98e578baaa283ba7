"""The Python API: the CLI's commands as functions, for notebooks and scripts.

    from router_lab import api
    ds = api.dataset("digits")                                   # a validated Dataset
    router = api.train("target.max_cloud_fraction=0.2")          # a TrainedRouter
    run = api.simulate("policy=budget", "sim.n_requests=2000")   # metrics + requests frame
    table = api.compare(["always_local", "learned", "budget"])   # one row per policy
    bundle = api.export("policy=budget", run_dir=folder, out="bundle/")   # a verified Bundle

Every function takes the CLI's overrides (``group=option``, ``key=value``), composes the config
with Hydra's compose API from the same ``conf/`` and structured schemas (so a typo or a bad value
fails as on the command line), and calls the same library function the CLI handler calls.  User
mistakes raise :class:`router_lab.errors.RouterLabError` (one line); nothing exits the process.
Outputs are written only where a function says so (``out=``, ``train(out=…)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError
from router_lab.evaluate import Evaluation
from router_lab.report.build import ReportResult
from router_lab.runtime.bundle import Bundle
from router_lab.train.artifacts import TrainedRouter
from router_lab.train.quality import QualityRouter

__all__ = ["Simulation", "RouterLabError", "compare", "config", "dataset", "evaluate", "export",
           "load_bundle", "report", "simulate", "train"]


@dataclass(frozen=True)
class Simulation:
    """What `router-lab simulate` writes: ``metrics`` (metrics.json) and ``requests``
    (requests.parquet, one row per request and replication)."""

    metrics: dict[str, Any]
    requests: pd.DataFrame


def config(*overrides: str, command: str = "simulate") -> DictConfig:
    """The composed config of ``router-lab COMMAND OVERRIDES`` (validated against the schemas)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from router_lab.cli import CONF_DIR, render_error
    from router_lab.config import register_configs

    register_configs()
    args = [f"command={command.replace(' ', '_')}", *[str(o) for o in overrides]]
    try:
        if GlobalHydra.instance().is_initialized():  # inside a Hydra app (e.g. a sweep callback)
            return compose("config", overrides=args)
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose("config", overrides=args)
    except RouterLabError:
        raise
    except Exception as exc:
        message = render_error(exc)
        if message is None:
            raise
        raise RouterLabError(message) from None


def _with(overrides: Sequence[str], **keys: Any) -> list[str]:
    """``overrides`` plus ``key=value`` for each keyword given (None: not given)."""
    return [*overrides, *[f"{k}={_quote(v)}" for k, v in keys.items() if v is not None]]


def _quote(value: Any) -> str:
    text = str(value)
    return f"'{text}'" if isinstance(value, str | Path) else text


def dataset(name: str = "digits", *overrides: str, datasets_dir: str | Path | None = None) -> Dataset:
    """A built-in dataset (built or reused under ``datasets_dir``, as every command does), or a
    CSV/Parquet file in the contract's format when ``name`` is a path."""
    from router_lab.data.builders import resolve_dataset
    from router_lab.data.commands import datasets_dir as folder_of
    from router_lab.data.files import load_dataset_file

    if Path(name).suffix.lower() in (".csv", ".parquet"):
        return load_dataset_file(Path(name).resolve())
    cfg = config(*_with([f"dataset={name}", *overrides], datasets_dir=datasets_dir), command="dataset build")
    return resolve_dataset(cfg.dataset, folder_of(cfg))


def train(*overrides: str, out: str | Path | None = None) -> TrainedRouter | QualityRouter:
    """`router-lab train`: the fitted router (``train.per_model=true``: the per-model quality
    heads); with ``out``, saved there as the CLI saves it (a folder `export run_dir=…` and
    `model_path=…` accept)."""
    from router_lab.train.artifacts import dataset_hash, save_trained_router
    from router_lab.train.commands import train_config, train_quality_config
    from router_lab.train.quality_files import save_quality_router

    cfg = config(*overrides, command="train")
    if cfg.train.per_model:
        heads, dataset = train_quality_config(cfg)
        if out is not None:
            save_quality_router(heads, Path(out), dataset.name, dataset_hash(dataset))
        return heads
    router = train_config(cfg)
    if out is not None:
        save_trained_router(router, Path(out))
    return router


def evaluate(*overrides: str) -> Evaluation:
    """`router-lab evaluate`: ``.table`` (evaluation.csv) and ``.curves`` (curves.csv)."""
    from router_lab.evaluate import evaluate_config

    return evaluate_config(config(*overrides, command="evaluate"))[0]


def simulate(*overrides: str, bundle: str | Path | None = None) -> Simulation:
    """`router-lab simulate` (``bundle``: simulate an exported bundle as shipped)."""
    from router_lab.sim.commands import requests_frame, simulate_config

    runs, metrics = simulate_config(config(*_with(overrides, bundle=bundle), command="simulate"))
    return Simulation(metrics, requests_frame(runs))


def compare(policies: Iterable[str], *overrides: str) -> pd.DataFrame:
    """The policies simulated on one scenario: one row per policy with the columns of the
    report's summary.csv for the metrics (``<metric>_ci95_low/high`` included)."""
    from router_lab.report.summary import metric_columns

    rows = []
    for policy in policies:
        run = simulate(f"policy={policy}", *overrides)
        rows.append({"policy": policy, **metric_columns(run.metrics)})
    if not rows:
        raise RouterLabError("compare: got no policies; expected e.g. ['always_local', 'learned']")
    return pd.DataFrame(rows)


def export(*overrides: str, out: str | Path, run_dir: str | Path | None = None) -> Bundle:
    """`router-lab export`: write the policy's bundle into ``out`` (every gate must pass) and load
    it back through the device runtime, which verifies every file against the manifest."""
    from router_lab.export.commands import export as export_bundle
    from router_lab.runtime.bundle import load_bundle as load

    folder = Path(out).resolve()
    export_bundle(config(*_with(overrides, run_dir=None if run_dir is None else Path(run_dir).resolve(),
                                out=folder), command="export"))
    return load(folder)


def load_bundle(path: str | Path) -> Bundle:
    """A bundle, verified (see :func:`router_lab.runtime.load_bundle`)."""
    from router_lab.runtime.bundle import load_bundle as load

    return load(path)


def report(path: str | Path, out_dir: str | Path | None = None) -> ReportResult:
    """`router-lab report PATH`: summary.csv/.parquet/.md, figures and report.html."""
    from router_lab.report.build import build_report

    return build_report(Path(path), out_dir)
