"""Reading and writing dataset files (CSV or Parquet) with a JSON card beside them.

``datasets/digits.parquet`` has its card at ``datasets/digits.card.json``.  Writes are atomic; the
card records the data file's SHA-256, so a card that no longer matches its file is caught.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import pandas as pd

from router_lab.data.contract import SCHEMA_VERSION, Dataset, summarize, validate_frame
from router_lab.errors import RouterLabError
from router_lab.io import atomic_path, atomic_write_json, sha256_file

SUFFIXES = (".csv", ".parquet")


def card_path(data_path: str | Path) -> Path:
    path = Path(data_path)
    return path.with_name(path.name.rsplit(".", 1)[0] + ".card.json")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file; every failure is a one-line :class:`RouterLabError`."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise RouterLabError(f"{path}: unsupported file type '{path.suffix}'; expected .csv or .parquet")
    if not path.exists():
        raise RouterLabError(f"{path}: no such file")
    if path.is_dir():
        raise RouterLabError(f"{path}: is a folder; expected a .csv or .parquet file")
    if path.stat().st_size == 0:
        raise RouterLabError(f"{path}: file is empty; expected a header and one row per request")
    kind = "CSV" if path.suffix.lower() == ".csv" else "Parquet"
    try:
        check_unique_header(path, header_names(path))
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except RouterLabError:
        raise
    except Exception as exc:  # parser errors differ by engine; all mean "not a readable table"
        raise RouterLabError(f"{path}: not a readable {kind} file ({type(exc).__name__}: {exc})") from exc


def header_names(path: Path) -> list[str]:
    """The column names as the file spells them (pandas renames a repeated CSV name `x` to `x.1`,
    which would turn a duplicated outcome column into a feature)."""
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            return next(csv.reader(fh), [])
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


def check_unique_header(path: Path, names: list[str]) -> None:
    first: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if name in first:
            raise RouterLabError(f"{path}: column '{name}' appears twice in the header (columns "
                                 f"{first[name]} and {position}); expected unique column names")
        first[name] = position


def read_card(data_path: str | Path) -> dict[str, Any] | None:
    path = card_path(data_path)
    if not path.exists():
        return None
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RouterLabError(f"{path}: not a readable JSON card ({exc})") from exc
    if not isinstance(card, dict):
        raise RouterLabError(f"{path}: expected a JSON object")
    return card


def load_dataset_file(path: str | Path) -> Dataset:
    """Load and validate a dataset file; its card is read when present, else one is derived."""
    path = Path(path)
    frame = read_table(path)
    card = read_card(path)
    digest = sha256_file(path)
    if card is not None and card.get("content_hash") not in (None, digest):
        raise RouterLabError(
            f"{card_path(path)}: field 'content_hash' is {card.get('content_hash')!r} but the data file "
            f"hashes to {digest!r}; the card does not describe this file (rebuild or remove the card)"
        )
    ds = validate_frame(frame, str(path), card)
    full = {"name": path.name.rsplit(".", 1)[0], **(card or {})}
    full.update(summarize(ds), content_hash=digest, path=str(path))
    return dataclasses.replace(ds, card=full)


def write_dataset(frame: pd.DataFrame, card: dict[str, Any], path: str | Path) -> Dataset:
    """Validate ``frame``, write it and its card atomically, and return the loaded dataset."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise RouterLabError(f"{path}: unsupported output type '{path.suffix}'; expected .csv or .parquet")
    ds = validate_frame(frame, str(path), card)
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".csv":
            ds.frame.to_csv(tmp, index=False)
        else:
            ds.frame.to_parquet(tmp, index=False, compression="zstd")
        digest = sha256_file(tmp)
        full = {"schema_version": SCHEMA_VERSION, **card, **summarize(ds), "content_hash": digest}
        atomic_write_json(card_path(path), full)
    return dataclasses.replace(ds, card={**full, "path": str(path)}, source=str(path))
