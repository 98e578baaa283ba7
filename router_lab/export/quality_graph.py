"""Exporting a per-model quality router (``router_lab.train.quality``) as ONE ONNX graph.

Each head is converted with skl2onnx (probabilities as a plain tensor), its names prefixed
(``onnx.compose.add_prefix``), and the heads are joined on the shared ``features`` input: the
graph outputs ``qualities`` (float32 [n, M], column m = head m's P(class 1), the models in
tier order).  So that the device runtime's checks of a router graph hold unchanged, the graph also
has ``score`` = q_cloud − q_device (the two-model special case's score), ``decision`` = score >= 0
and the compiled ``threshold`` 0; the N-model policies read ``qualities`` (metadata
``qualities_output`` and ``models``).
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from router_lab.errors import RouterLabError
from router_lab.export.convert import (
    DECISION,
    FEATURES_INPUT,
    PROBABILITIES,
    SCORE,
    THRESHOLD,
    RouterSpec,
    _skl2onnx_convert,
    _text_convert,
)
from router_lab.export.metadata import finish_model
from router_lab.train.estimators import calibration_of

QUALITIES = "qualities"
PARITY_TOLERANCE = 1e-5


def convert_quality_router(router: Any, dataset_name: str = "", dataset_hash: str = "", opset: int = 17,
                           ml_opset: int = 3) -> onnx.ModelProto:
    """The quality router's heads in one graph (see the module docstring)."""
    width = len(router.feature_columns)
    text = router.mode in ("text", "text+category")
    input_name = FEATURES_INPUT
    input_info = helper.make_tensor_value_info(FEATURES_INPUT, TensorProto.FLOAT, [None, width])
    nodes, initializers, opsets = [], [], {}
    columns = []
    for i, head in enumerate(router.heads):
        spec = RouterSpec(estimator=head, estimator_name=router.estimator_name,
                          feature_columns=router.feature_columns, mode=router.mode, threshold=0.0)
        if text:
            model = _text_convert(spec, opset)
            input_name = model.graph.input[0].name
            input_info = onnx.ValueInfoProto()
            input_info.CopyFrom(model.graph.input[0])
        else:
            model = _skl2onnx_convert(spec, opset, ml_opset)
        model = onnx.compose.add_prefix(model, f"h{i}_")
        for entry in model.opset_import:
            opsets[entry.domain] = max(opsets.get(entry.domain, 0), entry.version)
        graph = model.graph
        nodes.append(helper.make_node("Identity", [input_name], [f"h{i}_{input_name}"], name=f"h{i}_input"))
        nodes.extend(graph.node)
        initializers.extend(graph.initializer)
        initializers.append(numpy_helper.from_array(np.array([1], dtype=np.int64), f"h{i}_column"))
        nodes.append(helper.make_node("Gather", [f"h{i}_{PROBABILITIES}", f"h{i}_column"], [f"h{i}_quality"],
                                      axis=1, name=f"h{i}_quality"))
        columns.append(f"h{i}_quality")
    device, cloud = router.models.index("device"), router.models.index("cloud")
    initializers += [numpy_helper.from_array(np.array(0.0, dtype=np.float32), "router_lab_threshold"),
                     numpy_helper.from_array(np.array([device], dtype=np.int64), "router_lab_device"),
                     numpy_helper.from_array(np.array([cloud], dtype=np.int64), "router_lab_cloud"),
                     numpy_helper.from_array(np.array([-1], dtype=np.int64), "router_lab_flat")]
    nodes += [
        helper.make_node("Concat", columns, [QUALITIES], axis=1, name="router_lab_qualities"),
        helper.make_node("Gather", [QUALITIES, "router_lab_device"], ["q_device"], axis=1, name="router_lab_q_device"),
        helper.make_node("Gather", [QUALITIES, "router_lab_cloud"], ["q_cloud"], axis=1, name="router_lab_q_cloud"),
        helper.make_node("Sub", ["q_cloud", "q_device"], ["margin"], name="router_lab_margin"),
        helper.make_node("Reshape", ["margin", "router_lab_flat"], [SCORE], name="router_lab_score"),
        helper.make_node("GreaterOrEqual", [SCORE, "router_lab_threshold"], [DECISION], name="router_lab_decision"),
        helper.make_node("Identity", ["router_lab_threshold"], [THRESHOLD], name="router_lab_threshold_out"),
    ]
    graph = helper.make_graph(
        nodes, "router_lab_quality_router",
        [input_info],
        [helper.make_tensor_value_info(QUALITIES, TensorProto.FLOAT, [None, len(router.models)]),
         helper.make_tensor_value_info(SCORE, TensorProto.FLOAT, [None]),
         helper.make_tensor_value_info(DECISION, TensorProto.BOOL, [None]),
         helper.make_tensor_value_info(THRESHOLD, TensorProto.FLOAT, [])],
        initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())])
    model.ir_version = min(model.ir_version, 9)
    graph.input[0].doc_string = ("string [n, 1]: the raw request text" if text else
                                 f"float32 [n, {width}]: one row per request, columns in metadata router_lab.feature_names")
    metadata = {
        "kind": "router", "input_name": input_name, "input_dtype": "string" if text else "float32",
        "feature_names": ["text"] if text else list(router.feature_columns), "mode": router.mode, "threshold": 0.0,
        "target": {"kind": "per_model_quality"}, "estimator": router.estimator_name,
        "dataset_name": dataset_name, "dataset_hash": dataset_hash,
        "score_output": SCORE, "decision_output": DECISION, "threshold_output": THRESHOLD,
        "calibration": calibration_of(router.heads[0]), "outputs": [QUALITIES, SCORE, DECISION, THRESHOLD],
        "qualities_output": QUALITIES, "models": list(router.models),
    }
    doc = (f"router_lab per-model quality router ({router.estimator_name}, mode {router.mode}): input "
           f"{input_name!r} {'string' if text else 'float32'}; output qualities float32 [n, {len(router.models)}] = the "
           f"predicted quality of {', '.join(router.models)}; score = q_cloud - q_device")
    return finish_model(model, metadata, "router_lab_quality_router", doc)


def validate_quality_graph(data: bytes, source: str, router: Any, X: np.ndarray, calls: int = 20) -> dict[str, Any]:
    """The gates of a quality graph: the ONNX checker, the runtime loads it, parity of ``qualities``
    with scikit-learn on ``X`` (held-out rows) <= 1e-5, and its latency for one request."""
    from router_lab.runtime.device_router import DeviceRouter

    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    device = DeviceRouter.from_bytes(data, source)
    X = X if device.is_text else X.astype(np.float32)
    got = device.qualities(X)
    want = router.predict(X)
    diff = float(np.abs(got.astype(np.float64) - want).max()) if len(X) else 0.0
    one = X[:1]
    times = []
    for _ in range(max(1, calls)):
        start = time.perf_counter_ns()
        device.qualities(one)
        times.append((time.perf_counter_ns() - start) / 1e3)
    report = {"kind": "quality_router", "models": list(router.models), "model_bytes": len(data),
              "n_rows": int(len(X)), "max_abs_diff": diff, "tolerance": PARITY_TOLERANCE,
              "onnx_p50_us": float(np.percentile(times, 50)), "onnx_p99_us": float(np.percentile(times, 99)),
              "passed": diff <= PARITY_TOLERANCE}
    report["failed"] = [] if report["passed"] else ["max_abs_diff"]
    if not report["passed"]:
        raise RouterLabError(f"{source}: exported qualities differ from scikit-learn by {diff:.2e} "
                             f"(> {PARITY_TOLERANCE:g}); no model written ({json.dumps(report['failed'])})")
    return report
