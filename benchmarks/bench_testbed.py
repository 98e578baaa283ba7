"""The live testbed on this machine: the request rate it sustains, its overhead, its timers.

    .venv/bin/python benchmarks/bench_testbed.py          # tables
    .venv/bin/python benchmarks/bench_testbed.py --json   # figures as one JSON object

1. Timer jitter: 400 concurrent deadline waits (spread over 2 s) on asyncio's default epoll loop
   (the baseline) and on the testbed's select() loop with wake-up calibration; lateness in real µs,
   and what it becomes in configured ms at each time_scale (÷ scale).
2. Sustained rate: always_cloud runs at rising real rates (time_scale 1, a fast cloud: 16 units,
   1 ms deterministic service, Wi-Fi 2 ms RTT, sensitive requests on a 1 ms device); per rate: throughput, generator p99 lateness, and
   the testbed's overhead per request (live latency − simulated latency, same draws); it keeps up
   when throughput is >= 95 % of the rate, every non-sensitive request is answered and the
   generator's p99 lateness is <= 30 ms.  Baseline:
   the same number of bare aiohttp round trips to an empty handler, issued open loop.
"""

from __future__ import annotations

import asyncio
import selectors
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import emit  # noqa: E402

from router_lab.testbed import clock  # noqa: E402

RATES = (50, 100, 200, 400, 800)
SECONDS_PER_RATE = 3.0
SCALES = (0.05, 0.1, 0.25, 0.5, 1.0)
N_TIMERS = 400
KEEP_UP_P99_LATENESS_US = 30_000  # "keeps up": throughput >= 95 % of the rate, all answered, this p99


async def _timer_lateness(calibrated: bool) -> np.ndarray:
    if calibrated:
        await clock.calibrate()
    rng = np.random.default_rng(0)
    t0 = time.monotonic_ns() + 50_000_000
    deadlines = t0 + np.sort(rng.uniform(0, 2e9, N_TIMERS)).astype(np.int64)
    late = np.empty(N_TIMERS)

    async def wait(k: int) -> None:
        if calibrated:
            await clock.sleep_until(int(deadlines[k]))
        else:
            await asyncio.sleep(max(0.0, (int(deadlines[k]) - time.monotonic_ns()) / 1e9))
        late[k] = time.monotonic_ns() - deadlines[k]

    await asyncio.gather(*(wait(k) for k in range(N_TIMERS)))
    return late / 1e3  # µs


def timers() -> tuple[list[dict], dict]:
    rows, figures = [], {}
    for name, selector, calibrated in (("asyncio default (epoll)", selectors.EpollSelector, False),
                                       ("testbed (select + calibration)", selectors.SelectSelector, True)):
        loop = asyncio.SelectorEventLoop(selector())
        try:
            late = loop.run_until_complete(_timer_lateness(calibrated))
        finally:
            loop.close()
        mean, p50, p99 = float(np.mean(late)), *np.percentile(late, [50, 99])
        row = {"timers": name, "mean_us": mean, "p50_us": float(p50), "p99_us": float(p99)}
        for s in SCALES:
            row[f"mean_cfg_ms@{s:g}"] = mean / 1e3 / s
        rows.append(row)
        figures[f"timer_{'testbed' if calibrated else 'epoll'}_mean_us"] = mean
        figures[f"timer_{'testbed' if calibrated else 'epoll'}_p99_us"] = float(p99)
    return rows, figures


def _compose(rate: float, n: int):  # noqa: ANN202 - a DictConfig
    from hydra import compose, initialize_config_dir

    from router_lab.config import CONF_DIR, register_configs

    register_configs()
    overrides = ["policy=always_cloud", f"workload.rate_per_s={rate}", f"sim.n_requests={n}",
                 "cloud.units=16", "cloud.service=deterministic", "cloud.service_mean_ms=1.0",
                 "cloud.queue_limit=null", "network.rtt_ms=2.0", "network.loss=0.0",
                 "device.service=deterministic", "device.service_mean_ms=1.0", "device.units=4",
                 "testbed.time_scale=1.0", "testbed.max_rate_per_s=1e9", "testbed.max_lateness_ms=1e9",
                 "sim.progress=false"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=overrides)


