"""Importers of published routing benchmarks (RouteLLM, RouterBench) into the dataset contract.

    router-lab dataset import routellm path=FILE_OR_DIR device_model=NAME cloud_model=NAME out=F.parquet

Token counts missing from the data are estimated from the text (:func:`estimate_tokens`) and the
rows are marked ``tokens_estimated = 1``.  Pickles are never loaded (unpickling runs code).  Every
model column found is kept: the two chosen models as ``device``/``cloud``, each other one as
``model_<name>_*`` (its name made safe, the original kept in the card's ``models`` list).
"""

from __future__ import annotations

import glob
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from router_lab.constants import SPLIT_FRACTIONS
from router_lab.data.builders import BUILDERS, BuiltDataset, stratified_split
from router_lab.data.contract import BASE_MODELS, MAX_COST_USD
from router_lab.data.files import read_table
from router_lab.errors import RouterLabError
from router_lab.registry import Registry

CHARS_PER_TOKEN = 4.0  # the common rule of thumb for English BPE tokenisers (~4 characters/token)
BYTES_PER_TOKEN = 4  # for output_bytes when only a token count is known
DEFAULT_TOKENS_OUT = 256  # assumed answer length when the data has no response text
_TRUE = {"true", "1", "1.0", "yes"}
_FALSE = {"false", "0", "0.0", "no"}


def estimate_tokens(texts: pd.Series) -> np.ndarray:
    """Estimated token count of each text: ceil(characters / 4), at least 1."""
    chars = texts.astype(str).str.len().to_numpy(dtype=np.float64)
    return np.maximum(1, np.ceil(chars / CHARS_PER_TOKEN)).astype(np.int64)


def input_files(path: str | Path) -> list[Path]:
    """The files a ``path`` names: one file, every .csv/.parquet in a folder, or a glob pattern."""
    text = str(path)
    if any(ch in text for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(text))
    elif Path(text).is_dir():
        files = sorted(p for p in Path(text).iterdir() if p.suffix.lower() in (".csv", ".parquet", ".pkl"))
    else:
        files = [Path(text)]
    if not files:
        raise RouterLabError(f"path={text}: no .csv or .parquet files found")
    for f in files:
        if f.suffix.lower() in (".pkl", ".pickle"):
            raise RouterLabError(
                f"{f}: pickle files are not loaded (unpickling an untrusted file runs its code); if you "
                f"trust this file, convert it once with: python -c \"import pandas as pd; "
                f"pd.read_pickle('{f}').to_parquet('{f.with_suffix('.parquet')}')\" and import the .parquet")
    return files


def read_files(files: list[Path]) -> pd.DataFrame:
    """Read and stack ``files`` (same columns required); adds ``_file`` with each row's file stem."""
    frames = []
    first_columns: list[str] | None = None
    for f in files:
        frame = read_table(f)
        columns = [str(c) for c in frame.columns]
        if first_columns is None:
            first_columns = columns
        elif set(columns) != set(first_columns):
            missing = sorted(set(first_columns) - set(columns))
            extra = sorted(set(columns) - set(first_columns))
            raise RouterLabError(
                f"{f}: columns disagree with {files[0]}: missing {missing or 'none'}, extra "
                f"{extra or 'none'}; expected every file to have the same columns")
        frame = frame.copy()
        frame["_file"] = f.name.rsplit(".", 1)[0]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _require_column(frame: pd.DataFrame, column: str, role: str, source: str) -> None:
    if column not in frame.columns:
        shown = [c for c in frame.columns if c != "_file"]
        raise RouterLabError(f"{source}: no column {column!r} for {role}; the columns are: "
                             f"{', '.join(map(str, shown))}")


def _shown(value: Any) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)


def _row_source(frame: pd.DataFrame, row: int, source: str) -> str:
    return f"{source} ({frame['_file'].iloc[row]})" if frame["_file"].nunique() > 1 else source


def boolean_column(frame: pd.DataFrame, column: str, source: str) -> np.ndarray:
    """A correctness column as int8 0/1; accepts booleans, 0/1 and true/false (any case)."""
    series = frame[column]
    if pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=np.int8)
    lowered = series.map(lambda v: str(v).strip().lower() if pd.notna(v) else "")
    ok = lowered.isin(_TRUE | _FALSE).to_numpy()
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        value = series.iloc[row]
        raise RouterLabError(f"{_row_source(frame, row, source)}: column {column!r}, row {row + 1}: got "
                             f"{_shown(value)}; expected a correctness value True/False (or 1/0)")
    return lowered.isin(_TRUE).to_numpy().astype(np.int8)


