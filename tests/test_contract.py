"""The dataset contract: every bad input gives a one-line error naming file, column and row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from router_lab.data.contract import validate_frame
from router_lab.data.files import card_path, load_dataset_file, write_dataset
from router_lab.errors import RouterLabError


def good_frame(n: int = 4) -> pd.DataFrame:
    return pd.DataFrame({
        "request_id": np.arange(n),
        "x0": np.linspace(0, 1, n),
        "device_confidence": np.full(n, 0.7),
        "device_correct": [1, 0] * (n // 2),
        "cloud_correct": [1] * n,
        "sensitive": [0] * n,
        "split": ["train", "val", "test", "test"][:n],
    })


def test_valid_frame_assigns_column_roles() -> None:
    ds = validate_frame(good_frame(), "mem")
    assert ds.feature_columns == ("x0",)
    assert ds.confidence_columns == ("device_confidence",)
    assert ds.outcome == "correct"
    assert ds.device_quality().tolist() == [1.0, 0.0, 1.0, 0.0]


def test_score_outcomes_are_accepted() -> None:
    frame = good_frame().drop(columns=["device_correct", "cloud_correct"])
    frame["device_score"], frame["cloud_score"] = 0.25, 0.75
    ds = validate_frame(frame, "mem")
    assert ds.outcome == "score" and ds.cloud_quality().mean() == 0.75


def test_text_only_dataset_is_valid() -> None:
    frame = good_frame().drop(columns=["x0", "device_confidence"])
    frame["text"] = ["a", "b", "c", "d"]
    assert validate_frame(frame, "mem").has_text


def mutate(change) -> pd.DataFrame:  # noqa: ANN001
    frame = good_frame()
    change(frame)
    return frame


BAD_FRAMES = {
    "missing request_id": (lambda f: f.drop(columns=["request_id"], inplace=True), "missing column 'request_id'"),
    "duplicate id": (lambda f: f.__setitem__("request_id", [1, 2, 2, 3]), "column 'request_id', row 3: duplicate id 2"),
    "missing outcome": (lambda f: f.drop(columns=["cloud_correct"], inplace=True), "missing outcome columns"),
    "non-binary correct": (lambda f: f.__setitem__("device_correct", [1, 0, 2, 1]), "column 'device_correct', row 3"),
    "word in correct": (lambda f: f.__setitem__("cloud_correct", ["yes", "1", "0", "1"]), "column 'cloud_correct', row 1: got 'yes'"),
    "nan feature": (lambda f: f.__setitem__("x0", [0.0, np.nan, 1.0, 2.0]), "column 'x0', row 2: got nan"),
    "inf feature": (lambda f: f.__setitem__("x0", [0.0, 1.0, np.inf, 2.0]), "column 'x0', row 3: got inf"),
    "string feature": (lambda f: f.__setitem__("x0", ["a", "b", "c", "d"]), "column 'x0', row 1: got 'a'"),
    "confidence > 1": (lambda f: f.__setitem__("device_confidence", [0.5, 1.5, 0.5, 0.5]), "column 'device_confidence', row 2: got 1.5"),
    "bad split": (lambda f: f.__setitem__("split", ["train", "dev", "test", "test"]), "column 'split', row 2: got 'dev'"),
    "negative bytes": (lambda f: f.__setitem__("input_bytes", [1, -5, 1, 1]), "column 'input_bytes', row 2: got -5"),
    "empty text": (lambda f: f.__setitem__("text", ["a", " ", "c", "d"]), "column 'text', row 2"),
    "no features": (lambda f: f.drop(columns=["x0"], inplace=True), "no input features"),
}


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
def test_bad_frame_gives_one_line_error_and_writes_nothing(case: str, tmp_path: Path) -> None:
    change, expected = BAD_FRAMES[case]
    out = tmp_path / "data.parquet"
    with pytest.raises(RouterLabError) as info:
        write_dataset(mutate(change), {"name": "bad"}, out)
    message = str(info.value)
    assert expected in message
    assert message.startswith(str(out)) and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_score_outside_unit_interval_is_rejected() -> None:
    frame = good_frame().drop(columns=["device_correct", "cloud_correct"])
    frame["device_score"], frame["cloud_score"] = [0.1, 0.2, 1.01, 0.3], 0.5
    with pytest.raises(RouterLabError, match=r"column 'device_score', row 3: got 1.01; expected a number in \[0, 1\]"):
        validate_frame(frame, "f.csv")


@pytest.mark.parametrize(("content", "expected"), [
    (b"", "file is empty"),
    (b"request_id\n", "no rows"),
    (b"\x00\x01garbage", "not a readable"),
])
def test_unreadable_files_are_named(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / ("f.parquet" if content.startswith(b"\x00") else "f.csv")
    path.write_bytes(content)
    with pytest.raises(RouterLabError, match=expected) as info:
        load_dataset_file(path)
    assert str(path) in str(info.value)


def test_missing_path_and_wrong_suffix(tmp_path: Path) -> None:
    with pytest.raises(RouterLabError, match="no such file"):
        load_dataset_file(tmp_path / "nope.csv")
    with pytest.raises(RouterLabError, match="expected .csv or .parquet"):
        load_dataset_file(tmp_path / "data.json")


def test_csv_and_parquet_round_trip_with_card(tmp_path: Path) -> None:
    for suffix in (".csv", ".parquet"):
        path = tmp_path / f"d{suffix}"
        written = write_dataset(good_frame(), {"name": "d", "task": "t"}, path)
        loaded = load_dataset_file(path)
        assert loaded.card["content_hash"] == written.card["content_hash"]
        assert loaded.card["task"] == "t" and loaded.card["n_rows"] == 4
        pd.testing.assert_frame_equal(loaded.frame, written.frame, check_dtype=False)


def test_card_that_no_longer_matches_its_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    write_dataset(good_frame(), {"name": "d"}, path)
    path.write_text(path.read_text().replace("0.7", "0.6"))
    with pytest.raises(RouterLabError, match="content_hash") as info:
        load_dataset_file(path)
    assert str(card_path(path)) in str(info.value)
