"""Converting a trained router to ONNX with skl2onnx, with its score and decision in the graph.

The graph takes ``features`` (float32 [n, F], columns named in the metadata) -- or ``text`` for a
text router, converted by ``router_lab.export.text`` -- and returns ``probabilities`` (float32
[n, 2], no ZipMap), ``score`` (float32 [n], the routing score that router.label defines) and ``decision`` (bool [n],
score >= threshold: send to the cloud).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from router_lab.errors import RouterLabError, one_line
from router_lab.export.metadata import finish_model
from router_lab.train.estimators import calibration_of, offered_estimators

FEATURES_INPUT = "features"
PROBABILITIES = "probabilities"
SCORE = "score"
DECISION = "decision"
# The threshold constant the decision node compares with, as a graph output: the runtime checks it
# equals the metadata's threshold at load (the runtime has no ONNX parser to read the constant).
THRESHOLD = "threshold"


@dataclass(frozen=True)
class RouterSpec:
    """What export needs to know about a trained router (see router_lab.train.artifacts)."""

    estimator: Any  # fitted sklearn classifier, classes [0, 1]; class 1 = escalate (per router.label)
    estimator_name: str
    feature_columns: tuple[str, ...]
    mode: str  # input | input+confidence | text
    threshold: float
    target: dict[str, Any] = field(default_factory=dict)
    dataset_name: str = ""
    dataset_hash: str = ""

    @classmethod
    def from_trained(cls, router: Any) -> RouterSpec:
        """From a ``TrainedRouter`` (duck-typed, so export does not depend on its internals)."""
        return cls(estimator=router.estimator, estimator_name=str(router.estimator_name),
                   feature_columns=tuple(router.feature_columns), mode=str(router.mode),
                   threshold=float(router.threshold), target=dict(router.target or {}),
                   dataset_name=str(router.dataset_name), dataset_hash=str(router.dataset_hash))

    def scores(self, x: Any) -> np.ndarray:
        """scikit-learn's score: predict_proba(x)[:, 1] (float64)."""
        return np.asarray(self.estimator.predict_proba(x)[:, 1], dtype=np.float64)


def describe_estimator(estimator: Any) -> str:
    """``Pipeline(StandardScaler, LogisticRegression)``-style name of an estimator."""
    steps = getattr(estimator, "steps", None)
    if steps:
        return f"{type(estimator).__name__}({', '.join(describe_estimator(s) for _, s in steps)})"
    inner = getattr(estimator, "estimator", None)
    if inner is not None and hasattr(inner, "fit"):
        return f"{type(estimator).__name__}({describe_estimator(inner)})"
    return type(estimator).__name__


def _check_binary(spec: RouterSpec) -> None:
    classes = getattr(spec.estimator, "classes_", None)
    if classes is None:
        raise RouterLabError(f"router estimator '{spec.estimator_name}' is not fitted; expected a "
                             "trained router (router-lab train)")
    if [int(c) for c in np.asarray(classes).tolist()] != [0, 1]:
        raise RouterLabError(f"router estimator '{spec.estimator_name}' has classes {list(classes)}; "
                             "expected [0, 1] (1 = escalate)")


def converter_options(estimator: Any) -> dict[Any, Any]:
    """skl2onnx options: probabilities as a plain tensor (no ZipMap), and, for a calibrated
    Pipeline, the raw decision function that scikit-learn calibrates (skl2onnx would otherwise
    calibrate the pipeline's probabilities and the scores would be wrong)."""
    calibrated = getattr(estimator, "calibrated_classifiers_", None)
    if calibrated is None:
        return {"zipmap": False}
    options: dict[Any, Any] = {id(estimator): {"zipmap": False}}
    for member in calibrated:
        steps = getattr(member.estimator, "steps", None)
        if steps and hasattr(member.estimator, "decision_function"):
            options[id(steps[-1][1])] = {"raw_scores": True}
    return options


def _check_calibration(spec: RouterSpec) -> None:
    if calibration_of(spec.estimator) == "isotonic":
        raise RouterLabError(
            f"router estimator '{spec.estimator_name}' uses isotonic calibration, which skl2onnx "
            "1.20 converts as a nearest-point lookup instead of scikit-learn's interpolation "
            "(scores differ by up to ~0.1); retrain with router.calibration=sigmoid or none")


