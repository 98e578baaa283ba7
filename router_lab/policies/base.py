"""Configured policies, bound to a dataset: the runtime policy they ship plus per-row scores.

A :class:`Policy` is what the simulator and the offline evaluation hold.  It owns two things:

* ``core`` — the :class:`~router_lab.runtime.policy.RoutingPolicy` built from the policy's
  ``policy.json`` node (``node()``) by the runtime's own builder: the code that ships to the device,
  and the only place a routing decision is made (privacy pinning included);
* a score table — one router score per dataset row, computed once in a batch for speed (the
  router's P(escalation helps), or 1 − the device's confidence).  A request reaches the core as a
  :class:`~router_lab.runtime.policy.Request` carrying its score and flags, never its row index.

``decide_batch(rows)`` (offline evaluation, the fast path) and ``escalate(rows)`` go through the
core's vectorised path for stateless policies, and one by one (with idle signals) otherwise.

The sensitive rule — a sensitive request never leaves the device — has one owner on the lab side:
this class.  :func:`sensitive_rows` is the one reading of the flag; :meth:`Policy.pinned` /
:meth:`Policy.may_leave` give it per row; every entry point enforces it on what the core returned
(``decide_batch``, ``escalate``, ``offline_cloud``, :meth:`Policy.decide` for a stateful policy
under load, :meth:`Policy.keep_local` for routes decided elsewhere, the budget's reference rows),
counting in ``n_blocked`` what it had to keep local; training, evaluation and the report call
:func:`sensitive_rows` where they hold a dataset but no policy.  The
runtime core pins too (what ships); the simulator's audit only counts violations (a check).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError
from router_lab.runtime.policy import IDLE, Decision, Request, Route, RoutingPolicy, Signals
from router_lab.runtime.spec import build_policy

__all__ = ["Policy", "PolicyContext", "Route", "Signals", "sensitive_rows"]


def sensitive_rows(dataset: Dataset) -> np.ndarray:
    """Per dataset row: whether it is sensitive, i.e. must never leave the device (bool array;
    all False for a dataset without a ``sensitive`` column).  The one reading of the flag."""
    return dataset.column_or("sensitive", False).astype(bool)


@dataclass(frozen=True)
class PolicyContext:
    """What policies are built from: the dataset, a seeded generator, optional trained router, and
    the scenario figures a load-aware policy ships with (SLO, device units and service time)."""

    dataset: Dataset
    rng: np.random.Generator
    router: Any = None  # a trained router (see router_lab.train), for the learned policies
    # the run's `router` and `target` groups: what a policy given no router trains (None: the defaults)
    router_cfg: Any = None
    target_cfg: Any = None
    slo_ms: float | None = None
    device_units: int = 1
    device_service_ms: float = 0.0


class Policy:
    """Base class: subclasses give ``node()`` (their policy.json node) and, when they route on a
    score, ``_all_scores()`` (one per dataset row)."""

    name: ClassVar[str] = ""
    upper_bound: ClassVar[bool] = False  # knows the outcomes (oracle): a ceiling, not deployable
    n_overridden: int = 0  # sensitive requests the core sent off the device and this class kept local

    def __init__(self, context: PolicyContext) -> None:
        self.context = context
        self._sensitive = sensitive_rows(context.dataset)

    # -- what ships -----------------------------------------------------------------------------
    def node(self) -> dict[str, Any]:
        """The ``policy`` node of policy.json: kind, params (and inner)."""
        raise RouterLabError(f"policy {self.name}: not deployable (it needs the answers); expected one "
                             "of always_local, always_cloud, random, confidence, learned, "
                             "learned_cascade, budget, load_aware")

    def make_core(self) -> RoutingPolicy:
        return build_policy(self.node())

    @cached_property
    def core(self) -> RoutingPolicy:
        return self.make_core()

    @property
    def stateless(self) -> bool:
        return self.core.stateless

    @property
    def scored(self) -> bool:
        return self.score_table is not None

    # -- scores ---------------------------------------------------------------------------------
    def _all_scores(self) -> np.ndarray | None:
        return None

    @cached_property
    def score_table(self) -> np.ndarray | None:
        table = self._all_scores()
        if table is None:
            return None
        table = np.asarray(table, dtype=np.float64)
        if table.shape != (len(self.context.dataset),):
            raise RouterLabError(f"policy {self.name}: got {table.shape[0]} scores for "
                                 f"{len(self.context.dataset)} rows; expected one per row")
        return table

    def scores(self, indices: np.ndarray) -> np.ndarray:
        """The routing score per row (higher = more reason to use the cloud), the quantity the
        policy thresholds and the offline evaluation sweeps."""
        if self.score_table is None:
            raise NotImplementedError(f"policy {self.name!r} has no routing score to sweep")
        return self.score_table[np.asarray(indices, dtype=np.int64)]

    def _scores_or_none(self, indices: np.ndarray) -> np.ndarray | None:
        return None if self.score_table is None else self.score_table[indices]

    # -- the sensitive rule ---------------------------------------------------------------------
    def pinned(self, indices: np.ndarray) -> np.ndarray:
        """Per row: pinned to the device (sensitive), so its route is LOCAL and it never escalates."""
        return self._sensitive[np.asarray(indices, dtype=np.int64)]

    def may_leave(self, indices: np.ndarray) -> np.ndarray:
        """Per row: may be answered by the cloud (not sensitive)."""
        return ~self.pinned(indices)

    @property
    def n_blocked(self) -> int:
        """Sensitive requests this policy tried to send off the device and the rule kept there:
        pinned by the runtime core, or (a core that ignored its pin) by this class."""
        return self.core.n_blocked + self.n_overridden

    def keep_local(self, sensitive: np.ndarray, routes: np.ndarray | None,
                   escalate: np.ndarray | None = None) -> np.ndarray | None:
        """The rule on routes decided elsewhere: ``routes`` with every ``sensitive`` request's route
        LOCAL (a copy when one changes; each change counts in ``n_overridden``), and ``escalate``
        cleared for them in place."""
        if escalate is not None:
            escalate &= ~sensitive
        if routes is None:
            return None
        off_device = sensitive & (routes != Route.LOCAL)
        if off_device.any():
            routes = np.array(routes, copy=True)
            routes[off_device] = Route.LOCAL
            self.n_overridden += int(off_device.sum())
        return routes

    def decide(self, request: Request, signals: Signals = IDLE) -> Decision:
        """One decision by the core (a stateful policy under load), the rule enforced: LOCAL for a
        sensitive request (counted in ``n_overridden`` if the core did not pin it)."""
        decision = self.core.decide(request, signals)
        if request.sensitive and decision.route != Route.LOCAL:
            self.n_overridden += 1
            return decision._replace(route=Route.LOCAL)
        return decision

    # -- requests and decisions -----------------------------------------------------------------
    def request(self, row: int, sensitive: bool, session_id: str | None = None) -> Request:
        """The runtime request for dataset row ``row`` (its score precomputed, no index)."""
        return self.requests(np.array([row]), np.array([sensitive]), [session_id])[0]

    def requests(self, rows: np.ndarray, sensitive: np.ndarray, sessions: list | None = None) -> list[Request]:
        """Runtime requests for many rows at once (scores looked up in one batch)."""
        table = self.score_table
        n = len(rows)
        scores = (table[rows].tolist() if table is not None and self.core.uses_score else [None] * n)
        sessions = sessions if sessions is not None else [None] * n
        return [Request(score=sc, sensitive=p, session_id=se)
                for sc, p, se in zip(scores, np.asarray(sensitive, dtype=bool).tolist(), sessions, strict=True)]

    def decide_batch(self, indices: np.ndarray) -> np.ndarray:
        """Routes (int8 :class:`Route`) for these rows in order, with no load (idle signals)."""
        indices = np.asarray(indices, dtype=np.int64)
        pinned = self.pinned(indices)
        if self.core.stateless:
            return self.keep_local(pinned, self.core.decide_batch(self._scores_or_none(indices), pinned))
        return np.fromiter((int(self.decide(self.request(int(r), bool(p)), IDLE).route)
                            for r, p in zip(indices, pinned, strict=True)), dtype=np.int8, count=len(indices))

    # -- N models (tiers) ------------------------------------------------------------------------
    @property
    def models(self) -> tuple[str, ...]:
        """The models this policy routes among, in tier order (0 = the device): the dataset's."""
        return self.context.dataset.models

    def decide_tiers(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Routes (as ``decide_batch``) and, per request, the index in ``models`` of the model its
        remote step goes to (0 for a LOCAL route).  A two-model policy's CLOUD and CASCADE routes
        go to the model named ``cloud``; an N-model policy overrides this (its routes: LOCAL where
        the tier is 0, CLOUD elsewhere)."""
        routes = self.decide_batch(indices)
        cloud = self.models.index("cloud")
        return routes, np.where(routes == Route.LOCAL, 0, cloud).astype(np.int8)

    def escalate(self, indices: np.ndarray) -> np.ndarray:
        """For CASCADE routes: which requests go on to the cloud after the device answered."""
        indices = np.asarray(indices, dtype=np.int64)
        pinned = self.pinned(indices)
        return np.asarray(self.core.escalate_batch(self._scores_or_none(indices), pinned), dtype=bool) & ~pinned

    def offline_cloud(self, indices: np.ndarray) -> np.ndarray:
        """Which of these requests the cloud answers offline (no load): CLOUD routes plus the
        CASCADE routes that ``escalate`` sends on."""
        indices = np.asarray(indices, dtype=np.int64)
        routes = self.decide_batch(indices)
        cloud = routes == Route.CLOUD
        cascade = np.flatnonzero(routes == Route.CASCADE)
        if cascade.size:
            cloud[cascade] = np.asarray(self.escalate(indices[cascade]), dtype=bool)
        return cloud & self.may_leave(indices)
