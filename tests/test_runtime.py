"""The device runtime: DeviceRouter.load / route / metadata, its input checks, its refusal of
damaged files, and that it needs nothing but numpy and onnxruntime."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from router_lab.errors import RouterLabError
from router_lab.export.commands import write_model
from router_lab.export.convert import RouterSpec, convert_router
from router_lab.runtime import DeviceRouter, RouteResult
from router_lab.runtime.manifest import manifest_path
from router_lab.runtime.schema import PREFIX
from router_lab.train.fit import train_router


@pytest.fixture(scope="module")
def spec(digits) -> RouterSpec:
    return RouterSpec.from_trained(train_router(digits, None, None, "input", seed=0))


@pytest.fixture(scope="module")
def model_file(spec: RouterSpec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    return write_model(folder / "router.onnx", convert_router(spec).SerializeToString(), "router")


@pytest.fixture(scope="module")
def router(model_file: Path) -> DeviceRouter:
    return DeviceRouter.load(model_file)


@pytest.fixture(scope="module")
def held_out(digits, spec: RouterSpec) -> np.ndarray:
    return digits.features(spec.feature_columns)[digits.split_mask("test")]


def copy_export(model_file: Path, folder: Path) -> Path:
    target = folder / model_file.name
    target.write_bytes(model_file.read_bytes())
    manifest_path(target).write_bytes(manifest_path(model_file).read_bytes())
    return target


def test_single_request_gives_bool_decision_and_float_score(router, spec, held_out) -> None:
    result = router.route(held_out[0])
    assert isinstance(result, RouteResult)
    assert isinstance(result.decision, bool) and isinstance(result.score, float)
    expected = spec.scores(held_out[:1])[0]
    assert abs(result.score - expected) <= 1e-5
    assert result.decision == (expected >= spec.threshold)


def test_batch_scores_and_decisions_match_sklearn(router, spec, held_out) -> None:
    result = router.route(held_out)
    expected = spec.scores(held_out)
    assert result.score.dtype == np.float32 and result.decision.dtype == bool
    assert result.score.shape == result.decision.shape == (len(held_out),)
    assert np.abs(result.score - expected).max() <= 1e-5
    clear = np.abs(expected - spec.threshold) > 1e-6
    np.testing.assert_array_equal(result.decision[clear], (expected >= spec.threshold)[clear])
    assert 0 < result.decision.mean() < 1  # the threshold really splits the traffic


def test_folder_loads_its_router_and_metadata_describes_it(model_file, spec) -> None:
    router = DeviceRouter.load(model_file.parent)
    meta = router.metadata
    assert meta["feature_names"] == list(spec.feature_columns)
    assert meta["threshold"] == spec.threshold and meta["mode"] == "input"
    assert meta["kind"] == "router" and meta["input_name"] == "features"
    assert router.n_features == 64 and router.threshold == spec.threshold


@pytest.mark.parametrize("bad, message", [
    (lambda x: x.astype(np.float64), "dtype float64; expected float32"),
    (lambda x: x[:, :10], r"shape \(\d+, 10\); expected \(64,\)"),
    (lambda x: x[0, :63], r"shape \(63,\)"),
    (lambda x: x[None], "shape"),
    (lambda x: x.tolist(), "got list; expected a numpy float32 array"),
    (lambda x: np.where(x == 0, np.float32(np.nan), x), "NaN"),
])
def test_wrong_input_is_a_one_line_error(router, held_out, bad, message) -> None:
    with pytest.raises(RouterLabError, match=message) as info:
        router.route(bad(held_out[:5]))
    assert "\n" not in str(info.value)


def test_tampered_file_is_refused(model_file, tmp_path) -> None:
    target = copy_export(model_file, tmp_path)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one weight
    target.write_bytes(bytes(data))
    with pytest.raises(RouterLabError, match="does not match the manifest") as info:
        DeviceRouter.load(target)
    assert "\n" not in str(info.value)


def test_truncated_file_is_refused(model_file, tmp_path) -> None:
    target = copy_export(model_file, tmp_path)
    target.write_bytes(target.read_bytes()[:1000])
    with pytest.raises(RouterLabError, match=r"1,000 bytes, not [\d,]+ \(truncated\?\)"):
        DeviceRouter.load(target)


def test_missing_manifest_is_refused(model_file, tmp_path) -> None:
    target = tmp_path / "router.onnx"
    target.write_bytes(model_file.read_bytes())
    with pytest.raises(RouterLabError, match="no manifest router.manifest.json"):
        DeviceRouter.load(target)


def test_non_onnx_file_is_refused_even_with_a_matching_manifest(tmp_path) -> None:
    target = write_model(tmp_path / "router.onnx", b"name,score\nnot,onnx\n", "router")
    with pytest.raises(RouterLabError, match="not a loadable ONNX model") as info:
        DeviceRouter.load(target)
    assert "\n" not in str(info.value)


def test_wrong_input_width_is_refused(model_file, tmp_path) -> None:
    model = onnx.load(model_file)
    for entry in model.metadata_props:
        if entry.key == PREFIX + "feature_names":
            entry.value = json.dumps([f"x{i}" for i in range(10)])
    target = write_model(tmp_path / "router.onnx", model.SerializeToString(), "router")
    with pytest.raises(RouterLabError, match=r"lists 10 features; expected \[n, 10\] \(wrong input width\)"):
        DeviceRouter.load(target)


def test_onnx_file_from_elsewhere_is_refused(model_file, tmp_path) -> None:
    model = onnx.load(model_file)
    del model.metadata_props[:]
    target = write_model(tmp_path / "router.onnx", model.SerializeToString(), "router")
    with pytest.raises(RouterLabError, match="not a router_lab export"):
        DeviceRouter.load(target)


def test_runtime_imports_only_numpy_and_onnxruntime(model_file) -> None:
    heavy = ["sklearn", "pandas", "simpy", "hydra", "omegaconf", "skl2onnx", "onnx", "scipy",
             "joblib", "pyarrow", "matplotlib", "skops", "cryptography"]
    code = (
        "import sys, numpy as np\n"
        "from router_lab.runtime import DeviceRouter\n"
        f"router = DeviceRouter.load({str(model_file)!r})\n"
        "result = router.route(np.zeros(router.n_features, dtype=np.float32))\n"
        f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})\n"
        "print(repr(loaded), type(result.decision).__name__, 'onnxruntime' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "bool", "True"]


def test_text_router_routes_strings(tmp_path) -> None:
    text = pytest.importorskip("router_lab.train.text")
    pytest.importorskip("router_lab.export.text")
    prompts = np.array([f"{w} {i}" for i, w in enumerate(["add two", "prove the theorem"] * 40)], dtype=object)
    labels = np.array([0, 1] * 40)
    pipeline = text.make_text_router({}, random_state=0).fit(prompts, labels)
    spec = RouterSpec(pipeline, "text", ("text",), "text", 0.5, {"name": "budget"}, "toy", "0")
    router = DeviceRouter.load(write_model(tmp_path / "router.onnx", convert_router(spec).SerializeToString(), "router"))
    assert router.metadata["input_dtype"] == "string"
    single = router.route("Prove the theorem 3")
    batch = router.route(["add two 5", "prove the theorem 7"])
    expected = pipeline.predict_proba(np.array(["add two 5", "prove the theorem 7"], dtype=object))[:, 1]
    assert isinstance(single.decision, bool)
    assert np.abs(batch.score - expected).max() <= 1e-5
    assert batch.decision.tolist() == [False, True]
    with pytest.raises(RouterLabError, match="text router"):
        router.route(np.zeros(3, dtype=np.float32))