def _skl2onnx_convert(spec: RouterSpec, opset: int, ml_opset: int) -> onnx.ModelProto:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    width = len(spec.feature_columns)
    try:
        return convert_sklearn(spec.estimator, "router",
                               initial_types=[(FEATURES_INPUT, FloatTensorType([None, width]))],
                               options=converter_options(spec.estimator),
                               target_opset={"": opset, "ai.onnx.ml": ml_opset})
    except Exception as exc:  # skl2onnx raises many types (MissingShapeCalculator, RuntimeError, …)
        raise RouterLabError(
            f"router estimator '{spec.estimator_name}' ({describe_estimator(spec.estimator)}) cannot be "
            f"converted to ONNX ({type(exc).__name__}: {one_line(str(exc))[:200]}); estimators that "
            f"convert: {', '.join(offered_estimators())}") from exc


def _text_convert(spec: RouterSpec, opset: int) -> onnx.ModelProto:
    from router_lab.export.text import convert_text_router  # the text stack only when needed

    return convert_text_router(spec.estimator, opset=opset)


def add_score_and_decision(model: onnx.ModelProto, threshold: float) -> None:
    """Append score = probabilities[:, 1], decision = score >= threshold and the threshold constant
    itself; keep only probabilities, score, decision and threshold as outputs (skl2onnx's label is
    argmax at 0.5: misleading)."""
    graph = model.graph
    if PROBABILITIES not in {o.name for o in graph.output}:
        raise RouterLabError(f"converted router has outputs {[o.name for o in graph.output]}; "
                             f"expected one named {PROBABILITIES!r}")
    graph.initializer.extend([
        numpy_helper.from_array(np.array(1, dtype=np.int64), "router_lab_score_column"),
        numpy_helper.from_array(np.array(threshold, dtype=np.float32), "router_lab_threshold"),
    ])
    graph.node.extend([
        helper.make_node("Gather", [PROBABILITIES, "router_lab_score_column"], [SCORE], axis=1,
                         name="router_lab_score"),
        helper.make_node("GreaterOrEqual", [SCORE, "router_lab_threshold"], [DECISION],
                         name="router_lab_decision"),
        helper.make_node("Identity", ["router_lab_threshold"], [THRESHOLD], name="router_lab_threshold_out"),
    ])
    kept = [o for o in graph.output if o.name == PROBABILITIES]
    del graph.output[:]
    graph.output.extend([*kept, helper.make_tensor_value_info(SCORE, TensorProto.FLOAT, [None]),
                         helper.make_tensor_value_info(DECISION, TensorProto.BOOL, [None]),
                         helper.make_tensor_value_info(THRESHOLD, TensorProto.FLOAT, [])])


def router_metadata(spec: RouterSpec, input_name: str, input_dtype: str) -> dict[str, Any]:
    """The schema values of a router graph (see router_lab.runtime.schema)."""
    return {
        "kind": "router", "input_name": input_name, "input_dtype": input_dtype,
        "feature_names": list(spec.feature_columns), "mode": spec.mode,
        "threshold": float(spec.threshold), "target": spec.target, "estimator": spec.estimator_name,
        "dataset_name": spec.dataset_name, "dataset_hash": spec.dataset_hash,
        "score_output": SCORE, "decision_output": DECISION, "threshold_output": THRESHOLD,
        "calibration": calibration_of(spec.estimator),
        "outputs": [PROBABILITIES, SCORE, DECISION, THRESHOLD],
    }


def convert_router(spec: RouterSpec, opset: int = 17, ml_opset: int = 3) -> onnx.ModelProto:
    """The router as a finished ONNX model (metadata stamped, deterministic bytes)."""
    _check_binary(spec)
    _check_calibration(spec)
    if spec.mode in ("text", "text+category"):
        model = _text_convert(spec, opset)
        input_name, input_dtype = model.graph.input[0].name, "string"
    else:
        model = _skl2onnx_convert(spec, opset, ml_opset)
        input_name, input_dtype = FEATURES_INPUT, "float32"
    add_score_and_decision(model, spec.threshold)
    width = "n" if input_dtype == "string" else f"n, {len(spec.feature_columns)}"
    model.graph.input[0].doc_string = (
        f"{input_dtype} [{width}]: " + ("the raw request text" if input_dtype == "string" else
                                        "one row per request, columns in metadata router_lab.feature_names"))
    doc = (f"router_lab router ({spec.estimator_name}, mode {spec.mode}): input {input_name!r} "
           f"{input_dtype} [{width}]; outputs probabilities float32 [n, 2], score float32 [n] = "
           f"P(device answer wrong), decision bool [n] = score >= {spec.threshold!r} (True: cloud). "
           f"Target: {json.dumps(spec.target, sort_keys=True)}")
    return finish_model(model, router_metadata(spec, input_name, input_dtype), "router_lab_router", doc)
