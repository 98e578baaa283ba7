"""Simulator speed and memory: 1,000,000 requests through device + network + cloud.

    .venv/bin/python benchmarks/bench_simulator.py [--n 1000000] [--json]

Scenario: Poisson arrivals at 4 req/s, phone_npu device, wifi network, llm_api cloud (rate limit,
timeout), the `random` policy (p_cloud 0.5) on the digits dataset.  Times the simpy engine, the fast
path and a plain one-process-per-request simpy model of the same system (``sim.reference``), checks
that all three give identical records, and measures peak traced memory per recorded request.

Three tiers (``--n-tiered`` requests, default 300,000): the same system plus an edge box on the LAN
serving digits' `edge` model (1 unit, 15 ms, 2 s timeout), routed by `cost_aware` pre-routing
(mode input, λ 0.05; its quality heads fitted before the clock starts).  The three engines again,
with identical records checked.

Stateful policies (`load_aware` around `learned`, `budget`) run on the simpy engine only: every
decision goes through the runtime's ``decide`` with the signals of that instant, after ``observe``
has been fed what was learned before it.  Their throughput is timed on ``--n-stateful`` requests
(default 200,000) of the same scenario; target >= 60,000 requests/s.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import tracemalloc
from dataclasses import fields
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import emit  # noqa: E402

from router_lab.data.builders import build_dataset  # noqa: E402
from router_lab.data.config import DigitsConfig  # noqa: E402
from router_lab.policies.base import PolicyContext  # noqa: E402
from router_lab.policies.registry import make_policy  # noqa: E402
from router_lab.sim.engine_fast import run_fast  # noqa: E402
from router_lab.sim.engine_simpy import run_simpy  # noqa: E402
from router_lab.sim.reference import run_reference  # noqa: E402
from router_lab.sim.scenario import make_scenario  # noqa: E402

TARGETS = {"simpy": 100_000, "fast": 2_000_000}
STATEFUL_TARGET = 60_000


def scenario(n: int):  # noqa: ANN201
    return make_scenario(
        workload={"rate_per_s": 4.0},
        device={"service_mean_ms": 150.0, "service_cv": 0.5},  # phone_npu
        network={"rtt_ms": 20.0, "loss": 0.001},  # wifi
        cloud={"units": 64, "ttft_ms": 400.0, "tpot_ms": 20.0, "rate_limit_rpm": 500, "timeout_s": 30.0},
        sim={"n_requests": n},
    )


def policy(dataset):  # noqa: ANN001, ANN201 - the same decisions for every engine
    return make_policy(OmegaConf.create({"name": "random", "p_cloud": 0.5}),
                       PolicyContext(dataset, np.random.default_rng(1)))


def timed(engine, sc, dataset) -> tuple[float, object]:  # noqa: ANN001
    gc.collect()
    start = time.perf_counter()
    records = engine(sc, policy(dataset), dataset, 7)
    return time.perf_counter() - start, records


def peak_bytes(engine, sc, dataset) -> int:  # noqa: ANN001
    gc.collect()
    tracemalloc.start()
    records = engine(sc, policy(dataset), dataset, 7)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del records
    return peak


def identical(a, b) -> bool:  # noqa: ANN001
    return all(np.array_equal(getattr(a, f.name), getattr(b, f.name)) for f in fields(a)
               if isinstance(getattr(a, f.name), np.ndarray))


def stateful_rows(dataset, n: int) -> list[dict]:  # noqa: ANN001
    """simpy-engine throughput of the stateful policies (the runtime decides every request)."""
    from router_lab.train.fit import train_router

    router = train_router(dataset, None, None, "input", 0)
    sc = scenario(n)
    rows = []
    for name in ("load_aware", "budget"):
        context = PolicyContext(dataset, np.random.default_rng(1), router=router, slo_ms=500.0,
                                device_units=1, device_service_ms=150.0)
        policy = make_policy(OmegaConf.create({"name": name}), context)
        policy.score_table  # noqa: B018 - the batch scoring up front is not what is timed
        gc.collect()
        start = time.perf_counter()
        records = run_simpy(sc, policy, dataset, 7)
        seconds = time.perf_counter() - start
        rows.append({"engine": f"simpy ({name})", "requests": n, "seconds": seconds, "requests_per_s": n / seconds,
                     "target_per_s": STATEFUL_TARGET, "cloud_fraction": float(records.sent.mean())})
    return rows


EDGE = {"model": "edge",
        "network": {"rtt_ms": 3.0, "rtt_cv": 0.5, "uplink_mbps": 200.0, "downlink_mbps": 200.0, "loss": 0.0005,
                    "retry_timeout_ms": 50.0},
        "cloud": {"llm": False, "units": 1, "queue_limit": None, "service": "lognormal", "service_mean_ms": 15.0,
                  "service_cv": 0.4, "timeout_s": 2.0, "cost_per_request_usd": 1e-5,
                  "cost_per_1k_input_tokens_usd": 0.0, "cost_per_1k_output_tokens_usd": 0.0}}


def tiered_rows(dataset, n: int) -> list[dict]:  # noqa: ANN001
    """The three engines on device -> edge -> cloud (cost_aware pre-routing, fitted beforehand)."""
    base = scenario(n)
    sc = make_scenario(workload={"rate_per_s": 4.0}, device={"service_mean_ms": 150.0, "service_cv": 0.5},
                       network={"rtt_ms": 20.0, "loss": 0.001},
                       cloud={"units": 64, "ttft_ms": 400.0, "tpot_ms": 20.0, "rate_limit_rpm": 500, "timeout_s": 30.0},
                       sim={"n_requests": n}, tiers={"edge": EDGE})
    assert sc.cloud == base.cloud and sc.network == base.network  # the two-tier system plus the edge
    tier_policy = make_policy(OmegaConf.create({"name": "cost_aware", "mode": "input"}),
                              PolicyContext(dataset, np.random.default_rng(1)))
    tier_policy.quality_table  # noqa: B018 - the heads' batch scoring up front is not what is timed
    rows, results = [], {}
    for name, engine in (("fast", run_fast), ("simpy", run_simpy), ("reference", run_reference)):
        gc.collect()
        start = time.perf_counter()
        results[name] = engine(sc, tier_policy, dataset, 7)
        seconds = time.perf_counter() - start
        rows.append({"engine": f"{name} (3 tiers)", "requests": n, "seconds": seconds, "requests_per_s": n / seconds,
                     "target_per_s": "", "cloud_fraction": float(results[name].sent.mean())})
    for row, name in zip(rows, results, strict=True):
        row["same_records_as_simpy"] = identical(results[name], results["simpy"])
    shares = np.bincount(results["simpy"].answered_by.astype(np.int64) + 1, minlength=4)[1:] / n
    rows[0]["answered_by_device_edge_cloud"] = " / ".join(f"{x:.3f}" for x in shares)
    return rows


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--n-stateful", type=int, default=200_000)
    parser.add_argument("--n-tiered", type=int, default=300_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        dataset = build_dataset(DigitsConfig(), tmp)
    sc = scenario(args.n)
    rows, figures, results = [], {}, {}
    for name, engine in (("fast", run_fast), ("simpy", run_simpy), ("reference", run_reference)):
        seconds, records = timed(engine, sc, dataset)
        results[name] = records
        figures[f"{name if name != 'fast' else 'fastpath'}_requests_per_s"] = args.n / seconds
        rows.append({"engine": name, "requests": args.n, "seconds": seconds,
                     "requests_per_s": args.n / seconds, "target_per_s": TARGETS.get(name, "")})
    peaks = {name: peak_bytes(engine, sc, dataset) / args.n for name, engine in (("fast", run_fast),
                                                                                   ("simpy", run_simpy))}
    for row in rows:
        row["peak_bytes_per_request"] = peaks.get(row["engine"], "")
        row["same_records_as_simpy"] = identical(results[row["engine"]], results["simpy"])
    figures["peak_bytes_per_request"] = max(peaks.values())
    figures["simpy_vs_reference"] = figures["simpy_requests_per_s"] / figures["reference_requests_per_s"]
    figures["records_identical"] = all(row["same_records_as_simpy"] for row in rows)
    figures["n_requests"] = args.n
    rec = results["simpy"]
    figures["cloud_fraction"] = float(rec.sent.mean())
    for row in tiered_rows(dataset, args.n_tiered):
        rows.append(row)
        figures[f"tiered_{row['engine'].split(' ')[0]}_requests_per_s"] = row["requests_per_s"]
        figures["records_identical"] = figures["records_identical"] and row["same_records_as_simpy"]
    for row in stateful_rows(dataset, args.n_stateful):
        rows.append(row)
        figures[f"{row['engine'].split('(')[1].rstrip(')')}_requests_per_s"] = row["requests_per_s"]
    emit(rows, figures, ["--json"] if args.json else [])
    if not args.json:
        print(f"\nsimpy engine / reference: {figures['simpy_vs_reference']:.1f}x (target >= 2x); "
              f"peak memory target <= 150 bytes per request; sent to cloud {figures['cloud_fraction']:.1%}")


if __name__ == "__main__":
    main(sys.argv[1:])
