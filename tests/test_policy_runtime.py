"""The device-side policy core on its own: reasons, privacy pinning by session, backoff window,
budget controller, thread safety, and batch == one by one."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from router_lab.errors import RouterLabError
from router_lab.runtime.policy import Outcome, Request, Route, Signals
from router_lab.runtime.spec import POLICY_FORMAT, build_policy, validate_spec


def node(kind: str, **params):
    return {"kind": kind, "params": params}


LEARNED = node("learned", threshold=0.5)


def test_a_sensitive_request_pins_its_session_to_the_device():
    policy = build_policy(node("always_cloud"))
    assert policy.decide(Request(session_id="a")).route == Route.CLOUD
    pinned = policy.decide(Request(sensitive=True, session_id="a"))
    assert (pinned.route, pinned.reason) == (Route.LOCAL, "sensitive")
    later = policy.decide(Request(session_id="a"))
    assert (later.route, later.reason) == (Route.LOCAL, "session_pinned")
    assert policy.decide(Request(session_id="b")).route == Route.CLOUD  # other sessions are free
    state = policy.state()
    assert state["pinned_sessions"] == 1 and state["n_blocked"] == 2 and state["n_pinned"] == 2


def test_threshold_cascade_and_reasons():
    learned = build_policy(LEARNED)
    assert learned.decide(Request(score=0.7)) == (Route.CLOUD, 0.7, "threshold")
    assert learned.decide(Request(score=0.2)).route == Route.LOCAL
    cascade = build_policy(node("learned_cascade", threshold=0.4))
    assert cascade.decide(Request()).route == Route.CASCADE
    assert cascade.escalate(Request(), 0.41).route == Route.CLOUD
    assert cascade.escalate(Request(sensitive=True), 0.99).reason == "sensitive"
    with pytest.raises(ValueError, match="needs a router score"):
        learned.decide(Request())  # no score and no router to compute one


def test_batch_decisions_equal_one_by_one_for_every_stateless_policy():
    rng = np.random.default_rng(0)
    scores = rng.random(500)
    pinned = rng.random(500) < 0.1
    for spec in (node("always_local"), node("always_cloud"), node("random", p_cloud=0.3, seed=4), LEARNED,
                 node("confidence", threshold=0.2)):
        batch = build_policy(spec).decide_batch(scores, pinned)
        single = build_policy(spec)
        one = [single.decide(Request(score=float(s), sensitive=bool(p))).route for s, p in zip(scores, pinned, strict=True)]
        np.testing.assert_array_equal(batch, np.array(one, dtype=np.int8), err_msg=spec["kind"])


def test_backoff_counts_rejections_and_timeouts_within_its_window():
    policy = build_policy({"kind": "load_aware", "params": {"slo_ms": None, "service_ms": 10.0, "units": 1,
                                                             "backoff_count": 2, "backoff_window_s": 5.0},
                           "inner": node("always_cloud")})
    policy.observe(Outcome(1.0, cloud_failed=True, error="rejected"))
    assert policy.decide(Request(), Signals(now_s=2.0)).route == Route.CLOUD  # one is not enough
    policy.observe(Outcome(2.5, cloud_failed=True, error="timeout"))
    assert policy.decide(Request(), Signals(now_s=3.0)).reason == "backoff"
    assert policy.decide(Request(), Signals(now_s=6.01)).route == Route.CLOUD  # 1.0 left the window


def test_budget_controller_tracks_its_target_on_a_shifting_score_mix():
    policy = build_policy(node("budget", target_cloud_fraction=0.25, step=0.05, initial_threshold=0.0))
    rng = np.random.default_rng(1)
    scores = rng.random(20_000) + np.linspace(0, 3, 20_000)  # the mix drifts upwards by 3
    sent = np.array([policy.decide(Request(score=float(s))).route == Route.CLOUD for s in scores])
    assert abs(sent[2000:].mean() - 0.25) < 0.01  # the lag bound: drift / (step * T) = 3 / 900


def test_decide_and_observe_are_safe_from_several_threads():
    policy = build_policy(node("budget", target_cloud_fraction=0.5, step=0.01, initial_threshold=0.5))
    rng = np.random.default_rng(2)
    scores = rng.random((4, 5000))

    def work(k: int) -> None:
        for s in scores[k]:
            policy.decide(Request(score=float(s)))
            policy.observe(Outcome(1.0, 5.0, "cloud", cost_usd=0.001))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state = policy.state()
    assert state["n_decided"] == 20_000 == state["n_observed"]
    assert state["spent_usd"] == pytest.approx(20.0)
    assert abs(state["n_cloud"] / 20_000 - 0.5) < 0.02


@pytest.mark.parametrize("bad, fragment", [
    ({"kind": "oracle", "params": {}}, "policy.kind"),
    (node("learned"), "missing 'threshold'"),
    (node("learned", threshold=float("nan")), "policy.params.threshold"),
    (node("random", p_cloud=1.5, seed=0), "p_cloud"),
    (node("budget", target_cloud_fraction=0.2, step=0.0, initial_threshold=0.1), "step"),
    ({"kind": "load_aware", "params": {"slo_ms": 1.0, "service_ms": 1.0, "units": 1, "backoff_count": 1,
                                       "backoff_window_s": 1.0}, "inner": {"kind": "load_aware", "params": {}}},
     "load_aware inside load_aware"),
])
def test_policy_json_schema_errors_name_the_field(bad, fragment):
    document = {"format": POLICY_FORMAT, "schema_version": 1, "policy": bad,
                "scoring": {"source": None}, "provenance": {}}
    with pytest.raises(RouterLabError, match=fragment.replace("(", r"\(")):
        validate_spec(document, "policy.json")


def test_a_two_model_policy_sends_its_cloud_routes_to_the_model_named_cloud(digits) -> None:  # noqa: ANN001
    """The N-model interface's two-model case: no tier in the decision, decide_tiers maps CLOUD and
    CASCADE to the index of `cloud` in the dataset's models (digits: device, edge, cloud → 2)."""
    import numpy as np
    from omegaconf import OmegaConf

    from router_lab.policies.base import PolicyContext
    from router_lab.policies.registry import make_policy
    from router_lab.runtime.policy import Route, decision_tier

    assert digits.models == ("device", "edge", "cloud")
    rows = np.arange(200)
    for name in ("always_cloud", "random", "confidence"):
        policy = make_policy(OmegaConf.create({"name": name}), PolicyContext(digits, np.random.default_rng(1)))
        routes, tiers = policy.decide_tiers(rows)
        assert set(np.unique(tiers)) <= {0, 2}
        assert np.array_equal(tiers == 0, routes == Route.LOCAL), name
        assert decision_tier(policy.core.decide(policy.request(0, False))) is None
