"""The simulator against queueing theory: M/M/1, M/M/c (Erlang C), M/D/1 (Pollaczek-Khinchine).

Every request stays on the device (always_local), so the device is the queue under test.  Each
check pools several replications (seeds spawned from a fixed seed) of long runs after a warm-up;
tolerances are several standard errors wide, so a correct model cannot fail them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from omegaconf import OmegaConf
from test_sim_properties import accounting_checked_on_every_run  # noqa: F401 - autouse fixture

from router_lab.policies.base import PolicyContext
from router_lab.policies.registry import make_policy
from router_lab.sim.engines import run
from router_lab.sim.scenario import make_scenario

MEAN_SERVICE_MS = 100.0
MU = 1000.0 / MEAN_SERVICE_MS  # service rate per unit, per second


def device_waits_s(dataset, rho: float, units: int = 1, service: str = "exponential",
                   n: int = 100_000, replications: int = 6, engine: str = "fast",
                   root_seed: int = 20240) -> np.ndarray:
    """Queue waits (s) at the device, pooled over replications, warm-up excluded."""
    lam = rho * units * MU
    sc = make_scenario(workload={"rate_per_s": lam},
                       device={"units": units, "service": service, "service_mean_ms": MEAN_SERVICE_MS,
                               "router_overhead_ms": 0.0},
                       sim={"n_requests": n, "engine": engine})
    warmup_ns = int(2_000 / lam * 1e9)  # the first ~2,000 requests
    waits = []
    for seed in np.random.SeedSequence(root_seed).spawn(replications):
        policy = make_policy(OmegaConf.create({"name": "always_local"}),
                             PolicyContext(dataset, np.random.default_rng(0)))
        rec = run(sc, policy, dataset, seed)
        assert not any(rec.violations.values())
        keep = rec.arrival_ns >= warmup_ns
        waits.append((rec.device_start_ns[keep] - rec.device_enter_ns[keep]) / 1e9)
    return np.concatenate(waits)


def erlang_c(units: int, offered: float) -> float:
    """Probability of waiting in M/M/c with offered load ``offered`` = lambda/mu."""
    rho = offered / units
    top = offered ** units / math.factorial(units) / (1 - rho)
    return top / (sum(offered ** k / math.factorial(k) for k in range(units)) + top)


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_mm1_mean_wait_matches_theory(digits, rho):
    waits = device_waits_s(digits, rho)
    theory = rho / (MU * (1 - rho))
    assert waits.mean() == pytest.approx(theory, rel=0.06)


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_mm1_wait_percentiles_match_theory(digits, rho):
    """P(Wq > t) = rho exp(-mu (1 - rho) t), so the p-quantile is ln(rho / (1 - p)) / (mu (1 - rho))."""
    waits = device_waits_s(digits, rho)
    for p in (0.6, 0.9, 0.95, 0.99):
        if p <= 1 - rho:
            continue
        theory = math.log(rho / (1 - p)) / (MU * (1 - rho))
        assert np.quantile(waits, p) == pytest.approx(theory, rel=0.10 if p == 0.99 else 0.08), p
    assert (waits == 0).mean() == pytest.approx(1 - rho, abs=0.015)  # P(no wait) = 1 - rho


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_mmc_mean_wait_matches_erlang_c(digits, rho):
    units = 3
    waits = device_waits_s(digits, rho, units=units, n=60_000, replications=5)
    offered = rho * units
    theory = erlang_c(units, offered) / (units * MU - offered * MU)
    assert waits.mean() == pytest.approx(theory, rel=0.08)


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_md1_mean_wait_matches_pollaczek_khinchine(digits, rho):
    waits = device_waits_s(digits, rho, service="deterministic")
    service_s = MEAN_SERVICE_MS / 1000
    theory = rho * service_s / (2 * (1 - rho))
    assert waits.mean() == pytest.approx(theory, rel=0.06)


def test_simpy_engine_mm1_mean_wait_matches_theory(digits):
    """The event-driven engine itself (not only the fast path) against M/M/1 at rho = 0.5."""
    waits = device_waits_s(digits, 0.5, n=40_000, replications=4, engine="simpy")
    assert waits.mean() == pytest.approx(0.5 / (MU * 0.5), rel=0.08)


def test_each_remote_tier_is_its_own_mmc_queue(digits):
    """Several remote tiers: requests split at random (by row) between the edge and the cloud reach
    each station as a Poisson stream (thinning, then iid network delays: the displacement theorem),
    so each tier's queue wait must match its own M/M/c (Erlang C) at the rate it received — one
    shared queue, or a tier served by another's units, would not."""
    from test_sim_tiers import policy as tier_policy

    stations = {"edge": (1, 50.0), "cloud": (2, 100.0)}  # units, mean service (ms), exponential
    net = {"rtt_ms": 5.0, "rtt_cv": 0.5, "loss": 0.0, "uplink_mbps": 1000.0, "downlink_mbps": 1000.0}

    def station(units: int, mean_ms: float) -> dict:
        return {"llm": False, "service": "exponential", "service_mean_ms": mean_ms, "units": units,
                "queue_limit": None, "rate_limit_rpm": None, "timeout_s": None, "cost_per_request_usd": 1e-5,
                "cost_per_1k_input_tokens_usd": 0.0, "cost_per_1k_output_tokens_usd": 0.0}

    rate = 25.0
    sc = make_scenario(workload={"rate_per_s": rate}, device={"service_mean_ms": 10.0},
                       network=net, cloud=station(*stations["cloud"]), sim={"n_requests": 60_000},
                       tiers={"edge": {"model": "edge", "network": net, "cloud": station(*stations["edge"])}})
    waits: dict[int, list[np.ndarray]] = {1: [], 2: []}
    spans = []
    for seed in np.random.SeedSequence(777).spawn(4):
        rec = run(sc, tier_policy(digits, tier_of_row=lambda rows: 1 + rows % 2), digits, seed)
        assert rec.engine == "fast" and not any(rec.violations.values())
        keep = rec.arrival_ns >= int(2_000 / rate * 1e9)
        spans.append((rec.arrival_ns[keep].max() - rec.arrival_ns[keep].min()) / 1e9)
        for k in waits:
            mine = keep & (rec.tier == k)
            waits[k].append((rec.cloud_start_ns[mine] - rec.cloud_enter_ns[mine]) / 1e9)
    for k, name in ((1, "edge"), (2, "cloud")):
        units, mean_ms = stations[name]
        w = np.concatenate(waits[k])
        mu = 1000.0 / mean_ms
        offered = len(w) / sum(spans) / mu  # lambda_k / mu at this tier
        assert 0.45 < offered / units < 0.8, (name, offered)  # a loaded queue, not a trivial one
        theory = erlang_c(units, offered) / (units * mu - offered * mu)
        assert w.mean() == pytest.approx(theory, rel=0.08), name
