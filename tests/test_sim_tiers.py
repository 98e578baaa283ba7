"""Several remote tiers (issue #17): tier config groups, routing by tier, fallback along the tier order,
per-tier accounting and metrics, and the two-tier scenario left unchanged."""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import pytest
from omegaconf import OmegaConf

from router_lab.errors import RouterLabError
from router_lab.policies.base import PolicyContext, Route
from router_lab.policies.registry import make_policy
from router_lab.sim.audit import audit
from router_lab.sim.core import prepare
from router_lab.sim.draws import RowSizes
from router_lab.sim.engine_fast import run_fast
from router_lab.sim.engine_simpy import run_simpy
from router_lab.sim.engines import run
from router_lab.sim.metrics import summarize
from router_lab.sim.records import Outcome
from router_lab.sim.scenario import make_scenario

FAST_CLOUD = {"llm": False, "service_mean_ms": 40.0, "units": 4, "cost_per_request_usd": 5e-5,
              "cost_per_1k_input_tokens_usd": 0.0, "cost_per_1k_output_tokens_usd": 0.0}
EDGE = {"model": "edge", "network": {"rtt_ms": 3.0, "loss": 0.05, "mean_up_s": 20.0, "mean_down_s": 2.0},
        "cloud": {**FAST_CLOUD, "units": 1, "queue_limit": 2, "service_mean_ms": 20.0, "timeout_s": 0.5,
                  "cost_per_request_usd": 1e-5}}


def policy(dataset, name: str = "always_cloud", tier_of_row=None):  # noqa: ANN001, ANN201
    """A registered policy; with ``tier_of_row``, a throw-away N-model one (routes each row to the
    model index ``tier_of_row(rows)``, LOCAL for 0), built on always_cloud's class."""
    p = make_policy(OmegaConf.create({"name": name}), PolicyContext(dataset, np.random.default_rng(1)))
    if tier_of_row is None:
        return p

    class ByRow(type(p)):
        def decide_tiers(self, indices):  # noqa: ANN001, ANN202
            tiers = tier_of_row(np.asarray(indices)).astype(np.int8)
            return np.where(tiers == 0, Route.LOCAL, Route.CLOUD).astype(np.int8), tiers

    p.__class__ = ByRow
    return p


def scenario(tiers=None, n: int = 3000, **groups):  # noqa: ANN001, ANN003, ANN201
    groups.setdefault("cloud", FAST_CLOUD)
    return make_scenario(workload={"rate_per_s": 20.0}, device={"service_mean_ms": 10.0},
                         sim={"n_requests": n, **groups.pop("sim", {})}, tiers=tiers, **groups)


def by_three(rows: np.ndarray) -> np.ndarray:
    return rows % 3


def test_tier_presets_compose_and_bad_tier_fields_are_refused() -> None:
    from router_lab.api import config
    from router_lab.config_checks import check_config
    from router_lab.sim.scenario import scenario_from_config

    cfg = config("+tier@tiers.edge=edge", "+tier@tiers.big=cloud_large", "tiers.big.model=cloud")
    check_config(cfg, [])
    sc = scenario_from_config(cfg)
    assert [(t.name, t.model, t.cloud.units, t.network.rtt_ms) for t in sc.tiers] == [
        ("edge", "edge", 2, 3.0), ("big", "cloud", 8, 40.0)]
    assert make_scenario().tiers == ()  # no tiers: today's single cloud
    with pytest.raises(RouterLabError, match=r"tiers\.edge\.cloud\.unitz: no such key"):
        check_config(config("+tier@tiers.edge=edge", "+tiers.edge.cloud.unitz=3"), [])
    for bad, message in [({"model": "device"}, r"tiers\.edge\.model: got 'device'"),
                         ({"network": {"loss": 2.0}}, r"tiers\.edge\.network\.loss: got 2\.0"),
                         ({"cloud": {"units": 0}}, r"tiers\.edge\.cloud\.units: got 0")]:
        with pytest.raises(RouterLabError, match=message):
            scenario({"edge": {**EDGE, **bad}})
    with pytest.raises(RouterLabError, match=r"tiers\.b\.model: got 'edge'; expected a model no other tier serves"):
        scenario({"a": EDGE, "b": EDGE})


