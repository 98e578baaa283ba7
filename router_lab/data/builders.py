"""Built-in datasets by name, and resolving a `dataset` config to a validated :class:`Dataset`.

Built-ins are made deterministically from their config (seed included) and cached under
``datasets/<name>.parquet``; a cached file is reused only when its card records the same build
parameters and its content hash still matches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from router_lab.data.contract import SPLITS, Dataset
from router_lab.data.files import load_dataset_file, read_card, write_dataset
from router_lab.errors import RouterLabError
from router_lab.io import atomic_write_text
from router_lab.registry import Registry


@dataclass(frozen=True)
class BuiltDataset:
    frame: pd.DataFrame
    card: dict[str, Any]
    artifacts: dict[str, str] = field(default_factory=dict)  # suffix -> text, written beside the data


Builder = Callable[[Any, np.random.Generator], BuiltDataset]


# dataset.kind -> builder; each builder's module registers it with @BUILDERS.register("kind"), and
# every module of router_lab.data is imported on the first lookup (a new one registers itself).
BUILDERS: Registry[Builder] = Registry("dataset builder", field="dataset.kind", modules=("router_lab.data",),
                                       error="{field}: got {name!r}; expected one of {options} to build")


def _check_fractions(fractions: list[float]) -> np.ndarray:
    frac = np.asarray(list(fractions), dtype=np.float64)
    if frac.shape != (3,) or (frac < 0).any() or not np.isclose(frac.sum(), 1.0):
        raise RouterLabError(
            f"dataset.split_fractions: got {list(fractions)}; expected three non-negative numbers "
            "(train, val, test) summing to 1"
        )
    return frac


def random_split(n: int, fractions: list[float], rng: np.random.Generator) -> np.ndarray:
    """Assign train/val/test at random in the given proportions (exact counts, seeded)."""
    frac = _check_fractions(fractions)
    counts = np.floor(frac * n).astype(int)
    counts[0] += n - counts.sum()
    labels = np.repeat(np.array(SPLITS, dtype=object), counts)
    return labels[rng.permutation(n)]


def stratified_split(strata: np.ndarray, fractions: list[float], rng: np.random.Generator) -> np.ndarray:
    """Like :func:`random_split`, within each stratum (e.g. each class)."""
    out = np.empty(len(strata), dtype=object)
    for value in np.unique(strata):
        idx = np.flatnonzero(strata == value)
        out[idx] = random_split(len(idx), fractions, rng)
    return out


def build_params(cfg: Any) -> dict[str, Any]:
    """The config values that determine a built dataset's content (recorded in its card)."""
    if isinstance(cfg, DictConfig):
        params = OmegaConf.to_container(cfg, resolve=True)
    else:  # a dataclass config (nested ones too, e.g. synthetic tiers) as plain values
        params = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(vars(cfg))
    params.pop("path", None)
    return params


def default_path(cfg: Any, datasets_dir: str | Path) -> Path:
    return Path(cfg.path) if cfg.path else Path(datasets_dir) / f"{cfg.name}.parquet"


def build_dataset(cfg: Any, datasets_dir: str | Path) -> Dataset:
    """Build a built-in dataset from its config and write it (and its artifacts) atomically."""
    built = BUILDERS.get(cfg.kind)(cfg, np.random.default_rng(int(cfg.seed)))
    path = default_path(cfg, datasets_dir)
    for suffix, text in sorted(built.artifacts.items()):
        atomic_write_text(path.with_name(f"{path.name.rsplit('.', 1)[0]}.{suffix}"), text)
    return write_dataset(built.frame, {**built.card, "params": build_params(cfg)}, path)


def resolve_dataset(cfg: Any, datasets_dir: str | Path) -> Dataset:
    """The dataset a config names: a user file, or a built-in (reused from disk or built)."""
    if cfg.kind == "file":
        if not cfg.path:
            raise RouterLabError("dataset.path: missing; expected the path of a CSV or Parquet file")
        return load_dataset_file(cfg.path)
    path = default_path(cfg, datasets_dir)
    card = read_card(path) if path.exists() else None
    if card is not None and card.get("params") == build_params(cfg):
        try:
            return load_dataset_file(path)
        except RouterLabError:
            pass  # stale or damaged cache: rebuild below
    return build_dataset(cfg, datasets_dir)
