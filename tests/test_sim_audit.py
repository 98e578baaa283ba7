"""The accounting checks (sim.audit) pass on real runs and each one fails on records corrupted for it.

The Little's-law residual they replace was an identity that random end times also passed; here
every check is shown to catch the corruption it is meant for, random end times included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
from test_sim_properties import mixed

from router_lab.policies.base import Route
from router_lab.sim.audit import CHECKS, audit
from router_lab.sim.draws import NEVER, RowSizes, draw, timeout_ns
from router_lab.sim.engine_fast import run_fast
from router_lab.sim.engine_simpy import run_simpy
from router_lab.sim.metrics import summarize
from router_lab.sim.records import Outcome, Records
from router_lab.sim.scenario import make_scenario

SEED = 5


@pytest.fixture(scope="module")
def world(synthetic_small):
    """A run that visits every stage: outages, losses, timeouts, rate limit, full queues, battery."""
    sc = make_scenario(
        workload={"rate_per_s": 6.0},
        device={"units": 2, "queue_limit": 3, "service_mean_ms": 150.0, "battery_j": 700.0,
                "idle_w": 0.0, "energy_per_inference_j": 0.5},
        network={"rtt_ms": 80.0, "loss": 0.2, "max_retries": 2, "mean_up_s": 20.0, "mean_down_s": 5.0},
        cloud={"units": 2, "queue_limit": 2, "rate_limit_rpm": 150, "timeout_s": 3.0, "llm": False,
               "service_mean_ms": 300.0},
        sim={"n_requests": 3000, "allow_unstable": True})
    rec = run_simpy(sc, mixed(synthetic_small, (0.4, 0.3), SEED), synthetic_small, SEED)
    return rec, draw(sc, synthetic_small, SEED), sc, RowSizes.of(synthetic_small)


def first(mask: np.ndarray) -> int:
    hits = np.flatnonzero(mask)
    assert hits.size, "the base run lacks a request of this kind"
    return int(hits[0])


def edit(rec: Records, name: str, k: int | np.ndarray, value) -> Records:  # noqa: ANN001
    column = getattr(rec, name).copy()
    column[k] = value
    return replace(rec, **{name: column})


def served_in_order(rec: Records, station: str) -> np.ndarray:
    start, enter = getattr(rec, f"{station}_start_ns"), getattr(rec, f"{station}_enter_ns")
    ran = np.flatnonzero(start >= 0)
    return ran[np.lexsort((ran, enter[ran]))]


def swap_two(rec: Records, station: str) -> Records:
    """Two requests served out of their order of entry (each keeps its own service time)."""
    order = served_in_order(rec, station)
    start, done = getattr(rec, f"{station}_start_ns"), getattr(rec, f"{station}_done_ns")
    a, b = next((int(a), int(b)) for a, b in zip(order[:-1], order[1:], strict=True) if start[a] < start[b])
    new_start, new_done = start.copy(), done.copy()
    new_start[a], new_start[b] = start[b], start[a]
    new_done[a], new_done[b] = start[b] + (done[a] - start[a]), start[a] + (done[b] - start[b])
    return replace(rec, **{f"{station}_start_ns": new_start, f"{station}_done_ns": new_done})


def crowd(rec: Records, station: str, units: int) -> Records:
    """units + 1 requests in service at once (FIFO, start >= entry and done = start + service kept)."""
    order = served_in_order(rec, station)[:units + 1]
    start, done = getattr(rec, f"{station}_start_ns").copy(), getattr(rec, f"{station}_done_ns").copy()
    enter = getattr(rec, f"{station}_enter_ns")
    together = int(enter[order].max())
    done[order] += together - start[order]
    start[order] = together
    later = served_in_order(rec, station)[units + 1:]
    shift = np.maximum(0, together - start[later])  # keep the later ones in FIFO order
    start[later] += shift
    done[later] += shift
    return replace(rec, **{f"{station}_start_ns": start, f"{station}_done_ns": done})


def through_an_outage(rec: Records, draws, sc) -> tuple[Records, object]:  # noqa: ANN001
    """A cloud answer whose download now crosses an outage window (the timeline is edited)."""
    k = first(rec.outcome == Outcome.CLOUD)
    outages = draws.outages
    start, end = int(rec.cloud_done_ns[k]), int(rec.end_ns[k])
    where = np.searchsorted(outages.starts, start)
    outages.starts = np.insert(outages.starts, where, (start + end) // 2)
    outages.ends = np.insert(outages.ends, where, (start + end) // 2 + 1)
    return rec, draws


def sent_at(rec: Records, sc) -> np.ndarray:  # noqa: ANN001
    t = rec.arrival_ns + int(round(sc.device.router_overhead_ms * 1e6))
    return np.where(rec.route == Route.CASCADE, rec.device_done_ns, t)


CORRUPTIONS: dict[str, Callable] = {
    "outcome_code": lambda r, d, sc: edit(r, "outcome", 0, 9),
    "end_after_arrival": lambda r, d, sc: edit(r, "end_ns", 0, r.arrival_ns[0] - 1),
    "device_enter": lambda r, d, sc: edit(r, "device_enter_ns", first(r.outcome == Outcome.LOCAL),
                                          r.arrival_ns[first(r.outcome == Outcome.LOCAL)] - 1),
    "device_start": lambda r, d, sc: edit(r, "device_start_ns", first(r.device_start_ns > r.device_enter_ns),
                                          r.device_enter_ns[first(r.device_start_ns > r.device_enter_ns)] - 1),
    "device_done": lambda r, d, sc: edit(r, "device_done_ns", first(r.device_done_ns >= 0),
                                         r.device_done_ns[first(r.device_done_ns >= 0)] + 1),
    "device_fifo": lambda r, d, sc: swap_two(r, "device"),
    "device_units": lambda r, d, sc: crowd(r, "device", sc.device.units),
    "cloud_enter": lambda r, d, sc: edit(r, "cloud_enter_ns", first(r.cloud_enter_ns >= 0),
                                         r.cloud_enter_ns[first(r.cloud_enter_ns >= 0)] + 1),
    "cloud_start": lambda r, d, sc: edit(r, "cloud_start_ns", first(r.cloud_start_ns >= 0),
                                         r.cloud_enter_ns[first(r.cloud_start_ns >= 0)] - 1),
    "cloud_done": lambda r, d, sc: edit(r, "cloud_done_ns", first(r.cloud_done_ns >= 0),
                                        r.cloud_done_ns[first(r.cloud_done_ns >= 0)] - 1),
    "cloud_fifo": lambda r, d, sc: swap_two(r, "cloud"),
    "cloud_units": lambda r, d, sc: crowd(r, "cloud", sc.cloud.units),
    "end_after_stages": lambda r, d, sc: edit(r, "end_ns", first(r.outcome == Outcome.LOCAL),
                                              r.device_done_ns[first(r.outcome == Outcome.LOCAL)] - 1),
    "outcome_stages": lambda r, d, sc: edit(r, "outcome", first(r.outcome == Outcome.LOCAL), Outcome.CLOUD),
    "timeout": lambda r, d, sc: edit(r, "end_ns", first(r.outcome == Outcome.CLOUD),
                                     sent_at(r, sc)[first(r.outcome == Outcome.CLOUD)] + timeout_ns(sc) + 1),
    "outage": through_an_outage,
    "attempts": lambda r, d, sc: edit(r, "attempts", first(r.sent), 0),
    "bytes": lambda r, d, sc: edit(r, "offdevice_bytes", first(r.sent), r.offdevice_bytes[first(r.sent)] + 1),
    "sensitive": lambda r, d, sc: edit(r, "route", first(r.sensitive), Route.CLOUD),
    "quality_cost_energy": lambda r, d, sc: edit(r, "quality", first(r.outcome == Outcome.REJECTED), 1.0),
}


def test_every_check_has_a_corruption():
    assert set(CORRUPTIONS) == set(CHECKS)


def test_a_real_run_passes_every_check_and_visits_every_stage(world):
    rec, draws, sc, sizes = world
    assert audit(rec, draws, sc, sizes) == dict.fromkeys(CHECKS, 0)
    assert rec.violations == dict.fromkeys(CHECKS, 0)
    for outcome in Outcome:
        assert (rec.outcome == outcome).any(), outcome
    assert (rec.attempts > 1).any() and rec.sensitive.any() and len(draws.outage_start_ns) > 3
    assert summarize(rec, sc)["accounting_violations"] == 0


@pytest.mark.parametrize("check", CHECKS)
def test_each_check_fails_on_records_corrupted_for_it(world, synthetic_small, check):
    rec, _, sc, sizes = world
    draws = draw(sc, synthetic_small, SEED)  # a fresh copy: one corruption edits the outage timeline
    result = CORRUPTIONS[check](rec, draws, sc)
    bad, draws = result if isinstance(result, tuple) else (result, draws)
    assert audit(bad, draws, sc, sizes)[check] > 0


def test_random_end_times_fail_although_littles_law_holds(world):
    """Little's law (L = lambda W with L from the same end times) held for these; the audit does not."""
    rec, draws, sc, sizes = world
    rng = np.random.default_rng(0)
    bad = replace(rec, end_ns=rec.arrival_ns + rng.integers(1, 10**10, len(rec)))
    found = audit(bad, draws, sc, sizes)
    assert found["outcome_stages"] > len(rec) // 2 and found["end_after_stages"] > 0


