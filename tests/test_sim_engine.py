"""The engines' behaviour: workloads, failures and fallbacks, battery, engine choice, metrics, CIs."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from test_sim_properties import accounting_checked_on_every_run  # noqa: F401 - autouse fixture

import router_lab.sim
from router_lab.errors import RouterLabError
from router_lab.policies.base import Policy, PolicyContext, Route
from router_lab.policies.registry import make_policy
from router_lab.runtime.policy import NAN, Decision, RoutingPolicy
from router_lab.sim.arrivals import ARRIVALS, Arrivals
from router_lab.sim.commands import simulate_config
from router_lab.sim.config import BurstyWorkloadConfig, WorkloadConfig
from router_lab.sim.decisions import decide_up_front
from router_lab.sim.draws import NEVER, NS_PER_S, draw
from router_lab.sim.engine_fast import run_fast
from router_lab.sim.engine_simpy import run_simpy
from router_lab.sim.engines import ENGINES, engine_choices, engine_name, run
from router_lab.sim.metrics import summarize
from router_lab.sim.records import Outcome
from router_lab.sim.scenario import make_scenario


def policy(dataset, name: str, seed: int = 0, **params) -> Policy:
    return make_policy(OmegaConf.create({"name": name, **params}),
                       PolicyContext(dataset, np.random.default_rng(seed)))


class ShortQueueCore(RoutingPolicy):
    stateless = False

    def _decide(self, request, signals, pinned: bool) -> Decision:  # noqa: ANN001
        return Decision(Route.CLOUD if signals.local_queued > 0 else Route.LOCAL, NAN, "fixed")


class ShortQueue(Policy):
    def make_core(self) -> RoutingPolicy:
        return ShortQueueCore()


def arrivals_s(dataset, workload: dict, n: int = 20_000) -> np.ndarray:
    sc = make_scenario(workload=workload, device={"service_mean_ms": 1.0}, sim={"n_requests": n})
    return run_fast(sc, policy(dataset, "always_local"), dataset, 5).arrival_ns / NS_PER_S


def test_poisson_and_bursty_rates_match_their_means(digits):
    poisson = arrivals_s(digits, {"rate_per_s": 10.0})
    assert len(poisson) / poisson[-1] == pytest.approx(10.0, rel=0.04)
    bursty = arrivals_s(digits, {"kind": "bursty", "rate_low_per_s": 2.0, "rate_high_per_s": 20.0,
                                 "mean_low_s": 5.0, "mean_high_s": 5.0}, n=60_000)
    assert len(bursty) / bursty[-1] == pytest.approx(11.0, rel=0.06)
    # MMPP counts are over-dispersed: variance of per-second counts well above the mean.
    counts = np.bincount(bursty.astype(int))
    assert counts.var() > 3 * counts.mean()


def test_diurnal_rate_follows_the_cycle(digits):
    times = arrivals_s(digits, {"kind": "diurnal", "rate_per_s": 5.0, "amplitude": 0.8, "period_s": 100.0},
                       n=50_000)
    phase = (times % 100.0) / 100.0
    peak = ((phase > 0.15) & (phase < 0.35)).sum()  # sin near +1
    trough = ((phase > 0.65) & (phase < 0.85)).sum()  # sin near -1
    assert peak / trough == pytest.approx((1 + 0.8 * 0.935) / (1 - 0.8 * 0.935), rel=0.15)


def test_trace_replays_dataset_timestamps_in_order(synthetic_small):
    sc = make_scenario(workload={"kind": "trace"}, device={"service_mean_ms": 1.0},
                       sim={"n_requests": 10_000})
    rec = run_fast(sc, policy(synthetic_small, "always_local"), synthetic_small, 0)
    stamps = synthetic_small.frame["timestamp"].to_numpy()
    assert len(rec) == len(synthetic_small)
    np.testing.assert_allclose(rec.arrival_ns / NS_PER_S, np.sort(stamps) - stamps.min(), atol=1e-9)
    np.testing.assert_array_equal(rec.row, np.argsort(stamps, kind="stable"))


def test_trace_without_timestamps_is_a_clear_error(digits):
    sc = make_scenario(workload={"kind": "trace"})
    with pytest.raises(RouterLabError, match="has no 'timestamp' column"):
        run_fast(sc, policy(digits, "always_local"), digits, 0)


def test_offline_network_sends_nothing_and_falls_back(digits):
    sc = make_scenario(network={"offline": True}, sim={"n_requests": 2000})
    rec = run(sc, policy(digits, "always_cloud"), digits, 1)
    m = summarize(rec, sc)
    assert m["cloud_fraction"] == 0 and m["offdevice_bytes"] == 0 and m["cost_per_1k_usd"] == 0
    assert m["fallbacks"] == int((~rec.sensitive).sum()) and m["outcomes"]["local"] == int(rec.sensitive.sum())


def test_fail_mode_records_failures_instead_of_fallbacks(digits):
    sc = make_scenario(network={"offline": True}, sim={"n_requests": 1000, "on_cloud_failure": "fail"})
    m = summarize(run(sc, policy(digits, "always_cloud"), digits, 1), sc)
    assert m["failures"] > 900 and m["fallbacks"] == 0
    assert m["accuracy"] < 0.1  # a failed request has no answer


def test_rate_limit_and_timeout_make_fallbacks(digits):
    sc = make_scenario(workload={"rate_per_s": 3.0}, cloud={"rate_limit_rpm": 60, "timeout_s": 30.0},
                       sim={"n_requests": 3000})
    rec = run(sc, policy(digits, "always_cloud"), digits, 2)
    m = summarize(rec, sc)
    # 3 req/s offered (less the sensitive ones, kept local), 60 per minute allowed: the rest fall back.
    to_cloud = 1 - rec.sensitive.mean()
    assert m["fallbacks"] / m["n_requests"] == pytest.approx(to_cloud - 1 / 3, abs=0.03)
    short = make_scenario(cloud={"timeout_s": 1.0}, sim={"n_requests": 500})
    m = summarize(run(short, policy(digits, "always_cloud"), digits, 2), short)
    assert m["outcomes"]["cloud"] == 0 and m["cost_per_1k_usd"] > 0  # LLM answers take ~4.4 s


def test_battery_runs_out_and_inference_then_fails(digits):
    sc = make_scenario(workload={"rate_per_s": 1.0},
                       device={"battery_j": 10.0, "energy_per_inference_j": 0.5, "idle_w": 0.0},
                       sim={"n_requests": 100})
    rec = run(sc, policy(digits, "always_local"), digits, 0)
    assert (rec.outcome[:20] == Outcome.LOCAL).all()
    assert (rec.outcome[20:] == Outcome.FAILED).all()


def test_engine_choice_auto_fast_and_stateful(digits):
    sc = make_scenario(sim={"n_requests": 300})
    stateful = ShortQueue(PolicyContext(digits, np.random.default_rng(0)))
    assert engine_name(sc, stateful) == "simpy" and engine_name(sc, policy(digits, "random")) == "fast"
    rec = run(sc, stateful, digits, 0)
    assert rec.engine == "simpy" and (rec.route == Route.CLOUD).any()
    fast = make_scenario(sim={"n_requests": 300, "engine": "fast"})
    with pytest.raises(RouterLabError, match="expected a stateless policy"):
        run(fast, stateful, digits, 0)


def test_warmup_is_excluded_and_batch_means_give_an_interval(digits):
    sc = make_scenario(sim={"n_requests": 4000, "warmup_s": 100.0})
    rec = run(sc, policy(digits, "random"), digits, 0)
    m = summarize(rec, sc)
    assert m["n_requests"] == int((rec.arrival_ns >= 100 * NS_PER_S).sum()) < 4000
    lo, hi = m["ci95"]["latency_mean_ms"]
    assert m["ci_method"] == "batch_means" and lo < hi
    assert m["accounting_violations"] == 0 and m["sensitive_offloaded"] == 0


def test_replications_use_spawned_seeds_and_cover_the_pooled_mean(digits, tmp_path):
    cfg = OmegaConf.create({
        "seed": 3, "datasets_dir": str(tmp_path), "dataset": {"kind": "digits", "name": "digits", "path": None,
                                                              "seed": 0, "n_folds": 5, "pool": 2, "device_C": 0.1,
                                                              "cloud_C": 10.0, "sensitive_fraction": 0.05,
                                                              "split_fractions": [0.6, 0.2, 0.2]},
        "policy": {"name": "random", "p_cloud": 0.3},
        "workload": {"kind": "poisson", "rate_per_s": 4.0}, "device": {"name": "d"},
        "network": {"name": "n"}, "cloud": {"name": "c"}, "sim": {"n_requests": 1500, "replications": 4},
    })
    runs, m = simulate_config(cfg)
    assert len(runs) == 4 and m["ci_method"] == "replications" and m["n_requests"] == 6000
    assert len({int(r.arrival_ns[0]) for r in runs}) == 4  # independent streams
    lo, hi = m["ci95"]["accuracy"]
    assert lo <= m["accuracy"] <= hi
    runs_again, m_again = simulate_config(cfg)
    assert m_again == m


def test_duration_bounded_run_and_measured_service_profile(digits, tmp_path):
    profile = tmp_path / "npu.csv"
    profile.write_text("service_ms\n10\n20\n30\n")
    sc = make_scenario(workload={"rate_per_s": 5.0}, device={"service": "profile", "profile_path": str(profile)},
                       sim={"duration_s": 400.0, "n_requests": 10})
    rec = run(sc, policy(digits, "always_local"), digits, 0)
    assert len(rec) == pytest.approx(2000, rel=0.1) and rec.arrival_ns.max() < 400 * NS_PER_S
    service_ms = (rec.device_done_ns - rec.device_start_ns) / 1e6
    assert set(np.round(service_ms, 6)) == {10.0, 20.0, 30.0}
    missing = make_scenario(device={"service": "profile", "profile_path": str(tmp_path / "nope.csv")})
    with pytest.raises(RouterLabError, match="device.profile_path: cannot read"):
        run(missing, policy(digits, "always_local"), digits, 0)


def test_requests_are_sampled_from_the_test_split_by_default(digits):
    sc = make_scenario(sim={"n_requests": 3000})
    rec = run(sc, policy(digits, "always_local"), digits, 0)
    assert set(digits.frame["split"].to_numpy()[rec.row]) == {"test"}
    everything = make_scenario(sim={"n_requests": 3000, "split": "all"})
    assert len(set(run(everything, policy(digits, "always_local"), digits, 0).row)) > 1000


def test_client_timeout_bounds_an_uploads_retries(digits):
    """Retries that would run past cloud.timeout_s end in a timeout at sent + timeout."""
    sc = make_scenario(network={"loss": 0.9, "max_retries": 50, "retry_timeout_ms": 500.0, "rtt_ms": 20.0},
                       cloud={"timeout_s": 2.0, "rate_limit_rpm": None},
                       sim={"n_requests": 2000, "on_cloud_failure": "fail"})
    rec = run(sc, policy(digits, "always_cloud"), digits, 4)
    sent_at = rec.arrival_ns + int(round(sc.device.router_overhead_ms * 1e6))
    failed = rec.sent & (rec.outcome == Outcome.FAILED)
    assert failed.sum() > 1000
    assert (rec.end_ns[failed] - sent_at[failed] <= 2 * NS_PER_S).all()
    assert (rec.end_ns[failed] - sent_at[failed] == 2 * NS_PER_S).mean() > 0.9  # almost all time out
    assert rec.attempts.max() == 4  # attempts begin at 0, 0.5, 1.0 and 1.5 s: none after the timeout
    answered = rec.outcome == Outcome.CLOUD
    assert (rec.end_ns[answered] - sent_at[answered] <= 2 * NS_PER_S).all()


def test_outages_are_drawn_only_as_far_as_the_run_uses_the_network(digits):
    """A 250 s run on a network flapping every ~20 ms draws ~12,500 outages (it used to draw 5 M)."""
    sc = make_scenario(workload={"rate_per_s": 4.0}, network={"mean_up_s": 0.01, "mean_down_s": 0.01},
                       sim={"duration_s": 250.0, "n_requests": 10})
    d = draw(sc, digits, 0)
    assert 250 / 0.02 / 2 < len(d.outage_start_ns) < 2 * 250 / 0.02
    fast = run_fast(sc, policy(digits, "random"), digits, 0)
    slow = run_simpy(sc, policy(digits, "random"), digits, 0)
    np.testing.assert_array_equal(fast.end_ns, slow.end_ns)
    assert (fast.outcome == Outcome.FALLBACK).sum() > 100  # the outages are there, and cut transfers


def test_outage_timeline_does_not_depend_on_how_far_it_was_drawn(digits):
    sc = make_scenario(network={"mean_up_s": 3.0, "mean_down_s": 1.0}, sim={"n_requests": 200})
    short, long = draw(sc, digits, 9), draw(sc, digits, 9)
    long.outages.cover(10**15)  # ~11 days of windows, drawn in a few large steps
    for t in range(0, 10**13, 10**12):
        short.outages.cover(t)  # many small steps
    k = len(short.outage_start_ns)
    assert k > 1000
    np.testing.assert_array_equal(short.outage_start_ns, long.outage_start_ns[:k])
    np.testing.assert_array_equal(short.outage_end_ns, long.outage_end_ns[:k])


def test_first_down_is_the_moment_a_transfer_is_cut(digits):
    """Windows are [start, end): a transfer is cut if it starts in one or one begins inside it."""
    d = draw(make_scenario(network={"mean_up_s": 5.0, "mean_down_s": 1.0}, sim={"n_requests": 50}), digits, 1)
    (s0, s1), (e0, _) = d.outage_start_ns[:2], d.outage_end_ns[:2]
    cases = [((s0 - 10, s0 + 5), s0), ((s0 - 10, s0), NEVER), ((s0, s0), s0), ((s0 + 3, s0 + 4), s0 + 3),
             ((e0, e0 + 1), NEVER if s1 > e0 + 1 else s1), ((e0 - 1, s1 + 1), e0 - 1), ((e0, s1 + 1), s1),
             ((0, 0), NEVER if s0 > 0 else 0)]
    for (begin, end), expected in cases:
        assert d.first_down(int(begin), int(end)) == expected, (begin, end)
    begins = np.array([int(b) for (b, _), _ in cases])
    ends = np.array([int(e) for (_, e), _ in cases])
    np.testing.assert_array_equal(d.first_down(begins, ends), [int(x) for _, x in cases])
    late = int(d.outages.known_ns) + 10**12  # beyond what is drawn: drawn on demand, same answer twice
    assert d.first_down(late, late + 10**10) == d.first_down(np.array([late]), np.array([late + 10**10]))[0]


# -- the engines' structure: one core, short functions, registries --------------------------------
SIM = Path(router_lab.sim.__file__).parent
MAX_LINES = 50


def long_functions(source: str, limit: int = MAX_LINES) -> list[tuple[str, int]]:
    """(name, lines) of every function (methods and nested ones too) longer than ``limit`` lines."""
    return [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > limit]


def test_no_function_in_the_simulator_is_longer_than_50_lines():
    method = ["class A:", "    def f(self):", *[f"        x = {k}" for k in range(MAX_LINES - 1)]]
    assert long_functions("\n".join(method)) == []  # 50 lines: allowed
    assert long_functions("\n".join([*method, "        return x"])) == [("f", 51)]  # the check can fail
    too_long = [f"{path.name}:{name}:{lines}" for path in sorted(SIM.glob("*.py"))
                for name, lines in long_functions(path.read_text())]
    assert not too_long, f"functions over {MAX_LINES} lines in router_lab/sim: {', '.join(too_long)}"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return names | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}


def imported_names(path: Path, module: str) -> set[str]:
    return {alias.name for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and node.module == module for alias in node.names}


ENGINE_MODULES = ("engine_simpy", "engine_fast", "reference")


@pytest.mark.parametrize("name", ENGINE_MODULES)
def test_no_engine_imports_another_and_each_takes_its_setup_from_the_core(name):
    path = SIM / f"{name}.py"
    imported = imported_modules(path)
    others = {f"router_lab.sim.{other}" for other in ENGINE_MODULES if other != name}
    assert not imported & others, f"{path.name} imports {sorted(imported & others)}"
    assert "prepare" in imported_names(path, "router_lab.sim.core")
    # the setup steps are the core's: no engine draws, decides up front or checks the load itself
    assert not {"router_lab.sim.decisions", "router_lab.sim.load"} & imported, path.name
    assert "draw" not in imported_names(path, "router_lab.sim.draws"), path.name
    assert "finish" not in imported_names(path, "router_lab.sim.records"), path.name


def test_engines_are_one_registry_that_the_scenario_check_and_run_use(digits):
    assert ENGINES.names() == ["fast", "simpy"]
    assert ENGINES.get("fast") is run_fast and ENGINES.get("simpy") is run_simpy
    assert engine_choices() == ["fast", "simpy", "auto"]
    with pytest.raises(RouterLabError, match=r"^sim.engine: got 'warp'; expected one of fast, simpy, auto$"):
        make_scenario(sim={"engine": "warp"})
    seeds = []

    def warp(sc, policy, dataset, seed, progress=False):  # noqa: ANN001, ANN202 - a throw-away engine
        seeds.append(seed)
        return run_fast(sc, policy, dataset, seed)

    ENGINES.register("warp", warp)
    try:
        sc = make_scenario(device={"service_mean_ms": 1.0}, sim={"engine": "warp", "n_requests": 300})
        assert engine_choices() == ["fast", "simpy", "warp", "auto"]
        rec = run(sc, policy(digits, "always_local"), digits, 3)
        assert seeds == [3] and len(rec) == 300
    finally:
        ENGINES.unregister("warp")
    with pytest.raises(RouterLabError, match="warp"):
        run(sc, policy(digits, "always_local"), digits, 3)


def test_workload_kinds_are_one_registry_with_their_schemas(digits):
    assert ARRIVALS.names() == ["bursty", "diurnal", "poisson", "trace"]
    assert ARRIVALS.entry("bursty").schema is BurstyWorkloadConfig
    assert isinstance(make_scenario(workload={"kind": "bursty"}).workload, BurstyWorkloadConfig)
    with pytest.raises(RouterLabError, match=r"^workload.kind: got 'steady'; expected one of bursty, diurnal, "
                                             r"poisson, trace$"):
        make_scenario(workload={"kind": "steady"})

    @dataclass
    class SteadyConfig(WorkloadConfig):
        kind: str = "steady"
        gap_s: float = 0.5

    def steady(w, n_max, t_max_s, rng, dataset):  # noqa: ANN001, ANN202 - a throw-away workload
        return Arrivals(np.arange(n_max) * w.gap_s)

    ARRIVALS.register("steady", steady, schema=SteadyConfig)
    try:
        sc = make_scenario(workload={"kind": "steady", "gap_s": 0.25}, device={"service_mean_ms": 1.0},
                           sim={"n_requests": 100})
        assert isinstance(sc.workload, SteadyConfig)
        rec = run_fast(sc, policy(digits, "always_local"), digits, 0)
        np.testing.assert_array_equal(rec.arrival_ns, np.arange(100) * (NS_PER_S // 4))
    finally:
        ARRIVALS.unregister("steady")


# -- the sensitive rule: the policy owns it, whatever its core does --------------------------------
class IgnoresItsPin(RoutingPolicy):
    """A broken core: everything to the cloud, sensitive or not (it skips the runtime's pinning)."""

    kind = "ignores_its_pin"

    def decide(self, request, signals=None) -> Decision:  # noqa: ANN001
        return Decision(Route.CLOUD, NAN, "fixed")

    def decide_batch(self, scores, pinned) -> np.ndarray:  # noqa: ANN001
        return np.full(len(pinned), Route.CLOUD, dtype=np.int8)


class StatefulIgnoresItsPin(IgnoresItsPin):
    stateless = False


class LeakyPolicy(Policy):
    def __init__(self, context: PolicyContext, core: type[RoutingPolicy]) -> None:
        super().__init__(context)
        self.core_class = core

    def make_core(self) -> RoutingPolicy:
        return self.core_class()


@pytest.mark.parametrize(("core", "engine"), [(IgnoresItsPin, run_fast), (IgnoresItsPin, run_simpy),
                                              (StatefulIgnoresItsPin, run_simpy)])
def test_the_policy_keeps_sensitive_requests_local_even_when_its_core_does_not(synthetic_small, core, engine):
    sc = make_scenario(workload={"rate_per_s": 2.0}, cloud={"rate_limit_rpm": None}, sim={"n_requests": 1500})
    leaky = LeakyPolicy(PolicyContext(synthetic_small, np.random.default_rng(0)), core)
    rec = engine(sc, leaky, synthetic_small, 2)
    assert rec.sensitive.sum() > 20
    assert not rec.sent[rec.sensitive].any() and (rec.route[rec.sensitive] == Route.LOCAL).all()
    assert rec.sent[~rec.sensitive].all()  # the core did send everything else
    assert leaky.core.n_blocked == 0  # the core pinned nothing: the policy kept them all local
    assert rec.sensitive_blocked == leaky.n_overridden == int(rec.sensitive.sum())


def test_every_policy_entry_point_applies_the_rule_to_a_core_that_ignores_it(synthetic_small):
    rows = np.arange(len(synthetic_small))
    leaky = LeakyPolicy(PolicyContext(synthetic_small, np.random.default_rng(0)), IgnoresItsPin)
    pinned = leaky.pinned(rows)
    assert pinned.sum() > 50 and (leaky.may_leave(rows) == ~pinned).all()
    routes = leaky.decide_batch(rows)
    assert (routes[pinned] == Route.LOCAL).all() and (routes[~pinned] == Route.CLOUD).all()
    assert not leaky.offline_cloud(rows)[pinned].any()
    decision = leaky.decide(leaky.request(int(rows[pinned][0]), True))
    assert decision.route == Route.LOCAL and decision.reason == "fixed"  # the core's reason, kept
    assert leaky.n_overridden == pinned.sum() * 2 + 1  # decide_batch, offline_cloud's decide_batch, decide
    # routes decided elsewhere (the engines' up-front decisions, with the run's own flags)
    flags = np.array([True, False, True, False])
    escalate = np.ones(4, dtype=bool)
    kept = leaky.keep_local(flags, np.full(4, Route.CLOUD, dtype=np.int8), escalate)
    np.testing.assert_array_equal(kept, np.where(flags, Route.LOCAL, Route.CLOUD))
    np.testing.assert_array_equal(escalate, ~flags)
    assert leaky.n_overridden == pinned.sum() * 2 + 1 + 2
    decisions = decide_up_front(leaky, rows, synthetic_small)
    assert (decisions.route[decisions.sensitive] == Route.LOCAL).all() and not decisions.escalate.any()
    assert decisions.sensitive_blocked == pinned.sum()
