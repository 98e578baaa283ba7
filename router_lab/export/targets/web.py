"""The ``web`` target: the router in onnxruntime-web (WebAssembly) under Node.js -- the runtime of a
browser page, an Electron or a React Native (web) app.

The project's harness (router_lab/export/web/harness.mjs, onnxruntime-web pinned by its
package-lock.json, installed by ``make`` with ``npm ci``) loads the model bytes, scores every row
as one batch and one row at a time, and times single requests, all in one Node process.  The
model file is ``router.onnx`` itself (onnxruntime-web reads .onnx).  Without Node.js or the
installed harness the target is ``skipped`` with the reason, never failed.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import tempfile
from typing import Any

import numpy as np

from router_lab.errors import RouterLabError, one_line
from router_lab.export.targets import (
    TargetInput,
    TargetResult,
    judge,
    not_run,
    register_target,
    worst_of,
)

HARNESS_DIR = pathlib.Path(__file__).resolve().parent.parent / "web"
HARNESS = HARNESS_DIR / "harness.mjs"
RUNTIME = "onnxruntime-web (wasm, Node.js)"
TIMEOUT_S = 600


def harness_problem() -> str | None:
    """Why the harness cannot run here (None when it can)."""
    if shutil.which("node") is None:
        return "Node.js is not installed (no `node` on PATH): web target not validated here"
    if not (HARNESS_DIR / "node_modules" / "onnxruntime-web" / "package.json").is_file():
        return (f"onnxruntime-web is not installed in {HARNESS_DIR} (run `make` or "
                f"`npm ci --prefix {HARNESS_DIR}`): web target not validated here")
    return None


def run_harness(models: list[dict[str, Any]], latency_calls: int) -> dict[str, Any]:
    """One Node process for every model in ``models`` (each: name, bytes, metadata, rows)."""
    with tempfile.TemporaryDirectory(prefix="router_lab_web_") as tmp:
        folder = pathlib.Path(tmp)
        job = {"latency_calls": int(latency_calls), "models": []}
        for m in models:
            path = folder / f"{m['name']}.onnx"
            path.write_bytes(m["bytes"])
            meta, rows = m["metadata"], m["rows"]
            text = meta["input_dtype"] == "string"
            job["models"].append({
                "name": m["name"], "path": str(path), "input_name": meta["input_name"],
                "input_type": "string" if text else "float32", "width": 1 if text else int(rows.shape[1]),
                "latency_rows": int(m.get("latency_rows", len(rows))),
                "score_output": meta["score_output"], "decision_output": meta["decision_output"],
                "rows": [str(t) for t in rows] if text else np.asarray(rows, np.float32).astype(float).tolist()})
        (folder / "job.json").write_text(json.dumps(job), encoding="utf-8")
        try:
            done = subprocess.run(["node", str(HARNESS), str(folder / "job.json")], cwd=HARNESS_DIR,
                                  capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as exc:
            raise RouterLabError(f"web target: the Node harness took over {TIMEOUT_S} s") from exc
    try:
        result = json.loads(done.stdout)
    except ValueError as exc:
        raise RouterLabError(f"web target: the Node harness printed no JSON (exit {done.returncode}: "
                             f"{one_line(done.stderr)[:200]})") from exc
    if "error" in result:
        raise RouterLabError(f"web target: the Node harness failed: {result['error']}")
    return result


@register_target("web", summary="onnxruntime-web (WebAssembly) under Node: parity in a browser runtime")
def web_target(inp: TargetInput) -> TargetResult:
    problem = harness_problem()
    if problem:
        return not_run("skipped", RUNTIME, problem)
    result = run_harness([{"name": inp.model_stem, "bytes": inp.model_bytes, "metadata": inp.metadata,
                           "rows": inp.rows, "latency_rows": int((~inp.adversarial).sum())}],
                         int(inp.options.latency_calls))
    got = result["models"][inp.model_stem]
    if "error" in got:
        report = {"status": "refused", "passed": False, "runtime": RUNTIME,
                  "runtime_version": result["runtime_version"], "max_abs_diff": None,
                  "decision_agreement": None, "n_tie_band": None, "p50_us": None, "p99_us": None,
                  "bytes": len(inp.model_bytes), "notes": [f"onnxruntime-web cannot run it: {got['error']}"]}
        return TargetResult(report)
    score, decision = worst_of(inp, (got["scores"], got["decisions"]),
                               (got["single_scores"], got["single_decisions"]))
    report = judge(inp, RUNTIME, result["runtime_version"], score, decision,
                   latency=(got["p50_us"], got["p99_us"]), model_bytes=len(inp.model_bytes),
                   notes=[f"Node.js {result['node_version']}, 1 wasm thread; the file is "
                          f"{inp.model_stem}.onnx (onnxruntime-web loads .onnx)"],
                   load_ms=got["load_ms"], files={f"{inp.model_stem}.onnx": f"{inp.model_stem}.web"})
    return TargetResult(report)