def sustained() -> tuple[list[dict], dict]:
    from router_lab.sim.commands import simulate_config
    from router_lab.testbed.commands import testbed_config

    rows, best = [], 0.0
    overhead_at_best = p99_at_best = float("nan")
    for rate in RATES:
        n = int(rate * SECONDS_PER_RATE)
        cfg = _compose(rate, n)
        sim_runs, _ = simulate_config(cfg)
        live_runs, live_m, info = testbed_config(cfg)
        live, sim = live_runs[0], sim_runs[0]
        ok = np.isin(live.outcome, (1,)) & np.isin(sim.outcome, (1,))
        answered = ok.sum() / max(1, int((~live.sensitive).sum()))  # sensitive rows stay on the device
        overhead_ms = float(np.mean((live.latency_ns[ok] - sim.latency_ns[ok]) / 1e6)) if ok.any() else float("nan")
        span_s = (int(live.end_ns.max()) - int(live.arrival_ns.min())) / 1e9
        gen = info["generator"]
        keeps_up = (n / span_s >= 0.95 * rate and answered >= 0.99
                    and gen["lateness_p99_us_real"] <= KEEP_UP_P99_LATENESS_US)
        rows.append({"rate_per_s": rate, "requests": n, "throughput_per_s": n / span_s,
                     "answered_by_cloud": float(answered), "overhead_ms_per_req": overhead_ms,
                     "gen_p50_lateness_us": gen["lateness_p50_us_real"],
                     "gen_p99_lateness_us": gen["lateness_p99_us_real"], "keeps_up": keeps_up})
        if keeps_up:
            best, overhead_at_best, p99_at_best = rate, overhead_ms, gen["lateness_p99_us_real"]
    return rows, {"sustained_rate_per_s": best, "overhead_ms_per_request": overhead_at_best,
                  "generator_p99_lateness_us": p99_at_best}


async def _bare_http(rate: float, n: int) -> tuple[float, float]:
    """Open-loop bare aiohttp round trips to an empty handler: (mean round trip ms, p99 lateness µs)."""
    import aiohttp
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({})

    app = web.Application()
    app.add_routes([web.post("/x", handler)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001
    rtt, late = np.empty(n), np.empty(n)
    async with aiohttp.ClientSession() as http:
        async def one(k: int, target: int) -> None:
            await clock.sleep_until(target)
            t = time.monotonic_ns()
            late[k] = t - target
            async with http.post(f"http://127.0.0.1:{port}/x", data=b"{}") as resp:
                await resp.read()
            rtt[k] = time.monotonic_ns() - t

        t0 = time.monotonic_ns() + 100_000_000
        await asyncio.gather(*(one(k, t0 + int(k * 1e9 / rate)) for k in range(n)))
    await runner.cleanup()
    return float(rtt.mean() / 1e6), float(np.percentile(late, 99) / 1e3)


def main(argv: list[str]) -> None:
    timer_rows, figures = timers()
    rate_rows, rate_figures = sustained()
    figures.update(rate_figures)
    rate = int(rate_figures["sustained_rate_per_s"] or RATES[0])
    bare_ms, bare_late = clock.run_precise(_bare_http(rate, int(rate * SECONDS_PER_RATE)))
    figures.update({"bare_http_round_trip_ms": bare_ms, "bare_http_generator_p99_lateness_us": bare_late})
    if "--json" in argv:
        emit([], figures, argv)
        return
    emit(timer_rows, figures, argv)
    print()
    emit(rate_rows, figures, argv)
    print(f"\nsustained: {rate_figures['sustained_rate_per_s']:g} req/s (real) with generator p99 lateness "
          f"<= {KEEP_UP_P99_LATENESS_US / 1000:g} ms; testbed overhead {rate_figures['overhead_ms_per_request']:.2f} ms per request over the "
          f"model; baseline bare aiohttp round trip at that rate {bare_ms:.2f} ms "
          f"(generator p99 lateness {bare_late:.0f} µs)")


if __name__ == "__main__":
    main(sys.argv[1:])
