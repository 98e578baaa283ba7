"""The combined device graph: the digits device model and the router in one ONNX model.

Input ``features`` (float32 [n, 64], the raw pixels); outputs ``device_label`` (int64 [n]),
``device_probabilities`` (float32 [n, classes]), ``device_confidence`` (float32 [n]), ``score`` and
``decision`` (the router's, threshold compiled in).  For a router in mode ``input+confidence`` the
confidence features (max probability, top1 - top2 margin, entropy / log(classes)) are computed
inside the graph from the device's probabilities, exactly as ``router_lab.data.digits`` defines
them.  Built from three converted/hand-made graphs with ``onnx.compose``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, compose, helper, numpy_helper

from router_lab.data.digits import PROBA_CLIP, confidence_features
from router_lab.errors import RouterLabError
from router_lab.export.convert import (
    DECISION,
    FEATURES_INPUT,
    SCORE,
    THRESHOLD,
    RouterSpec,
    convert_router,
)
from router_lab.export.metadata import finish_model, normalise_opsets
from router_lab.train.estimators import calibration_of

CONFIDENCE_FEATURES = ("device_confidence", "device_margin", "device_entropy")
OUTPUTS = ("device_label", "device_probabilities", "device_confidence", SCORE, DECISION, THRESHOLD)
def router_columns(router: RouterSpec, input_names: tuple[str, ...]) -> list[int]:
    """Positions of the router's features in [input columns..., confidence features...]."""
    available = [*input_names, *CONFIDENCE_FEATURES]
    unknown = [c for c in router.feature_columns if c not in available]
    if unknown:
        raise RouterLabError(f"device graph: router feature(s) {', '.join(unknown)} are neither device "
                             f"inputs nor confidence features computed in the graph ({', '.join(CONFIDENCE_FEATURES)})")
    return [available.index(c) for c in router.feature_columns]


def reference_outputs(device_model: Any, router: RouterSpec, input_names: tuple[str, ...],
                      x: np.ndarray) -> dict[str, np.ndarray]:
    """What running the two scikit-learn models separately gives (the parity reference)."""
    proba = device_model.predict_proba(x)
    conf = confidence_features(proba)
    available = np.column_stack([x, *(conf[c].astype(np.float32) for c in CONFIDENCE_FEATURES)])
    router_x = available[:, router_columns(router, input_names)].astype(np.float32)
    score = router.scores(router_x)
    return {"device_label": device_model.classes_[proba.argmax(axis=1)], "device_probabilities": proba,
            "device_confidence": conf["device_confidence"], SCORE: score,
            DECISION: score >= router.threshold, "device_margin": conf["device_margin"]}


def _split_graph(width: int, opsets: dict[str, int], ir_version: int) -> onnx.ModelProto:
    """features -> two copies: one for the device model, one for the router's features."""
    x = helper.make_tensor_value_info(FEATURES_INPUT, TensorProto.FLOAT, [None, width])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, width])
            for n in ("to_device", "to_router")]
    nodes = [helper.make_node("Identity", [FEATURES_INPUT], [o.name], name=f"split_{o.name}") for o in outs]
    return _model(helper.make_graph(nodes, "split", [x], outs), opsets, ir_version)


def _glue_graph(width: int, n_classes: int, columns: list[int], opsets: dict[str, int],
                ir_version: int) -> onnx.ModelProto:
    """Device probabilities + pixels -> confidence features and the router's input matrix."""
    f32 = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("glue_pixels", f32, [None, width]),
              helper.make_tensor_value_info("glue_probabilities", f32, [None, n_classes]),
              helper.make_tensor_value_info("glue_label", TensorProto.INT64, [None])]
    inits = [numpy_helper.from_array(np.array([2], dtype=np.int64), "k2"),
             numpy_helper.from_array(np.array(0, dtype=np.int64), "i0"),
             numpy_helper.from_array(np.array(1, dtype=np.int64), "i1"),
             numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
             numpy_helper.from_array(np.array(PROBA_CLIP, dtype=np.float32), "eps"),
             numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
             numpy_helper.from_array(np.array(-1.0 / np.log(n_classes), dtype=np.float32), "neg_inv_log"),
             numpy_helper.from_array(np.array(columns, dtype=np.int64), "router_columns")]
    node = helper.make_node
    nodes = [
        node("TopK", ["glue_probabilities", "k2"], ["top2", "top2_index"], axis=1),
        node("Gather", ["top2", "i0"], ["confidence"], axis=1),
        node("Gather", ["top2", "i1"], ["second"], axis=1),
        node("Sub", ["confidence", "second"], ["margin"]),
        node("Clip", ["glue_probabilities", "eps", "one"], ["clipped"]),
        node("Log", ["clipped"], ["log_p"]),
        node("Mul", ["glue_probabilities", "log_p"], ["p_log_p"]),
        node("ReduceSum", ["p_log_p", "axis1"], ["sum_p_log_p"], keepdims=0),
        node("Mul", ["sum_p_log_p", "neg_inv_log"], ["entropy"]),
        *(node("Unsqueeze", [n, "axis1"], [f"{n}_col"]) for n in ("confidence", "margin", "entropy")),
        node("Concat", ["glue_pixels", "confidence_col", "margin_col", "entropy_col"], ["available"], axis=1),
        node("Gather", ["available", "router_columns"], ["router_features"], axis=1),
        node("Identity", ["glue_label"], ["device_label"]),
        node("Identity", ["glue_probabilities"], ["device_probabilities"]),
        node("Identity", ["confidence"], ["device_confidence"]),
    ]
    outputs = [helper.make_tensor_value_info("router_features", f32, [None, len(columns)]),
               helper.make_tensor_value_info("device_label", TensorProto.INT64, [None]),
               helper.make_tensor_value_info("device_probabilities", f32, [None, n_classes]),
               helper.make_tensor_value_info("device_confidence", f32, [None])]
    return _model(helper.make_graph(nodes, "glue", inputs, outputs, initializer=inits), opsets, ir_version)


