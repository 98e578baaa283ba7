"""The routing-dataset contract: one row per request, validated once at the boundary.

A valid frame becomes a :class:`Dataset`; nothing downstream re-validates.  The rules are written
down for people in ``datasets/README.md``; this module is their executable form.  A dataset answers
for two models (``device`` and ``cloud``: the ``device_*`` / ``cloud_*`` columns) and optionally
more, each with ``model_<name>_correct`` or ``model_<name>_score`` and optional cost and token
columns, named in tier order with roles by the card's ``models`` list.
"""

from __future__ import annotations

import math
import re
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
# N models: the two base models answer in the device_*/cloud_* columns; every other model in
# model_<name>_<suffix> columns.  Cost and token columns exist for every model, base ones included.
BASE_MODELS = ("device", "cloud")
ROLES = ("device", "edge", "cloud")
MODEL_PREFIX = "model_"
MODEL_OUTCOME_SUFFIXES = ("correct", "score")
MODEL_EXTRA_SUFFIXES = ("cost_usd", "tokens_out")
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*(?:_[A-Za-z0-9.-]+)*$")
MAX_COST_USD = 1_000.0  # model_<name>_cost_usd / price_usd_per_call: a thousand dollars per request
# Columns with a fixed meaning; every other column (except model_<name>_* columns) is a feature.
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
class ModelSpec:
    """One model a dataset has outcomes for: its name, its tier role and (optionally) its price."""

    name: str
    role: Literal["device", "edge", "cloud"]
    price_usd_per_call: float | None = None
    source_name: str | None = None  # the model's name in the source data (e.g. an LLM's id)


TWO_MODELS = (ModelSpec("device", "device"), ModelSpec("cloud", "cloud"))


def model_column(name: str, suffix: str) -> str:
    """The column of model ``name`` for ``suffix`` (correct, score, cost_usd, tokens_out)."""
    if name in BASE_MODELS and suffix in MODEL_OUTCOME_SUFFIXES:
        return f"{name}_{suffix}"
    return f"{MODEL_PREFIX}{name}_{suffix}"


def parse_model_column(column: object) -> tuple[str, str] | None:
    """(model name, suffix) of a ``model_<name>_<suffix>`` column, else None."""
    if not isinstance(column, str) or not column.startswith(MODEL_PREFIX):
        return None
    for suffix in (*MODEL_EXTRA_SUFFIXES, *MODEL_OUTCOME_SUFFIXES):
        if column.endswith(f"_{suffix}") and len(column) > len(MODEL_PREFIX) + len(suffix) + 1:
            return column[len(MODEL_PREFIX):-len(suffix) - 1], suffix
    return None


@dataclass(frozen=True)
class Dataset:
    """A validated routing dataset: the frame, its card, and the roles of its columns."""

    frame: pd.DataFrame
    card: dict[str, Any]
    source: str
    outcome: Literal["correct", "score"]
    feature_columns: tuple[str, ...]
    confidence_columns: tuple[str, ...] = field(default=())
    model_specs: tuple[ModelSpec, ...] = field(default=TWO_MODELS)  # in tier order

    @property
    def models(self) -> tuple[str, ...]:
        """The models' names in tier order (two-model data: ``("device", "cloud")``)."""
        return tuple(m.name for m in self.model_specs)

    def model_spec(self, model: str) -> ModelSpec:
        for spec in self.model_specs:
            if spec.name == model:
                return spec
        raise RouterLabError(f"{self.source}: no model {model!r}; expected one of {', '.join(self.models)}")

    def quality(self, model: str) -> np.ndarray:
        """Quality of ``model``'s answer per request (0/1 correctness or a score in [0, 1])."""
        self.model_spec(model)
        return self.frame[model_column(model, self.outcome)].to_numpy(dtype=np.float64)

    def cost(self, model: str) -> np.ndarray | None:
        """``model``'s cost per request in USD: its ``model_<name>_cost_usd`` column, else the card's
        per-call price repeated, else None (unknown)."""
        spec = self.model_spec(model)
        column = model_column(model, "cost_usd")
        if column in self.frame.columns:
            return self.frame[column].to_numpy(dtype=np.float64)
        if spec.price_usd_per_call is not None:
            return np.full(len(self.frame), float(spec.price_usd_per_call))
        return None

    def tokens_out(self, model: str) -> np.ndarray | None:
        """``model``'s answer length in tokens per request, where the data has it."""
        self.model_spec(model)
        column = model_column(model, "tokens_out")
        return self.frame[column].to_numpy(dtype=np.float64) if column in self.frame.columns else None

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

    specs = _check_models(df, source, card, outcome)

    features, confidences = [], []
    for col in df.columns:
        if col in RESERVED or parse_model_column(col) is not None:
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
                   feature_columns=tuple(features), confidence_columns=tuple(confidences),
                   model_specs=specs)


def _card_fail(source: str, index: int, field_name: str, problem: str) -> RouterLabError:
    return RouterLabError(f"{source}: card field 'models[{index}].{field_name}': {problem}")


