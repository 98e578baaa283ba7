"""The routing policy core that ships: ``decide(request, signals)`` and ``observe(outcome)``.

One implementation, driven identically by an app on a device, the simulator and the live testbed.
It imports only numpy and the standard library.  A policy keeps its state in plain attributes
(``state()`` prints it) and has no clock of its own: time comes in with the signals and outcomes.

* :class:`Request` — what the app knows about a request (features or text, a precomputed router
  score if it has one, the ``sensitive`` flag, a session id);
* :class:`Signals` — what the app can observe at that moment (local requests in flight and queued,
  whether the network is reachable);
* :class:`Outcome` — feedback when the app learns something (a request finished; a cloud attempt
  failed or was rejected), from which the online controllers update (backoff window, budget,
  latency estimate, spend);
* :class:`Decision` — ``route`` (local / cloud / cascade), ``score`` and a machine-readable
  ``reason`` (one of :data:`REASONS`).

All four are immutable named tuples (cheap to make: a decision costs about 2 µs beside the model).

Privacy is owned here, by the base class, for every policy and entry point: a sensitive request
stays on the device, and pins its session (``session_id``) so that later requests of that
session stay on the device too; ``state()`` counts the pinned sessions and blocked requests.
"""

from __future__ import annotations

import enum
import math
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import numpy as np


class Route(enum.IntEnum):
    LOCAL = 0
    CLOUD = 1
    CASCADE = 2  # run on the device first; ``escalate`` then says whether the cloud answers too


REASONS = ("fixed", "random", "threshold", "cascade", "budget", "slo", "offline", "backoff",
           "sensitive", "session_pinned", "cost_aware", "tier_cascade")
REASON_CODES = {name: code for code, name in enumerate(REASONS)}
ERRORS = ("rejected", "timeout", "network")  # kinds of cloud failure an Outcome can report
NAN = float("nan")


class Request(NamedTuple):
    """One request as the app sees it before routing (no dataset, no row index)."""

    features: Any = None  # float32 [F] router inputs, in the bundle's feature order
    text: str | None = None  # the raw prompt, for a text router
    sensitive: bool = False  # must not leave the device
    session_id: str | None = None  # conversation / session; pinned once it carries a sensitive request
    score: float | None = None  # the router's score when the caller computed it already


class Signals(NamedTuple):
    """What the app can observe when the request arrives."""

    now_s: float = 0.0  # the app's monotonic clock, seconds
    local_in_flight: int = 0  # requests the device model is serving now
    local_queued: int = 0  # requests waiting for the device model
    network_up: bool = True  # whether the cloud is reachable (OS reachability)


class Outcome(NamedTuple):
    """Feedback: a request finished, or a cloud attempt failed (call ``observe`` when learned)."""

    now_s: float
    latency_ms: float | None = None  # end-to-end, when a request finished
    answered_by: str | None = None  # "local" | "cloud" | None (no answer)
    cloud_failed: bool = False  # a cloud attempt failed / was rejected / timed out
    error: str = ""  # with cloud_failed: "rejected" (429/503), "timeout", "network"; "" = unspecified
    cost_usd: float = 0.0  # what the cloud call cost, when the app learns it


class Decision(NamedTuple):
    route: Route
    score: float
    reason: str


class TierDecision(NamedTuple):
    """An N-model policy's decision: a :class:`Decision` plus ``tier``, the index in the policy's
    ``models`` (tier order, 0 = the device) of the model that answers (a separate type, so that
    two-model apps keep unpacking ``route, score, reason``)."""

    route: Route
    score: float
    reason: str
    tier: int


def decision_tier(decision: Decision | TierDecision) -> int | None:
    """The tier a decision names, or None for a two-model decision (LOCAL: the device; else the cloud)."""
    return getattr(decision, "tier", None)


IDLE = Signals()
LOCAL, CLOUD, CASCADE = Route.LOCAL, Route.CLOUD, Route.CASCADE
Scorer = Callable[[Request], float]


