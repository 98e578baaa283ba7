"""The ``int8`` target: dynamic quantization (``onnxruntime.quantization.quantize_dynamic``, int8
weights), gated against the float ONNX model by the same parity and decision-agreement gates.

Routers whose operators are not quantizable (linear classifiers, tree ensembles and the text
router's ai.onnx.ml / string operators) come out unchanged: that is reported as ``no-op``, not as
a gain, and nothing is written.  Where quantization changes scores beyond the gate (the ``mlp``
router) the target is refused with the measured disagreement.
"""

from __future__ import annotations

import contextlib
import io
import logging
import pathlib
import tempfile

import onnx
import onnxruntime as ort

from router_lab.errors import RouterLabError, one_line
from router_lab.export.targets import (
    TargetFile,
    TargetInput,
    TargetResult,
    judge,
    not_run,
    register_target,
)
from router_lab.export.targets.onnx_target import python_runtime_figures

QUANTIZED_OPS = frozenset({"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "QuantizeLinear",
                           "DequantizeLinear", "QLinearMatMul", "QLinearConv", "DynamicQuantizeMatMul",
                           "MatMulIntegerToFloat", "QAttention", "QGemm"})
RUNTIME = "onnxruntime (Python, CPU), int8 dynamic quantization"


def quantize(model_bytes: bytes) -> bytes:
    """``model_bytes`` with int8 weights; metadata_props kept (the runtime needs them)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    original = onnx.load_from_string(model_bytes)
    with tempfile.TemporaryDirectory(prefix="router_lab_int8_") as tmp:
        source, target = pathlib.Path(tmp) / "float.onnx", pathlib.Path(tmp) / "int8.onnx"
        source.write_bytes(model_bytes)
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # quantize_dynamic warns about pre-processing on every call
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                quantize_dynamic(source, target, weight_type=QuantType.QInt8)
        except Exception as exc:  # the quantizer raises many types
            raise RouterLabError(f"int8 target: quantize_dynamic failed ({type(exc).__name__}: "
                                 f"{one_line(str(exc))[:200]})") from exc
        finally:
            root.setLevel(level)
        model = onnx.load(target)
    del model.metadata_props[:]
    model.metadata_props.extend(original.metadata_props)
    model.doc_string = original.doc_string
    return model.SerializeToString()


@register_target("int8", summary="dynamic int8 quantisation: size vs decision agreement")
def int8_target(inp: TargetInput) -> TargetResult:
    data = quantize(inp.model_bytes)
    ops = {n.op_type for n in onnx.load_from_string(data).graph.node}
    if not ops & QUANTIZED_OPS:
        return not_run("no-op", RUNTIME, "no quantizable operators (the graph has "
                       f"{', '.join(sorted(ops))}): the int8 model is the float model; nothing to gain, "
                       "not written", runtime_version=ort.__version__)
    stem = inp.model_stem
    score, decision, latency = python_runtime_figures(inp, data, f"{stem}.int8.onnx")
    report = judge(inp, RUNTIME, ort.__version__, score, decision, latency=latency, model_bytes=len(data),
                   notes=[f"quantized operators: {', '.join(sorted(ops & QUANTIZED_OPS))}; gated against "
                          "the float ONNX model"],
                   against_float=True, size_vs_onnx=round(len(data) / len(inp.model_bytes), 3))
    if not report["passed"]:
        report["notes"].append(f"refused: {report['n_decisions_flipped']} of {len(score)} decisions flip, "
                               f"max |Δscore| {max(report['max_abs_diff'], report.get('adversarial_text', {}).get('max_abs_diff', 0)):.3g}")
    return TargetResult(report, (TargetFile(f"{stem}.int8.onnx", data, f"{stem}.int8"),))