def score_column(frame: pd.DataFrame, column: str, source: str) -> np.ndarray:
    """A quality score column as float64 in [0, 1]."""
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values < 0) | (values > 1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise RouterLabError(f"{_row_source(frame, row, source)}: column {column!r}, row {row + 1}: got "
                             f"{_shown(frame[column].iloc[row])}; expected a score in [0, 1]")
    return values


def _cost_column(frame: pd.DataFrame, column: str, source: str) -> np.ndarray:
    """A per-request cost column (USD) as float64 in [0, MAX_COST_USD]."""
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values < 0) | (values > MAX_COST_USD)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise RouterLabError(f"{_row_source(frame, row, source)}: column {column!r}, row {row + 1}: got "
                             f"{_shown(frame[column].iloc[row])}; expected a cost in [0, {MAX_COST_USD:,.0f}] USD")
    return values


def prompt_column(frame: pd.DataFrame, column: str, source: str) -> pd.Series:
    _require_column(frame, column, "the prompt", source)
    prompts = frame[column]
    ok = prompts.map(lambda v: isinstance(v, str) and v.strip() != "").to_numpy(dtype=bool)
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        raise RouterLabError(f"{_row_source(frame, row, source)}: column {column!r}, row {row + 1}: got "
                             f"{_shown(prompts.iloc[row])}; expected a non-empty prompt")
    return prompts.astype(str)


def _response_column(frame: pd.DataFrame, model: str) -> str | None:
    for name in (f"{model}|model_response", f"{model}|response", f"{model}_response"):
        if name in frame.columns:
            return name
    return None


RESPONSE_SUFFIXES = ("|model_response", "|response", "_response")
ROUTERBENCH_SUFFIXES = ("|total_cost", "|model_response")
ROUTERBENCH_NON_MODEL = {"sample_id", "eval_name", "oracle_model_to_route_to"}


def safe_model_name(source_name: str, taken: set[str]) -> str:
    """A contract model name for ``source_name``: runs of other characters become '-'
    (``meta/llama-2-70b-chat`` -> ``meta-llama-2-70b-chat``); a clash gets ``-2``, ``-3``, …"""
    base = re.sub(r"[^A-Za-z0-9.]+", "-", str(source_name)).strip("-.") or "model"
    if not base[0].isalnum():
        base = "m" + base
    name, k = base, 2
    while name in taken or name in BASE_MODELS:
        name, k = f"{base}-{k}", k + 1
    return name


def _other_models(candidates: list[str], device_model: str, cloud_model: str) -> list[tuple[str, str]]:
    """(contract name, source column) of every model column besides the device's and cloud's."""
    taken: set[str] = set()
    out = []
    for column in candidates:
        if column in (device_model, cloud_model):
            continue
        name = safe_model_name(column, taken)
        taken.add(name)
        out.append((name, column))
    return out


