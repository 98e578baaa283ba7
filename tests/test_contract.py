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


THREE_MODELS = [{"name": "device", "role": "device"}, {"name": "edge", "role": "edge", "price_usd_per_call": 0.001},
                {"name": "cloud", "role": "cloud", "price_usd_per_call": 0.01}]


def three_model_frame() -> pd.DataFrame:
    frame = good_frame()
    frame["model_edge_correct"] = [1, 1, 0, 1]
    frame["model_cloud_cost_usd"] = [0.02, 0.01, 0.03, 0.01]
    return frame


def test_a_two_model_frame_has_the_models_device_and_cloud() -> None:
    ds = validate_frame(good_frame(), "mem")
    assert ds.models == ("device", "cloud")
    assert ds.quality("device").tolist() == ds.device_quality().tolist()
    assert ds.quality("cloud").tolist() == ds.cloud_quality().tolist()
    assert ds.cost("cloud") is None and "model_quality" not in validate_frame(good_frame(), "mem").card


def test_named_models_come_in_card_order_with_outcomes_costs_and_prices() -> None:
    ds = validate_frame(three_model_frame(), "mem", {"models": THREE_MODELS})
    assert ds.models == ("device", "edge", "cloud")
    assert [s.role for s in ds.model_specs] == ["device", "edge", "cloud"]
    assert ds.quality("edge").tolist() == [1.0, 1.0, 0.0, 1.0]
    assert ds.cost("edge").tolist() == [0.001] * 4  # the card's per-call price
    assert ds.cost("cloud").tolist() == [0.02, 0.01, 0.03, 0.01]  # the column wins over the price
    assert ds.cost("device") is None
    assert ds.feature_columns == ("x0",)  # model columns are never features


def test_model_columns_without_a_card_list_are_models_between_device_and_cloud() -> None:
    ds = validate_frame(three_model_frame(), "mem")
    assert ds.models == ("device", "edge", "cloud")
    with pytest.raises(RouterLabError, match="no model 'big'; expected one of device, edge, cloud"):
        ds.quality("big")


def test_a_multi_model_dataset_round_trips_through_a_file(tmp_path: Path) -> None:
    written = write_dataset(three_model_frame(), {"name": "three", "models": THREE_MODELS}, tmp_path / "three.parquet")
    loaded = load_dataset_file(tmp_path / "three.parquet")
    assert loaded.models == written.models == ("device", "edge", "cloud")
    assert loaded.card["model_quality"]["edge"] == 0.75
    assert loaded.model_specs == written.model_specs


def _models_with(index: int, **change: object) -> list[dict]:
    models = [dict(m) for m in THREE_MODELS]
    models[index].update(change)
    return models


BAD_MODELS = {
    "bad role": (_models_with(1, role="fog"), "card field 'models[1].role': got 'fog'; expected one of device, edge, cloud"),
    "duplicate name": (_models_with(1, name="cloud"), "card field 'models[2].name': model 'cloud' is named twice"),
    "no device model": (_models_with(0, role="edge"), "card field 'models[0].role': model 'device' has role 'edge'"),
    "second device": (_models_with(1, role="device"), "card field 'models[1].role': model 'edge' has role 'device'"),
    "negative price": (_models_with(2, price_usd_per_call=-0.5), "card field 'models[2].price_usd_per_call': got -0.5"),
    "bad name": (_models_with(1, name="a/b"), "card field 'models[1].name': got 'a/b'"),
    "unknown field": (_models_with(1, pricee=1), "card field 'models[1].pricee': unknown field"),
    "missing column": ([*THREE_MODELS[:2], {"name": "big", "role": "cloud"}, THREE_MODELS[2]],
                       "missing column 'model_big_correct' for model 'big'"),
    "unnamed column": ([THREE_MODELS[0], THREE_MODELS[2]],
                       "column 'model_edge_correct': model 'edge' is not named in the card's 'models'"),
}


@pytest.mark.parametrize("case", sorted(BAD_MODELS))
def test_bad_model_cards_give_one_line_errors(case: str) -> None:
    models, expected = BAD_MODELS[case]
    with pytest.raises(RouterLabError) as info:
        validate_frame(three_model_frame(), "mem", {"models": models})
    assert expected in str(info.value) and "\n" not in str(info.value)


BAD_MODEL_COLUMNS = {
    "non-binary correct": ("model_edge_correct", [1, 0, 2, 1], "column 'model_edge_correct', row 3: got 2.0"),
    "negative cost": ("model_cloud_cost_usd", [0.1, -1.0, 0.0, 0.0], "column 'model_cloud_cost_usd', row 2: got -1"),
    "score above 1": ("model_edge_score", [0.5, 0.5, 1.5, 0.5], "column 'model_edge_score', row 3: got 1.5"),
    "tokens beyond the bound": ("model_edge_tokens_out", [1, 2, 3, 1e9], "column 'model_edge_tokens_out', row 4"),
    "nan cost": ("model_edge_cost_usd", [0.1, np.nan, 0.0, 0.0], "column 'model_edge_cost_usd', row 2: got nan"),
    "base outcome as a model column": ("model_cloud_correct", [1, 1, 1, 1], "expected no 'model_cloud_correct'"),
}


@pytest.mark.parametrize("case", sorted(BAD_MODEL_COLUMNS))
def test_bad_model_columns_give_one_line_errors(case: str) -> None:
    column, values, expected = BAD_MODEL_COLUMNS[case]
    frame = three_model_frame()
    frame[column] = values
    with pytest.raises(RouterLabError) as info:
        validate_frame(frame, "mem", {"models": THREE_MODELS})
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_a_score_dataset_needs_score_columns_for_its_extra_models() -> None:
    frame = three_model_frame().drop(columns=["device_correct", "cloud_correct"])
    frame["device_score"], frame["cloud_score"] = 0.25, 0.75
    with pytest.raises(RouterLabError, match="missing column 'model_edge_score' for model 'edge'"):
        validate_frame(frame, "mem", {"models": THREE_MODELS})
    frame["model_edge_score"] = 0.5
    assert validate_frame(frame, "mem", {"models": THREE_MODELS}).quality("edge").tolist() == [0.5] * 4