def test_each_request_goes_to_its_tier_and_is_scored_and_billed_by_the_model_that_answered(digits) -> None:  # noqa: ANN001
    sc = scenario({"edge": EDGE})
    rec = run(sc, policy(digits, tier_of_row=by_three), digits, 4)
    assert rec.engine == "fast"  # auto: a stateless policy takes the fast path, tiers or not
    assert all(v == 0 for v in rec.violations.values()), rec.violations
    routed = by_three(rec.row.astype(np.int64))
    routed[rec.sensitive] = 0
    first_try = rec.sent & (rec.tier != routed)
    assert not (first_try & (routed == 1)).any()  # the edge is the cheapest remote tier: nothing below it
    answered = rec.answered_by
    assert set(np.unique(answered[rec.outcome == Outcome.CLOUD])) == {1, 2}  # both tiers answered
    for k, model in enumerate(digits.models):
        mine = answered == k
        assert np.array_equal(rec.quality[mine], digits.quality(model).astype(np.float32)[rec.row[mine]])
    ran = rec.cloud_start_ns >= 0
    assert np.allclose(rec.cost_usd[ran & (rec.tier == 1)], 1e-5)
    assert np.allclose(rec.cost_usd[ran & (rec.tier == 2)], 5e-5)
    summary = summarize(rec, sc)
    shares = summary["tier_shares"]
    assert list(shares) == list(digits.models)
    assert shares["edge"] == pytest.approx(np.mean(answered == 1))
    assert summary["tier_cost_per_1k_usd"]["edge"] == pytest.approx(rec.cost_usd[rec.tier == 1].sum() / len(rec) * 1000,
                                                                    rel=1e-5)
    assert "tier_shares" not in summarize(run(scenario(n=300), policy(digits), digits, 4), scenario(n=300))
    # the audit checks each tier against its own draws: one shifted completion on the edge is caught
    setup = prepare(sc, policy(digits, tier_of_row=by_three), digits, 4)
    i = int(np.flatnonzero(ran & (rec.tier == 1))[0])
    done = rec.cloud_done_ns.copy()
    done[i] += 1
    broken = audit(replace(rec, cloud_done_ns=done), setup.draws, sc, RowSizes.of(digits), setup.tiers)
    assert broken["cloud_done"] == 1


def test_a_failed_tier_falls_back_to_the_next_cheaper_one_then_the_device(digits) -> None:  # noqa: ANN001
    offline = {"offline": True}
    cloud_down = scenario({"edge": EDGE}, n=1500, network=offline)
    rec = run_simpy(cloud_down, policy(digits), digits, 2)  # every request routed to the cloud
    assert all(v == 0 for v in rec.violations.values()), rec.violations
    left = ~rec.sensitive
    assert (rec.tier[left] == 1).all()  # each went on to the edge
    assert set(np.unique(rec.outcome[left])) == {Outcome.CLOUD, Outcome.FALLBACK}
    assert (rec.answered_by[rec.outcome == Outcome.CLOUD] == 1).all()  # the edge answered
    both_down = scenario({"edge": {**EDGE, "network": offline}}, n=1500, network=offline)
    rec = run_simpy(both_down, policy(digits), digits, 2)
    assert (rec.outcome[left] == Outcome.FALLBACK).all() and (rec.answered_by == 0).all()
    failing = scenario({"edge": {**EDGE, "network": offline}}, n=1500, network=offline,
                       sim={"on_cloud_failure": "fail"})
    rec = run_simpy(failing, policy(digits), digits, 2)
    assert (rec.outcome[left] == Outcome.FAILED).all() and (rec.tier[left] == 2).all()  # no further tier


def same_records(a, b) -> list[str]:  # noqa: ANN001
    return [f.name for f in fields(a) if isinstance(getattr(a, f.name), np.ndarray)
            and not np.array_equal(getattr(a, f.name), getattr(b, f.name))]


