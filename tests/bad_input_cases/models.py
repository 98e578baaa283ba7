"""Bad model files and train folders: truncated ONNX, foreign ONNX, wrong or missing manifest,
missing or damaged router.json."""

import json
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from router_lab.runtime.manifest import make_manifest, manifest_path


def _foreign_bytes() -> bytes:
    """A valid ONNX graph that router_lab did not write (Identity on a float tensor)."""
    graph = helper.make_graph([helper.make_node("Identity", ["features"], ["score"])], "foreign",
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 3])],
                              [helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def _write_model(path: Path, data: bytes, manifest: dict | None = None) -> None:
    path.write_bytes(data)
    record = manifest if manifest is not None else make_manifest(data, path.name, "router")
    manifest_path(path).write_text(json.dumps(record))


def truncated(tmp: Path) -> None:
    data = _foreign_bytes()
    _write_model(tmp / "router.onnx", data[: len(data) // 2])


def garbage(tmp: Path) -> None:
    _write_model(tmp / "router.onnx", b"\x00\xffnot onnx at all" * 10)


def foreign(tmp: Path) -> None:
    _write_model(tmp / "router.onnx", _foreign_bytes())


def no_manifest(tmp: Path) -> None:
    (tmp / "router.onnx").write_bytes(_foreign_bytes())


def wrong_hash(tmp: Path) -> None:
    data = _foreign_bytes()
    _write_model(tmp / "router.onnx", data, make_manifest(data + b"x", "router.onnx", "router"))


def manifest_not_json(tmp: Path) -> None:
    (tmp / "router.onnx").write_bytes(_foreign_bytes())
    manifest_path(tmp / "router.onnx").write_text("{not json")


def empty_folder(tmp: Path) -> None:
    (tmp / "export").mkdir()


def train_folder_without_router(tmp: Path) -> None:
    (tmp / "train_run").mkdir()
    (tmp / "train_run" / "validation_curve.csv").write_text("threshold,cloud_fraction\n0.5,0.3\n")


def train_folder_bad_json(tmp: Path) -> None:
    (tmp / "train_run").mkdir()
    (tmp / "train_run" / "router.json").write_text("{this is not json")


def onnx_is_folder(tmp: Path) -> None:
    (tmp / "router.onnx").mkdir()


assert onnx.__version__  # the corpus builds its foreign graphs with the onnx package

CASES = [
    {"id": "model-validate-truncated", "setup": "truncated", "args": ["validate", "router.onnx"],
     "expect": ["router.onnx"]},
    {"id": "model-validate-garbage", "setup": "garbage", "args": ["validate", "router.onnx"],
     "expect": ["router.onnx"]},
    {"id": "model-validate-foreign", "setup": "foreign", "args": ["validate", "router.onnx"],
     "expect": ["router.onnx"]},
    {"id": "model-validate-no-manifest", "setup": "no_manifest", "args": ["validate", "router.onnx"],
     "expect": ["router.onnx", "manifest"]},
    {"id": "model-validate-wrong-hash", "setup": "wrong_hash", "args": ["validate", "router.onnx"],
     "expect": ["router.onnx"]},
    {"id": "model-validate-manifest-not-json", "setup": "manifest_not_json",
     "args": ["validate", "router.onnx"], "expect": ["manifest"]},
    {"id": "model-validate-empty-folder", "setup": "empty_folder", "args": ["validate", "export"],
     "expect": ["export"]},
    {"id": "model-validate-missing", "args": ["validate", "nosuch.onnx"], "expect": ["nosuch.onnx"]},
    {"id": "model-validate-onnx-is-folder", "setup": "onnx_is_folder", "args": ["validate", "router.onnx"],
     "expect": ["router.onnx"]},
    {"id": "model-export-missing-run-dir", "args": ["export", "run_dir={tmp}/nosuch"], "expect": ["nosuch"]},
    {"id": "model-export-no-router-json", "setup": "train_folder_without_router",
     "args": ["export", "run_dir={tmp}/train_run"], "expect": ["train_run"]},
    {"id": "model-export-router-json-garbage", "setup": "train_folder_bad_json",
     "args": ["export", "run_dir={tmp}/train_run"], "expect": ["router.json"]},
    {"id": "model-export-nothing-given", "args": ["export"], "expect": ["export", "run_dir"]},
    {"id": "model-simulate-onnx-truncated", "setup": "truncated",
     "args": ["simulate", "policy=learned", "policy.backend=onnx", "policy.onnx_path={tmp}/router.onnx"],
     "expect": ["router.onnx"]},
    {"id": "model-simulate-onnx-foreign", "setup": "foreign",
     "args": ["simulate", "policy=learned", "policy.backend=onnx", "policy.onnx_path={tmp}/router.onnx"],
     "expect": ["router.onnx"]},
    {"id": "model-evaluate-bad-router-json", "setup": "train_folder_bad_json",
     "args": ["evaluate", "model_path={tmp}/train_run"], "expect": ["router.json"]},
]