def parse_model_specs(entries: Any, source: str) -> tuple[ModelSpec, ...]:
    """The card's ``models`` list as :class:`ModelSpec` s, checked (names, roles, prices)."""
    if not isinstance(entries, list) or len(entries) < 2:
        raise RouterLabError(f"{source}: card field 'models': got {entries!r}; expected a list of at "
                             "least two models in tier order, e.g. [{\"name\": \"device\", \"role\": "
                             "\"device\"}, {\"name\": \"cloud\", \"role\": \"cloud\"}]")
    specs: list[ModelSpec] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise _card_fail(source, i, "name", f"got {entry!r}; expected an object with 'name' and 'role'")
        unknown = sorted(set(entry) - {"name", "role", "price_usd_per_call", "source_name"})
        if unknown:
            raise _card_fail(source, i, unknown[0], "unknown field; expected name, role, "
                             "price_usd_per_call or source_name")
        name, role = entry.get("name"), entry.get("role")
        if not isinstance(name, str) or not MODEL_NAME.match(name):
            raise _card_fail(source, i, "name", f"got {name!r}; expected letters, digits, '.', '-' and "
                             "single '_' (no leading/trailing '_')")
        if name in (s.name for s in specs):
            raise _card_fail(source, i, "name", f"model {name!r} is named twice; expected unique names")
        if role not in ROLES:
            raise _card_fail(source, i, "role", f"got {role!r}; expected one of {', '.join(ROLES)}")
        if (name == "device") != (role == "device"):
            raise _card_fail(source, i, "role", f"model {name!r} has role {role!r}; expected the model "
                             "named 'device' (the device_* columns) to be the only one with role 'device'")
        price = entry.get("price_usd_per_call")
        if price is not None and (isinstance(price, bool) or not isinstance(price, (int, float))
                                  or not math.isfinite(price) or not 0 <= price <= MAX_COST_USD):
            raise _card_fail(source, i, "price_usd_per_call", f"got {price!r}; expected a number in "
                             f"[0, {MAX_COST_USD:,.0f}] (USD per call)")
        source_name = entry.get("source_name")
        specs.append(ModelSpec(name, role, None if price is None else float(price),
                               None if source_name is None else str(source_name)))
    names = [s.name for s in specs]
    for base in BASE_MODELS:
        if base not in names:
            raise RouterLabError(f"{source}: card field 'models': no model named {base!r}; expected "
                                 "'device' and 'cloud' (the device_*/cloud_* columns) among the models")
    return tuple(specs)


def _check_models(df: pd.DataFrame, source: str, card: dict[str, Any] | None,
                  outcome: str) -> tuple[ModelSpec, ...]:
    """Check every model_<name>_* column (and the card's ``models``); the models in tier order.

    Without a card list the models are device, the model_<name>_* models in column order (role
    'cloud': nothing says where they sit) and cloud."""
    found: dict[str, list[str]] = {}
    for col in df.columns:
        parsed = parse_model_column(col)
        if parsed is None:
            continue
        name, suffix = parsed
        if not MODEL_NAME.match(name):
            raise _fail(source, col, None, f"model name {name!r} is not valid; expected letters, "
                        "digits, '.', '-' and single '_'")
        if name in BASE_MODELS and suffix in MODEL_OUTCOME_SUFFIXES:
            raise _fail(source, col, None, f"the {name} model's outcome is the '{name}_{suffix}' column; "
                        f"expected no '{col}'")
        found.setdefault(name, []).append(suffix)
    entries = card.get("models") if card else None
    if entries is None:
        extra = [ModelSpec(name, "cloud") for name in found if name not in BASE_MODELS]
        specs = (TWO_MODELS[0], *extra, TWO_MODELS[1])
    else:
        specs = parse_model_specs(entries, source)
        named = {s.name for s in specs}
        for name, suffixes in found.items():
            if name not in named:
                raise _fail(source, model_column(name, suffixes[0]), None, f"model {name!r} is not named "
                            f"in the card's 'models' ({', '.join(sorted(named))}); expected every "
                            "model_<name>_* column to belong to a named model")
    for spec in specs:
        if spec.name in BASE_MODELS:
            continue
        column = model_column(spec.name, outcome)
        if column not in df.columns:
            raise _fail(source, None, None, f"missing column '{column}' for model {spec.name!r}; expected "
                        f"its {outcome} column like device_{outcome} and cloud_{outcome}")
    for col in df.columns:
        parsed = parse_model_column(col)
        if parsed is None:
            continue
        suffix = parsed[1]
        if suffix == "correct":
            _check_binary(df, col, source)
        else:
            bound = {"score": 1.0, "cost_usd": MAX_COST_USD, "tokens_out": float(MAX_TOKENS)}[suffix]
            values = _check_numeric(df, col, source, f"a number in [0, {bound:,.0f}]")
            bad = _first_bad((values < 0) | (values > bound))
            if bad is not None:
                raise _fail(source, col, bad, f"got {values[bad]:g}; expected a number in [0, {bound:,.0f}]")
    return specs


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
    if len(ds.models) > 2:
        summary["model_quality"] = {m: round(float(ds.quality(m).mean()), 6) for m in ds.models}
    if "sensitive" in frame.columns:
        summary["sensitive_fraction"] = round(float(frame["sensitive"].mean()), 6)
    if "split" in frame.columns:
        summary["splits"] = {s: int((frame["split"] == s).sum()) for s in SPLITS}
    return summary