def test_an_unused_tier_changes_no_record(digits) -> None:  # noqa: ANN001
    plain, tiered = scenario(n=2000), scenario({"edge": EDGE}, n=2000)
    for name in ("always_cloud", "confidence"):
        assert same_records(run_simpy(plain, policy(digits, name), digits, 9),
                            run_simpy(tiered, policy(digits, name), digits, 9)) == [], name


LOSSY_CLOUD = {**FAST_CLOUD, "units": 1, "queue_limit": 3, "rate_limit_rpm": 300, "timeout_s": 0.4}


@pytest.mark.parametrize("groups", [
    {},
    {"network": {"loss": 0.3, "mean_up_s": 5.0, "mean_down_s": 1.0}, "cloud": LOSSY_CLOUD},
    {"network": {"loss": 0.3}, "sim": {"on_cloud_failure": "fail"}},
    {"network": {"loss": 0.4}, "edge_queue_limit": 0},
], ids=["plain", "lossy_outages_rate_limit", "fail_mode", "edge_refuses"])
def test_the_fast_path_gives_the_event_driven_records_with_tiers(digits, groups) -> None:  # noqa: ANN001
    groups = dict(groups)
    edge = {**EDGE, "cloud": {**EDGE["cloud"], "queue_limit": groups.pop("edge_queue_limit", 2)}}
    sc = scenario({"edge": edge}, n=2000, **groups)
    for name, tier_of_row in (("always_cloud", by_three), ("always_cloud", None), ("random", None)):
        a = run_simpy(sc, policy(digits, name, tier_of_row), digits, 2)
        b = run_fast(sc, policy(digits, name, tier_of_row), digits, 2)
        assert (a.engine, b.engine) == ("simpy", "fast")
        assert same_records(a, b) == [], name
        assert all(v == 0 for v in b.violations.values()), b.violations


def test_a_tier_for_an_unknown_model_or_a_route_to_an_unserved_model_is_refused(digits) -> None:  # noqa: ANN001
    with pytest.raises(RouterLabError, match=r"tiers\.small\.model: got 'cloud_small'; expected one of"):
        run_simpy(scenario({"small": {**EDGE, "model": "cloud_small"}}), policy(digits), digits, 0)
    big = scenario({"big": {**EDGE, "model": "cloud"}})
    with pytest.raises(RouterLabError, match="the policy routes to model 'edge' but no tier serves it"):
        run_simpy(big, policy(digits, tier_of_row=by_three), digits, 0)
    # with no tiers at all (two-tier deployment) an N-model choice of the edge is refused too, in
    # both engines, instead of the cloud answering it
    for engine in (run_simpy, run_fast):
        with pytest.raises(RouterLabError, match="^policy always_cloud: routes requests to model 'edge', which "
                                                 "this deployment does not serve; add its tier"):
            engine(scenario(), policy(digits, tier_of_row=by_three), digits, 0)
    run_fast(scenario(n=300), policy(digits, tier_of_row=lambda rows: 2 * (rows % 2)), digits, 0)  # device, cloud: served


def test_a_stateful_policy_names_its_tier_per_decision(digits) -> None:  # noqa: ANN001
    """A stateful core's TierDecision picks the tier at each arrival (simpy): the edge while the
    device is busy, else the cloud; sensitive requests stay local."""
    from router_lab.policies.base import Policy
    from router_lab.runtime.policy import NAN, RoutingPolicy, TierDecision

    class BusyToEdge(RoutingPolicy):
        stateless = False

        def _decide(self, request, signals, pinned: bool):  # noqa: ANN001, ANN202
            return TierDecision(Route.CLOUD, NAN, "fixed", 1 if signals.local_in_flight else 2)

    class BusyToEdgePolicy(Policy):
        def make_core(self) -> RoutingPolicy:
            return BusyToEdge()

    p = BusyToEdgePolicy(PolicyContext(digits, np.random.default_rng(0)))
    sc = scenario({"edge": {**EDGE, "network": {"rtt_ms": 3.0}}}, n=1500)
    rec = run(sc, p, digits, 5)
    assert rec.engine == "simpy" and all(v == 0 for v in rec.violations.values()), rec.violations
    left = ~rec.sensitive
    assert set(np.unique(rec.tier[left])) == {1, 2} and (rec.tier[rec.sensitive] == 0).all()
    assert rec.decision_log is not None
    assert (rec.decided_tier[rec.sensitive] == 0).all() and set(np.unique(rec.decided_tier[left])) == {1, 2}
    assert (rec.decided_tier[rec.tier != 0] >= rec.tier[rec.tier != 0]).all()  # fallbacks only go cheaper