def test_answers_never_cross_an_outage_and_outages_cut_transfers_in_flight(synthetic_small):
    """On the flaky network some answers and uploads are cut by an outage that begins in flight."""
    sc = make_scenario(workload={"rate_per_s": 2.0},
                       network={"rtt_ms": 150.0, "rtt_cv": 1.0, "uplink_mbps": 2.0, "downlink_mbps": 5.0,
                                "loss": 0.05, "max_retries": 2, "retry_timeout_ms": 500.0,
                                "mean_up_s": 120.0, "mean_down_s": 20.0},
                       cloud={"rate_limit_rpm": None}, sim={"n_requests": 20_000})
    rec = run_fast(sc, mixed(synthetic_small, (1.0, 0.0), 1), synthetic_small, 1)
    d = draw(sc, synthetic_small, 1)
    sent = rec.arrival_ns + int(round(sc.device.router_overhead_ms * 1e6))
    answered = rec.outcome == Outcome.CLOUD
    assert (d.first_down(sent[answered], rec.cloud_enter_ns[answered]) == NEVER).all()  # the upload
    assert (d.first_down(rec.cloud_done_ns[answered], rec.end_ns[answered]) == NEVER).all()  # the answer
    fallback = rec.outcome == Outcome.FALLBACK
    at_outage_start = np.isin(rec.device_enter_ns, d.outage_start_ns)  # fell back as an outage began
    cut_upload = fallback & rec.sent & (rec.cloud_enter_ns < 0) & ~d.uplink_failed
    assert cut_upload.sum() > 0 and at_outage_start[cut_upload].all()
    assert (rec.attempts[cut_upload] <= d.uplink_attempts[cut_upload]).all()
    in_transit_ms = (rec.device_enter_ns[cut_upload] - sent[cut_upload]) / 1e6
    np.testing.assert_allclose(rec.network_ms[cut_upload], in_transit_ms, rtol=1e-6)
    assert (rec.network_ms[cut_upload] * 1e6 < d.uplink_ns[cut_upload]).all()  # cut short
    cut_answer = fallback & (rec.cloud_done_ns >= 0) & at_outage_start
    assert cut_answer.sum() > 0 and (rec.cost_usd[cut_answer] > 0).all()  # billed, never delivered


def test_metrics_count_violations_and_log_the_failing_checks(world, caplog):
    rec, _, sc, _ = world
    broken = replace(rec, violations={**rec.violations, "cloud_fifo": 2, "bytes": 1})
    with caplog.at_level("WARNING", logger="router_lab.sim.metrics"):
        assert summarize([rec, broken], sc)["accounting_violations"] == 3
    assert "cloud_fifo" in caplog.text and "bytes" in caplog.text and "device_fifo" not in caplog.text
