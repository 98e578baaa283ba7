"""Bad-input corpus: the dataset contract's limits and the config contract (issue 14).

Data: repeated column names (CSV header, Parquet schema), features beyond float32, and the upper
bounds of sizes, token counts and timestamps (datasets/README.md, "Limits").  Config: '+' keys in
typed sections, top-level keys a command ignores, NaN and out-of-range numbers, `model_path`.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HEADER = "request_id,x,device_correct,cloud_correct"


def _csv(tmp: Path, name: str, header: str, rows: list[str]) -> None:
    (tmp / name).write_text("\n".join([header, *rows]) + "\n")


def duplicate_csv_header(tmp: Path) -> None:
    _csv(tmp, "dup.csv", HEADER + ",device_correct", ["1,0.5,1,1,0", "2,0.1,0,1,1"])


def duplicate_parquet_column(tmp: Path) -> None:
    table = pa.table([pa.array([1, 2]), pa.array([0.5, 0.1]), pa.array([1, 0]), pa.array([1, 1]),
                      pa.array([3.0, 4.0])], names=["request_id", "x", "device_correct", "cloud_correct", "x"])
    pq.write_table(table, tmp / "dup.parquet")


def huge_feature(tmp: Path) -> None:
    _csv(tmp, "big.csv", HEADER, ["1,0.5,1,1", "2,1e308,0,1", "3,0.2,1,1"])


def huge_input_bytes(tmp: Path) -> None:
    _csv(tmp, "bytes.csv", HEADER + ",input_bytes", ["1,0.5,1,1,100", "2,0.1,0,1,100", "3,0.2,1,1,1e308"])


def bad_model_role(tmp: Path) -> None:
    _csv(tmp, "three.csv", HEADER + ",model_edge_correct", ["1,0.5,1,1,1", "2,0.1,0,1,0"])
    (tmp / "three.card.json").write_text(
        '{"models": [{"name": "device", "role": "device"}, {"name": "edge", "role": "fog"}, '
        '{"name": "cloud", "role": "cloud"}]}')


def model_column_out_of_range(tmp: Path) -> None:
    _csv(tmp, "three.csv", HEADER + ",model_edge_correct", ["1,0.5,1,1,1", "2,0.1,0,1,7"])


CASES: list[dict] = [
    {"id": "contract-duplicate-csv-header", "args": ["dataset", "check", "{tmp}/dup.csv"],
     "setup": "duplicate_csv_header",
     "expect": ["dup.csv", "column 'device_correct' appears twice", "columns 3 and 5"]},
    {"id": "contract-duplicate-parquet-column", "args": ["dataset", "check", "{tmp}/dup.parquet"],
     "setup": "duplicate_parquet_column", "expect": ["dup.parquet", "column 'x' appears twice"]},
    {"id": "contract-feature-beyond-float32", "args": ["dataset", "check", "{tmp}/big.csv"],
     "setup": "huge_feature", "expect": ["big.csv", "column 'x', row 2", "3.40282e+38"]},
    {"id": "contract-train-feature-beyond-float32",
     "args": ["train", "dataset=file", "dataset.path={tmp}/big.csv"],
     "setup": "huge_feature", "expect": ["big.csv", "column 'x', row 2"]},
    {"id": "contract-input-bytes-bound", "args": ["dataset", "check", "{tmp}/bytes.csv"],
     "setup": "huge_input_bytes", "expect": ["column 'input_bytes', row 3", "at most 67,108,864"]},
    {"id": "contract-simulate-input-bytes-bound",
     "args": ["simulate", "policy=always_cloud", "dataset=file", "dataset.path={tmp}/bytes.csv"],
     "setup": "huge_input_bytes", "expect": ["bytes.csv", "input_bytes", "at most 67,108,864"]},
    {"id": "contract-model-bad-role", "args": ["dataset", "check", "{tmp}/three.csv"],
     "setup": "bad_model_role", "expect": ["three.csv", "card field 'models[1].role'", "got 'fog'"]},
    {"id": "contract-model-column-out-of-range", "args": ["dataset", "check", "{tmp}/three.csv"],
     "setup": "model_column_out_of_range",
     "expect": ["three.csv", "column 'model_edge_correct', row 2: got 7", "expected 0/1"]},
    # the config contract
    {"id": "config-appended-sim-key", "args": ["simulate", "+sim.n_request=100"],
     "expect": ["sim.n_request: no such key in sim (SimSection)"]},
    {"id": "config-appended-train-key", "args": ["train", "+train.foo=1"],
     "expect": ["train.foo: no such key in train"]},
    {"id": "config-appended-export-key", "args": ["export", "+export.x=1"],
     "expect": ["export.x: no such key in export"]},
    {"id": "config-appended-top-level-key", "args": ["simulate", "+seeds=3"],
     "expect": ["seeds: no such top-level key", "did you mean seed?"]},
    {"id": "config-simulate-model-path-missing", "args": ["simulate", "model_path={tmp}/nonexistent"],
     "expect": ["model_path=", "no such file or folder"]},
    {"id": "config-build-ignores-seed", "args": ["dataset", "build", "digits", "seed=3"],
     "expect": ["seed: 'dataset build' does not use this key", "dataset.seed"]},
    {"id": "config-export-nan-gate", "args": ["export", "export.max_abs_diff=nan"],
     "expect": ["export.max_abs_diff: got nan", "finite"]},
]
