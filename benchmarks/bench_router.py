"""Router latency on the device path: onnxruntime (1 intra-op thread) beside scikit-learn.

    .venv/bin/python benchmarks/bench_router.py          # tables: every offered numeric router, then per target
    .venv/bin/python benchmarks/bench_router.py --json   # figures of the default router (logistic)
    .venv/bin/python benchmarks/bench_router.py --no-targets   # skip the per-target table

Each router is trained on `digits` (mode input, seed 0), converted as `router-lab export` does,
and timed on held-out rows: single requests through ``DeviceRouter.route`` (what an app calls,
input checks included) and bare ``InferenceSession.run``; batches of 1,000 rows; sklearn's
``predict_proba`` on the same rows.  Targets for the default router: p50 <= 30 us, p99 <= 150 us,
>= 10x faster than scikit-learn per request, file <= 100 KB.

Per target (export.targets, router_lab/export/targets/): each router converted and validated as
`router-lab export export.targets=[onnx,ort,web,int8]` does, with single-request p50/p99 measured in
that target's own runtime (Python onnxruntime for onnx / ort / int8, onnxruntime-web in Node.js for
web) and the file size; the baseline is the onnx row (the float model in Python onnxruntime).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import emit  # noqa: E402

from router_lab.data.builders import resolve_dataset  # noqa: E402
from router_lab.data.config import DigitsConfig  # noqa: E402
from router_lab.export.config import ExportSection  # noqa: E402
from router_lab.export.convert import RouterSpec, convert_router  # noqa: E402
from router_lab.export.latency import measure_latency, tile_rows  # noqa: E402
from router_lab.export.targets import run_targets, target_input  # noqa: E402
from router_lab.export.validate import session_router  # noqa: E402
from router_lab.train.estimators import offered_estimators  # noqa: E402
from router_lab.train.fit import train_router  # noqa: E402

N_CALLS = 5000
BATCH_ROWS = 1000
BATCH_CALLS = 30
DEFAULT = "logistic"


def bench_one(name: str, dataset) -> dict[str, float | int | str]:  # noqa: ANN001
    with threadpool_limits(1):
        spec = RouterSpec.from_trained(train_router(dataset, {"name": name}, None, "input", seed=0))
    data = convert_router(spec).SerializeToString()
    router = session_router(data, name, threads=1)
    x = dataset.features(spec.feature_columns)[dataset.split_mask("test")]
    rows, batch = list(x), tile_rows(x, BATCH_ROWS)
    session, feed = router.session, router.metadata["input_name"]
    outputs = [router.metadata["score_output"], router.metadata["decision_output"]]
    route = measure_latency(router.route, router.route, rows, batch, N_CALLS, BATCH_ROWS, BATCH_CALLS)
    bare = measure_latency(lambda r: session.run(outputs, {feed: r}), lambda b: session.run(outputs, {feed: b}),
                           [x[i: i + 1] for i in range(len(x))], batch, N_CALLS, BATCH_ROWS, BATCH_CALLS)
    with threadpool_limits(1):
        sk_calls = N_CALLS if name in ("logistic", "mlp") else 1000
        sk = measure_latency(spec.estimator.predict_proba, spec.estimator.predict_proba,
                             [x[i: i + 1] for i in range(len(x))], batch, sk_calls, BATCH_ROWS, 5)
    return {"router": name, "model_bytes": len(data), "onnx_p50_us": route.p50_us, "onnx_p99_us": route.p99_us,
            "session_p50_us": bare.p50_us, "session_p99_us": bare.p99_us,
            "onnx_batch1000_rows_per_s": route.batch_rows_per_s, "sklearn_p50_us": sk.p50_us,
            "sklearn_p99_us": sk.p99_us, "sklearn_batch1000_rows_per_s": sk.batch_rows_per_s,
            "speedup_p50": sk.p50_us / route.p50_us}


TARGETS = ["onnx", "ort", "web", "int8"]


def bench_targets(name: str, dataset) -> list[dict[str, float | int | str]]:  # noqa: ANN001
    """One row per target of router ``name``: status, size, p50/p99 in the target's runtime."""
    with threadpool_limits(1):
        spec = RouterSpec.from_trained(train_router(dataset, {"name": name}, None, "input", seed=0))
    data = convert_router(spec).SerializeToString()
    reports, _ = run_targets(TARGETS, target_input(data, spec, dataset, ExportSection(latency_calls=N_CALLS)))
    base = reports["onnx"]
    rows = []
    for target, rep in reports.items():
        passed = rep["status"] == "passed"
        rows.append({"router": name, "target": target, "status": rep["status"],
                     "bytes": rep["bytes"] if rep["bytes"] is not None else "–",
                     "size_vs_onnx": round(rep["bytes"] / base["bytes"], 2) if rep["bytes"] else "–",
                     "p50_us": rep["p50_us"] if rep["p50_us"] is not None else "–",
                     "p99_us": rep["p99_us"] if rep["p99_us"] is not None else "–",
                     "max_abs_diff": f"{rep['max_abs_diff']:.2e}" if rep["max_abs_diff"] is not None else "–",
                     "runtime": rep["runtime"].split(" (")[0] + " " + rep["runtime_version"],
                     "written": "yes" if passed else "no"})
    return rows


def main(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        dataset = resolve_dataset(DigitsConfig(), folder)
        names = [DEFAULT] if "--json" in argv else [DEFAULT] + [n for n in offered_estimators()
                                                               if n not in (DEFAULT, "text")]
        rows = [bench_one(name, dataset) for name in names]
        with_targets = "--no-targets" not in argv
        target_rows = [r for name in names for r in bench_targets(name, dataset)] if with_targets else []
    default = rows[0]
    figures = {k: default[k] for k in ("onnx_p50_us", "onnx_p99_us", "sklearn_p50_us",
                                       "onnx_batch1000_rows_per_s", "model_bytes")}
    figures.update(session_p50_us=default["session_p50_us"], speedup_p50=default["speedup_p50"],
                   n_calls=N_CALLS, threads=1,
                   meets_targets=bool(default["onnx_p50_us"] <= 30 and default["onnx_p99_us"] <= 150
                                      and default["speedup_p50"] >= 10 and default["model_bytes"] <= 100_000))
    for row in target_rows:
        if row["router"] == DEFAULT:
            figures[f"target_{row['target']}"] = {k: row[k] for k in ("status", "bytes", "p50_us", "p99_us")}
    emit(rows, figures, argv)
    if target_rows and "--json" not in argv:
        print(f"\nper target ({N_CALLS:,} single requests in each target's own runtime; onnx = the baseline):")
        emit(target_rows, {}, argv)
    if "--json" not in argv:
        print(f"\ndefault router ({DEFAULT}) targets: p50 <= 30 us, p99 <= 150 us, >= 10x sklearn, "
              f"<= 100 KB -> {'met' if figures['meets_targets'] else 'NOT met'}")


if __name__ == "__main__":
    main(sys.argv[1:])
