"""Checks of a composed config before any command runs: what Hydra's typed schemas let through.

* A key appended with ``+`` (or ``++``) inside a typed section or group (``+sim.n_request=100``)
  is a typo like any other: Hydra adds it to the structured node, and nothing would read it.
* A key appended at the top level (``+seeds=3``) is refused the same way: the root's keys are the
  ``Config`` fields, plus ``resume`` (read by the job runner).
* A documented top-level key (``TOP_LEVEL_KEYS``: ``seed``, ``datasets_dir``, ``path``, ``out``,
  ``model_path``, ``bundle``, …) given to a command that does not use it is refused, not ignored.
* Numbers: no NaN or infinity anywhere in the typed sections and groups, and the ranges of the
  ``train.*`` and ``export.*`` run options (``sim.*`` and the scenario groups are range-checked by
  ``router_lab.sim.scenario`` before a simulation starts).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from router_lab.errors import RouterLabError

# Each documented top-level key -> the commands that honour it (see the README's table).
TOP_LEVEL_KEYS: dict[str, tuple[str, ...]] = {
    "seed": ("dataset_import", "train", "evaluate", "simulate", "export", "testbed", "search"),
    "datasets_dir": ("dataset_build", "dataset_import", "train", "evaluate", "simulate", "export",
                     "validate", "replay", "testbed", "profile", "search"),
    "path": ("dataset_check", "dataset_import", "validate", "report", "replay"),
    "out": ("dataset_import", "export", "validate", "keygen", "replay"),
    "bundle": ("simulate", "replay", "testbed"),
    "sign_key": ("export",),
    "run_dir": ("export", "validate"),
    "model_path": ("evaluate", "simulate", "export", "validate", "testbed", "search"),
    "data": ("export", "validate"),
    "router_onnx": ("simulate",),
    "cascade_onnx": ("simulate",),
    "importer": ("dataset_import",),
    "device_model": ("dataset_import",),
    "cloud_model": ("dataset_import",),
}
# Where a user who gave an ignored key probably meant to go instead.
HINTS: dict[tuple[str, str], str] = {
    ("seed", "dataset_build"): "the builder's seed is dataset.seed",
    ("out", "report"): "the report's folder is report.out_dir",
    ("out", "train"): "choose the run folder with hydra.run.dir=…",
    ("out", "simulate"): "choose the run folder with hydra.run.dir=…",
    ("out", "evaluate"): "choose the run folder with hydra.run.dir=…",
    ("model_path", "train"): "train writes a router; evaluate, simulate and export read one",
}
SPLITS = ("train", "val", "test")


def check_config(cfg: DictConfig, overrides: list[str] | None = None) -> None:
    """Raise a one-line RouterLabError for the first problem found in ``cfg`` (see the module doc).

    ``overrides`` are the command line's task overrides (``key=value``); by default Hydra's.
    """
    if overrides is None:
        overrides = _task_overrides()
    _check_added_keys(cfg, "")
    _check_root_keys(cfg)
    _check_top_level(str(cfg.get("command", "")), overrides)
    _check_finite(cfg, "")
    _check_evaluate(OmegaConf.select(cfg, "evaluate", default=None))
    _check_export(cfg.export)


def _task_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def _schema_fields(node: DictConfig) -> tuple[type, set[str]] | None:
    kind = OmegaConf.get_type(node)
    if kind is None or not dataclasses.is_dataclass(kind):
        return None
    return kind, {f.name for f in dataclasses.fields(kind)}


def _check_added_keys(node: Any, where: str) -> None:
    if not isinstance(node, DictConfig):
        return
    schema = _schema_fields(node)
    if schema is not None and where:  # the root (Config) has Hydra's own keys added to it
        kind, known = schema
        extra = sorted(str(k) for k in node.keys() if k not in known)
        if extra:
            raise RouterLabError(
                f"{where}.{extra[0]}: no such key in {where} ({kind.__name__}); a key appended "
                f"with '+' is not read by anything; expected one of: {', '.join(sorted(known))}")
    for key in node.keys():
        if str(key) == "hydra":
            continue
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            _check_added_keys(child, f"{where}.{key}" if where else str(key))


def _check_root_keys(cfg: DictConfig) -> None:
    schema = _schema_fields(cfg)
    if schema is None:
        return
    from router_lab.report.jobs import RUN_ONLY_KEYS  # +resume=true: read by the job runner

    known = sorted(schema[1] - {"command"})
    extra = sorted(str(k) for k in cfg.keys() if k not in schema[1] and str(k) not in ("hydra", *RUN_ONLY_KEYS))
    if extra:
        close = difflib.get_close_matches(extra[0], known, n=1)
        hint = f"did you mean {close[0]}?" if close else f"expected one of: {', '.join(known)}"
        raise RouterLabError(f"{extra[0]}: no such top-level key; a key appended with '+' is not read "
                             f"by anything ({hint})")


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~").strip()


def _check_top_level(command: str, overrides: list[str]) -> None:
    for override in overrides:
        key = _override_key(override)
        honoured = TOP_LEVEL_KEYS.get(key)
        if honoured is None or command in honoured:
            continue
        name = command.replace("_", " ")
        hint = HINTS.get((key, command), f"it is used by: {', '.join(c.replace('_', ' ') for c in honoured)}")
        raise RouterLabError(f"{key}: '{name}' does not use this key (it would be ignored); {hint}")


def _check_finite(node: Any, where: str) -> None:
    if isinstance(node, DictConfig):
        for key in node.keys():
            if str(key) == "hydra":
                continue
            child = node._get_node(key)
            path = f"{where}.{key}" if where else str(key)
            if isinstance(child, DictConfig | ListConfig):
                if not child._is_missing() and not child._is_none():
                    _check_finite(child, path)
            else:
                _finite(path, child._value())
    elif isinstance(node, ListConfig):
        for i, child in enumerate(node._iter_ex(resolve=False)):
            _check_finite(child, f"{where}[{i}]") if isinstance(child, DictConfig | ListConfig) else \
                _finite(f"{where}[{i}]", child)


def _finite(path: str, value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise RouterLabError(f"{path}: got {value}; expected a finite number (NaN and infinity are "
                             "not allowed; use null where the option allows none)")


def _fail(field: str, value: Any, expected: str) -> RouterLabError:
    return RouterLabError(f"{field}: got {value!r}; expected {expected}")


def _check_evaluate(section: Any) -> None:
    """`evaluate.*` (the train section holds only mode, modes and model_path now)."""
    if section is None:
        return
    if section.folds < 2:
        raise _fail("evaluate.folds", section.folds, "an integer >= 2")
    if section.repeats < 1:
        raise _fail("evaluate.repeats", section.repeats, "an integer >= 1")
    if section.split not in SPLITS:
        raise _fail("evaluate.split", section.split, f"one of {', '.join(SPLITS)}")
    if section.n_boot < 1:
        raise _fail("evaluate.n_boot", section.n_boot, "an integer >= 1")
    if not 0 < section.level < 1:
        raise _fail("evaluate.level", section.level, "a fraction in (0, 1)")
    for i, fraction in enumerate(section.pgr_fractions or []):
        if not 0 < fraction <= 1:
            raise _fail(f"evaluate.pgr_fractions[{i}]", fraction, "a fraction in (0, 1]")


def _check_export(section: Any) -> None:
    for name in ("opset", "ml_opset", "latency_calls", "batch_rows", "batch_calls", "threads"):
        if getattr(section, name) < 1:
            raise _fail(f"export.{name}", getattr(section, name), "an integer >= 1")
    for name in ("max_abs_diff", "tie_band"):
        if getattr(section, name) < 0:
            raise _fail(f"export.{name}", getattr(section, name), "a non-negative number")
    if section.max_model_bytes is not None and section.max_model_bytes < 1:
        raise _fail("export.max_model_bytes", section.max_model_bytes, "a positive size in bytes or null")
    if section.max_p99_us is not None and section.max_p99_us <= 0:
        raise _fail("export.max_p99_us", section.max_p99_us, "a positive number of µs or null")
    if section.split not in SPLITS:
        raise _fail("export.split", section.split, f"one of {', '.join(SPLITS)}")