class RoutingPolicy:
    """Base class: privacy pinning, feedback bookkeeping and the lock; subclasses decide.

    Subclasses implement ``_decide(request, signals, pinned)``; ``pinned`` tells a stateful policy
    that the request will stay local whatever it says (so a budget does not count it as sent).
    """

    kind: ClassVar[str] = ""
    stateless: ClassVar[bool] = True  # decisions depend on the request alone (batchable)
    cascade: ClassVar[bool] = False  # routes CASCADE and escalates by score after the device
    uses_score: ClassVar[bool] = False  # needs the router's score before routing
    models: tuple[str, ...] = ()  # N-model policies: the models in tier order (0 = the device); () = two
    LATENCY_EWMA: ClassVar[float] = 0.05

    def __init__(self, scorer: Scorer | None = None) -> None:
        self.scorer = scorer
        self._lock = threading.RLock()
        self.pinned_sessions: set[str] = set()
        self.n_decided = 0
        self.n_blocked = 0  # requests the policy would have sent off the device but privacy kept
        self.n_pinned = 0  # requests kept local because of the sensitive flag or their session
        self.n_observed = 0
        self.recent_latency_ms = 0.0
        self.spent_usd = 0.0
        self.cloud_failures = 0

    # -- the app-facing calls ----------------------------------------------------------------
    def decide(self, request: Request, signals: Signals = IDLE) -> Decision:
        with self._lock:
            pin = self._pin_reason(request)
            decision = self._decide(request, signals, pin is not None)
            self.n_decided += 1
            if pin is None:
                return decision
            self.n_pinned += 1
            if decision.route != LOCAL:
                self.n_blocked += 1
            if isinstance(decision, TierDecision):  # an N-model rule: the device is tier 0
                return TierDecision(LOCAL, decision.score, pin, 0)
            return Decision(LOCAL, decision.score, pin)

    def escalate(self, request: Request, score: float) -> Decision:
        """After a CASCADE route's device answer: cloud when ``score`` >= the threshold."""
        with self._lock:
            pin = self._pin_reason(request)
            if pin is not None:
                return Decision(LOCAL, float(score), pin)
            return self._escalate(float(score))

    def observe(self, outcome: Outcome) -> None:
        with self._lock:
            self.n_observed += 1
            if outcome.latency_ms is not None:
                self.recent_latency_ms += self.LATENCY_EWMA * (outcome.latency_ms - self.recent_latency_ms)
            if outcome.answered_by == "cloud":
                self.spent_usd += outcome.cost_usd
            if outcome.cloud_failed:
                self.cloud_failures += 1
            self._observe(outcome)

    def state(self) -> dict[str, Any]:
        """The controllers' state, printable (for audit, logs and tests)."""
        with self._lock:
            return {"kind": self.kind, "n_decided": self.n_decided, "n_pinned": self.n_pinned,
                    "n_blocked": self.n_blocked, "pinned_sessions": len(self.pinned_sessions),
                    "n_observed": self.n_observed, "recent_latency_ms": self.recent_latency_ms,
                    "spent_usd": self.spent_usd, "cloud_failures": self.cloud_failures,
                    **self._state()}

    # -- vectorised path for stateless policies (the simulator's fast path) --------------------
    def decide_batch(self, scores: np.ndarray | None, pinned: np.ndarray) -> np.ndarray:
        """Routes (int8) for many requests in order: exactly what ``decide`` would give one by one
        (the replay checks it).  Only for stateless policies; sessions are not tracked here."""
        if not self.stateless:
            raise TypeError(f"policy {self.kind!r} is stateful; decide requests one by one")
        pinned = np.asarray(pinned, dtype=bool)
        with self._lock:
            routes = np.asarray(self._decide_batch(scores, len(pinned)), dtype=np.int8).copy()
            off = pinned & (routes != LOCAL)
            self.n_decided += len(pinned)
            self.n_pinned += int(pinned.sum())
            self.n_blocked += int(off.sum())
            routes[pinned] = LOCAL
            return routes

    def escalate_batch(self, scores: np.ndarray | None, pinned: np.ndarray) -> np.ndarray:
        """Whether each CASCADE request goes on to the cloud (vectorised ``escalate``)."""
        pinned = np.asarray(pinned, dtype=bool)
        if not self.cascade or scores is None:
            return np.zeros(len(pinned), dtype=bool)
        return (np.asarray(scores, dtype=np.float64) >= self.escalation_threshold) & ~pinned

    # -- hooks --------------------------------------------------------------------------------
    def _decide(self, request: Request, signals: Signals, pinned: bool) -> Decision:
        raise NotImplementedError

    def _decide_batch(self, scores: np.ndarray | None, n: int) -> np.ndarray:
        raise NotImplementedError

    def _escalate(self, score: float) -> Decision:
        if not self.cascade:
            return Decision(LOCAL, score, "threshold")
        return Decision(CLOUD if score >= self.escalation_threshold else LOCAL, score, "threshold")

    def _observe(self, outcome: Outcome) -> None:
        pass

    def _state(self) -> dict[str, Any]:
        return {}

    @property
    def escalation_threshold(self) -> float:
        return math.inf

    # -- helpers ------------------------------------------------------------------------------
    def _pin_reason(self, request: Request) -> str | None:
        session = request.session_id
        if request.sensitive:
            if session is not None:
                self.pinned_sessions.add(session)
            return "sensitive"
        if session is not None and session in self.pinned_sessions:
            return "session_pinned"
        return None

    def _score(self, request: Request) -> float:
        if request.score is not None:
            return float(request.score)
        if self.scorer is None:
            raise ValueError(f"policy {self.kind!r} needs a router score: pass Request.score or "
                             "load the policy from a bundle with its router")
        return float(self.scorer(request))


