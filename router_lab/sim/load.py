"""Offered load of the device and the cloud, and the refusal of runs whose queues cannot settle.

A station with utilisation >= 1 and no queue limit grows without bound, so its waits say nothing
about the deployment; such a run is refused unless ``sim.allow_unstable`` is set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from router_lab.errors import RouterLabError
from router_lab.policies.base import Route
from router_lab.sim.decisions import Decisions
from router_lab.sim.draws import NS_PER_S, Draws
from router_lab.sim.scenario import Scenario

if TYPE_CHECKING:
    from router_lab.sim.tiers import Tier


def utilisation(rate_per_s: float, mean_service_ns: float, units: int) -> float:
    return rate_per_s * mean_service_ns / NS_PER_S / units


def check_load(sc: Scenario, draws: Draws, decisions: Decisions, tiers: list[Tier] | None = None) -> None:
    """Raise a one-line error when a station without a queue limit is offered utilisation >= 1."""
    n = len(draws)
    span_s = (int(draws.arrival_ns[-1]) - int(draws.arrival_ns[0])) / NS_PER_S
    if sc.sim.allow_unstable or decisions.route is None or n < 2 or span_s <= 0:
        return  # a stateful policy's mix is unknown before the run
    rate = (n - 1) / span_s
    route = decisions.route
    to_device = route != Route.CLOUD
    if sc.device.queue_limit is None and to_device.any():
        mean_service = np.sum(draws.device_service_ns, where=to_device) / to_device.sum()
        rho = utilisation(rate * to_device.mean(), mean_service, sc.device.units)
        if rho >= 1:
            raise RouterLabError(
                f"device: utilisation {rho:.2f} >= 1 with no queue limit ({rate:.3g} req/s, "
                f"{to_device.mean():.0%} on the device, {sc.device.units} unit(s)); the queue never "
                "settles: lower the workload rate, route more to the cloud, or set device.queue_limit")
    remote = (route == Route.CLOUD) | ((route == Route.CASCADE) & decisions.escalate)
    if decisions.tier is None or tiers is None:
        _check_remote(sc, "cloud", draws, remote, rate)
        return
    for t in tiers:
        _check_remote(t.sc, "cloud" if t.name == "cloud" else f"tiers.{t.name}.cloud", t.draws,
                      remote & (decisions.tier == t.index), rate)


def _check_remote(sc: Scenario, group: str, draws: Draws, to_cloud: np.ndarray, rate: float) -> None:
    """The refusal for one remote station (``sc.cloud`` behind ``sc.network``)."""
    if sc.cloud.queue_limit is None and to_cloud.any() and not sc.network.offline:
        cloud_rate = rate * to_cloud.mean()
        if sc.cloud.rate_limit_rpm is not None:
            cloud_rate = min(cloud_rate, sc.cloud.rate_limit_rpm / 60.0)
        mean_service = np.sum(draws.cloud_service_ns, where=to_cloud) / to_cloud.sum()
        rho = utilisation(cloud_rate, mean_service, sc.cloud.units)
        if rho >= 1:
            raise RouterLabError(
                f"{group}: utilisation {rho:.2f} >= 1 with no queue limit ({cloud_rate:.3g} req/s to "
                f"{sc.cloud.units} unit(s)); the queue never settles: lower the rate, add {group}.units, "
                f"or set {group}.queue_limit / {group}.rate_limit_rpm")
