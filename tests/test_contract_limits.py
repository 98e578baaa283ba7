"""Contract limits: duplicate column names (CSV and Parquet), float32 features, and the documented
upper bounds of sizes, token counts and timestamps; each a one-line error naming file, column, row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from router_lab.data.contract import (
    FLOAT32_MAX,
    MAX_BYTES,
    MAX_TOKENS,
    UPPER_BOUNDS,
    validate_frame,
)
from router_lab.data.files import load_dataset_file
from router_lab.errors import RouterLabError


def frame(n: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"request_id": np.arange(n), "x": rng.normal(size=n),
                         "device_correct": rng.integers(0, 2, n), "cloud_correct": np.ones(n, dtype=int),
                         "input_bytes": np.full(n, 2_000), "tokens_out": np.full(n, 200)})


def one_line_error(path: Path) -> str:
    with pytest.raises(RouterLabError) as info:
        load_dataset_file(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


def test_duplicated_csv_header_is_refused_not_renamed(tmp_path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("request_id,x,device_correct,cloud_correct,device_correct\n1,0.5,1,1,0\n2,0.1,0,1,1\n")
    assert list(pd.read_csv(path).columns)[-1] == "device_correct.1"  # what pandas alone would do
    message = one_line_error(path)
    assert "column 'device_correct' appears twice in the header (columns 3 and 5)" in message


def test_duplicated_parquet_column_is_refused(tmp_path) -> None:
    path = tmp_path / "dup.parquet"
    table = pa.table([pa.array([1, 2]), pa.array([0.5, 0.1]), pa.array([1, 0]), pa.array([1, 1]),
                      pa.array([3.0, 4.0])], names=["request_id", "x", "device_correct", "cloud_correct", "x"])
    pq.write_table(table, path)
    assert "column 'x' appears twice in the header (columns 2 and 5)" in one_line_error(path)


def test_duplicated_columns_in_a_frame_are_refused() -> None:
    df = pd.concat([frame(), frame()[["x"]]], axis=1)
    with pytest.raises(RouterLabError, match="column 'x': the column name appears more than once"):
        validate_frame(df, "mem")


@pytest.mark.parametrize("value", [1e308, -1e39, float(np.nextafter(np.float64(FLOAT32_MAX), np.inf))])
def test_feature_beyond_float32_is_refused_naming_row_and_bound(tmp_path, value) -> None:
    df = frame()
    df.loc[3, "x"] = value
    path = tmp_path / "big.csv"
    df.to_csv(path, index=False)
    message = one_line_error(path)
    assert "column 'x', row 4" in message and "|value| <= 3.40282e+38" in message


def test_feature_at_float32_max_is_accepted(tmp_path) -> None:
    df = frame()
    df.loc[2, "x"] = -FLOAT32_MAX
    ds = validate_frame(df, "edge")
    assert np.isfinite(ds.features()).all()


@pytest.mark.parametrize("column", sorted(UPPER_BOUNDS))
def test_sizes_tokens_and_timestamps_have_upper_bounds(tmp_path, column) -> None:
    bound = UPPER_BOUNDS[column]
    df = frame()
    df[column] = 1.0
    df.loc[df.index[-1], column] = bound  # the bound itself is allowed
    validate_frame(df, "edge")
    df.loc[df.index[1], column] = 1e308 if column == "input_bytes" else bound * 2
    path = tmp_path / "over.parquet"
    df.to_parquet(path, index=False)
    message = one_line_error(path)
    assert f"column '{column}', row 2" in message and f"expected at most {bound:,.0f}" in message


def test_bounds_are_the_documented_ones() -> None:
    readme = (Path(__file__).resolve().parent.parent / "datasets" / "README.md").read_text()
    assert f"{MAX_BYTES:,}" in readme and f"{MAX_TOKENS:,}" in readme and "3.40282e+38" in readme
