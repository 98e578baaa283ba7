"""The routing interface between policies and the simulator (and offline evaluation).

A policy is bound to one dataset when it is made (``make_policy(cfg, context)``), so it can look up
per-row scores by the request's row index.  It answers in two ways that share one scoring core:

* ``decide_batch(indices)``: vectorised, state-free routes for many requests (offline evaluation
  and the simulator's fast path; also how the simpy engine pre-computes stateless policies);
* ``decide(request, state)``: one request, given a read-only snapshot of the system (simpy engine).

A ``CASCADE`` route runs the request on the device first; ``escalate(indices)`` then says which of
those go on to the cloud (the device's time is paid in full and the cloud's on top).  A request
whose ``sensitive`` flag is set is always routed ``LOCAL`` here, whatever the policy would choose;
the simulator enforces the same rule again and counts any attempt.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from router_lab.data.contract import Dataset


class Route(enum.IntEnum):
    LOCAL = 0
    CLOUD = 1
    CASCADE = 2


@dataclass(frozen=True)
class RequestView:
    """What a policy may know about one request before it is routed."""

    index: int  # row of the request in the dataset
    input_bytes: int = 0
    output_bytes: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    sensitive: bool = False


@dataclass(frozen=True)
class SystemState:
    """A read-only snapshot of the deployment when a request arrives (simulated time)."""

    now_s: float = 0.0
    device_queue_len: int = 0  # requests waiting for a device unit
    device_busy: int = 0  # device units serving
    device_units: int = 1
    device_mean_service_s: float = 0.0  # the device profile's mean service time
    network_up: bool = True
    cloud_queue_len: int = 0
    cloud_in_flight: int = 0
    recent_latency_ms: float = 0.0  # moving average of end-to-end latency of finished requests
    recent_cloud_rejections: int = 0  # cloud rejections/timeouts in the recent window
    cloud_spent_usd: float = 0.0
    n_decided: int = 0  # requests routed so far
    n_cloud: int = 0  # of which sent to the cloud (including escalations)


@dataclass(frozen=True)
class PolicyContext:
    """What policies are built from: the dataset, a seeded generator, optional trained router."""

    dataset: Dataset
    rng: np.random.Generator
    router: Any = None  # a trained router (see router_lab.train), for the learned policies
    slo_ms: float | None = None


class Policy(abc.ABC):
    """Base class: subclasses implement ``_routes``; sensitive requests are pinned here."""

    name: ClassVar[str] = ""
    stateless: ClassVar[bool] = True  # decision independent of SystemState (fast-path eligible)
    scored: ClassVar[bool] = False  # has a routing score (``scores``) the evaluation can sweep
    upper_bound: ClassVar[bool] = False  # knows the outcomes (oracle): a ceiling, not deployable

    def __init__(self, context: PolicyContext) -> None:
        self.context = context
        self._sensitive = context.dataset.column_or("sensitive", False).astype(bool)

    @abc.abstractmethod
    def _routes(self, indices: np.ndarray) -> np.ndarray:
        """The policy's own routes (int8 values of :class:`Route`) for these rows."""

    def decide_batch(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        routes = np.asarray(self._routes(indices), dtype=np.int8).copy()
        routes[self._sensitive[indices]] = Route.LOCAL
        return routes

    def decide(self, request: RequestView, state: SystemState) -> Route:
        return Route(int(self.decide_batch(np.array([request.index]))[0]))

    def escalate(self, indices: np.ndarray) -> np.ndarray:
        """For CASCADE routes: which requests go on to the cloud after the device answered."""
        return np.zeros(len(indices), dtype=bool)

    def scores(self, indices: np.ndarray) -> np.ndarray:
        """The scoring core: reason to use the cloud per row (higher = more), the quantity the
        policy thresholds and the offline evaluation sweeps.  Policies with ``scored`` override it."""
        raise NotImplementedError(f"policy {self.name!r} has no routing score to sweep")

    def offline_cloud(self, indices: np.ndarray) -> np.ndarray:
        """Which of these requests the cloud answers offline (no load): CLOUD routes plus the
        CASCADE routes that ``escalate`` sends on."""
        indices = np.asarray(indices, dtype=np.int64)
        routes = self.decide_batch(indices)
        cloud = routes == Route.CLOUD
        cascade = np.flatnonzero(routes == Route.CASCADE)
        if cascade.size:
            cloud[cascade] = np.asarray(self.escalate(indices[cascade]), dtype=bool)
        return cloud & ~self._sensitive[indices]
