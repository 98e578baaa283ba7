"""The runtime checks every manifest field against the model file, and that the threshold compiled
into the graph is the metadata's: a re-forged manifest does not make an edited model load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from router_lab.data.digits import load_device_model
from router_lab.errors import RouterLabError
from router_lab.export.commands import device_model_path, write_model
from router_lab.export.convert import RouterSpec, convert_router
from router_lab.export.device_graph import build_device_graph
from router_lab.runtime import DeviceRouter
from router_lab.runtime.manifest import make_manifest, manifest_path
from router_lab.runtime.schema import PREFIX
from router_lab.train.fit import train_router


@pytest.fixture(scope="module")
def spec(digits) -> RouterSpec:
    return RouterSpec.from_trained(train_router(digits, None, None, "input+confidence", seed=0))


@pytest.fixture(scope="module")
def router_bytes(spec) -> bytes:
    return convert_router(spec).SerializeToString()


def with_threshold(data: bytes, threshold: float) -> bytes:
    model = onnx.load_from_string(data)
    for entry in model.metadata_props:
        if entry.key == PREFIX + "threshold":
            entry.value = repr(threshold)
    return model.SerializeToString()


def test_an_honest_export_loads_and_its_decision_uses_the_metadata_threshold(router_bytes, spec, tmp_path) -> None:
    router = DeviceRouter.load(write_model(tmp_path / "router.onnx", router_bytes, "router"))
    assert router.threshold == spec.threshold and router.metadata["calibration"] == "none"
    x = np.random.default_rng(0).uniform(0, 16, size=(500, router.n_features)).astype(np.float32)
    result = router.route(x)
    np.testing.assert_array_equal(result.decision, result.score >= np.float32(router.threshold))


@pytest.mark.parametrize("shift", [0.05, -0.05])
def test_edited_metadata_threshold_with_a_reforged_manifest_is_refused(router_bytes, spec, tmp_path, shift) -> None:
    edited = with_threshold(router_bytes, spec.threshold + shift)
    target = write_model(tmp_path / "router.onnx", edited, "router")  # manifest matches the edit
    with pytest.raises(RouterLabError, match="metadata threshold is .* but the graph's decision "
                                             "compares with") as info:
        DeviceRouter.load(target)
    assert str(target) in str(info.value) and "\n" not in str(info.value)


def test_edited_threshold_in_the_device_graph_is_refused(spec, digits, tmp_path) -> None:
    device_model = load_device_model(device_model_path(digits))
    graph = build_device_graph(device_model, spec, digits.feature_columns, "digits").SerializeToString()
    assert DeviceRouter.load(write_model(tmp_path / "ok" / "device_graph.onnx", graph, "device_graph"))
    target = write_model(tmp_path / "bad" / "device_graph.onnx", with_threshold(graph, 0.01), "device_graph")
    with pytest.raises(RouterLabError, match="device_graph.onnx: metadata threshold"):
        DeviceRouter.load(target)
    wrong_kind = write_model(tmp_path / "kind" / "device_graph.onnx", graph, "router")
    with pytest.raises(RouterLabError, match="field 'kind' is 'router' but device_graph.onnx is a "
                                             "'device_graph' model"):
        DeviceRouter.load(wrong_kind)


def forge(target: Path, data: bytes, **changes) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    manifest = {**make_manifest(data, target.name, "router"), **changes}
    manifest_path(target).write_text(json.dumps(manifest))
    return target


@pytest.mark.parametrize(("changes", "expected"), [
    ({"kind": "device_graph"}, "field 'kind' is 'device_graph' but router.onnx is a 'router' model"),
    ({"kind": "bundle"}, "field 'kind' is 'bundle'; expected one of router, device_graph"),
    ({"file": "other.onnx"}, "field 'file' is 'other.onnx' but the model is 'router.onnx'"),
    ({"size_bytes": 12}, r"bytes, not 12 \(truncated\?\)"),
    ({"size_bytes": "3671"}, "field 'size_bytes' is '3671'"),
    ({"manifest_version": 7}, "field 'manifest_version' is 7"),
], ids=["kind", "unknown-kind", "file", "size", "size-type", "version"])
def test_every_manifest_field_is_checked(router_bytes, tmp_path, changes, expected) -> None:
    target = forge(tmp_path / "router.onnx", router_bytes, **changes)
    with pytest.raises(RouterLabError, match=expected) as info:
        DeviceRouter.load(target)
    assert "\n" not in str(info.value) and "router" in str(info.value)


def test_renamed_model_is_refused_by_its_manifest(router_bytes, tmp_path) -> None:
    original = write_model(tmp_path / "router.onnx", router_bytes, "router")
    renamed = tmp_path / "cascade.onnx"
    renamed.write_bytes(original.read_bytes())
    manifest_path(renamed).write_bytes(manifest_path(original).read_bytes())
    with pytest.raises(RouterLabError, match="field 'file' is 'router.onnx' but the model is 'cascade.onnx'"):
        DeviceRouter.load(renamed)


def test_validate_command_refuses_an_edited_threshold(router_bytes, spec, cli, tmp_path, datasets_dir) -> None:
    target = write_model(tmp_path / "router.onnx", with_threshold(router_bytes, spec.threshold + 0.05), "router")
    result = cli("validate", str(target), f"datasets_dir={datasets_dir}", "run_dir=/unused")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert f"{target}: metadata threshold" in lines[0]
