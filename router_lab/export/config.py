"""Structured config owned by router_lab.export: `export.*`, the options of `export` and `validate`.

Gates (``max_abs_diff``, ``tie_band`` and the optional size/latency limits) decide whether an
export may be written; latency figures are measured with ``latency_calls`` single requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ExportSection:
    """Run options of `router-lab export` and `router-lab validate` (`export.*` on the command line)."""

    run_dir: str | None = None  # the `router-lab train` run folder (or its router.json) to export
    model_path: str | None = None  # the same, by another name: a router.json or its folder
    opset: int = 17  # ai.onnx opset of the graph (text routers need 19 and get it)
    ml_opset: int = 3  # ai.onnx.ml opset cap (tree ensembles, linear classifiers)
    data: str | None = None  # validate on this CSV/Parquet file instead of the `dataset` group
    split: str = "test"  # the held-out split parity and latency are measured on
    max_abs_diff: float = 1e-5  # gate: |sklearn - onnxruntime| probability, every held-out row
    tie_band: float = 1e-6  # rows whose score is this close to the threshold may disagree
    latency_calls: int = 2000  # single-request calls timed per runtime (after warm-up)
    batch_rows: int = 1000  # rows per batch call for the throughput figure
    batch_calls: int = 20  # batch calls timed
    threads: int = 1  # onnxruntime intra-op threads (1 = what a phone app gets)
    # scikit-learn's single-request calls timed for comparison (one thread, 3 batch calls);
    # 0 skips that timing.  It gates nothing.
    sklearn_latency_calls: int = 200
    max_model_bytes: int | None = None  # optional gate on the .onnx file size
    max_p99_us: float | None = None  # optional gate on onnxruntime single-request p99
    device_graph: bool = True  # also export the digits device model and the combined device graph
    # device targets the router is converted to and validated for (router_lab/export/targets/):
    # onnx (Python onnxruntime), ort (ORT Mobile format + reduced-build config), web
    # (onnxruntime-web under Node.js), int8 (dynamic quantization); each is written only if it passes
    targets: list[str] = field(default_factory=lambda: ["onnx"])


SCHEMAS: list[tuple[str, str, type]] = []
