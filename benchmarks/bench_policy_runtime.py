"""The device-side policy runtime: one decision, model call included, against the bare model call.

    .venv/bin/python benchmarks/bench_policy_runtime.py [--json]
    (also printed by benchmarks/bench_router.py)

The default router (logistic, digits, mode input) is exported as three bundles (`learned`,
`budget`, `load_aware` around `learned`) and loaded with ``load_bundle``.  Timed on held-out rows,
one request at a time (1 onnxruntime thread, after a warm-up, GC paused):

* ``model``: ``DeviceRouter.route(row)`` — the router graph with its input checks (what the
  runtime calls to score a request);
* ``decide``: ``policy.decide(Request(features=row), Signals(...))`` — the same model call plus the
  runtime's own logic (privacy pinning, the lock, the controller, the decision object).

Both are timed back to back for each request in one loop; the runtime's own cost is the median of
the per-request differences ``decide`` − ``model``.  Targets:
``decide`` p50 <= 30 us and p99 <= 150 us; the runtime's own logic <= 5 us at p50.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import emit  # noqa: E402

from router_lab.runtime import Request, Signals, load_bundle  # noqa: E402

N_CALLS = 5000
POLICIES = {"learned": ["policy=learned"], "budget": ["policy=budget"], "load_aware": ["policy=load_aware"]}


def export_bundles(folder: Path) -> tuple[dict[str, Path], np.ndarray]:
    from hydra import compose, initialize_config_dir

    from router_lab.cli import CONF_DIR
    from router_lab.config import register_configs
    from router_lab.data.builders import resolve_dataset
    from router_lab.export.commands import export
    from router_lab.train.artifacts import save_trained_router
    from router_lab.train.fit import train_router

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        base = compose("config", overrides=[f"datasets_dir={folder}"])
        dataset = resolve_dataset(base.dataset, folder)
        with threadpool_limits(1):
            router = train_router(dataset, None, None, "input", 0)
        save_trained_router(router, folder / "train")
        out = {}
        for name, overrides in POLICIES.items():
            cfg = compose("config", overrides=[f"datasets_dir={folder}", f"run_dir={folder / 'train'}",
                                               f"out={folder / name}", "export.latency_calls=20", *overrides])
            export(cfg)
            out[name] = folder / name
    x = dataset.features(router.feature_columns)[dataset.split_mask("test")].astype(np.float32)
    return out, x


def percentiles(ns: np.ndarray) -> tuple[float, float]:
    return float(np.percentile(ns, 50) / 1000), float(np.percentile(ns, 99) / 1000)


def paired_ns(model, decide, rows: list, requests: list) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """Per request, the bare model call and the decision, timed back to back in one loop (so both
    see the same machine state; GC paused)."""
    import gc
    import time

    clock = time.perf_counter_ns
    for r, q in zip(rows[:200], requests[:200], strict=True):  # warm-up
        model(r)
        decide(q)
    model_ns, decide_ns = np.empty(len(rows), np.int64), np.empty(len(rows), np.int64)
    enabled = gc.isenabled()
    gc.disable()
    try:
        for i, (r, q) in enumerate(zip(rows, requests, strict=True)):
            t0 = clock()
            model(r)
            t1 = clock()
            decide(q)
            t2 = clock()
            model_ns[i], decide_ns[i] = t1 - t0, t2 - t1
    finally:
        if enabled:
            gc.enable()
    return model_ns, decide_ns


def bench(bundle_dir: Path, x: np.ndarray) -> dict[str, float | str]:
    bundle = load_bundle(bundle_dir)
    policy = bundle.make_policy()
    router = bundle.router
    rows = [x[i % len(x)] for i in range(N_CALLS)]
    signals = Signals(now_s=1.0, local_in_flight=1, local_queued=0, network_up=True)
    requests = [Request(features=r) for r in rows]
    model_ns, decide_ns = paired_ns(router.route, lambda req: policy.decide(req, signals), rows, requests)
    m50, m99 = percentiles(model_ns)
    d50, d99 = percentiles(decide_ns)
    return {"policy": bundle.kind, "model_p50_us": m50, "model_p99_us": m99, "decide_p50_us": d50,
            "decide_p99_us": d99, "runtime_logic_p50_us": float(np.percentile(decide_ns - model_ns, 50) / 1000)}


def rows_and_figures() -> tuple[list[dict], dict]:
    with tempfile.TemporaryDirectory() as tmp:
        bundles, x = export_bundles(Path(tmp))
        rows = [bench(path, x) for path in bundles.values()]
    figures = {f"{r['policy']}_{k}": r[k] for r in rows for k in r if k != "policy"}
    figures["meets_targets"] = all(r["decide_p50_us"] <= 30 and r["decide_p99_us"] <= 150
                                   and r["runtime_logic_p50_us"] <= 5 for r in rows)
    return rows, figures


def main(argv: list[str]) -> None:
    rows, figures = rows_and_figures()
    emit(rows, figures, argv)
    if "--json" not in argv:
        print("\npolicy runtime targets: decide p50 <= 30 us, p99 <= 150 us, runtime logic <= 5 us p50 -> "
              f"{'met' if figures['meets_targets'] else 'NOT met'}")


if __name__ == "__main__":
    main(sys.argv[1:])