class FixedPolicy(RoutingPolicy):
    """Always the same route (``always_local``, ``always_cloud``)."""

    def __init__(self, route: Route, kind: str, scorer: Scorer | None = None) -> None:
        super().__init__(scorer)
        self.route = Route(route)
        self.kind = kind  # type: ignore[misc] - per instance: one class serves both kinds

    def _decide(self, request: Request, signals: Signals, pinned: bool) -> Decision:
        return Decision(self.route, NAN, "fixed")

    def _decide_batch(self, scores: np.ndarray | None, n: int) -> np.ndarray:
        return np.full(n, self.route, dtype=np.int8)


class RandomPolicy(RoutingPolicy):
    """Cloud with probability ``p_cloud``: one draw per decision from its own seeded generator
    (``decide_batch`` draws the same stream, so one by one and batched agree)."""

    kind = "random"

    def __init__(self, p_cloud: float, seed: int, scorer: Scorer | None = None) -> None:
        super().__init__(scorer)
        self.p_cloud = float(p_cloud)
        self.seed = int(seed)
        self.rng = np.random.Generator(np.random.PCG64(self.seed))

    def _decide(self, request: Request, signals: Signals, pinned: bool) -> Decision:
        return Decision(CLOUD if self.rng.random() < self.p_cloud else LOCAL, self.p_cloud, "random")

    def _decide_batch(self, scores: np.ndarray | None, n: int) -> np.ndarray:
        return np.where(self.rng.random(n) < self.p_cloud, CLOUD, LOCAL).astype(np.int8)


class ThresholdPolicy(RoutingPolicy):
    """Score >= ``threshold``: straight to the cloud (``learned``), or — for a cascade
    (``learned_cascade``, ``confidence``) — answer on the device and escalate."""

    uses_score = True

    def __init__(self, threshold: float, cascade: bool, kind: str, scorer: Scorer | None = None) -> None:
        super().__init__(scorer)
        self.threshold = float(threshold)
        self.cascade = bool(cascade)  # type: ignore[misc]
        self.uses_score = not self.cascade  # type: ignore[misc] - a cascade scores after the device
        self.kind = kind  # type: ignore[misc]

    @property
    def escalation_threshold(self) -> float:
        return self.threshold if self.cascade else math.inf

    def _decide(self, request: Request, signals: Signals, pinned: bool) -> Decision:
        if self.cascade:
            return Decision(CASCADE, NAN, "cascade")
        score = self._score(request)
        return Decision(CLOUD if score >= self.threshold else LOCAL, score, "threshold")

    def _decide_batch(self, scores: np.ndarray | None, n: int) -> np.ndarray:
        if self.cascade:
            return np.full(n, CASCADE, dtype=np.int8)
        return np.where(np.asarray(scores, dtype=np.float64) >= self.threshold, CLOUD, LOCAL).astype(np.int8)

    def _state(self) -> dict[str, Any]:
        return {"threshold": self.threshold}


