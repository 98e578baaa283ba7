"""Structured configs: the top-level `Config` and every group's schemas, registered with Hydra.

Each stage owns the dataclasses of its own config group (``router_lab/<stage>/config.py`` lists
them in ``SCHEMAS``); the `policy` group's come from its registry (each policy names its schema
in its ``@register_policy`` line, so a new policy module needs no list to be edited).  This module
gathers them into Hydra's ConfigStore.  A group option in
``router_lab/conf/<group>/<option>.yaml`` names its schema in its defaults list, so a typo in a key or a wrong
type is an error before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore

from router_lab.data.config import SCHEMAS as DATA_SCHEMAS
from router_lab.export.config import SCHEMAS as EXPORT_SCHEMAS
from router_lab.export.config import ExportSection
from router_lab.report.config import SCHEMAS as REPORT_SCHEMAS
from router_lab.report.config import ReportSection
from router_lab.search.config import SearchSection
from router_lab.sim.config import SCHEMAS as SIM_SCHEMAS
from router_lab.sim.config import SimSection
from router_lab.testbed.config import TestbedSection
from router_lab.tracking import SCHEMAS as TRACKING_SCHEMAS
from router_lab.train.config import SCHEMAS as TRAIN_SCHEMAS
from router_lab.train.config import EvaluateSection, TrainSection

# The config folder Hydra reads (the defaults list and one folder per group).  It ships inside the
# package, so an installed wheel and the checkout read the same files.
CONF_DIR = Path(__file__).resolve().parent / "conf"


def conf_hint(group: str) -> str:
    """Where a user finds the options of ``group``, for error messages."""
    return f"see {CONF_DIR.parent.name}/{CONF_DIR.name}/{group}/"


@dataclass
class Config:
    # Config groups (chosen in router_lab/conf/config.yaml's defaults list, overridden as `group=option`).
    dataset: Any = None
    router: Any = None
    target: Any = None
    policy: Any = None
    workload: Any = None
    device: Any = None
    network: Any = None
    cloud: Any = None
    tiers: dict[str, Any] = field(default_factory=dict)  # more remote tiers: +tier@tiers.edge=edge
    every_model: Any = None  # deployment=every_model: the tier preset each unserved remote model gets
    tracking: Any = None  # optional experiment tracking (none | mlflow)
    # Plain sections, one per stage that needs run options.
    sim: SimSection = field(default_factory=SimSection)
    train: TrainSection = field(default_factory=TrainSection)
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)
    export: ExportSection = field(default_factory=ExportSection)
    report: ReportSection = field(default_factory=ReportSection)
    testbed: TestbedSection = field(default_factory=TestbedSection)
    search: SearchSection = field(default_factory=SearchSection)
    seed: int = 0  # the experiment's seed; every Generator is derived from it
    datasets_dir: str = "datasets"  # where built-in datasets are built and cached
    path: str | None = None  # the positional PATH of `dataset check`, `validate`, `report`
    out: str | None = None  # an explicit output file, where a command writes one
    run_dir: str | None = None  # `export run_dir=…`: the folder of a `router-lab train` run
    model_path: str | None = None  # a trained router (router.json or its folder) to use
    data: str | None = None  # `validate PATH data=…`: a CSV/Parquet file to validate against
    bundle: str | None = None  # `simulate/replay bundle=…`: an exported routing bundle folder
    # compare_policies_onnx: the exported routers its learned / learned_cascade jobs score with
    router_onnx: str | None = None
    cascade_onnx: str | None = None
    sign_key: str | None = None  # `export sign_key=…`: Ed25519 private key (PEM) signing the manifests
    importer: str | None = None  # `dataset import NAME`: routellm | routerbench
    device_model: str | None = None  # `dataset import`: the model column playing the device
    cloud_model: str | None = None  # `dataset import`: the model column playing the cloud
    command: str = ""  # set by the CLI: which subcommand runs


def registry_schemas() -> list[tuple[str, str, type]]:
    """The `policy` group's schemas, from the policy registry: ``schema_policy`` (no parameters)
    and ``schema_<name>`` for each policy registered with a schema of its own."""
    from router_lab.policies.config import PolicyConfig
    from router_lab.policies.registry import POLICIES

    out: list[tuple[str, str, type]] = [("policy", "schema_policy", PolicyConfig)]
    out += [("policy", f"schema_{e.name}", e.schema) for e in POLICIES.entries()
            if e.schema is not None and e.schema is not PolicyConfig]
    return out


def all_schemas() -> list[tuple[str, str, type]]:
    """(group, name, dataclass) of every schema in Hydra's ConfigStore."""
    return [*DATA_SCHEMAS, *TRAIN_SCHEMAS, *registry_schemas(), *SIM_SCHEMAS, *EXPORT_SCHEMAS,
            *REPORT_SCHEMAS, *TRACKING_SCHEMAS]


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for group, name, node in all_schemas():
        cs.store(group=group, name=name, node=node)
