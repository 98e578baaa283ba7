"""The ``ort`` target: the router in ORT format for ORT Mobile (Android, iOS), with its reduced-build
operator configuration and what the stock mobile packages and the NNAPI / Core ML checks say.

Converted with ``onnxruntime.tools.convert_onnx_models_to_ort`` (optimisation style Fixed, type
reduction on), validated by loading the ``.ort`` bytes in Python onnxruntime (the same kernels an
ORT Mobile build has).  Files: ``router.ort`` and ``router.required_operators_and_types.config``
(pass it to ORT's ``build.py --minimal_build --include_ops_by_config … --enable_reduced_operator_type_support``).
Unlike the .onnx files, the .ort bytes are not reproducible: the converter writes its kernel-type
table in hash-map order (same size and content, permuted); the config file is byte-stable.
"""

from __future__ import annotations

import contextlib
import io
import logging
import pathlib
import re
import subprocess
import sys
import tempfile
from typing import Any

import onnx
import onnxruntime as ort

from router_lab.errors import RouterLabError, one_line
from router_lab.export.targets import TargetFile, TargetInput, TargetResult, judge, register_target
from router_lab.export.targets.onnx_target import python_runtime_figures

CONFIG_SUFFIX = "required_operators_and_types.config"
USABILITY_TIMEOUT_S = 120
# Operator domains whose CPU kernels the stock full packages (onnxruntime-android on Maven,
# onnxruntime-c / onnxruntime-objc pods, onnxruntime-react-native) include; the retired reduced
# pre-built packages (onnxruntime-mobile, onnxruntime-mobile-c/objc) had a reduced ai.onnx set only.
FULL_PACKAGE_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft"})
REDUCED_PACKAGE_DOMAINS = frozenset({"", "ai.onnx"})


def convert_to_ort(model_bytes: bytes, stem: str) -> tuple[bytes, str]:
    """The ORT-format bytes and the reduced-build operator (and type) configuration text."""
    from onnxruntime.tools.convert_onnx_models_to_ort import (
        OptimizationStyle,
        convert_onnx_models_to_ort,
    )

    with tempfile.TemporaryDirectory(prefix="router_lab_ort_") as tmp:
        folder = pathlib.Path(tmp)
        (folder / "in").mkdir()
        source = folder / "in" / f"{stem}.onnx"
        source.write_bytes(model_bytes)
        log = io.StringIO()
        try:
            with contextlib.redirect_stdout(log), _quiet("ort_format_model", "ort_format_model.utils"):
                convert_onnx_models_to_ort(source, output_dir=folder / "out",
                                           optimization_styles=[OptimizationStyle.Fixed],
                                           enable_type_reduction=True)
            data = (folder / "out" / f"{stem}.ort").read_bytes()
            config = (folder / "out" / f"{stem}.{CONFIG_SUFFIX}").read_text(encoding="utf-8")
        except Exception as exc:  # the converter raises many types; the log says more
            raise RouterLabError(f"ort target: convert_onnx_models_to_ort failed ({type(exc).__name__}: "
                                 f"{one_line(str(exc))[:200]})") from exc
    # the config's header names the temporary folder: keep the file name only (byte-stable output)
    config = re.sub(r"^# - .*/", "# - ", config, flags=re.MULTILINE)
    return data, config


@contextlib.contextmanager
def _quiet(*names: str):  # noqa: ANN202
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def operators(model_bytes: bytes) -> dict[str, list[str]]:
    """Operator types per domain (the ONNX graph's nodes)."""
    model = onnx.load_from_string(model_bytes)
    ops: dict[str, set[str]] = {}
    for node in model.graph.node:
        ops.setdefault(node.domain or "ai.onnx", set()).add(node.op_type)
    return {domain: sorted(names) for domain, names in sorted(ops.items())}


