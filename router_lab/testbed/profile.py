"""`router-lab profile`: the real service times of the device and cloud models on this machine.

Warm (after ``WARMUP_CALLS``), single-threaded onnxruntime, one request per call, on the rows
requests are drawn from; writes ``device_profile.csv`` and ``cloud_profile.csv`` (column
``service_ms``, the format of ``service: profile``) and ``profile.json`` (summary figures):

    router-lab profile
    router-lab simulate device.service=profile device.profile_path=outputs/profile/<time>/device_profile.csv
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from router_lab.data.builders import resolve_dataset
from router_lab.data.commands import datasets_dir
from router_lab.errors import RouterLabError
from router_lab.io import atomic_path, atomic_write_json, run_dir
from router_lab.sim.draws import sample_pool
from router_lab.sim.scenario import scenario_from_config
from router_lab.testbed.commands import testbed_section
from router_lab.testbed.models import live_models

WARMUP_CALLS = 200


def time_calls_ms(model_bytes: bytes, inputs: np.ndarray, calls: int) -> np.ndarray:
    """Wall time of ``calls`` single-row runs (cycling through ``inputs``), in ms, after a warm-up."""
    import onnxruntime as ort

    from router_lab.runtime.device_router import session_options

    session = ort.InferenceSession(model_bytes, session_options(1), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    rows = [inputs[k:k + 1] for k in range(len(inputs))]
    for k in range(WARMUP_CALLS):
        session.run(None, {name: rows[k % len(rows)]})
    out = np.empty(calls)
    clock = time.perf_counter_ns
    for k in range(calls):
        t = clock()
        session.run(None, {name: rows[k % len(rows)]})
        out[k] = clock() - t
    return out / 1e6


def summary(ms: np.ndarray) -> dict[str, float]:
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"n": int(len(ms)), "mean_ms": float(ms.mean()), "p50_ms": float(p50), "p90_ms": float(p90),
            "p99_ms": float(p99), "cv": float(ms.std() / ms.mean()) if ms.mean() > 0 else 0.0}


def profile(cfg: Any) -> dict[str, Any]:
    """CLI handler: time both models, write the profiles and their summary."""
    tb = testbed_section(cfg)
    if tb.profile_calls < 10:
        raise RouterLabError(f"testbed.profile_calls: got {tb.profile_calls}; expected at least 10")
    scenario = scenario_from_config(cfg)
    dataset = resolve_dataset(cfg.dataset, datasets_dir(cfg))
    pool = sample_pool(dataset, scenario.sim.split)
    models = live_models(dataset, cfg.dataset, pool, None)
    if models.device_onnx is None:
        raise RouterLabError(f"dataset={dataset.name}: no real models to profile (only digits has them); "
                             "expected dataset=digits")
    inputs = models.pixels[pool]
    out = run_dir()
    result: dict[str, Any] = {"dataset": dataset.name, "calls": tb.profile_calls, "threads": 1,
                              "models": models.source}
    for role, model in (("device", models.device_onnx), ("cloud", models.cloud_onnx)):
        ms = time_calls_ms(model, inputs, tb.profile_calls)
        with atomic_path(out / f"{role}_profile.csv") as tmp:
            pd.DataFrame({"service_ms": ms}).to_csv(tmp, index=False)
        result[role] = summary(ms)
    atomic_write_json(out / "profile.json", result)
    for role in ("device", "cloud"):
        s = result[role]
        print(f"profile: {role} model  p50 {s['p50_ms'] * 1000:.1f} µs  p99 {s['p99_ms'] * 1000:.1f} µs  "
              f"mean {s['mean_ms'] * 1000:.1f} µs  ({s['n']:,} warm single-threaded calls)")
    print(f"  wrote {out / 'device_profile.csv'}, {out / 'cloud_profile.csv'} and {out / 'profile.json'}")
    print(f"  use: router-lab simulate device.service=profile device.profile_path={out / 'device_profile.csv'}")
    return result
