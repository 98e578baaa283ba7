"""The routing-dataset contract: one row per request, validated once at the boundary.

A valid frame becomes a :class:`Dataset`; nothing downstream re-validates.  The rules are written
down for people in ``datasets/README.md``; this module is their executable form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from router_lab.errors import RouterLabError

SCHEMA_VERSION = 1

OUTCOME_PAIRS: dict[str, tuple[str, str]] = {
    "correct": ("device_correct", "cloud_correct"),
    "score": ("device_score", "cloud_score"),
}
BINARY_COLUMNS = ("device_correct", "cloud_correct", "sensitive")
UNIT_INTERVAL_COLUMNS = ("device_score", "cloud_score", "device_confidence")
COUNT_COLUMNS = ("input_bytes", "output_bytes", "tokens_in", "tokens_out")
STRING_COLUMNS = ("text", "category")
SPLITS = ("train", "val", "test")
# Columns with a fixed meaning; every other column is a feature.
RESERVED = frozenset(
    {"request_id", "label", "timestamp", "split", "tokens_estimated", *BINARY_COLUMNS,
     *UNIT_INTERVAL_COLUMNS, *COUNT_COLUMNS, *STRING_COLUMNS}
)
# Device-side outputs known only after the device model ran (post-routing / cascade features).
CONFIDENCE_PREFIX = "device_"
# Upper bounds (datasets/README.md): features are the router's float32 input; sizes and token
# counts feed the simulator's integer byte/token arithmetic and stay far below where it overflows.
FLOAT32_MAX = float(np.finfo(np.float32).max)
# input_bytes / output_bytes: 64 MiB per request, far above any on-device request or answer, and
# small enough that the simulator's int32 off-device bytes (size x upload attempts) cannot wrap
# for up to 32 attempts
MAX_BYTES = 2**26
MAX_TOKENS = 10_000_000  # tokens_in / tokens_out: ten million tokens per request
MAX_TIMESTAMP_S = 10 * 365 * 86_400.0  # timestamp: ten years of seconds
UPPER_BOUNDS: dict[str, float] = {"input_bytes": MAX_BYTES, "output_bytes": MAX_BYTES,
                                  "tokens_in": MAX_TOKENS, "tokens_out": MAX_TOKENS,
                                  "timestamp": MAX_TIMESTAMP_S}


@dataclass(frozen=True)
class Dataset:
    """A validated routing dataset: the frame, its card, and the roles of its columns."""

    frame: pd.DataFrame
    card: dict[str, Any]
    source: str
    outcome: Literal["correct", "score"]
    feature_columns: tuple[str, ...]
    confidence_columns: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def name(self) -> str:
        return str(self.card.get("name", self.source))

    @property
    def has_text(self) -> bool:
        return "text" in self.frame.columns

    def device_quality(self) -> np.ndarray:
        """Quality of the device model's answer per request (0/1 correctness or a score)."""
        return self.frame[OUTCOME_PAIRS[self.outcome][0]].to_numpy(dtype=np.float64)

    def cloud_quality(self) -> np.ndarray:
        return self.frame[OUTCOME_PAIRS[self.outcome][1]].to_numpy(dtype=np.float64)

    def column_or(self, name: str, default: float | bool) -> np.ndarray:
        """A column as a numpy array, or ``default`` repeated when the dataset lacks it."""
        if name in self.frame.columns:
            return self.frame[name].to_numpy()
        return np.full(len(self.frame), default)

    def features(self, columns: tuple[str, ...] | None = None) -> np.ndarray:
        """Numeric features as a float32 matrix (the router's and ONNX's input type)."""
        cols = list(self.feature_columns if columns is None else columns)
        return self.frame[cols].to_numpy(dtype=np.float32)

    def split_mask(self, split: str) -> np.ndarray:
        if "split" not in self.frame.columns:
            raise RouterLabError(f"{self.source}: no 'split' column; expected one of {SPLITS} per row")
        return (self.frame["split"] == split).to_numpy()


def _fail(source: str, column: str | None, row: int | None, problem: str) -> RouterLabError:
    where = source
    if column is not None:
        where += f": column '{column}'"
    if row is not None:
        where += f", row {row + 1}"
    return RouterLabError(f"{where}: {problem}")