def mobile_usability(model_bytes: bytes, stem: str) -> dict[str, Any]:
    """What ``python -m onnxruntime.tools.check_onnx_model_mobile_usability`` says about NNAPI and
    Core ML for this model (run in its own process: the tool's shape inference can crash)."""
    with tempfile.TemporaryDirectory(prefix="router_lab_usability_") as tmp:
        path = pathlib.Path(tmp) / f"{stem}.onnx"
        path.write_bytes(model_bytes)
        try:
            done = subprocess.run([sys.executable, "-m", "onnxruntime.tools.check_onnx_model_mobile_usability",
                                   "--log_level", "info", str(path)], capture_output=True, text=True,
                                  timeout=USABILITY_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            return {"error": f"no answer within {USABILITY_TIMEOUT_S} s"}
    log = done.stdout + done.stderr
    verdicts = re.findall(r"Model should perform well with (.+?) as is: (\w+)", log)
    unsupported = sorted({op for line in re.findall(r"Unsupported ops: (.+)", log) for op in line.strip().split(",")})
    result: dict[str, Any] = {"execution_providers": dict(verdicts), "unsupported_ops": unsupported}
    if "should be used with the CPU EP" in log:
        result["advice"] = "use the CPU execution provider"
    if done.returncode != 0 or not verdicts:
        result["error"] = (f"the tool exited with status {done.returncode}"
                           + (" (crashed)" if done.returncode < 0 else "") + " before its verdicts")
    return result


def package_notes(ops: dict[str, list[str]], usability: dict[str, Any]) -> list[str]:
    domains = set(ops)
    notes = []
    if domains <= FULL_PACKAGE_DOMAINS:
        notes.append("runs on the stock full ORT Mobile packages (onnxruntime-android, onnxruntime-c / "
                     "onnxruntime-objc pods, onnxruntime-react-native): they include the "
                     f"{', '.join(sorted(domains))} kernels it uses")
    else:
        notes.append(f"uses operator domains {sorted(domains - FULL_PACKAGE_DOMAINS)} that no stock "
                     "package has: needs a custom build with its custom-op library")
    outside = {d: o for d, o in ops.items() if d not in REDUCED_PACKAGE_DOMAINS}
    if outside:
        listed = "; ".join(f"{d}: {', '.join(o)}" for d, o in outside.items())
        notes.append(f"needs a custom minimal build (the reduced-build config) where the app ships a "
                     f"reduced ORT Mobile package (e.g. the retired onnxruntime-mobile): {listed}")
    eps = usability.get("execution_providers") or {}
    if eps:
        notes.append("check_onnx_model_mobile_usability: " + ", ".join(f"{ep} {v}" for ep, v in eps.items())
                     + (f" (unsupported there: {', '.join(usability['unsupported_ops'])})"
                        if usability.get("unsupported_ops") else "") + "; the CPU execution provider runs it")
    elif usability.get("error"):
        notes.append(f"check_onnx_model_mobile_usability failed: {usability['error']}")
    return notes


@register_target("ort", summary="the ORT format for onnxruntime-mobile, with its reduced-operator config")
def ort_target(inp: TargetInput) -> TargetResult:
    stem = inp.model_stem
    data, config = convert_to_ort(inp.model_bytes, stem)
    score, decision, latency = python_runtime_figures(inp, data, f"{stem}.ort")
    ops = operators(inp.model_bytes)
    usability = mobile_usability(inp.model_bytes, stem)
    report = judge(inp, "onnxruntime (ORT format, Python CPU; the kernels of ORT Mobile)", ort.__version__,
                   score, decision, latency=latency, model_bytes=len(data),
                   notes=package_notes(ops, usability), operators=ops, mobile_usability=usability,
                   size_vs_onnx=round(len(data) / len(inp.model_bytes), 3),
                   reduced_build_config=f"{stem}.{CONFIG_SUFFIX}")
    files = (TargetFile(f"{stem}.ort", data, f"{stem}.ort"),
             TargetFile(f"{stem}.{CONFIG_SUFFIX}", config.encode("utf-8"), f"{stem}.ort.required_operators",
                        is_model=False))
    return TargetResult(report, files)