def test_each_tier_bills_its_own_attempts_and_the_decided_tier_is_kept(digits) -> None:  # noqa: ANN001
    """The cloud runs every request but its client gives up first (20 ms timeout < the service): the
    cloud bills it, then the edge answers and bills it too; tier_cost_per_1k_usd bills each tier its
    own (before: the cloud's bill counted toward the edge), and `decided_tier` stays the cloud."""
    edge = {**EDGE, "network": {"rtt_ms": 3.0}, "cloud": {**EDGE["cloud"], "units": 8, "queue_limit": None}}
    sc = scenario({"edge": edge}, n=1500, cloud={**FAST_CLOUD, "timeout_s": 0.02})
    rec = run_simpy(sc, policy(digits), digits, 3)
    assert all(v == 0 for v in rec.violations.values()), rec.violations
    left = ~rec.sensitive
    assert (rec.decided_tier[left] == 2).all() and (rec.tier[left] == 1).mean() > 0.9  # decided the cloud, ended on the edge
    by_cloud, by_edge = rec.tier_cost[:, 2] > 0, rec.tier_cost[:, 1] > 0
    assert by_cloud.sum() > 100 and by_edge.sum() > 100 and (by_cloud & by_edge).any()
    np.testing.assert_allclose(rec.tier_cost[by_cloud, 2], 5e-5)
    np.testing.assert_allclose(rec.tier_cost[by_edge, 1], 1e-5)
    np.testing.assert_array_equal(rec.cost_usd, rec.tier_cost[:, 2] + rec.tier_cost[:, 1])
    billed = summarize(rec, sc)["tier_cost_per_1k_usd"]
    assert billed["cloud"] == pytest.approx(5e-5 * by_cloud.sum() / len(rec) * 1000, rel=1e-5)
    assert billed["edge"] == pytest.approx(1e-5 * by_edge.sum() / len(rec) * 1000, rel=1e-5)
    assert sum(billed.values()) == pytest.approx(rec.cost_usd.astype(np.float64).sum() / len(rec) * 1000, rel=1e-6)
    frame = rec.to_frame()
    assert frame["decided_tier"].dtype == np.int8 and (frame["decided_tier"] != frame["tier"]).sum() == (rec.tier == 1).sum()
    assert same_records(rec, run_fast(sc, policy(digits), digits, 3)) == []


@pytest.fixture(scope="module")
def routerbench(tmp_path_factory):  # noqa: ANN001, ANN201
    """The RouterBench-shaped 11-model table (test_importers), imported: device + 10 remote models."""
    from test_importers import ROUTERBENCH_MODELS, routerbench_wide

    from router_lab.data.contract import validate_frame
    from router_lab.data.importers import import_routerbench

    path = tmp_path_factory.mktemp("rb11") / "rb11.parquet"
    routerbench_wide(n=240).to_parquet(path)
    built = import_routerbench(path, ROUTERBENCH_MODELS[0], ROUTERBENCH_MODELS[-1], np.random.default_rng(0))
    return validate_frame(built.frame, "rb11", built.card)


