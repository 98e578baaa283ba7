"""The ``onnx`` target: the float ONNX router in Python onnxruntime (desktop, server, a Python app).

The file is ``router.onnx`` itself, written by the export; this target adds its verdict on the
adversarial text set (text routers) and its single-request latency to validation.json's targets.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from router_lab.export.latency import measure_latency
from router_lab.export.targets import TargetInput, TargetResult, judge, register_target, worst_of
from router_lab.export.validate import session_router


def python_runtime_figures(inp: TargetInput, model_bytes: bytes, source: str
                           ) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Scores and decisions (the worse of batch and one row at a time) and single-request p50/p99
    of ``model_bytes`` in Python onnxruntime."""
    router = session_router(model_bytes, source, int(inp.options.threads))
    batch = router.route(inp.rows)
    alone = [router.route(r) for r in inp.rows]
    score, decision = worst_of(inp, (batch.score, batch.decision),
                               ([r.score for r in alone], [r.decision for r in alone]))
    rows = list(inp.rows[~inp.adversarial][:500])  # latency on the dataset's rows, as validate times it
    timed = measure_latency(router.route, router.route, rows, inp.rows[:1], int(inp.options.latency_calls), 1, 1)
    return score, decision, (timed.p50_us, timed.p99_us)


@register_target("onnx", summary="the ONNX graph under onnxruntime (Python, CPU): parity and latency")
def onnx_target(inp: TargetInput) -> TargetResult:
    score, decision, latency = python_runtime_figures(inp, inp.model_bytes, f"{inp.model_stem}.onnx")
    report = judge(inp, "onnxruntime (Python, CPU)", ort.__version__, score, decision, latency=latency,
                   model_bytes=len(inp.model_bytes),
                   notes=["the exported router.onnx: desktop and server apps, and the reference for the "
                          "other targets"], files={f"{inp.model_stem}.onnx": f"{inp.model_stem}.onnx"})
    return TargetResult(report)
