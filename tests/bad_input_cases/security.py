"""Bad-input corpus: hostile or forged model files, pickles, keys and manifests (issue 14, security).

Each case's ``setup(tmp)`` writes its files into the case's folder (also the cwd); the pickles here
create ``tmp/MARKER`` if anything ever unpickles them.  No case builds a dataset: the simulate and
evaluate cases use a tiny valid CSV (``dataset=file``) so nothing but the refusal can happen.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

from router_lab.io import sha256_bytes


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (open, (self.marker, "w"))


def _payload(tmp: Path) -> bytes:
    return pickle.dumps(_Payload(str(tmp / "MARKER")))


def _meta(model_file: str, data: bytes, schema_version: int) -> dict:
    return {"producer": "router_lab", "schema_version": schema_version, "model_file": model_file,
            "model_sha256": sha256_bytes(data), "feature_columns": ["x"], "mode": "input",
            "threshold": 0.5, "estimator_name": "logistic"}


def _tiny_csv(tmp: Path) -> None:
    rows = ["request_id,x,device_correct,cloud_correct,split"]
    rows += [f"{i},{i % 7 / 7},{i % 2},1,{('train', 'val', 'test')[i % 3]}" for i in range(30)]
    (tmp / "tiny.csv").write_text("\n".join(rows) + "\n")


def old_pickled_router(tmp: Path) -> None:
    """A train folder from 'an older router_lab': router.joblib (a payload), a matching router.json."""
    folder = tmp / "old"
    folder.mkdir()
    data = _payload(tmp)
    (folder / "router.joblib").write_bytes(data)
    (folder / "router.json").write_text(json.dumps(_meta("router.joblib", data, 1)))
    (tmp / "payload.pkl").write_bytes(data)
    _tiny_csv(tmp)


def crafted_skops(tmp: Path) -> None:
    """A router.skops whose schema calls os.system, with a router.json forged to match it."""
    folder = tmp / "crafted"
    folder.mkdir()
    schema = {"__class__": "Pipeline", "__module__": "sklearn.pipeline", "__loader__": "ObjectNode",
              "content": {"__class__": "system", "__module__": "os", "__loader__": "FunctionNode"}}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    data = buffer.getvalue()
    (folder / "router.skops").write_bytes(data)
    (folder / "router.json").write_text(json.dumps(_meta("router.skops", data, 2)))
    _tiny_csv(tmp)


def pickle_named_skops(tmp: Path) -> None:
    folder = tmp / "renamed"
    folder.mkdir()
    data = _payload(tmp)
    (folder / "router.skops").write_bytes(data)
    (folder / "router.json").write_text(json.dumps(_meta("router.skops", data, 2)))


def model_file_elsewhere(tmp: Path) -> None:
    folder = tmp / "elsewhere"
    folder.mkdir()
    data = _payload(tmp)
    (tmp / "evil.bin").write_bytes(data)
    (folder / "router.json").write_text(json.dumps(_meta("../evil.bin", data, 2)))


def _forged_export(tmp: Path, **changes) -> None:
    data = b"not really onnx"
    (tmp / "router.onnx").write_bytes(data)
    manifest = {"format": "router_lab.model_manifest", "manifest_version": 1, "file": "router.onnx",
                "kind": "router", "sha256": sha256_bytes(data), "size_bytes": len(data), **changes}
    (tmp / "router.manifest.json").write_text(json.dumps(manifest))


def manifest_for_another_file(tmp: Path) -> None:
    _forged_export(tmp, file="cascade.onnx")


def manifest_wrong_size(tmp: Path) -> None:
    _forged_export(tmp, size_bytes=3)


def existing_key(tmp: Path) -> None:
    (tmp / "keys").mkdir()
    (tmp / "keys" / "router_lab.key").write_text("keep me\n")


_DATA = ["dataset=file", "dataset.path={tmp}/tiny.csv"]

CASES: list[dict] = [
    {"id": "security-export-old-joblib", "args": ["export", "run_dir={tmp}/old"],
     "setup": "old_pickled_router", "expect": ["router.joblib", "retrain"]},
    {"id": "security-simulate-old-joblib",
     "args": ["simulate", "policy.model_path={tmp}/old", "sim.n_requests=20", *_DATA],
     "setup": "old_pickled_router", "expect": ["never loaded", "retrain"]},
    {"id": "security-evaluate-old-joblib", "args": ["evaluate", "model_path={tmp}/old", *_DATA],
     "setup": "old_pickled_router", "expect": ["retrain"]},
    {"id": "security-simulate-raw-pickle",
     "args": ["simulate", "model_path={tmp}/payload.pkl", "sim.n_requests=20", *_DATA],
     "setup": "old_pickled_router", "expect": ["payload.pkl", "not a readable router.json"]},
    {"id": "security-export-crafted-skops", "args": ["export", "run_dir={tmp}/crafted"],
     "setup": "crafted_skops", "expect": ["router.skops", "'os.system'", "refusing"]},
    {"id": "security-export-pickle-named-skops", "args": ["export", "export.model_path={tmp}/renamed"],
     "setup": "pickle_named_skops", "expect": ["router.skops", "not a skops model file"]},
    {"id": "security-export-model-file-elsewhere", "args": ["export", "run_dir={tmp}/elsewhere"],
     "setup": "model_file_elsewhere", "expect": ["field 'model_file'", "../evil.bin"]},
    {"id": "security-train-experimental-rerun", "args": ["train", "--experimental-rerun", "{tmp}/payload.pkl"],
     "setup": "old_pickled_router", "expect": ["--experimental-rerun", "unpickles"]},
    {"id": "security-simulate-experimental-rerun-eq", "args": ["simulate", "--experimental-rerun={tmp}/payload.pkl"],
     "setup": "old_pickled_router", "expect": ["--experimental-rerun"]},
    {"id": "security-validate-manifest-other-file", "args": ["validate", "{tmp}/router.onnx"],
     "setup": "manifest_for_another_file", "expect": ["router.manifest.json", "field 'file'"]},
    {"id": "security-validate-manifest-wrong-size", "args": ["validate", "{tmp}/router.onnx"],
     "setup": "manifest_wrong_size", "expect": ["router.onnx", "not 3", "truncated?"]},
    {"id": "security-export-missing-sign-key",
     "args": ["export", "run_dir={tmp}", "sign_key={tmp}/nope.key"],
     "expect": ["nope.key", "no such private key file"]},
    {"id": "security-keygen-never-overwrites", "args": ["keygen", "out={tmp}/keys"],
     "setup": "existing_key", "expect": ["router_lab.key", "already exists"]},
]