def _tail_graph(opsets: dict[str, int], ir_version: int) -> onnx.ModelProto:
    """Names the router's outputs ``score``, ``decision`` and ``threshold`` in the combined graph."""
    inputs = [helper.make_tensor_value_info("tail_score", TensorProto.FLOAT, [None]),
              helper.make_tensor_value_info("tail_decision", TensorProto.BOOL, [None]),
              helper.make_tensor_value_info("tail_threshold", TensorProto.FLOAT, [])]
    outputs = [helper.make_tensor_value_info(SCORE, TensorProto.FLOAT, [None]),
               helper.make_tensor_value_info(DECISION, TensorProto.BOOL, [None]),
               helper.make_tensor_value_info(THRESHOLD, TensorProto.FLOAT, [])]
    nodes = [helper.make_node("Identity", ["tail_score"], [SCORE], name="name_score"),
             helper.make_node("Identity", ["tail_decision"], [DECISION], name="name_decision"),
             helper.make_node("Identity", ["tail_threshold"], [THRESHOLD], name="name_threshold")]
    return _model(helper.make_graph(nodes, "tail", inputs, outputs), opsets, ir_version)


def _model(graph: onnx.GraphProto, opsets: dict[str, int], ir_version: int) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())])
    model.ir_version = ir_version
    return model


def _align(models: list[onnx.ModelProto]) -> tuple[dict[str, int], int]:
    """Give every part the same opset per domain and IR version (compose requires it)."""
    opsets: dict[str, int] = {}
    for m in models:
        for domain, version in normalise_opsets(m).items():
            opsets[domain] = max(opsets.get(domain, 0), version)
    ir_version = max(m.ir_version for m in models)
    for m in models:
        del m.opset_import[:]
        m.opset_import.extend(helper.make_opsetid(d, v) for d, v in sorted(opsets.items()))
        m.ir_version = ir_version
        del m.metadata_props[:]
    return opsets, ir_version


def convert_device_model(device_model: Any, width: int, opset: int, ml_opset: int) -> onnx.ModelProto:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    return convert_sklearn(device_model, "device_model",
                           initial_types=[(FEATURES_INPUT, FloatTensorType([None, width]))],
                           options={"zipmap": False}, target_opset={"": opset, "ai.onnx.ml": ml_opset})


def build_device_graph(device_model: Any, router: RouterSpec, input_names: tuple[str, ...],
                       dataset_name: str, opset: int = 17, ml_opset: int = 3) -> onnx.ModelProto:
    """One ONNX model: device prediction, confidence, router score and decision."""
    width = len(input_names)
    if getattr(device_model, "n_features_in_", width) != width:
        raise RouterLabError(f"device graph: the device model takes {device_model.n_features_in_} "
                             f"inputs but dataset {dataset_name} has {width} input columns")
    if router.mode == "text":
        raise RouterLabError("device graph: a text router cannot share the digits device graph")
    columns = router_columns(router, input_names)
    device = compose.add_prefix(convert_device_model(device_model, width, opset, ml_opset), "device/")
    routed = compose.add_prefix(convert_router(router, opset, ml_opset), "router/")
    opsets, ir_version = _align([device, routed])
    n_classes = len(device_model.classes_)
    graph = compose.merge_models(_split_graph(width, opsets, ir_version), device,
                                 io_map=[("to_device", f"device/{FEATURES_INPUT}")])
    graph = compose.merge_models(graph, _glue_graph(width, n_classes, columns, opsets, ir_version),
                                 io_map=[("to_router", "glue_pixels"),
                                         ("device/probabilities", "glue_probabilities"),
                                         ("device/label", "glue_label")])
    graph = compose.merge_models(graph, routed, io_map=[("router_features", f"router/{FEATURES_INPUT}")],
                                 outputs=["device_label", "device_probabilities", "device_confidence",
                                          f"router/{SCORE}", f"router/{DECISION}",
                                          f"router/{THRESHOLD}"])
    graph = compose.merge_models(graph, _tail_graph(opsets, ir_version),
                                 io_map=[(f"router/{SCORE}", "tail_score"),
                                         (f"router/{DECISION}", "tail_decision"),
                                         (f"router/{THRESHOLD}", "tail_threshold")])
    values = {
        "kind": "device_graph", "input_name": FEATURES_INPUT, "input_dtype": "float32",
        "feature_names": list(input_names), "router_feature_names": list(router.feature_columns),
        "device_classes": [int(c) for c in device_model.classes_], "mode": router.mode,
        "threshold": float(router.threshold), "target": router.target,
        "estimator": router.estimator_name, "dataset_name": router.dataset_name,
        "dataset_hash": router.dataset_hash, "score_output": SCORE, "decision_output": DECISION,
        "threshold_output": THRESHOLD, "calibration": calibration_of(router.estimator),
        "outputs": list(OUTPUTS),
    }
    doc = (f"router_lab device graph ({dataset_name}): input 'features' float32 [n, {width}] "
           f"({input_names[0]} … {input_names[-1]}); outputs device_label int64 [n], "
           f"device_probabilities float32 [n, {n_classes}], device_confidence float32 [n], score "
           f"float32 [n] (router {router.estimator_name}, mode {router.mode}), decision bool [n] = "
           f"score >= {router.threshold!r} (True: cloud). Target: {json.dumps(router.target, sort_keys=True)}")
    graph.graph.input[0].doc_string = f"float32 [n, {width}]: the device model's raw input, one row per request"
    return finish_model(graph, values, "router_lab_device_graph", doc)