def _is_boolean(series: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(series):
        return True
    lowered = series.map(lambda v: str(v).strip().lower() if pd.notna(v) else "")
    return bool(lowered.isin(_TRUE | _FALSE).all())


def _model_card(models: list[tuple[str, str, str]], prices: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """The card's ``models`` list from (name, role, source column) in tier order."""
    return [{"name": name, "role": role, "source_name": column,
             **({"price_usd_per_call": prices[name]} if prices and name in prices else {})}
            for name, role, column in models]


def _check_models(device_model: str | None, cloud_model: str | None) -> tuple[str, str]:
    if not device_model or not cloud_model:
        raise RouterLabError("device_model= and cloud_model= are required: name the model column "
                             "that plays the on-device model and the one that plays the cloud")
    if device_model == cloud_model:
        raise RouterLabError(f"device_model and cloud_model are both {device_model!r}; expected two models")
    return str(device_model), str(cloud_model)


def _common_columns(frame: pd.DataFrame, prompts: pd.Series, cloud_model: str,
                    split_fractions: list[float], rng: np.random.Generator) -> dict[str, Any]:
    """request_id, text, category, sizes, token counts (estimated where absent) and split."""
    n = len(frame)
    response = _response_column(frame, cloud_model)
    if response is not None:
        tokens_out = estimate_tokens(frame[response].fillna(""))
    else:
        tokens_out = np.full(n, DEFAULT_TOKENS_OUT, dtype=np.int64)
    tokens_in = estimate_tokens(prompts)
    return {
        "request_id": np.arange(n, dtype=np.int64),
        "text": prompts.to_numpy(dtype=object),
        "category": frame["_category"].astype(str).to_numpy(dtype=object),
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "tokens_estimated": np.ones(n, dtype=np.int8),
        "input_bytes": prompts.map(lambda t: len(t.encode("utf-8"))).to_numpy(dtype=np.int64),
        "output_bytes": tokens_out * BYTES_PER_TOKEN,
    }


def stratified_by_outcomes(columns: dict[str, Any], split_fractions: list[float],
                           rng: np.random.Generator) -> np.ndarray:
    """The train/val/test split, seeded and stratified like the built-in datasets': by the pair
    (device right, cloud right) for 0/1 outcomes, by whether the cloud scores higher otherwise."""
    if "device_correct" in columns:
        strata = 2 * np.asarray(columns["device_correct"], dtype=np.int64) + np.asarray(columns["cloud_correct"], dtype=np.int64)
    else:
        strata = (np.asarray(columns["cloud_score"]) > np.asarray(columns["device_score"])).astype(np.int64)
    return stratified_split(strata, list(split_fractions), rng)


def _token_card(frame: pd.DataFrame, cloud_model: str) -> dict[str, str]:
    out = ("estimated from the cloud model's response text, ceil(chars / 4)"
           if _response_column(frame, cloud_model) else
           f"no response text in the data: a fixed assumption of {DEFAULT_TOKENS_OUT} tokens")
    return {"tokens_in": "estimated from the prompt: ceil(characters / 4) (tokens_estimated = 1)",
            "tokens_out": out, "input_bytes": "UTF-8 bytes of the prompt",
            "output_bytes": f"tokens_out x {BYTES_PER_TOKEN} bytes"}


def _read_benchmark(path: str | Path, device_model: str | None, cloud_model: str | None,
                    prompt_column_name: str) -> tuple[pd.DataFrame, list[Path], pd.Series]:
    """The stacked files, their paths and the checked prompts, after checking the model columns."""
    device_model, cloud_model = _check_models(device_model, cloud_model)
    files = input_files(path)
    frame = read_files(files)
    prompts = prompt_column(frame, prompt_column_name, str(path))
    _require_column(frame, device_model, "device_model", str(path))
    _require_column(frame, cloud_model, "cloud_model", str(path))
    return frame, files, prompts


def import_routellm(path: str | Path, device_model: str | None, cloud_model: str | None,
                    rng: np.random.Generator, prompt_column_name: str = "prompt",
                    split_fractions: tuple[float, ...] = SPLIT_FRACTIONS) -> BuiltDataset:
    """RouteLLM evaluation CSVs: a prompt column and one True/False correctness column per model.

    One or many files (a folder or a glob); each file's name becomes the row's ``category``.
    """
    frame, files, prompts = _read_benchmark(path, device_model, cloud_model, prompt_column_name)
    device_model, cloud_model, source = str(device_model), str(cloud_model), str(path)
    frame["_category"] = frame["_file"]
    columns = _common_columns(frame, prompts, cloud_model, split_fractions, rng)
    columns["device_correct"] = boolean_column(frame, device_model, source)
    columns["cloud_correct"] = boolean_column(frame, cloud_model, source)
    columns["split"] = stratified_by_outcomes(columns, split_fractions, rng)
    # every other True/False column is a model too (response columns and the prompt are not)
    candidates = [str(c) for c in frame.columns if c not in (prompt_column_name, "_file", "_category")
                  and not str(c).endswith(RESPONSE_SUFFIXES)]
    others = [(name, column) for name, column in _other_models(candidates, device_model, cloud_model)
              if _is_boolean(frame[column])]
    for name, column in others:
        columns[f"model_{name}_correct"] = boolean_column(frame, column, source)
    ignored = [c for c in candidates if c not in (device_model, cloud_model) and c not in dict(others).values()]
    card: dict[str, Any] = {
        "name": Path(files[0]).name.rsplit(".", 1)[0] if len(files) == 1 else Path(source).name,
        "task": "prompts answered by two LLMs (RouteLLM evaluation responses)",
        "source": f"RouteLLM format: {', '.join(str(f) for f in files)}",
        "license": "as the source data (RouteLLM's files are Apache-2.0)",
        "outcomes": f"device_correct = {device_model!r} answered correctly; "
                    f"cloud_correct = {cloud_model!r} answered correctly",
        "device_model": device_model,
        "cloud_model": cloud_model,
        "features": {"text": "the prompt", "category": "the source file's name",
                     **_token_card(frame, cloud_model)},
    }
    if others:
        card["task"] = f"prompts answered by {len(others) + 2} LLMs (RouteLLM evaluation responses)"
        card["models"] = _model_card([("device", "device", device_model),
                                      *((name, "cloud", column) for name, column in others),
                                      ("cloud", "cloud", cloud_model)])
    if ignored:
        card["ignored_columns"] = ignored  # not True/False throughout: not read as models
    return BuiltDataset(frame=pd.DataFrame(columns), card=card)


def import_routerbench(path: str | Path, device_model: str | None, cloud_model: str | None,
                       rng: np.random.Generator, prompt_column_name: str = "prompt",
                       split_fractions: tuple[float, ...] = SPLIT_FRACTIONS) -> BuiltDataset:
    """RouterBench's wide table: ``prompt``, ``eval_name``, per model a score column ``MODEL``,
    ``MODEL|model_response`` and ``MODEL|total_cost``.  CSV or Parquet only (no pickles)."""
    frame, files, prompts = _read_benchmark(path, device_model, cloud_model, prompt_column_name)
    device_model, cloud_model, source = str(device_model), str(cloud_model), str(path)
    frame["_category"] = frame["eval_name"] if "eval_name" in frame.columns else frame["_file"]
    columns = _common_columns(frame, prompts, cloud_model, split_fractions, rng)
    device, cloud = (score_column(frame, m, source) for m in (device_model, cloud_model))
    binary = all(np.isin(v, (0.0, 1.0)).all() for v in (device, cloud))
    prefix = "correct" if binary else "score"
    columns[f"device_{prefix}"] = device.astype(np.int8) if binary else device
    columns[f"cloud_{prefix}"] = cloud.astype(np.int8) if binary else cloud
    columns["split"] = stratified_by_outcomes(columns, split_fractions, rng)
    costs = {role: round(float(pd.to_numeric(frame[f"{m}|total_cost"], errors="coerce").mean()), 8)
             for role, m in (("device", device_model), ("cloud", cloud_model))
             if f"{m}|total_cost" in frame.columns}
    candidates = [str(c) for c in frame.columns if str(c) not in ROUTERBENCH_NON_MODEL
                  and any(f"{c}{suffix}" in frame.columns for suffix in ROUTERBENCH_SUFFIXES)]
    others = _other_models(candidates, device_model, cloud_model)
    mean_cost: dict[str, float] = {}
    for name, column in [("device", device_model), *others, ("cloud", cloud_model)]:
        if name not in BASE_MODELS:
            values = score_column(frame, column, source)
            if binary and not np.isin(values, (0.0, 1.0)).all():
                row = int(np.flatnonzero(~np.isin(values, (0.0, 1.0)))[0])
                raise RouterLabError(f"{_row_source(frame, row, source)}: column {column!r}, row {row + 1}: got "
                                     f"{_shown(frame[column].iloc[row])}; expected 0 or 1 like the device and "
                                     "cloud models' scores (one outcome kind for every model)")
            columns[f"model_{name}_{prefix}"] = values.astype(np.int8) if binary else values
        if f"{column}|total_cost" in frame.columns:
            cost = _cost_column(frame, f"{column}|total_cost", source)
            columns[f"model_{name}_cost_usd"] = cost
            mean_cost[name] = float(cost.mean())
        response = _response_column(frame, column)
        if response is not None:
            columns[f"model_{name}_tokens_out"] = estimate_tokens(frame[response].fillna(""))
    card: dict[str, Any] = {
        "name": Path(files[0]).name.rsplit(".", 1)[0] if len(files) == 1 else Path(source).name,
        "task": "prompts answered by two LLMs (RouterBench wide table)",
        "source": f"RouterBench format: {', '.join(str(f) for f in files)}",
        "license": "as the source data (RouterBench: see its dataset card)",
        "outcomes": f"device_{prefix} = score of {device_model!r}; cloud_{prefix} = score of {cloud_model!r}",
        "device_model": device_model,
        "cloud_model": cloud_model,
        "features": {"text": "the prompt", "category": "eval_name (the benchmark)",
                     **_token_card(frame, cloud_model),
                     "model_<name>_cost_usd": "MODEL|total_cost, per request",
                     "model_<name>_tokens_out": "estimated from MODEL|model_response, ceil(chars / 4)"},
    }
    if others:
        # tier order: the device first, then by mean cost (unknown costs last, in column order)
        rest = sorted([*others, ("cloud", cloud_model)], key=lambda m: mean_cost.get(m[0], float("inf")))
        card["task"] = f"prompts answered by {len(others) + 2} LLMs (RouterBench wide table)"
        card["models"] = _model_card([("device", "device", device_model),
                                      *((name, "cloud", column) for name, column in rest)])
    if costs:
        card["metrics"] = {f"{role}_mean_cost_usd": v for role, v in costs.items()}
    return BuiltDataset(frame=pd.DataFrame(columns), card=card)


Importer = Callable[..., BuiltDataset]
IMPORTERS: Registry[Importer] = Registry(
    "importer", field="dataset import",
    error="{field}: got importer {name!r}; expected one of {options} ('router-lab dataset import routellm path=...')")
IMPORTERS.register("routellm", import_routellm, summary="RouteLLM's pairwise battle files")
IMPORTERS.register("routerbench", import_routerbench, summary="RouterBench's per-model score table")


def run_importer(name: str | None, path: str | None, device_model: str | None,
                 cloud_model: str | None, seed: int, **options: Any) -> BuiltDataset:
    """Look up an importer by name and run it (one-line errors for a missing name or path)."""
    importer = IMPORTERS.get(name)
    if not path:
        raise RouterLabError("dataset import: missing path=FILE_OR_DIR (a file, a folder or a glob)")
    rng = np.random.default_rng(np.random.SeedSequence(int(seed)))
    return importer(path, device_model, cloud_model, rng, **options)


def import_command(cfg: Any) -> Any:
    """`router-lab dataset import NAME path=... device_model=... cloud_model=... [out=...]`."""
    from hydra.utils import to_absolute_path

    from router_lab.data.commands import datasets_dir, format_card
    from router_lab.data.files import write_dataset

    path = to_absolute_path(cfg.path) if cfg.path and not any(c in cfg.path for c in "*?[") else cfg.path
    built = run_importer(cfg.get("importer"), path, cfg.get("device_model"), cfg.get("cloud_model"),
                         int(cfg.seed))
    out = Path(to_absolute_path(cfg.out)) if cfg.out else datasets_dir(cfg) / f"{built.card['name']}.parquet"
    params = {"importer": cfg.importer, "path": str(cfg.path), "device_model": cfg.device_model,
              "cloud_model": cfg.cloud_model, "seed": int(cfg.seed)}
    ds = write_dataset(built.frame, {**built.card, "import": params}, out)
    print(format_card(ds))
    return ds


PROJECT_DIR = Path(__file__).resolve().parents[2]


def resolve_source(source: str) -> str:
    """A relative ``source`` is looked up in the working folder, then in the project folder."""
    if Path(source).is_absolute() or any(c in source for c in "*?["):
        return source
    for base in (Path.cwd(), PROJECT_DIR):
        if (base / source).exists():
            return str((base / source).resolve())
    raise RouterLabError(f"dataset.source: {source!r} not found in {Path.cwd()} or {PROJECT_DIR}; "
                         "expected a RouteLLM CSV file, folder or glob (set dataset.source=PATH)")


@BUILDERS.register("routellm", summary="an imported RouteLLM benchmark (dataset=gsm8k)")
def build_routellm(cfg: Any, rng: np.random.Generator) -> BuiltDataset:
    """The `routellm` dataset kind: import ``cfg.source`` when the dataset is first used."""
    built = import_routellm(resolve_source(str(cfg.source)), cfg.device_model, cfg.cloud_model, rng,
                            prompt_column_name=cfg.prompt_column,
                            split_fractions=list(cfg.split_fractions))
    return BuiltDataset(frame=built.frame, card={**built.card, "name": cfg.name})
