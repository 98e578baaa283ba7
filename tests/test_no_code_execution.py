"""No command runs code from a file a user hands over: trained routers are skops files loaded through
an allow-list, old pickles are refused unread, and Hydra's --experimental-rerun is refused.

The payload is a real pickle that creates a marker file when unpickled (checked first); it is put
wherever a command reads a model, and no command may create the marker.
"""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from router_lab.errors import RouterLabError
from router_lab.export.commands import write_model
from router_lab.export.convert import RouterSpec, convert_router
from router_lab.io import sha256_bytes
from router_lab.train.artifacts import (
    LEGACY_MODEL_FILE,
    META_FILE,
    MODEL_FILE,
    load_trained_router,
    save_trained_router,
)
from router_lab.train.estimators import make_router_estimator, offered_estimators
from router_lab.train.fit import train_router
from router_lab.train.persist import check_trusted, dumps_estimator, loads_estimator


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: the file appears iff the pickle was loaded."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (open, (self.marker, "w"))


def payload(marker: Path) -> bytes:
    return pickle.dumps(_Payload(str(marker)))


@pytest.fixture(scope="module")
def trained(digits):
    return train_router(digits, None, None, "input", seed=0)


@pytest.fixture(scope="module")
def good_folder(trained, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("trained")
    save_trained_router(trained, folder)
    return folder


def forge_pickle_folder(folder: Path, marker: Path) -> Path:
    """An old-style train folder: router.joblib (the payload) and a router.json whose SHA matches."""
    folder.mkdir(parents=True, exist_ok=True)
    data = payload(marker)
    (folder / LEGACY_MODEL_FILE).write_bytes(data)
    meta = {"producer": "router_lab", "schema_version": 1, "model_file": LEGACY_MODEL_FILE,
            "model_sha256": sha256_bytes(data), "feature_columns": ["x"], "mode": "input",
            "threshold": 0.5, "estimator_name": "logistic"}
    (folder / META_FILE).write_text(json.dumps(meta))
    return folder


def hostile_skops(good: Path, loader: str = "FunctionNode", module: str = "os",
                  name: str = "system") -> bytes:
    """The good router.skops with one node swapped for a reference to ``module.name``."""
    with zipfile.ZipFile(good / MODEL_FILE) as archive:
        schema = json.loads(archive.read("schema.json"))
        files = {n: archive.read(n) for n in archive.namelist() if n != "schema.json"}
    schema["content"]["content"]["memory"] = {"__class__": name, "__module__": module,
                                              "__loader__": loader}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
        for n, b in files.items():
            archive.writestr(n, b)
    return out.getvalue()


def forge_skops_folder(good: Path, folder: Path, data: bytes) -> Path:
    """A copy of a good train folder whose router.skops is ``data`` and router.json re-hashed."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = json.loads((good / META_FILE).read_text())
    meta["model_sha256"] = sha256_bytes(data)
    (folder / MODEL_FILE).write_bytes(data)
    (folder / META_FILE).write_text(json.dumps(meta))
    return folder


def test_the_payload_really_runs_code_when_unpickled(tmp_path) -> None:
    marker = tmp_path / "ran"
    pickle.loads(payload(marker))
    assert marker.exists()


@pytest.mark.parametrize("calibration", ["none", "sigmoid", "isotonic"])
def test_every_offered_estimator_round_trips_through_the_allow_list(calibration, tmp_path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 4)).astype(np.float32)
    y = (X[:, 0] + 0.5 * rng.normal(size=240) > 0).astype(int)
    texts = np.array([f"{w} {i % 7}" for i, w in enumerate(["add two", "prove it", "sum", "why"] * 60)],
                     dtype=object)
    small = {"gbdt": {"max_iter": 5}, "random_forest": {"n_estimators": 3}, "mlp": {"max_iter": 30},
             "text": {"min_df": 1}}
    for name in offered_estimators():
        cfg = {"name": name, "calibration": calibration, **small.get(name, {})}
        inputs = texts if name == "text" else X
        estimator = make_router_estimator(cfg, 0).fit(inputs, y)
        data = dumps_estimator(estimator)
        assert data == dumps_estimator(estimator), name  # byte-stable
        loaded = loads_estimator(data, tmp_path / f"{name}.skops")
        np.testing.assert_array_equal(loaded.predict_proba(inputs), estimator.predict_proba(inputs),
                                      err_msg=name)


def test_router_files_are_byte_identical_across_processes() -> None:
    # skops names arrays by id() and stamps the time; persist.py canonicalises both
    code = ("import numpy as np; from router_lab.train.estimators import make_router_estimator as m\n"
            "from router_lab.train.persist import dumps_estimator; from router_lab.io import sha256_bytes\n"
            "X = np.random.default_rng(0).normal(size=(200, 3)); y = (X[:, 0] > 0).astype(int)\n"
            "print(sha256_bytes(dumps_estimator(m({'name': 'logistic', 'calibration': 'sigmoid'}, 0).fit(X, y))))")
    digests = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120, check=True).stdout.strip() for _ in range(2)]
    assert len(digests[0]) == 64 and digests[0] == digests[1]


@pytest.mark.parametrize("reference", [("FunctionNode", "os", "system"),
                                       ("ObjectNode", "subprocess", "Popen"),
                                       ("FunctionNode", "builtins", "eval"),
                                       ("TypeNode", "os", "PathLike")])
def test_skops_file_naming_a_foreign_type_is_refused_naming_it(good_folder, tmp_path, reference) -> None:
    data = hostile_skops(good_folder, *reference)
    with pytest.raises(RouterLabError, match=rf"{reference[1]}\.{reference[2]}") as info:
        check_trusted(data, tmp_path / MODEL_FILE)
    assert "\n" not in str(info.value)
    folder = forge_skops_folder(good_folder, tmp_path / "forged", data)
    with pytest.raises(RouterLabError, match="not one of the estimator types router_lab trains"):
        load_trained_router(folder)


def test_old_pickled_router_is_refused_unread(tmp_path) -> None:
    marker = tmp_path / "ran"
    folder = forge_pickle_folder(tmp_path / "old", marker)
    for path in (folder, folder / META_FILE, folder / LEGACY_MODEL_FILE):
        with pytest.raises(RouterLabError, match="retrain it with 'router-lab train'"):
            load_trained_router(path)
    assert not marker.exists()


def test_pickle_renamed_to_router_skops_is_not_a_skops_file(good_folder, tmp_path) -> None:
    marker = tmp_path / "ran"
    folder = forge_skops_folder(good_folder, tmp_path / "renamed", payload(marker))
    with pytest.raises(RouterLabError, match="not a skops model file"):
        load_trained_router(folder)
    raw = tmp_path / "router.pkl"  # a bare pickle given as the model path
    raw.write_bytes(payload(marker))
    with pytest.raises(RouterLabError, match="not a readable router.json"):
        load_trained_router(raw)
    assert not marker.exists()


@pytest.fixture(scope="module")
def hostile(good_folder, trained, tmp_path_factory) -> dict[str, Path]:
    """Every kind of hostile model location, and the marker none of them may create."""
    root = tmp_path_factory.mktemp("hostile")
    marker = root / "MARKER"
    pickled = forge_pickle_folder(root / "pickled", marker)
    crafted = forge_skops_folder(good_folder, root / "crafted", hostile_skops(good_folder))
    raw = root / "payload.pickle"
    raw.write_bytes(payload(marker))
    # an exported router whose manifest names the pickled train folder as its source
    onnx_file = write_model(root / "export" / "router.onnx",
                            convert_router(RouterSpec.from_trained(trained)).SerializeToString(),
                            "router", source_router=str(pickled))
    return {"root": root, "marker": marker, "pickled": pickled, "crafted": crafted,
            "raw": raw, "onnx": onnx_file}


# Every command that reads a train folder or a model file, with an old pickle and a crafted skops
# file; the in-process tests above cover the other forgeries (a pickle renamed router.skops, ...).
CASES = [
    ("export", ["export", "run_dir={pickled}"], "retrain"),
    ("export-crafted", ["export", "run_dir={crafted}"], "'os.system'"),
    ("simulate", ["simulate", "policy.model_path={pickled}", "sim.n_requests=50"], "retrain"),
    ("simulate-top", ["simulate", "model_path={crafted}", "sim.n_requests=50"], "'os.system'"),
    ("evaluate", ["evaluate", "model_path={pickled}"], "retrain"),
    ("validate", ["validate", "{onnx}"], "retrain"),
    ("rerun", ["train", "--experimental-rerun", "{raw}"], "--experimental-rerun"),
    ("rerun-eq", ["simulate", "--experimental-rerun={raw}"], "--experimental-rerun"),
]


@pytest.mark.parametrize(("case", "args", "expected"), CASES, ids=[c[0] for c in CASES])
def test_no_command_runs_the_payload(case, args, expected, hostile, cli, datasets_dir) -> None:
    filled = [a.format(**{k: str(v) for k, v in hostile.items()}) for a in args]
    result = cli(*filled, f"datasets_dir={datasets_dir}")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (case, result.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("router-lab: error: "), (case, result.stderr)
    assert expected in lines[0], (case, lines[0])
    assert "Traceback" not in result.stderr
    assert not hostile["marker"].exists(), case
