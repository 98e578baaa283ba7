"""Export: skl2onnx conversion, metadata, byte-stable files, the combined device graph, the
validation gates, and the `export` / `validate` commands refusing what they have not verified."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from router_lab.data.digits import load_device_model
from router_lab.errors import RouterLabError
from router_lab.export.commands import device_model_path
from router_lab.export.config import ExportSection
from router_lab.export.convert import RouterSpec, convert_router
from router_lab.export.device_graph import build_device_graph, reference_outputs
from router_lab.export.validate import parity, validate_device_graph, validate_router
from router_lab.runtime import DeviceRouter
from router_lab.runtime.device_router import open_session
from router_lab.runtime.manifest import manifest_path
from router_lab.runtime.schema import PREFIX, SCHEMA_VERSION, decode_metadata
from router_lab.train.artifacts import save_trained_router
from router_lab.train.fit import train_router

QUICK = ExportSection(latency_calls=20, batch_calls=2, batch_rows=100)


@pytest.fixture(scope="module")
def trained(digits):
    return {mode: train_router(digits, None, None, mode, seed=0) for mode in ("input", "input+confidence")}


@pytest.fixture(scope="module")
def spec(trained) -> RouterSpec:
    return RouterSpec.from_trained(trained["input"])


@pytest.fixture(scope="module")
def device_model(digits):
    return load_device_model(device_model_path(digits))


def in_memory(data: bytes) -> DeviceRouter:
    session = open_session(data, "test")
    return DeviceRouter(session, decode_metadata(session.get_modelmeta().custom_metadata_map, "test"), "test")


def test_exporting_the_same_router_twice_gives_identical_bytes(spec, device_model, digits) -> None:
    assert convert_router(spec).SerializeToString() == convert_router(spec).SerializeToString()
    graphs = [build_device_graph(device_model, spec, digits.feature_columns, "digits").SerializeToString()
              for _ in range(2)]
    assert graphs[0] == graphs[1]


def test_graph_has_named_float32_input_and_plain_probability_tensor(spec) -> None:
    model = convert_router(spec)
    (given,) = model.graph.input
    assert given.name == "features" and given.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_value for d in given.type.tensor_type.shape.dim][1] == 64
    assert "columns in metadata router_lab.feature_names" in given.doc_string
    assert "ZipMap" not in {n.op_type for n in model.graph.node}
    outputs = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    assert outputs == {"probabilities": onnx.TensorProto.FLOAT, "score": onnx.TensorProto.FLOAT,
                       "decision": onnx.TensorProto.BOOL, "threshold": onnx.TensorProto.FLOAT}
    assert {(o.domain, o.version) for o in model.opset_import} >= {("", 17)}
    assert len({o.domain for o in model.opset_import}) == len(model.opset_import)


def test_metadata_records_features_threshold_target_hash_versions_opset(spec) -> None:
    import skl2onnx
    import sklearn

    props = {p.key: p.value for p in convert_router(spec).metadata_props}
    meta = decode_metadata(props, "test")
    assert meta["feature_names"] == list(spec.feature_columns)
    assert meta["mode"] == "input" and meta["threshold"] == spec.threshold
    assert meta["target"] == spec.target and meta["target"]["name"] == "budget"
    assert meta["dataset_hash"] == spec.dataset_hash and len(spec.dataset_hash) == 64
    assert (meta["sklearn_version"], meta["skl2onnx_version"], meta["onnx_version"]) == (
        sklearn.__version__, skl2onnx.__version__, onnx.__version__)
    assert meta["opset"][""] == 17 and meta["schema_version"] == SCHEMA_VERSION
    assert list(props) == sorted(props) and all(k.startswith(PREFIX) for k in props)


class MedianSplitRouter(ClassifierMixin, BaseEstimator):
    """A custom estimator skl2onnx has no converter for."""

    def fit(self, X, y):  # noqa: N803
        self.classes_ = np.array([0, 1])
        self.median_ = np.median(X[:, 0])
        return self

    def predict_proba(self, X):  # noqa: N803
        p = (X[:, 0] > self.median_).astype(float)
        return np.column_stack([1 - p, p])


def test_unconvertible_estimator_names_itself_and_those_that_convert(spec, digits) -> None:
    x = digits.features(spec.feature_columns)
    custom = RouterSpec(MedianSplitRouter().fit(x, None), "median_split", spec.feature_columns, "input", 0.5)
    with pytest.raises(RouterLabError) as info:
        convert_router(custom)
    message = str(info.value)
    assert "'median_split' (MedianSplitRouter) cannot be converted to ONNX" in message
    assert "estimators that convert: gbdt, logistic, mlp, random_forest" in message
    assert "\n" not in message


@pytest.mark.parametrize("mode", ["input", "input+confidence"])
def test_device_graph_equals_running_device_model_and_router_separately(mode, trained, device_model, digits) -> None:
    spec = RouterSpec.from_trained(trained[mode])
    graph = in_memory(build_device_graph(device_model, spec, digits.feature_columns, "digits").SerializeToString())
    x = digits.features()[digits.split_mask("test")]
    got, want = graph.run(x), reference_outputs(device_model, spec, digits.feature_columns, x)
    np.testing.assert_array_equal(got["device_label"], want["device_label"])
    assert np.abs(got["device_probabilities"] - want["device_probabilities"]).max() <= 1e-5
    assert np.abs(got["device_confidence"] - want["device_confidence"]).max() <= 1e-5
    assert np.abs(got["score"] - want["score"]).max() <= 1e-5
    np.testing.assert_array_equal(got["decision"], want["decision"])
    assert graph.route(x[0]).decision == bool(want["decision"][0])


def test_device_graph_confidence_features_follow_the_dataset_definition(device_model, digits) -> None:
    from router_lab.data.digits import confidence_features

    proba = device_model.predict_proba(digits.features())
    conf = confidence_features(proba)
    ordered = np.sort(proba, axis=1)
    entropy = -(proba * np.log(np.clip(proba, 1e-12, 1))).sum(axis=1) / np.log(10)
    np.testing.assert_allclose(conf["device_confidence"], ordered[:, -1])
    np.testing.assert_allclose(conf["device_margin"], ordered[:, -1] - ordered[:, -2])
    np.testing.assert_allclose(conf["device_entropy"], entropy)


def test_validation_passes_and_reports_parity_latency_size(spec, device_model, digits) -> None:
    data = convert_router(spec).SerializeToString()
    report = validate_router(data, "router.onnx", spec, digits, QUICK)
    figures = report.to_dict()
    assert figures["passed"] and figures["checker"] == figures["shape_inference"] == "ok"
    assert figures["max_abs_diff"] <= 1e-5 and figures["decision_agreement"] == 1.0
    assert figures["model_bytes"] == len(data)
    for key in ("onnx_p50_us", "onnx_p99_us", "onnx_batch100_rows_per_s", "sklearn_p50_us"):
        assert figures[key] > 0
    graph = build_device_graph(device_model, spec, digits.feature_columns, "digits").SerializeToString()
    assert validate_device_graph(graph, "device_graph.onnx", device_model, spec, digits, QUICK).passed


def test_parity_counts_tie_band_rows_and_excludes_them_from_agreement() -> None:
    sk = np.array([0.2, 0.5 - 4e-7, 0.5 + 4e-7, 0.9])
    onnx_score = sk.astype(np.float32)
    decisions = np.array([False, True, False, True])  # the two near-tie rows flipped
    result = parity(onnx_score, decisions, sk, 0.5, 1e-6)
    assert result["n_tie_band"] == 2 and result["n_decisions_differ_in_tie_band"] == 2
    assert result["decision_agreement"] == 1.0
    decisions[0] = True  # a real disagreement
    assert parity(onnx_score, decisions, sk, 0.5, 1e-6)["decision_agreement"] == pytest.approx(0.5)


def test_parity_gate_refuses_a_model_whose_scores_differ(spec, digits) -> None:
    # a graph converted from another fit of the same router: same metadata, different scores
    other = train_router(digits, {"name": "logistic", "C": 0.01}, None, "input", seed=1)
    data = convert_router(dataclasses.replace(spec, estimator=other.estimator)).SerializeToString()
    report = validate_router(data, "router.onnx", spec, digits, QUICK, measure=False)
    assert not report.passed and "max_abs_diff" in report.failed
    assert report.figures["max_abs_diff"] > 1e-3


def test_isotonic_calibration_is_refused_with_the_reason(digits) -> None:
    router = train_router(digits, {"name": "logistic", "calibration": "isotonic"}, None, "input", seed=0)
    with pytest.raises(RouterLabError, match="isotonic calibration.*router.calibration=sigmoid or none"):
        convert_router(RouterSpec.from_trained(router))


def test_validating_on_data_without_the_router_features_is_a_clear_error(spec, synthetic_small) -> None:
    with pytest.raises(RouterLabError, match=r"lacks column\(s\) px_00.*dataset=digits"):
        validate_router(convert_router(spec).SerializeToString(), "router.onnx", spec, synthetic_small,
                        QUICK, measure=False)


def test_reference_router_must_match_the_model(trained, spec, digits) -> None:
    other = RouterSpec.from_trained(trained["input+confidence"])
    with pytest.raises(RouterLabError, match="reference router does not match"):
        validate_router(convert_router(spec).SerializeToString(), "router.onnx", other, digits, QUICK)


# --- the commands, run as a user runs them ---------------------------------------------------

@pytest.fixture(scope="module")
def train_dir(trained, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("train")
    save_trained_router(trained["input+confidence"], folder)
    return folder


def quick_args(datasets_dir: Path) -> list[str]:
    return [f"datasets_dir={datasets_dir}", "export.latency_calls=50", "export.batch_calls=2"]


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("router-lab: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def exported(train_dir, datasets_dir, digits, tmp_path_factory) -> Path:
    from conftest import run_cli

    base = tmp_path_factory.mktemp("exported")
    result = run_cli("export", f"export.run_dir={train_dir}", f"out={base}", *quick_args(datasets_dir), cwd=base)
    assert result.returncode == 0, result.stderr
    return base


def test_export_command_writes_validated_byte_stable_models(exported, train_dir, trained, device_model,
                                                            digits) -> None:
    first = exported
    spec = RouterSpec.from_trained(trained["input+confidence"])
    again = {"router.onnx": convert_router(spec),
             "device_graph.onnx": build_device_graph(device_model, spec, digits.feature_columns, "digits")}
    for name, model in again.items():  # another process, the same bytes
        assert (first / name).read_bytes() == model.SerializeToString()
        assert manifest_path(first / name).is_file()
    report = json.loads((first / "validation.json").read_text())
    assert report["passed"] and report["device_graph"]["passed"]
    assert report["max_abs_diff"] <= 1e-5 and report["decision_agreement"] == 1.0
    assert {"n_tie_band", "onnx_p50_us", "onnx_p99_us", "sklearn_p50_us", "model_bytes"} <= set(report)
    router = DeviceRouter.load(first)
    assert router.metadata["mode"] == "input+confidence"
    assert router.metadata["threshold"] == json.loads((train_dir / "router.json").read_text())["threshold"]


def test_export_writes_no_model_when_a_gate_fails(train_dir, datasets_dir, cli, tmp_path) -> None:
    result = cli("export", f"export.run_dir={train_dir}", f"out={tmp_path / 'out'}",
                 "export.max_model_bytes=1000", *quick_args(datasets_dir))
    assert_one_line_error(result, "validation failed (model_bytes", "no model written")
    # a line per step on stdout, up to the gates that failed; stderr keeps its one line
    steps = [line.split("] ", 1)[-1].split(" (")[0] for line in result.stdout.splitlines()
             if line.startswith("router-lab: export: ")]
    assert [s.removeprefix("router-lab: export: ") for s in steps] == [
        "load the trained router and the validation dataset", "convert the router to ONNX",
        "validate the router", "build and validate the device graph"], result.stdout  # no "write"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["validation.json"]
    assert json.loads((tmp_path / "out" / "validation.json").read_text())["passed"] is False


def test_export_without_a_router_says_how_to_give_one(cli, datasets_dir) -> None:
    assert_one_line_error(cli("export", *quick_args(datasets_dir)), "export.run_dir=")


def test_validate_command_passes_on_the_exported_model(exported, digits, cli, tmp_path) -> None:
    result = cli("validate", str(exported / "device_graph.onnx"), f"out={tmp_path}",
                 f"export.data={digits.source}", "export.latency_calls=50", "export.batch_calls=2")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "validation.json").read_text())
    assert report["passed"] and report["kind"] == "device_graph" and report["label_agreement"] == 1.0
    assert "device_graph" in result.stdout and "yes" in result.stdout


def test_validate_and_load_give_one_line_errors_for_damaged_files(exported, train_dir, datasets_dir, cli,
                                                                  tmp_path) -> None:
    source = exported / "router.onnx"
    cases = {
        "tampered": (lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:], True, "does not match the manifest"),
        "truncated": (lambda b: b[: len(b) // 2], True, "(truncated?)"),
        "not_onnx": (lambda b: b"request_id,text\n1,hello\n", False, "not a loadable ONNX model"),
        "wrong_width": (None, False, "wrong input width"),
    }
    for name, (damage, keep_manifest, fragment) in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        target = folder / "router.onnx"
        if damage is None:
            model = onnx.load(source)
            model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 10
            data = model.SerializeToString()
        else:
            data = damage(source.read_bytes())
        target.write_bytes(data)
        if keep_manifest:
            manifest_path(target).write_bytes(manifest_path(source).read_bytes())
        else:  # a manifest that matches the bad bytes: the damage must be caught after the hash
            from router_lab.export.commands import write_model

            write_model(target, data, "router", source_router=str(train_dir))
        with pytest.raises(RouterLabError, match=fragment.replace("(", r"\(").replace("?", r"\?").replace(")", r"\)")):
            DeviceRouter.load(target)
        result = cli("validate", str(target), f"export.run_dir={train_dir}", *quick_args(datasets_dir))
        assert_one_line_error(result, fragment)