def test_every_model_gets_a_tier_of_the_template_priced_from_the_dataset(routerbench) -> None:  # noqa: ANN001
    from router_lab.data.contract import model_column
    from router_lab.sim.draws import sample_pool
    from router_lab.sim.tiers import tier_scenarios, with_every_model

    ds = routerbench
    sc = scenario(n=300, every_model={"network": {"rtt_ms": 30.0}, "cloud": FAST_CLOUD},
                  tiers={"mine": {**EDGE, "model": "claude-v1"}})
    assert sc.tiered and sc.every_model is not None
    full = with_every_model(sc, ds)
    assert full.every_model is None and with_every_model(full, ds) == full
    by_model = {t.model: t for t in full.tiers}
    assert sorted(by_model) == sorted(ds.models[1:])  # every remote model, `cloud` included
    assert by_model["claude-v1"].cloud.cost_per_request_usd == 1e-5  # a configured tier keeps its own
    pool = sample_pool(ds, "auto")
    for model in set(ds.models[1:]) - {"claude-v1"}:
        t = by_model[model]
        assert t.name == model and t.network.rtt_ms == 30.0 and t.cloud.units == FAST_CLOUD["units"]
        mean = ds.frame[model_column(model, "cost_usd")].to_numpy()[pool].mean()
        assert t.cloud.cost_per_request_usd == pytest.approx(mean, rel=1e-12)
        assert t.cloud.cost_per_1k_output_tokens_usd == 0.0
    assert [name for name, _ in tier_scenarios(full, ds).values()][-1] == "cloud"  # no base network + cloud
    assert with_every_model(scenario(n=300), ds).tiers == ()  # no template: unchanged
    with pytest.raises(RouterLabError, match=r"^every_model\.network\.max_retries: got 20; expected at most 11 "
                                             r"for the 10 generated tiers"):
        with_every_model(scenario(n=300, every_model={"network": {"max_retries": 20}}), ds)
    with pytest.raises(RouterLabError, match=r"^every_model\.cloud\.units: got 0"):
        scenario(every_model={"cloud": {"units": 0}})


def test_every_model_composes_from_the_deployment_group_and_typos_are_refused() -> None:
    from router_lab.api import config
    from router_lab.config_checks import check_config
    from router_lab.sim.scenario import scenario_from_config

    sc = scenario_from_config(config("deployment=every_model"))
    assert sc.tiers == () and sc.every_model.name == "cloud_small" and sc.every_model.cloud.units == 32
    sc = scenario_from_config(config("deployment=every_model", "tier@every_model=cloud_large",
                                     "every_model.cloud.units=3", "+tier@tiers.edge=edge"))
    assert (sc.every_model.name, sc.every_model.cloud.units, sc.every_model.network.rtt_ms) == ("cloud_large", 3, 40.0)
    assert [t.name for t in sc.tiers] == ["edge"]
    assert scenario_from_config(config()).every_model is None  # two_tier: no template
    with pytest.raises(RouterLabError, match=r"^tier=cloud_larg: no such option; expected one of: cloud_large"):
        config("deployment=every_model", "tier@every_model=cloud_larg")
    with pytest.raises(RouterLabError, match=r"every_model\.cloud\.unitz: no such key"):
        check_config(config("deployment=every_model", "+every_model.cloud.unitz=3"), [])
    with pytest.raises(RouterLabError, match=r"^deployment=every_modle: no such option; expected one of: every_model"):
        config("deployment=every_modle")


@pytest.mark.parametrize("groups", [
    {},
    {"network": {"loss": 0.3, "mean_up_s": 5.0, "mean_down_s": 1.0}, "cloud": LOSSY_CLOUD},
], ids=["plain", "lossy_outages_rate_limit"])
def test_eleven_models_on_every_model_the_fast_path_gives_the_event_driven_records(routerbench, groups) -> None:  # noqa: ANN001
    """deployment=every_model on the 11-model table: 10 generated tiers, each with its own draws;
    requests routed over all of them (and falling back along the price order) give the same records
    in both engines, and the accounting checks hold."""
    template = {"network": {"loss": 0.2}, "cloud": {**LOSSY_CLOUD, "units": 2}} if groups else {"cloud": FAST_CLOUD}
    sc = scenario(n=1500, every_model=template, **groups)
    a = run_simpy(sc, policy(routerbench, tier_of_row=lambda rows: rows % 11), routerbench, 2)
    b = run_fast(sc, policy(routerbench, tier_of_row=lambda rows: rows % 11), routerbench, 2)
    assert same_records(a, b) == [] and all(v == 0 for v in b.violations.values()), b.violations
    assert set(np.unique(b.decided_tier)) == set(range(11)) and len(np.unique(b.tier[b.tier > 0])) == 10
    if groups:
        assert (b.tier != b.decided_tier).sum() > 50  # fallbacks along the tier order
    from router_lab.sim.core import prepare
    tiers = prepare(sc, policy(routerbench, tier_of_row=lambda rows: rows % 11), routerbench, 2).tiers
    assert len(tiers) == 10 and len({t.draws.cloud_service_ns.tobytes() for t in tiers}) == 10  # own draws