def _first_bad(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else None


def _check_numeric(df: pd.DataFrame, col: str, source: str, expected: str) -> np.ndarray:
    series = df[col]
    if pd.api.types.is_bool_dtype(series):
        if series.isna().any():
            row = _first_bad(series.isna().to_numpy())
            raise _fail(source, col, row, f"empty value; expected {expected}")
        return series.to_numpy(dtype=np.float64)
    if not pd.api.types.is_numeric_dtype(series):
        coerced = pd.to_numeric(series, errors="coerce")
        row = _first_bad(coerced.isna().to_numpy() & series.notna().to_numpy())
        if row is None:
            row = _first_bad(series.isna().to_numpy())
        row = 0 if row is None else row
        raise _fail(source, col, row, f"got {series.iloc[row]!r}; expected {expected}")
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    row = _first_bad(~np.isfinite(values))
    if row is not None:
        raise _fail(source, col, row, f"got {values[row]}; expected {expected} (NaN/inf not allowed)")
    return values


def _check_binary(df: pd.DataFrame, col: str, source: str) -> None:
    series = df[col]
    if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
        lowered = series.map(lambda v: str(v).strip().lower())
        mapping = {"true": 1, "false": 0, "1": 1, "0": 0}
        bad = _first_bad(~lowered.isin(list(mapping)).to_numpy())
        if bad is not None:
            raise _fail(source, col, bad, f"got {series.iloc[bad]!r}; expected 0/1 or true/false")
        df[col] = lowered.map(mapping).astype(np.int8)
        return
    values = _check_numeric(df, col, source, "0/1 or true/false")
    bad = _first_bad((values != 0) & (values != 1))
    if bad is not None:
        raise _fail(source, col, bad, f"got {values[bad]}; expected 0/1 or true/false")
    df[col] = values.astype(np.int8)


def _check_strings(df: pd.DataFrame, col: str, source: str) -> None:
    series = df[col]
    ok = series.map(lambda v: isinstance(v, str) and v.strip() != "").to_numpy(dtype=bool)
    bad = _first_bad(~ok)
    if bad is not None:
        raise _fail(source, col, bad, f"got {series.iloc[bad]!r}; expected a non-empty string")


def validate_frame(df: pd.DataFrame, source: str, card: dict[str, Any] | None = None) -> Dataset:
    """Check ``df`` against the contract and return a :class:`Dataset` (a validated copy).

    Raises :class:`RouterLabError` naming ``source``, the column and the first offending row.
    """
    duplicated = df.columns[df.columns.duplicated()]
    if len(duplicated):
        raise _fail(source, str(duplicated[0]), None, "the column name appears more than once; "
                    "expected unique column names")
    df = df.copy()
    if len(df.columns) == 0 or len(df) == 0:
        raise _fail(source, None, None, "no rows; expected one row per request")
    if "request_id" not in df.columns:
        raise _fail(source, None, None, "missing column 'request_id'; expected a unique id per request")
    ids = df["request_id"]
    row = _first_bad(ids.isna().to_numpy())
    if row is not None:
        raise _fail(source, "request_id", row, "empty id; expected a unique id per request")
    dup = _first_bad(ids.duplicated().to_numpy())
    if dup is not None:
        raise _fail(source, "request_id", dup, f"duplicate id {ids.iloc[dup]}; expected unique ids")

    outcome = next((k for k, pair in OUTCOME_PAIRS.items() if set(pair) <= set(df.columns)), None)
    if outcome is None:
        raise _fail(source, None, None, "missing outcome columns; expected device_correct and "
                    "cloud_correct (0/1) or device_score and cloud_score (in [0, 1])")

    for col in BINARY_COLUMNS:
        if col in df.columns:
            _check_binary(df, col, source)
    for col in UNIT_INTERVAL_COLUMNS:
        if col in df.columns:
            values = _check_numeric(df, col, source, "a number in [0, 1]")
            bad = _first_bad((values < 0) | (values > 1))
            if bad is not None:
                raise _fail(source, col, bad, f"got {values[bad]}; expected a number in [0, 1]")
    for col in (*COUNT_COLUMNS, "timestamp"):
        if col in df.columns:
            bound = UPPER_BOUNDS[col]
            values = _check_numeric(df, col, source, f"a number in [0, {bound:,.0f}]")
            bad = _first_bad(values < 0)
            if bad is not None:
                raise _fail(source, col, bad, f"got {values[bad]}; expected a non-negative number")
            bad = _first_bad(values > bound)
            if bad is not None:
                raise _fail(source, col, bad, f"got {values[bad]:g}; expected at most {bound:,.0f} "
                            f"(the contract's upper bound for {col}, datasets/README.md)")
    for col in STRING_COLUMNS:
        if col in df.columns:
            _check_strings(df, col, source)
    if "split" in df.columns:
        bad = _first_bad(~df["split"].isin(SPLITS).to_numpy())
        if bad is not None:
            raise _fail(source, "split", bad, f"got {df['split'].iloc[bad]!r}; expected one of {', '.join(SPLITS)}")

    features, confidences = [], []
    for col in df.columns:
        if col in RESERVED:
            continue
        if not isinstance(col, str) or not col:
            raise _fail(source, str(col), None, "column names must be non-empty strings")
        values = _check_numeric(df, col, source, "a finite number (feature columns are numeric)")
        bad = _first_bad(np.abs(values) > FLOAT32_MAX)
        if bad is not None:
            raise _fail(source, col, bad, f"got {values[bad]:g}; expected |value| <= {FLOAT32_MAX:.6g} "
                        "(features are the router's float32 input)")
        (confidences if col.startswith(CONFIDENCE_PREFIX) else features).append(col)
    if "device_confidence" in df.columns:
        confidences.insert(0, "device_confidence")
    if not features and "text" not in df.columns:
        raise _fail(source, None, None, "no input features; expected numeric feature columns or a 'text' column")

    df = df.reset_index(drop=True)
    card = dict(card) if card else {}
    card.setdefault("name", source.rsplit("/", 1)[-1].split(".")[0])
    return Dataset(frame=df, card=card, source=source, outcome=outcome,
                   feature_columns=tuple(features), confidence_columns=tuple(confidences))


def summarize(ds: Dataset) -> dict[str, Any]:
    """Measured facts for the card: rows, outcome means, sensitive fraction, split sizes."""
    frame = ds.frame
    summary: dict[str, Any] = {
        "n_rows": int(len(frame)),
        "outcome": ds.outcome,
        "device_quality": round(float(ds.device_quality().mean()), 6),
        "cloud_quality": round(float(ds.cloud_quality().mean()), 6),
        "feature_columns": list(ds.feature_columns),
        "confidence_columns": list(ds.confidence_columns),
        "has_text": ds.has_text,
    }
    if "sensitive" in frame.columns:
        summary["sensitive_fraction"] = round(float(frame["sensitive"].mean()), 6)
    if "split" in frame.columns:
        summary["splits"] = {s: int((frame["split"] == s).sum()) for s in SPLITS}
    return summary