class BudgetPolicy(RoutingPolicy):
    """Holds ``target_cloud_fraction`` online: after each decision the threshold moves by ``step``
    (score units) × (sent − target), the Robbins–Monro tracker of the (1 − target) quantile of the
    scores seen.  Over T requests the realised fraction is off by at most (threshold drift) /
    (step · T), so it holds under drift.  Requests kept local by privacy count as not sent."""

    kind = "budget"
    stateless = False
    uses_score = True

    def __init__(self, target_cloud_fraction: float, step: float, initial_threshold: float,
                 scorer: Scorer | None = None) -> None:
        super().__init__(scorer)
        self.target = float(target_cloud_fraction)
        self.step = float(step)
        self.threshold = float(initial_threshold)
        self.n_cloud = 0

    def _decide(self, request: Request, signals: Signals, pinned: bool) -> Decision:
        score = self._score(request)
        to_cloud = score >= self.threshold and not pinned
        self.threshold += self.step * (float(to_cloud) - self.target)
        self.n_cloud += int(to_cloud)
        return Decision(CLOUD if to_cloud else LOCAL, score, "budget")

    def _state(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "n_cloud": self.n_cloud, "target": self.target}


class LoadAwarePolicy(RoutingPolicy):
    """Wraps ``inner``: stays local while the network is down (``offline``) or the cloud rejected
    or timed out ``backoff_count`` requests in the last ``backoff_window_s`` (``backoff``); sends to
    the cloud when the predicted device time would break ``slo_ms`` (``slo``); otherwise does what
    ``inner`` says.  The predicted device time is the FIFO wait behind the requests ahead, spread
    over ``units``, plus the request's own ``service_ms``."""

    kind = "load_aware"
    stateless = False

    def __init__(self, inner: RoutingPolicy, slo_ms: float | None, service_ms: float, units: int,
                 backoff_count: int, backoff_window_s: float, scorer: Scorer | None = None) -> None:
        super().__init__(scorer)
        self.inner = inner
        self.cascade = inner.cascade  # type: ignore[misc]
        self.uses_score = inner.uses_score  # type: ignore[misc]
        self.slo_ms = None if slo_ms is None else float(slo_ms)
        self.service_ms = float(service_ms)
        self.units = max(1, int(units))
        self.backoff_count = int(backoff_count)
        self.backoff_window_s = float(backoff_window_s)
        self.recent_failures: deque[float] = deque()  # times of recent rejections / timeouts

    @property
    def escalation_threshold(self) -> float:
        return self.inner.escalation_threshold

    def predicted_device_ms(self, signals: Signals) -> float:
        ahead = max(0, signals.local_queued + signals.local_in_flight - self.units + 1)
        return self.service_ms * (1.0 + ahead / self.units)

    def _decide(self, request: Request, signals: Signals, pinned: bool) -> Decision:
        decision = self.inner._decide(request, signals, pinned)
        if not signals.network_up:
            return Decision(LOCAL, decision.score, "offline")
        recent = self.recent_failures
        while recent and recent[0] <= signals.now_s - self.backoff_window_s:
            recent.popleft()
        if len(recent) >= self.backoff_count:
            return Decision(LOCAL, decision.score, "backoff")
        if (decision.route != CLOUD and self.slo_ms is not None
                and self.predicted_device_ms(signals) > self.slo_ms):
            return Decision(CLOUD, decision.score, "slo")
        return decision

    def _escalate(self, score: float) -> Decision:
        return self.inner._escalate(score)

    def _observe(self, outcome: Outcome) -> None:
        if outcome.cloud_failed and outcome.error in ("rejected", "timeout", ""):
            self.recent_failures.append(outcome.now_s)
        self.inner._observe(outcome)

    def _state(self) -> dict[str, Any]:
        return {"recent_failures": len(self.recent_failures), "inner": self.inner._state()}
