"""Bad dataset files (CSV and Parquet): missing columns, NaN, wrong types, empty, not a table,
binary garbage, wrong encoding, wrong place."""

from pathlib import Path

import numpy as np
import pandas as pd

GOOD_HEADER = "request_id,x,device_correct,cloud_correct\n"


def _write(tmp: Path, name: str, data: bytes | str) -> None:
    path = tmp / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))


def _frame(n: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"request_id": np.arange(n), "x": rng.normal(size=n),
                         "device_correct": rng.integers(0, 2, n), "cloud_correct": np.ones(n, dtype=int)})


def missing_outcome_csv(tmp: Path) -> None:
    _write(tmp, "bad.csv", "request_id,x\n1,0.5\n2,0.7\n")


def nan_csv(tmp: Path) -> None:
    _write(tmp, "bad.csv", GOOD_HEADER + "1,0.5,1,1\n2,,0,1\n")


def text_feature_csv(tmp: Path) -> None:
    _write(tmp, "bad.csv", GOOD_HEADER + "1,0.5,1,1\n2,high,0,1\n")


def non_binary_outcome_csv(tmp: Path) -> None:
    _write(tmp, "bad.csv", GOOD_HEADER + "1,0.5,yes,1\n2,0.7,no,1\n")


def empty_csv(tmp: Path) -> None:
    _write(tmp, "bad.csv", b"")


def header_only_csv(tmp: Path) -> None:
    _write(tmp, "bad.csv", GOOD_HEADER)


def json_as_csv(tmp: Path) -> None:
    _write(tmp, "bad.csv", '{"request_id": [1, 2], "x": [0.1, 0.2]}\n')


def garbage_csv(tmp: Path) -> None:
    _write(tmp, "bad.csv", bytes(range(256)) * 8)


def latin1_csv(tmp: Path) -> None:
    _write(tmp, "bad.csv", "request_id,x,device_correct,cloud_correct,category\n1,0.5,1,1,caf\xe9\n"
           .encode("latin-1"))


def garbage_parquet(tmp: Path) -> None:
    _write(tmp, "bad.parquet", b"PAR1" + bytes(range(200)) + b"PAR1")


def truncated_parquet(tmp: Path) -> None:
    _frame().to_parquet(tmp / "full.parquet")
    data = (tmp / "full.parquet").read_bytes()
    (tmp / "full.parquet").unlink()
    _write(tmp, "bad.parquet", data[: len(data) // 2])


def missing_column_parquet(tmp: Path) -> None:
    _frame().drop(columns=["cloud_correct"]).to_parquet(tmp / "bad.parquet")


def nan_parquet(tmp: Path) -> None:
    frame = _frame()
    frame.loc[3, "x"] = np.nan
    frame.to_parquet(tmp / "bad.parquet")


def string_outcome_parquet(tmp: Path) -> None:
    frame = _frame()
    frame["device_correct"] = frame["device_correct"].map({0: "wrong", 1: "right"})
    frame.to_parquet(tmp / "bad.parquet")


def empty_parquet(tmp: Path) -> None:
    _frame().iloc[:0].to_parquet(tmp / "bad.parquet")


def text_file(tmp: Path) -> None:
    _write(tmp, "data.txt", GOOD_HEADER + "1,0.5,1,1\n")


def folder(tmp: Path) -> None:
    (tmp / "data.csv").mkdir()


CASES = [
    {"id": "file-csv-missing-outcomes", "setup": "missing_outcome_csv",
     "args": ["dataset", "check", "bad.csv"], "expect": ["bad.csv", "device_correct"]},
    {"id": "file-csv-nan-feature", "setup": "nan_csv", "args": ["dataset", "check", "bad.csv"],
     "expect": ["bad.csv", "column 'x'"]},
    {"id": "file-csv-text-feature", "setup": "text_feature_csv", "args": ["dataset", "check", "bad.csv"],
     "expect": ["bad.csv", "'x'"]},
    {"id": "file-csv-non-binary-outcome", "setup": "non_binary_outcome_csv",
     "args": ["dataset", "check", "bad.csv"], "expect": ["bad.csv", "device_correct"]},
    {"id": "file-csv-empty", "setup": "empty_csv", "args": ["dataset", "check", "bad.csv"],
     "expect": ["bad.csv"]},
    {"id": "file-csv-header-only", "setup": "header_only_csv", "args": ["dataset", "check", "bad.csv"],
     "expect": ["bad.csv"]},
    {"id": "file-csv-is-json", "setup": "json_as_csv", "args": ["dataset", "check", "bad.csv"],
     "expect": ["bad.csv"]},
    {"id": "file-csv-binary-garbage", "setup": "garbage_csv", "args": ["dataset", "check", "bad.csv"],
     "expect": ["bad.csv"]},
    {"id": "file-csv-latin1", "setup": "latin1_csv", "args": ["dataset", "check", "bad.csv"],
     "expect": ["bad.csv"]},
    {"id": "file-parquet-garbage", "setup": "garbage_parquet", "args": ["dataset", "check", "bad.parquet"],
     "expect": ["bad.parquet"]},
    {"id": "file-parquet-truncated", "setup": "truncated_parquet",
     "args": ["dataset", "check", "bad.parquet"], "expect": ["bad.parquet"]},
    {"id": "file-parquet-missing-column", "setup": "missing_column_parquet",
     "args": ["dataset", "check", "bad.parquet"], "expect": ["bad.parquet", "cloud_correct"]},
    {"id": "file-parquet-nan-feature", "setup": "nan_parquet", "args": ["dataset", "check", "bad.parquet"],
     "expect": ["bad.parquet", "column 'x'"]},
    {"id": "file-parquet-string-outcome", "setup": "string_outcome_parquet",
     "args": ["dataset", "check", "bad.parquet"], "expect": ["bad.parquet", "device_correct"]},
    {"id": "file-parquet-no-rows", "setup": "empty_parquet", "args": ["dataset", "check", "bad.parquet"],
     "expect": ["bad.parquet"]},
    {"id": "file-unknown-extension", "setup": "text_file", "args": ["dataset", "check", "data.txt"],
     "expect": ["data.txt"]},
    {"id": "file-missing", "args": ["dataset", "check", "nosuch.csv"], "expect": ["nosuch.csv"]},
    {"id": "file-is-folder", "setup": "folder", "args": ["dataset", "check", "data.csv"],
     "expect": ["data.csv"]},
    {"id": "file-train-on-bad-file", "setup": "nan_csv",
     "args": ["train", "dataset=file", "dataset.path={tmp}/bad.csv"], "expect": ["bad.csv", "column 'x'"]},
    {"id": "file-simulate-on-missing-file",
     "args": ["simulate", "dataset=file", "dataset.path={tmp}/nosuch.parquet"], "expect": ["nosuch.parquet"]},
]
