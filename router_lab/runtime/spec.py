"""``policy.json``: the shipped policy's kind and parameters — validated, then built into a policy.

The one definition of the file's schema (version 1).  Export writes it through
:func:`validate_spec`, the runtime reads it through :func:`validate_spec`, and
:func:`build_policy` turns a validated spec into a :class:`~router_lab.runtime.policy.RoutingPolicy`.

    {"format": "router_lab.policy", "schema_version": 1,
     "policy": {"kind": "load_aware", "params": {"slo_ms": 500.0, ...},
                "inner": {"kind": "learned", "params": {"threshold": 0.41}}},
     "scoring": {"source": "router", "file": "router.onnx", "input_dtype": "float32",
                 "feature_names": [...]},
     "provenance": {...}}
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from router_lab.errors import RouterLabError
from router_lab.registry import Registry
from router_lab.runtime.policy import (
    CLOUD,
    LOCAL,
    BudgetPolicy,
    FixedPolicy,
    LoadAwarePolicy,
    RandomPolicy,
    RoutingPolicy,
    Scorer,
    ThresholdPolicy,
)
from router_lab.runtime.tiers import (
    CASCADE_CHECK,
    LAMBDA_CHECK,
    MODELS_CHECK,
    PRICES_CHECK,
    THRESHOLDS_CHECK,
    CostAwarePolicy,
    TierCascadePolicy,
    check_lengths,
)

POLICY_FORMAT = "router_lab.policy"
POLICY_SCHEMA_VERSION = 1
SCORE_SOURCES = ("router", "device_confidence")  # what computes a policy's score (or None)
TOP_KEYS = {"format", "schema_version", "policy", "scoring", "provenance"}


def _number(value: Any, low: float | None = None, high: float | None = None, *, integer: bool = False,
            open_low: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if integer and not isinstance(value, int):
        return False
    if not math.isfinite(value):
        return False
    if low is not None and (value <= low if open_low else value < low):
        return False
    return high is None or value <= high


@dataclass(frozen=True)
class RuntimeKind:
    """A decision rule the runtime can ship: its parameters (every one required but those with a
    default, no others allowed: name -> (check, what is expected)) and how a validated node
    becomes a policy."""

    params: dict[str, tuple[Callable[[Any], bool], str]]
    build: Callable[[dict[str, Any], RoutingPolicy | None, Scorer | None], RoutingPolicy]  # (params, inner, scorer)
    score_source: str | None = None  # one of SCORE_SOURCES, or None (the policy uses no score)
    fixed_threshold: bool = False  # its `threshold` is compiled into the router graph
    wraps: bool = False  # it has an `inner` node (another kind) that it overrides
    check: Callable[[dict[str, Any]], str | None] | None = None  # cross-field check: a problem, or None
    models: bool = False  # an N-model rule: its score is one predicted quality per model in `models`
    # parameters added within a schema version: their value when a file (written before) omits them
    defaults: dict[str, Any] | None = None


# The shipped kinds, by name: a lab policy ships one of these (its ``node()``), so a new lab policy
# that reuses a kind needs no runtime change; a new rule registers its kind here (numpy/stdlib only).
KINDS: Registry[RuntimeKind] = Registry("runtime policy kind", field="policy.kind")


def register_kind(name: str, params: dict[str, tuple[Callable[[Any], bool], str]],
                  build: Callable[[dict[str, Any], RoutingPolicy | None, Scorer | None], RoutingPolicy],
                  **options: Any) -> RuntimeKind:
    return KINDS.register(name, RuntimeKind(params, build, **options))


_FRACTION = (lambda v: _number(v, 0.0, 1.0), "a number in [0, 1]")
_FINITE = (lambda v: _number(v), "a finite number")
_POSITIVE = (lambda v: _number(v, 0.0, open_low=True), "a positive number")
register_kind("always_local", {}, lambda p, inner, scorer: FixedPolicy(LOCAL, "always_local", scorer))
register_kind("always_cloud", {}, lambda p, inner, scorer: FixedPolicy(CLOUD, "always_cloud", scorer))
register_kind("random", {"p_cloud": _FRACTION,
                         "seed": (lambda v: _number(v, 0, 2**63 - 1, integer=True), "an integer >= 0")},
              lambda p, inner, scorer: RandomPolicy(p["p_cloud"], p["seed"], scorer))
for _kind, _source in (("learned", "router"), ("learned_cascade", "router"), ("confidence", "device_confidence")):
    register_kind(_kind, {"threshold": _FINITE},
                  lambda p, inner, scorer, kind=_kind: ThresholdPolicy(p["threshold"], cascade=kind != "learned",
                                                                       kind=kind, scorer=scorer),
                  score_source=_source, fixed_threshold=_source == "router")
register_kind("budget", {"target_cloud_fraction": _FRACTION, "step": _POSITIVE, "initial_threshold": _FINITE},
              lambda p, inner, scorer: BudgetPolicy(p["target_cloud_fraction"], p["step"], p["initial_threshold"],
                                                    scorer),
              score_source="router")
register_kind("load_aware", {"slo_ms": (lambda v: v is None or _number(v, 0.0, open_low=True), "null or a positive number"),
                             "service_ms": (lambda v: _number(v, 0.0), "a number >= 0"),
                             "units": (lambda v: _number(v, 1, integer=True), "an integer >= 1"),
                             "backoff_count": (lambda v: _number(v, 1, integer=True), "an integer >= 1"),
                             "backoff_window_s": _POSITIVE},
              lambda p, inner, scorer: LoadAwarePolicy(inner, p["slo_ms"], p["service_ms"], p["units"],
                                                       p["backoff_count"], p["backoff_window_s"], scorer),
              wraps=True)

# N-model rules (router_lab.runtime.tiers): the router graph predicts one quality per model
# (`cascade`: the device answers first and the tier is chosen after it; added in version 1, false
# when a file omits it)
register_kind("cost_aware", {"models": MODELS_CHECK, "prices_usd": PRICES_CHECK, "lambda": LAMBDA_CHECK,
                             "cascade": CASCADE_CHECK},
              lambda p, inner, scorer: CostAwarePolicy(p["models"], p["prices_usd"], p["lambda"], scorer,
                                                       p["cascade"]),
              score_source="router", check=check_lengths, models=True, defaults={"cascade": False})
register_kind("tier_cascade", {"models": MODELS_CHECK, "prices_usd": PRICES_CHECK, "thresholds": THRESHOLDS_CHECK,
                               "cascade": CASCADE_CHECK},
              lambda p, inner, scorer: TierCascadePolicy(p["models"], p["prices_usd"], p["thresholds"], scorer,
                                                         p["cascade"]),
              score_source="router", check=check_lengths, models=True, defaults={"cascade": False})


def innermost(node: dict[str, Any]) -> dict[str, Any]:
    """The node that decides: ``node`` itself, or the one a wrapper (load_aware) wraps."""
    return innermost(node["inner"]) if KINDS.get(node["kind"]).wraps else node


def policy_models(node: dict[str, Any]) -> tuple[str, ...]:
    """The models an N-model policy node routes among, in tier order (() for a two-model kind)."""
    rule = KINDS.get(node["kind"])
    if rule.wraps:
        return policy_models(node["inner"])
    return tuple(node["params"]["models"]) if rule.models else ()


def _check_node(node: Any, where: str, source: str, parent: str | None = None) -> None:
    if not isinstance(node, dict) or set(node) - {"kind", "params", "inner"} or "kind" not in node:
        raise RouterLabError(f"{source}: field '{where}' must be an object with 'kind', 'params' "
                             "(and 'inner' for load_aware)")
    kind = node["kind"]
    if kind not in KINDS:
        raise RouterLabError(f"{source}: field '{where}.kind' is {kind!r}; expected one of "
                             f"{', '.join(KINDS.names())}")
    rule = KINDS.get(kind)
    if rule.wraps and parent:
        raise RouterLabError(f"{source}: field '{where}' is {kind} inside {parent}; expected another policy")
    params = node.get("params")
    if not isinstance(params, dict):
        raise RouterLabError(f"{source}: field '{where}.params' must be an object")
    expected = rule.params
    unknown = sorted(set(params) - set(expected))
    missing = sorted(set(expected) - set(params) - set(rule.defaults or {}))
    if unknown or missing:
        what = f"unknown {unknown[0]!r}" if unknown else f"missing {missing[0]!r}"
        named = [k + (" (optional)" if k in (rule.defaults or {}) else "") for k in expected]
        raise RouterLabError(f"{source}: field '{where}.params' has {what}; expected exactly "
                             f"{', '.join(named) or '(none)'} for {kind}")
    for key, (check, text) in expected.items():
        if key in params and not check(params[key]):
            raise RouterLabError(f"{source}: field '{where}.params.{key}' is {params[key]!r}; expected {text}")
    problem = rule.check({**(rule.defaults or {}), **params}) if rule.check is not None else None
    if problem:
        raise RouterLabError(f"{source}: field '{where}.params' {problem} for {kind}")
    if rule.wraps:
        if "inner" not in node:
            raise RouterLabError(f"{source}: field '{where}.inner' missing; {kind} wraps another policy")
        _check_node(node["inner"], f"{where}.inner", source, parent=kind)
        if KINDS.get(node["inner"]["kind"]).models:
            raise RouterLabError(f"{source}: field '{where}.inner.kind' is {node['inner']['kind']!r}, an N-model "
                                 f"rule; {kind} wraps a two-model one")
    elif "inner" in node:
        wrappers = [n for n in KINDS.names() if KINDS.get(n).wraps]
        raise RouterLabError(f"{source}: field '{where}.inner' is only for {', '.join(wrappers)}")


def score_source(node: dict[str, Any]) -> str | None:
    """What computes this policy's score: the router graph, the device's confidence, or nothing."""
    rule = KINDS.get(node["kind"])
    return score_source(node["inner"]) if rule.wraps else rule.score_source


def validate_spec(spec: Any, source: str) -> dict[str, Any]:
    """``spec`` checked against schema version 1 (one-line errors naming the field); returned."""
    if not isinstance(spec, dict):
        raise RouterLabError(f"{source}: expected a JSON object")
    if spec.get("format") != POLICY_FORMAT:
        raise RouterLabError(f"{source}: field 'format' is {spec.get('format')!r}; expected {POLICY_FORMAT!r}")
    if spec.get("schema_version") != POLICY_SCHEMA_VERSION:
        raise RouterLabError(f"{source}: field 'schema_version' is {spec.get('schema_version')!r}; this "
                             f"runtime reads version {POLICY_SCHEMA_VERSION}")
    unknown = sorted(set(spec) - TOP_KEYS)
    if unknown:
        raise RouterLabError(f"{source}: unknown field {unknown[0]!r}; expected {', '.join(sorted(TOP_KEYS))}")
    _check_node(spec.get("policy"), "policy", source)
    scoring = spec.get("scoring")
    needed = score_source(spec["policy"])
    if not isinstance(scoring, dict) or scoring.get("source") != needed:
        got = scoring.get("source") if isinstance(scoring, dict) else scoring
        raise RouterLabError(f"{source}: field 'scoring.source' is {got!r}; expected {needed!r} for "
                             f"policy {spec['policy']['kind']}")
    if needed == "router" and not isinstance(scoring.get("file"), str):
        raise RouterLabError(f"{source}: field 'scoring.file' missing; expected the router model's file name")
    return spec


def build_policy(node: dict[str, Any], scorer: Scorer | None = None) -> RoutingPolicy:
    """A fresh policy from a validated ``policy`` node."""
    rule = KINDS.get(node["kind"])
    inner = build_policy(node["inner"], scorer) if rule.wraps else None
    return rule.build({**(rule.defaults or {}), **node["params"]}, inner, scorer)


def policy_threshold(node: dict[str, Any]) -> float | None:
    """The fixed threshold a policy compares the router's score with (None: none fixed)."""
    rule = KINDS.get(node["kind"])
    if rule.wraps:
        return policy_threshold(node["inner"])
    return float(node["params"]["threshold"]) if rule.fixed_threshold else None
