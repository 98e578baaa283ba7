"""The simulated deployment as one frozen value: workload, device, network, cloud and run options.

Built from the config groups once (``scenario_from_config``) and validated here, so every engine can
trust it; a bad value is a one-line :class:`RouterLabError` naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from omegaconf import DictConfig, OmegaConf

from router_lab.config import conf_hint
from router_lab.errors import RouterLabError
from router_lab.sim.arrivals import ARRIVALS
from router_lab.sim.config import (
    BurstyWorkloadConfig,
    CloudConfig,
    DeviceConfig,
    DiurnalWorkloadConfig,
    NetworkConfig,
    ServiceConfig,
    SimSection,
    TierConfig,
    TraceWorkloadConfig,
    WorkloadConfig,
)
from router_lab.sim.engines import check_engine

SERVICES = ("deterministic", "exponential", "lognormal", "profile")
SPLIT_CHOICES = ("auto", "all", "train", "val", "test")
FAILURE_MODES = ("fallback", "fail")
MAX_RETRIES = 100  # network.max_retries in [0, MAX_RETRIES]: attempts (<= 101) fit the int8 counters
MAX_ATTEMPTS_TOTAL = 127  # tiered runs: a request's attempts over every remote tier share one int8 counter


@dataclass(frozen=True)
class Scenario:
    workload: WorkloadConfig
    device: DeviceConfig
    network: NetworkConfig
    cloud: CloudConfig
    sim: SimSection
    tiers: tuple[TierConfig, ...] = ()  # more remote tiers (none: the one `network` + `cloud`)
    # deployment=every_model: the tier preset every remote model no tier serves gets, once the
    # dataset is known (router_lab.sim.tiers.with_every_model); None otherwise
    every_model: TierConfig | None = None

    @property
    def tiered(self) -> bool:
        return bool(self.tiers) or self.every_model is not None


def _to_object(node: Any, schema: type, group: str) -> Any:
    if node is None:  # only when called as a library with a partial config
        raise RouterLabError(f"{group}: no option chosen; expected one option ({conf_hint(group)})")
    if isinstance(node, DictConfig):
        obj = OmegaConf.to_object(node)
        if not isinstance(obj, schema):  # a plain dict (e.g. composed without its schema)
            obj = schema(**OmegaConf.to_container(node, resolve=True))
        return obj
    return node


def scenario_from_config(cfg: Any) -> Scenario:
    """The validated scenario of a composed config (groups workload/device/network/cloud + `sim`)."""
    return validate(Scenario(
        workload=_to_object(cfg.workload, WorkloadConfig, "workload"),
        device=_to_object(cfg.device, DeviceConfig, "device"),
        network=_to_object(cfg.network, NetworkConfig, "network"),
        cloud=_to_object(cfg.cloud, CloudConfig, "cloud"),
        sim=_to_object(cfg.sim, SimSection, "sim"),
        tiers=_tiers_of(getattr(cfg, "tiers", None)),
        every_model=_tier_of(getattr(cfg, "every_model", None), "every_model"),
    ))


def _tiers_of(node: Any) -> tuple[TierConfig, ...]:
    """The ``tiers`` mapping (key -> one `tier` option) as TierConfigs named by their keys."""
    if not node:
        return ()
    return tuple(replace(_tier_of(node[key], f"tiers.{key}"), name=str(key)) for key in node)


def _tier_of(node: Any, group: str) -> TierConfig | None:
    """One `tier` option (a mapping or a TierConfig) as a TierConfig; None stays None."""
    if node is None:
        return None
    tier = _to_object(node, TierConfig, group)
    if isinstance(tier.network, dict):
        tier = replace(tier, network=NetworkConfig(**tier.network))
    if isinstance(tier.cloud, dict):
        tier = replace(tier, cloud=CloudConfig(**tier.cloud))
    return tier


def with_changes(scenario: Scenario, **groups: dict[str, Any]) -> Scenario:
    """A copy with some fields changed, e.g. ``with_changes(sc, device={"units": 2})`` (validated)."""
    parts = {f.name: getattr(scenario, f.name) for f in fields(scenario)}
    for group, changes in groups.items():
        parts[group] = replace(parts[group], **changes)
    return validate(Scenario(**parts))


def _fail(field: str, value: Any, expected: str) -> RouterLabError:
    return RouterLabError(f"{field}: got {value!r}; expected {expected}")


def _non_negative(field: str, value: float | None, positive: bool = False) -> None:
    if value is None:
        return
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise _fail(field, value, "a positive number" if positive else "a non-negative number")


def _probability(field: str, value: float) -> None:
    if not (0.0 <= value <= 1.0):
        raise _fail(field, value, "a probability in [0, 1]")


def _choice(field: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise _fail(field, value, f"one of {', '.join(choices)}")


def _check_service(group: str, svc: ServiceConfig) -> None:
    _choice(f"{group}.service", svc.service, SERVICES)
    _non_negative(f"{group}.service_mean_ms", svc.service_mean_ms, positive=svc.service != "profile")
    _non_negative(f"{group}.service_cv", svc.service_cv)
    if svc.service == "profile" and not svc.profile_path:
        raise _fail(f"{group}.profile_path", svc.profile_path, "a CSV of measured service_ms when service=profile")


def _check_workload(w: WorkloadConfig) -> None:
    ARRIVALS.get(w.kind)  # a registered workload kind
    _non_negative("workload.rate_per_s", w.rate_per_s, positive=True)
    if isinstance(w, BurstyWorkloadConfig):
        for name in ("rate_low_per_s", "rate_high_per_s"):
            _non_negative(f"workload.{name}", getattr(w, name))
        for name in ("mean_low_s", "mean_high_s"):
            _non_negative(f"workload.{name}", getattr(w, name), positive=True)
        if w.rate_low_per_s + w.rate_high_per_s <= 0:
            raise _fail("workload.rate_high_per_s", w.rate_high_per_s, "a positive rate in at least one state")
    if isinstance(w, DiurnalWorkloadConfig):
        _probability("workload.amplitude", w.amplitude)
        _non_negative("workload.period_s", w.period_s, positive=True)
    if isinstance(w, TraceWorkloadConfig):
        _non_negative("workload.time_scale", w.time_scale, positive=True)


def _check_limits(group: str, units: int, queue_limit: int | None) -> None:
    if units < 1:
        raise _fail(f"{group}.units", units, "an integer >= 1")
    if queue_limit is not None and queue_limit < 0:
        raise _fail(f"{group}.queue_limit", queue_limit, "a non-negative integer or null (unbounded)")


def _check_network(group: str, n: NetworkConfig) -> None:
    for name in ("rtt_ms", "rtt_cv", "retry_timeout_ms", "mean_up_s", "mean_down_s"):
        _non_negative(f"{group}.{name}", getattr(n, name))
    for name in ("uplink_mbps", "downlink_mbps"):
        _non_negative(f"{group}.{name}", getattr(n, name), positive=True)
    _probability(f"{group}.loss", n.loss)
    if not 0 <= n.max_retries <= MAX_RETRIES:
        raise _fail(f"{group}.max_retries", n.max_retries, f"an integer in [0, {MAX_RETRIES}]")
    if n.mean_up_s > 0 and n.mean_down_s == 0:
        raise _fail(f"{group}.mean_down_s", n.mean_down_s, "a positive mean outage length when mean_up_s > 0")


def _check_cloud(group: str, c: CloudConfig) -> None:
    _check_service(group, c)
    _check_limits(group, c.units, c.queue_limit)
    for name in ("ttft_ms", "tpot_ms", "cost_per_request_usd", "cost_per_1k_input_tokens_usd",
                 "cost_per_1k_output_tokens_usd"):
        _non_negative(f"{group}.{name}", getattr(c, name))
    _non_negative(f"{group}.timeout_s", c.timeout_s, positive=True)
    if c.rate_limit_rpm is not None and c.rate_limit_rpm < 0:
        raise _fail(f"{group}.rate_limit_rpm", c.rate_limit_rpm, "a non-negative integer or null (no limit)")


def _check_tiers(tiers: tuple[TierConfig, ...], base: NetworkConfig) -> None:
    """Each tier's fields; the models distinct; the attempts of every tier together fit int8
    (a request may try each remote tier once)."""
    models: dict[str, str] = {}
    attempts = base.max_retries + 1
    for t in tiers:
        group = f"tiers.{t.name}"
        if not isinstance(t.model, str) or not t.model or t.model == "device":
            raise _fail(f"{group}.model", t.model, "the name of a dataset model other than the device's")
        if t.model in models:
            raise _fail(f"{group}.model", t.model, f"a model no other tier serves (tiers.{models[t.model]} does)")
        models[t.model] = t.name
        _check_network(f"{group}.network", t.network)
        _check_cloud(f"{group}.cloud", t.cloud)
        attempts += t.network.max_retries + 1
        if attempts > MAX_ATTEMPTS_TOTAL:
            raise _fail(f"{group}.network.max_retries", t.network.max_retries,
                        f"fewer retries: the tiers' attempts together (max_retries + 1 each) at most {MAX_ATTEMPTS_TOTAL}")


def validate(sc: Scenario) -> Scenario:
    """Check every field; return ``sc`` unchanged or raise a one-line error."""
    _check_workload(sc.workload)
    d, s = sc.device, sc.sim
    _check_service("device", d)
    _check_limits("device", d.units, d.queue_limit)
    for name in ("router_overhead_ms", "energy_per_inference_j", "idle_w", "battery_j"):
        _non_negative(f"device.{name}", getattr(d, name))
    _check_network("network", sc.network)
    _check_cloud("cloud", sc.cloud)
    _check_tiers(sc.tiers, sc.network)
    if sc.every_model is not None:
        _check_network("every_model.network", sc.every_model.network)
        _check_cloud("every_model.cloud", sc.every_model.cloud)
    check_engine(s.engine)  # a registered engine, or auto
    _choice("sim.split", s.split, SPLIT_CHOICES)
    _choice("sim.on_cloud_failure", s.on_cloud_failure, FAILURE_MODES)
    if s.n_requests < 1:
        raise _fail("sim.n_requests", s.n_requests, "an integer >= 1")
    _non_negative("sim.duration_s", s.duration_s, positive=True)
    _non_negative("sim.warmup_s", s.warmup_s)
    _non_negative("sim.slo_ms", s.slo_ms, positive=True)
    if s.replications < 1:
        raise _fail("sim.replications", s.replications, "an integer >= 1")
    if s.batches < 2:
        raise _fail("sim.batches", s.batches, "an integer >= 2")
    return sc


def make_scenario(workload: dict[str, Any] | None = None, device: dict[str, Any] | None = None,
                  network: dict[str, Any] | None = None, cloud: dict[str, Any] | None = None,
                  sim: dict[str, Any] | None = None,
                  tiers: dict[str, dict[str, Any]] | None = None,
                  every_model: dict[str, Any] | None = None) -> Scenario:
    """A validated scenario from the schemas' defaults plus overrides (for library use and tests).

    ``workload={"kind": "bursty", ...}`` picks the schema of that kind; ``tiers={"edge": {"model":
    "edge", "network": {...}, "cloud": {...}}}`` adds remote tiers (their fields over the schemas'
    defaults); ``every_model={"network": {...}, "cloud": {...}}`` is deployment=every_model's template.
    """
    workload = dict(workload or {})
    workload.setdefault("kind", "poisson")
    kind = workload["kind"]
    workload_cls = ARRIVALS.entry(kind).schema if kind in ARRIVALS else WorkloadConfig  # unknown: validate says so
    return validate(Scenario(
        workload=workload_cls(**workload),
        device=DeviceConfig(**{"name": "device", **(device or {})}),
        network=NetworkConfig(**{"name": "network", **(network or {})}),
        cloud=CloudConfig(**{"name": "cloud", **(cloud or {})}),
        sim=SimSection(**(sim or {})),
        tiers=tuple(TierConfig(name=key, model=t.get("model", key),
                               network=NetworkConfig(**{"name": "network", **t.get("network", {})}),
                               cloud=CloudConfig(**{"name": "cloud", **t.get("cloud", {})}))
                    for key, t in (tiers or {}).items()),
        every_model=None if every_model is None else TierConfig(
            name="every_model", model="every_model",
            network=NetworkConfig(**{"name": "network", **every_model.get("network", {})}),
            cloud=CloudConfig(**{"name": "cloud", **every_model.get("cloud", {})})),
    ))
