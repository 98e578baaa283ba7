"""Laws every simulated run obeys, for any scenario hypothesis draws (derandomised: never flaky).

Conservation, non-negative stage times, FIFO per station, sensitive requests never leaving the
device, every accounting check (sim.audit), the fast path equal to the simpy engine to the
nanosecond, and the simpy engine equal to a plain one-process-per-request simpy model.  The tie
scenarios make simultaneous events common (trace replays with repeated timestamps, whole-number
times, deterministic and equal service and network times, outages cutting many transfers at once),
so the engines' tie rule (request number) is exercised, not only continuous draws.
"""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from router_lab.policies.base import Policy, PolicyContext, Route
from router_lab.policies.registry import make_policy
from router_lab.runtime.policy import NAN, Decision, RoutingPolicy
from router_lab.sim.audit import CHECKS
from router_lab.sim.engine_fast import run_fast
from router_lab.sim.engine_simpy import run_simpy
from router_lab.sim.records import Outcome, Records
from router_lab.sim.reference import run_reference
from router_lab.sim.scenario import make_scenario

PROPERTY_SETTINGS = settings(max_examples=100, deadline=None, derandomize=True,
                             suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                    HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def accounting_checked_on_every_run(monkeypatch):
    """Every run of a test module that uses this fixture must pass every accounting check."""
    from router_lab.sim import core, records

    def finish_and_check(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        rec = records.finish(*args, **kwargs)
        assert set(rec.violations) == set(CHECKS)
        assert not any(rec.violations.values()), {k: v for k, v in rec.violations.items() if v}
        return rec

    monkeypatch.setattr(core, "finish", finish_and_check)  # every engine's records come from core


class MixedCore(RoutingPolicy):
    """Stateless: a seeded mix of local, cloud and cascade; cascades escalate on low confidence."""

    kind = "mixed"
    cascade = True
    escalation_threshold = 0.3  # score = 1 - confidence: escalate at confidence <= 0.7

    def __init__(self, rng: np.random.Generator, p_cloud: float, p_cascade: float) -> None:
        super().__init__()
        self.rng, self.p_cloud, self.p_cascade = rng, p_cloud, p_cascade

    def _decide_batch(self, scores, n: int) -> np.ndarray:  # noqa: ANN001
        u = self.rng.random(n)
        return np.where(u < self.p_cloud, Route.CLOUD,
                        np.where(u < self.p_cloud + self.p_cascade, Route.CASCADE, Route.LOCAL))


class MixedPolicy(Policy):
    def __init__(self, context: PolicyContext, p_cloud: float, p_cascade: float) -> None:
        super().__init__(context)
        self.mix = (p_cloud, p_cascade)

    def make_core(self) -> RoutingPolicy:
        return MixedCore(self.context.rng, *self.mix)

    def _all_scores(self) -> np.ndarray:
        return 1.0 - self.context.dataset.column_or("device_confidence", 0.5)


class QueueAwareCore(RoutingPolicy):
    """Stateful: cloud when the device queue is long and the network is up; ignores sensitivity
    (the runtime's base class pins sensitive requests whatever a policy says)."""

    kind = "queue_aware"
    stateless = False

    def _decide(self, request, signals, pinned: bool) -> Decision:  # noqa: ANN001
        assert signals.local_queued >= 0 and signals.local_in_flight >= 0
        route = Route.CLOUD if signals.local_queued >= 2 and signals.network_up else Route.LOCAL
        return Decision(route, NAN, "fixed")


class QueueAwarePolicy(Policy):
    def make_core(self) -> RoutingPolicy:
        return QueueAwareCore()


scenarios = st.fixed_dictionaries({
    "workload": st.fixed_dictionaries({"rate_per_s": st.floats(0.5, 40)}),
    "device": st.fixed_dictionaries({
        "units": st.integers(1, 3),
        "queue_limit": st.one_of(st.none(), st.integers(0, 4)),
        "service": st.sampled_from(["deterministic", "exponential", "lognormal"]),
        "service_mean_ms": st.floats(5, 400),
        "router_overhead_ms": st.floats(0, 2),
        "battery_j": st.one_of(st.none(), st.floats(0.5, 50)),
    }),
    "network": st.fixed_dictionaries({
        "rtt_ms": st.floats(0, 300), "loss": st.floats(0, 0.6), "max_retries": st.integers(0, 3),
        "mean_up_s": st.sampled_from([0.0, 2.0, 20.0]), "mean_down_s": st.sampled_from([1.0, 5.0]),
        "offline": st.sampled_from([False] * 7 + [True]),
    }),
    "cloud": st.fixed_dictionaries({
        "llm": st.booleans(), "units": st.integers(1, 4),
        "queue_limit": st.one_of(st.none(), st.integers(0, 4)),
        "service_mean_ms": st.floats(5, 500), "tpot_ms": st.floats(0, 10),
        "rate_limit_rpm": st.one_of(st.none(), st.integers(1, 200)),
        "timeout_s": st.one_of(st.none(), st.floats(0.05, 5)),
    }),
    "sim": st.fixed_dictionaries({
        "n_requests": st.integers(1, 250), "on_cloud_failure": st.sampled_from(["fallback", "fail"]),
        "allow_unstable": st.just(True),
    }),
})
# Ties everywhere: whole-millisecond deterministic services, equal network times (constant sizes,
# rtt_cv 0), whole-second or repeated trace times, and outages cutting several transfers at once.
tie_scenarios = st.fixed_dictionaries({
    "workload": st.one_of(
        st.fixed_dictionaries({"kind": st.just("trace"), "time_scale": st.sampled_from([1.0, 5.0, 20.0])}),
        st.fixed_dictionaries({"kind": st.just("trace"), "path": st.just("{csv}"),
                               "time_scale": st.sampled_from([1.0, 2.0, 10.0])})),
    "device": st.fixed_dictionaries({
        "units": st.integers(1, 3),
        "queue_limit": st.one_of(st.none(), st.integers(0, 4)),
        "service": st.just("deterministic"),
        "service_mean_ms": st.sampled_from([1.0, 10.0, 50.0, 100.0, 250.0]),
        "router_overhead_ms": st.sampled_from([0.0, 1.0]),
        "battery_j": st.one_of(st.none(), st.sampled_from([5.0, 20.0])),
    }),
    "network": st.fixed_dictionaries({
        "rtt_ms": st.sampled_from([0.0, 10.0, 100.0]), "rtt_cv": st.sampled_from([0.0, 0.0, 0.5]),
        "loss": st.sampled_from([0.0, 0.2, 0.5]), "max_retries": st.integers(0, 3),
        "retry_timeout_ms": st.sampled_from([0.0, 100.0, 250.0]),
        "mean_up_s": st.sampled_from([0.0, 0.5, 3.0]), "mean_down_s": st.sampled_from([0.5, 2.0]),
        "offline": st.sampled_from([False] * 7 + [True]),
    }),
    "cloud": st.fixed_dictionaries({
        "llm": st.just(False), "units": st.integers(1, 4),
        "queue_limit": st.one_of(st.none(), st.integers(0, 4)),
        "service": st.just("deterministic"), "service_mean_ms": st.sampled_from([10.0, 100.0, 400.0]),
        "rate_limit_rpm": st.one_of(st.none(), st.integers(1, 100)),
        "timeout_s": st.sampled_from([None, 0.1, 0.25, 1.0]),
    }),
    "sim": st.fixed_dictionaries({
        "n_requests": st.integers(1, 300), "on_cloud_failure": st.sampled_from(["fallback", "fail"]),
        "allow_unstable": st.just(True),
    }),
})
trace_times = st.lists(st.integers(0, 30), min_size=1, max_size=300)


@pytest.fixture(scope="module")
def tied_dataset(synthetic_small):
    """synthetic_small with timestamps rounded to 0.1 s (~5 requests per instant) and equal sizes."""
    frame = synthetic_small.frame.copy()
    frame["timestamp"] = np.round(frame["timestamp"].to_numpy(), 1)
    for name, value in (("input_bytes", 2000), ("output_bytes", 1000), ("tokens_in", 300), ("tokens_out", 200)):
        frame[name] = value
    return replace(synthetic_small, frame=frame)


def tie_scenario(params: dict, times: list[int], folder):  # noqa: ANN001, ANN201
    if params["workload"].get("path") == "{csv}":
        path = folder / "times.csv"
        path.write_text("timestamp\n" + "\n".join(str(t) for t in times) + "\n")
        params["workload"]["path"] = str(path)
    return make_scenario(**params)


mixes = st.tuples(st.floats(0, 1), st.floats(0, 1)).map(lambda t: (t[0], (1 - t[0]) * t[1]))


def mixed(dataset, mix: tuple[float, float], seed: int) -> MixedPolicy:
    return MixedPolicy(PolicyContext(dataset, np.random.default_rng(seed)), *mix)


def assert_laws(rec: Records) -> None:
    n = len(rec)
    # Conservation: every request ends exactly once, with one of the outcomes, never before arriving.
    assert np.isin(rec.outcome, [o.value for o in Outcome]).all()
    assert (rec.end_ns >= rec.arrival_ns).all()
    assert sum(int((rec.outcome == o).sum()) for o in Outcome) == n
    assert not any(rec.violations.values()), rec.violations
    # Stage times are non-negative wherever a stage was visited.
    dev = rec.device_start_ns >= 0
    assert (rec.device_start_ns[dev] >= rec.device_enter_ns[dev]).all()
    assert (rec.device_done_ns[dev] > rec.device_start_ns[dev]).all()
    assert (rec.device_enter_ns[dev] >= rec.arrival_ns[dev]).all()
    cl = rec.cloud_start_ns >= 0
    assert (rec.cloud_start_ns[cl] >= rec.cloud_enter_ns[cl]).all()
    assert (rec.cloud_done_ns[cl] > rec.cloud_start_ns[cl]).all()
    assert (rec.cloud_enter_ns[rec.cloud_enter_ns >= 0] >= rec.arrival_ns[rec.cloud_enter_ns >= 0]).all()
    assert (rec.network_ms >= 0).all() and (rec.cost_usd >= 0).all() and (rec.energy_j >= 0).all()
    # Answers come from the stage that produced them.
    by_cloud = np.isin(rec.outcome, [Outcome.CLOUD, Outcome.CASCADE])
    assert (rec.end_ns[by_cloud] > rec.cloud_done_ns[by_cloud]).all() or not by_cloud.any()
    local = rec.outcome == Outcome.LOCAL
    assert (rec.end_ns[local] == rec.device_done_ns[local]).all()
    assert (rec.cloud_enter_ns[rec.outcome == Outcome.LOCAL] < 0).all()
    # FIFO per station: in order of entry, start times never decrease.
    for enter, start in ((rec.device_enter_ns, rec.device_start_ns), (rec.cloud_enter_ns, rec.cloud_start_ns)):
        served = start >= 0
        order = np.lexsort((start[served], enter[served]))
        assert (np.diff(start[served][order]) >= 0).all()
    # Sensitive requests never leave the device.
    assert not (rec.sensitive & rec.sent).any()
    assert (rec.cloud_enter_ns[rec.sensitive] < 0).all()
    assert (rec.route[rec.sensitive] == Route.LOCAL).all()


def assert_same(a: Records, b: Records) -> None:
    for f in fields(a):
        value = getattr(a, f.name)
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, getattr(b, f.name), err_msg=f.name)
    assert a.sensitive_blocked == b.sensitive_blocked


@PROPERTY_SETTINGS
@given(params=scenarios, mix=mixes, seed=st.integers(0, 2**32 - 1))
def test_fast_path_equals_simpy_engine_and_laws_hold(synthetic_small, params, mix, seed):
    sc = make_scenario(**params)
    slow = run_simpy(sc, mixed(synthetic_small, mix, seed), synthetic_small, seed)
    fast = run_fast(sc, mixed(synthetic_small, mix, seed), synthetic_small, seed)
    assert_laws(slow)
    assert_same(slow, fast)


@PROPERTY_SETTINGS
@given(params=scenarios, mix=mixes, seed=st.integers(0, 2**32 - 1))
def test_simpy_engine_equals_one_process_per_request_model(synthetic_small, params, mix, seed):
    params["device"].update(queue_limit=None, battery_j=None)
    params["cloud"].update(queue_limit=None)
    sc = make_scenario(**params)
    engine = run_simpy(sc, mixed(synthetic_small, mix, seed), synthetic_small, seed)
    reference = run_reference(sc, mixed(synthetic_small, mix, seed), synthetic_small, seed)
    assert_same(engine, reference)


@PROPERTY_SETTINGS
@given(params=tie_scenarios, times=trace_times, mix=mixes, seed=st.integers(0, 2**32 - 1))
def test_engines_agree_on_ties(tied_dataset, tmp_path, params, times, mix, seed):
    sc = tie_scenario(params, times, tmp_path)
    slow = run_simpy(sc, mixed(tied_dataset, mix, seed), tied_dataset, seed)
    fast = run_fast(sc, mixed(tied_dataset, mix, seed), tied_dataset, seed)
    assert_laws(slow)
    assert_same(slow, fast)


@PROPERTY_SETTINGS
@given(params=tie_scenarios, times=trace_times, mix=mixes, seed=st.integers(0, 2**32 - 1))
def test_simpy_engine_equals_one_process_per_request_model_on_ties(tied_dataset, tmp_path, params, times,
                                                                   mix, seed):
    params["device"].update(queue_limit=None, battery_j=None)
    params["cloud"].update(queue_limit=None)
    sc = tie_scenario(params, times, tmp_path)
    engine = run_simpy(sc, mixed(tied_dataset, mix, seed), tied_dataset, seed)
    reference = run_reference(sc, mixed(tied_dataset, mix, seed), tied_dataset, seed)
    assert_same(engine, reference)


def test_tie_scenarios_really_tie(tied_dataset, tmp_path):
    """The tie strategy is not vacuous: simultaneous arrivals and simultaneous fallbacks both occur."""
    sc = tie_scenario({"workload": {"kind": "trace", "time_scale": 5.0},
                       "device": {"service": "deterministic", "service_mean_ms": 10.0},
                       "network": {"rtt_ms": 10.0, "rtt_cv": 0.0, "mean_up_s": 0.5, "mean_down_s": 0.5},
                       "cloud": {"llm": False, "service": "deterministic", "rate_limit_rpm": None},
                       "sim": {"n_requests": 300, "allow_unstable": True}}, [], tmp_path)
    rec = run_simpy(sc, mixed(tied_dataset, (0.6, 0.2), 3), tied_dataset, 3)
    assert len(rec.arrival_ns) - len(np.unique(rec.arrival_ns)) > 100
    fallback_enter = rec.device_enter_ns[(rec.outcome == Outcome.FALLBACK) & (rec.route == Route.CLOUD)]
    assert len(fallback_enter) - len(np.unique(fallback_enter)) > 5
    cloud_enter = rec.cloud_enter_ns[rec.cloud_enter_ns >= 0]
    assert len(cloud_enter) - len(np.unique(cloud_enter)) > 20
    assert_same(rec, run_fast(sc, mixed(tied_dataset, (0.6, 0.2), 3), tied_dataset, 3))


@PROPERTY_SETTINGS
@given(params=scenarios, seed=st.integers(0, 2**32 - 1))
def test_stateful_policy_laws_hold_and_sensitive_requests_never_leave_device(synthetic_small, params, seed):
    sc = make_scenario(**params)
    policy = QueueAwarePolicy(PolicyContext(synthetic_small, np.random.default_rng(seed)))
    rec = run_simpy(sc, policy, synthetic_small, seed)
    assert_laws(rec)
    tried = rec.sensitive & (rec.route == Route.LOCAL)
    assert rec.sensitive_blocked <= int(tried.sum())


def test_sensitive_requests_never_leave_device(synthetic_small):
    """Even a policy sending everything to the cloud keeps sensitive requests local, and counts them."""
    sc = make_scenario(workload={"rate_per_s": 2.0}, cloud={"rate_limit_rpm": None},
                       sim={"n_requests": 3000})

    everything = make_policy(OmegaConf.create({"name": "always_cloud"}), PolicyContext(synthetic_small, np.random.default_rng(0)))
    rec = run_fast(sc, everything, synthetic_small, 3)
    assert rec.sensitive.sum() > 50
    assert rec.sensitive_blocked == int(rec.sensitive.sum())
    assert not rec.sent[rec.sensitive].any()
    assert rec.sent[~rec.sensitive].all()


@pytest.mark.parametrize("engine", [run_simpy, run_fast])
def test_same_seed_gives_same_records_and_other_seed_differs(synthetic_small, engine):
    sc = make_scenario(sim={"n_requests": 500})
    a = engine(sc, mixed(synthetic_small, (0.3, 0.3), 1), synthetic_small, 11)
    b = engine(sc, mixed(synthetic_small, (0.3, 0.3), 1), synthetic_small, 11)
    c = engine(sc, mixed(synthetic_small, (0.3, 0.3), 1), synthetic_small, 12)
    assert_same(a, b)
    assert not np.array_equal(a.arrival_ns, c.arrival_ns)
