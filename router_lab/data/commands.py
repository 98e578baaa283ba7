"""`router-lab dataset build|check`: thin handlers over the data package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from router_lab.data.builders import build_dataset
from router_lab.data.contract import Dataset
from router_lab.data.files import load_dataset_file
from router_lab.errors import RouterLabError


def datasets_dir(cfg: DictConfig) -> Path:
    """The datasets folder as an absolute path (sweep workers may run elsewhere)."""
    return Path(to_absolute_path(cfg.datasets_dir))


def format_card(ds: Dataset) -> str:
    card: dict[str, Any] = ds.card
    lines = [f"dataset {card.get('name')}  ({card.get('path', ds.source)})"]
    for key in ("task", "source", "license", "outcomes"):
        if key in card:
            lines.append(f"  {key + ':':<18}{card[key]}")
    lines.append(f"  {'rows:':<18}{card['n_rows']:,}")
    lines.append(f"  {'device quality:':<18}{card['device_quality']:.4f} ({card['outcome']})")
    lines.append(f"  {'cloud quality:':<18}{card['cloud_quality']:.4f} ({card['outcome']})")
    if len(ds.models) > 2:
        quality = card.get("model_quality", {})
        lines.append(f"  {'models:':<18}" + ", ".join(
            f"{s.name} ({s.role}{', $' + format(s.price_usd_per_call, 'g') + '/call' if s.price_usd_per_call is not None else ''})"
            + (f" {quality[s.name]:.4f}" if s.name in quality else "") for s in ds.model_specs))
    features = card["feature_columns"]
    shown = ", ".join(features[:6]) + (f", … ({len(features)} in all)" if len(features) > 6 else "")
    lines.append(f"  {'input features:':<18}{shown or '(text)'}")
    if card["confidence_columns"]:
        lines.append(f"  {'confidence:':<18}{', '.join(card['confidence_columns'])}")
    if "sensitive_fraction" in card:
        lines.append(f"  {'sensitive:':<18}{card['sensitive_fraction']:.4f} of requests")
    if "splits" in card:
        lines.append(f"  {'splits:':<18}" + ", ".join(f"{k} {v:,}" for k, v in card["splits"].items()))
    lines.append(f"  {'content sha256:':<18}{card['content_hash']}")
    return "\n".join(lines)


def build(cfg: DictConfig) -> Dataset:
    if cfg.dataset.kind == "file":
        raise RouterLabError("dataset=file: a user file is not built; use "
                             "'router-lab dataset check PATH' to validate it")
    ds = build_dataset(cfg.dataset, datasets_dir(cfg))
    print(format_card(ds))
    return ds


def check(cfg: DictConfig) -> Dataset:
    if not cfg.path:
        raise RouterLabError("dataset check: missing PATH; expected 'router-lab dataset check FILE.parquet'")
    ds = load_dataset_file(to_absolute_path(cfg.path))
    print(format_card(ds))
    return ds