@pytest.mark.parametrize("mode", ["input", "input+confidence"])
def test_an_n_model_policy_pre_routes_or_cascades_through_the_tiers(digits, mode: str) -> None:  # noqa: ANN001
    """cost_aware on device -> edge -> cloud, lossy: pre-routing (mode input) sends a request
    straight to its tier, the device never running it; the cascade (input+confidence) runs every
    request on the device first and sends on only those whose tier (chosen after the device) is
    remote, uploading when the device finished.  Both engines give the same records."""
    sc = scenario({"edge": EDGE}, n=2000, network={"loss": 0.2}, cloud=LOSSY_CLOUD)
    make = lambda: make_policy(OmegaConf.create({"name": "cost_aware", "mode": mode}),  # noqa: E731
                               PolicyContext(digits, np.random.default_rng(1)))
    a, b = run_simpy(sc, make(), digits, 3), run_fast(sc, make(), digits, 3)
    assert same_records(a, b) == [] and all(v == 0 for v in b.violations.values()), b.violations
    p = make()
    tiers = p.tiers(a.row.astype(np.int64))
    sent = a.tier > 0
    assert np.array_equal(sent, (tiers > 0) & ~a.sensitive)  # a request leaves iff its tier is remote
    np.testing.assert_array_equal(a.decided_tier, np.where(a.sensitive, 0, tiers))  # chosen before or after the device
    assert set(np.unique(a.tier[sent])) == {1, 2}
    assert (a.tier[sent] <= tiers[sent]).all()  # its tier, or a cheaper one after a failure
    ran_on_device = a.device_start_ns >= 0
    if mode == "input":
        assert set(np.unique(a.route)) == {Route.LOCAL, Route.CLOUD}
        assert not (ran_on_device & (a.route == Route.CLOUD) & (a.outcome == Outcome.CLOUD)).any()
    else:
        assert set(np.unique(a.route[~a.sensitive])) == {Route.CASCADE}
        assert ran_on_device[~a.sensitive].all()
        hop = a.hop_sent_ns[sent]
        assert (hop >= a.device_done_ns[sent]).all()  # uploaded after the device's answer
        assert set(np.unique(a.outcome[sent])) >= {Outcome.CASCADE}


@pytest.mark.parametrize("groups", [
    {},
    {"network": {"loss": 0.3, "mean_up_s": 5.0, "mean_down_s": 1.0},
     "cloud": {**LOSSY_CLOUD, "queue_limit": None}},
    {"network": {"loss": 0.3}, "sim": {"on_cloud_failure": "fail"}},
    {"network": {"loss": 0.4}, "edge_down": True},
], ids=["plain", "lossy_outages_rate_limit", "fail_mode", "edge_outages"])
def test_the_textbook_model_gives_the_engines_records_with_tiers(digits, groups) -> None:  # noqa: ANN001
    """The independent check: the one-process-per-request simpy model (router_lab.sim.reference, one
    ``simpy.Resource`` per tier) and the event-driven engine give identical records with tiers —
    routing by tier, fallback down the tier order, per-tier bills, attempts and timeouts."""
    from router_lab.sim.reference import run_reference

    groups = dict(groups)
    edge = {**EDGE, "cloud": {**EDGE["cloud"], "queue_limit": None}}
    if groups.pop("edge_down", False):
        edge = {**edge, "network": {**edge["network"], "mean_up_s": 2.0, "mean_down_s": 1.0}}
    sc = scenario({"edge": edge}, n=2000, **groups)
    for name, tier_of_row in (("always_cloud", by_three), ("always_cloud", None), ("random", None),
                              ("confidence", None)):
        a = run_simpy(sc, policy(digits, name, tier_of_row), digits, 5)
        b = run_reference(sc, policy(digits, name, tier_of_row), digits, 5)
        assert b.engine == "reference" and same_records(a, b) == [], name
        assert all(v == 0 for v in b.violations.values()), b.violations
        assert (a.tier > 0).any()
