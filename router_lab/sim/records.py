"""Per-request records of a run, columnar and compact: the engines' timeline plus derived columns.

Engines fill a :class:`Timeline` (exact int64 nanoseconds, -1 where a stage was not visited);
:func:`finish` derives correctness, cost, energy and bytes the same way for every engine, and runs
the accounting checks of :mod:`router_lab.sim.audit` on the result (``Records.violations``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields, replace

import numpy as np
import pandas as pd

from router_lab.data.contract import Dataset
from router_lab.runtime.policy import REASONS, Route
from router_lab.sim.audit import audit
from router_lab.sim.draws import NS_PER_MS, NS_PER_S, Draws, RowSizes, router_overhead_ns
from router_lab.sim.scenario import Scenario
from router_lab.sim.tiers import tier_view


class Outcome(enum.IntEnum):
    LOCAL = 0  # the device answered; no cloud attempt (local route, or a cascade kept on the device)
    CLOUD = 1  # the cloud answered a cloud route
    CASCADE = 2  # the device ran, then the cloud answered (escalated)
    FALLBACK = 3  # a cloud attempt failed (outage, loss, rejection, timeout); the device answered
    REJECTED = 4  # the device queue was full: no answer
    FAILED = 5  # no answer: cloud failure with on_cloud_failure=fail, or the battery was empty


NOT_VISITED = -1
FAIL_ERRORS = ("rejected", "timeout", "network")  # Records.decision_log.fail_error codes


@dataclass(frozen=True)
class DecisionLog:
    """What a stateful policy's decisions saw, and what the requester learned when (simpy engine):
    the signals at each decision, the decision's reason, and the time and kind of a failed cloud
    attempt.  ``router-lab replay`` feeds the same through the runtime."""

    local_in_flight: np.ndarray  # int32 device units serving at the decision
    local_queued: np.ndarray  # int32 requests waiting for the device
    network_up: np.ndarray  # bool
    reason: np.ndarray  # int8 code into runtime.policy.REASONS
    fail_ns: np.ndarray  # int64 when the requester learned of a failed cloud attempt (-1: none)
    fail_error: np.ndarray  # int8 code into FAIL_ERRORS (-1: none)

    @classmethod
    def empty(cls, n: int) -> DecisionLog:
        return cls(np.zeros(n, np.int32), np.zeros(n, np.int32), np.ones(n, bool), np.zeros(n, np.int8),
                   np.full(n, NOT_VISITED, np.int64), np.full(n, NOT_VISITED, np.int8))


def cost_table(sc: Scenario, sizes: RowSizes) -> np.ndarray:
    """What one cloud call costs, per dataset row (float32; the same figure the records bill)."""
    cloud = sc.cloud
    return (cloud.cost_per_request_usd
            + sizes.tokens_in * (cloud.cost_per_1k_input_tokens_usd / 1000)
            + sizes.tokens_out * (cloud.cost_per_1k_output_tokens_usd / 1000)).astype(np.float32)


class Timeline:
    """What an engine fills in, per request (arrays preallocated, -1 = stage not visited)."""

    COLUMNS = ("device_enter_ns", "device_start_ns", "device_done_ns", "cloud_enter_ns",
               "cloud_start_ns", "cloud_done_ns", "end_ns")

    def __init__(self, n: int, tiered: bool = False, n_models: int = 0) -> None:
        for name in self.COLUMNS:
            setattr(self, name, np.empty(n, dtype=np.int64))
        self.outcome = np.empty(n, dtype=np.int8)
        self.sent = np.empty(n, dtype=bool)  # an upload was attempted (the network was up)
        self.attempts = np.empty(n, dtype=np.int8)  # upload attempts begun (0: none)
        # Tiered runs only: the remote tier last tried (model index, 0: none; the cloud_* columns
        # are that tier's), when its upload began, and what the earlier tiers a request failed on
        # billed, per tier (column = model index; the last tier's bill is added by `finish`).
        self.tier = np.zeros(n, dtype=np.int8) if tiered else None
        self.hop_sent_ns = np.full(n, NOT_VISITED, dtype=np.int64) if tiered else None
        self.tier_cost = np.zeros((n, max(n_models, 2)), dtype=np.float32) if tiered else None
        self.reset()

    def reset(self) -> None:
        """Back to "nothing visited" (reused between the fast path's passes)."""
        for name in self.COLUMNS:
            getattr(self, name).fill(NOT_VISITED)
        self.outcome.fill(Outcome.LOCAL)
        self.sent.fill(False)
        self.attempts.fill(0)
        if self.tier is not None:
            self.tier.fill(0)
            self.hop_sent_ns.fill(NOT_VISITED)
            self.tier_cost.fill(0)


@dataclass(frozen=True)
class Records:
    """One run's requests in arrival order (index = request number)."""

    arrival_ns: np.ndarray  # int64
    row: np.ndarray  # int32 dataset row
    route: np.ndarray  # int8 Route actually taken (sensitive requests pinned to LOCAL)
    outcome: np.ndarray  # int8 Outcome
    sensitive: np.ndarray  # bool
    sent: np.ndarray  # bool: uploaded to the cloud (at least one attempt)
    device_enter_ns: np.ndarray  # int64 timeline, -1 = not visited
    device_start_ns: np.ndarray
    device_done_ns: np.ndarray
    cloud_enter_ns: np.ndarray
    cloud_start_ns: np.ndarray
    cloud_done_ns: np.ndarray
    end_ns: np.ndarray  # when the requester got its answer (or the failure)
    network_ms: np.ndarray  # float32 time in transit
    quality: np.ndarray  # float32 quality of the answer (0 without one)
    cost_usd: np.ndarray  # float32
    energy_j: np.ndarray  # float32 device inference energy
    offdevice_bytes: np.ndarray  # int64 bytes uploaded (every attempt begun)
    attempts: np.ndarray  # int8 upload attempts begun (0: nothing sent)
    sensitive_blocked: int = 0  # sensitive requests a policy tried to send off the device
    engine: str = ""
    overhead_ns: int = 0  # router overhead: a request is decided at arrival_ns + overhead_ns
    decision_log: DecisionLog | None = None  # stateful policies (simpy engine) only
    violations: dict[str, int] = field(default_factory=dict)  # accounting checks (sim.audit): all 0
    # Tiered scenarios only (None / () otherwise, so two-tier records are unchanged):
    tier: np.ndarray | None = None  # int8 index into `models` of the remote tier last tried (0: none)
    decided_tier: np.ndarray | None = None  # int8 index into `models` the policy decided (0: local)
    tier_cost: np.ndarray | None = None  # float32 (n, len(models)): what each tier billed (column 0: 0)
    hop_sent_ns: np.ndarray | None = None  # int64 when that tier's upload began (-1: none)
    models: tuple[str, ...] = ()  # the dataset's models in tier order

    @property
    def answered_by(self) -> np.ndarray:
        """int8 index into ``models`` of the model that answered (0: the device; -1: no answer)."""
        by_cloud = (self.outcome == Outcome.CLOUD) | (self.outcome == Outcome.CASCADE)
        tier = self.tier if self.tier is not None else np.full(len(self), 1, dtype=np.int8)
        out = np.where(by_cloud, tier, 0).astype(np.int8)
        out[(self.outcome == Outcome.REJECTED) | (self.outcome == Outcome.FAILED)] = -1
        return out

    def __len__(self) -> int:
        return len(self.arrival_ns)

    @property
    def latency_ns(self) -> np.ndarray:
        return self.end_ns - self.arrival_ns

    def nbytes(self) -> int:
        total = sum(getattr(self, f.name).nbytes for f in fields(self) if isinstance(getattr(self, f.name), np.ndarray))
        log = self.decision_log
        return total + (0 if log is None else sum(getattr(log, f.name).nbytes for f in fields(log)))

    def to_frame(self) -> pd.DataFrame:
        """Readable columns (seconds / milliseconds) for ``requests.parquet``."""
        def ms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.where((a >= 0) & (b >= 0), (b - a) / NS_PER_MS, np.nan).astype(np.float32)

        frame = pd.DataFrame({
            "arrival_s": self.arrival_ns / NS_PER_S,
            "row": self.row,
            "route": pd.Categorical.from_codes(self.route, [r.name.lower() for r in Route]),
            "outcome": pd.Categorical.from_codes(self.outcome, [o.name.lower() for o in Outcome]),
            "sensitive": self.sensitive,
            "sent": self.sent,
            "device_wait_ms": ms(self.device_enter_ns, self.device_start_ns),
            "device_service_ms": ms(self.device_start_ns, self.device_done_ns),
            "network_ms": self.network_ms,
            "cloud_wait_ms": ms(self.cloud_enter_ns, self.cloud_start_ns),
            "cloud_service_ms": ms(self.cloud_start_ns, self.cloud_done_ns),
            "latency_ms": (self.latency_ns / NS_PER_MS).astype(np.float32),
            "correct": self.quality,
            "cost_usd": self.cost_usd,
            "energy_j": self.energy_j,
            "offdevice_bytes": self.offdevice_bytes,
            # exact times, for replay: when the request was decided and when it ended
            "decided_ns": self.arrival_ns + self.overhead_ns,
            "end_ns": self.end_ns,
        })
        if self.tier is not None:  # tiered runs: which model answered (-1: none), the last tier tried
            frame["answered_by"] = self.answered_by  # and the tier the policy decided (before fallbacks)
            frame["tier"] = self.tier
            if self.decided_tier is not None:
                frame["decided_tier"] = self.decided_tier
        log = self.decision_log
        if log is not None:
            frame["signal_local_in_flight"] = log.local_in_flight
            frame["signal_local_queued"] = log.local_queued
            frame["signal_network_up"] = log.network_up
            frame["reason"] = pd.Categorical.from_codes(log.reason, list(REASONS))
            frame["fail_ns"] = log.fail_ns
            frame["fail_error"] = pd.Categorical.from_codes(log.fail_error, list(FAIL_ERRORS))
        return frame


def finish(*, timeline: Timeline, draws: Draws, route: np.ndarray, sensitive: np.ndarray, scenario: Scenario,
           dataset: Dataset, sensitive_blocked: int, engine: str, decision_log: DecisionLog | None = None,
           audit_model: bool = True, tiers: tuple = (), decided_tier: np.ndarray | None = None) -> Records:
    """Derive quality, cost, energy, bytes and network time from an engine's ``timeline``; with
    ``audit_model`` (the simulator's engines) run the accounting checks of the model on it (the
    live testbed's measured times are not the model's draws, so it passes False).  ``tiers``
    (tiered runs): each request's answer and transit are its last remote tier's, its bill that of
    every tier that ran it; ``decided_tier`` the tier each request was decided for."""
    tl, sc = timeline, scenario
    overhead_ns = router_overhead_ns(sc)
    row, outcome = draws.row, tl.outcome
    by_cloud = (outcome == Outcome.CLOUD) | (outcome == Outcome.CASCADE)
    answered = by_cloud | (outcome == Outcome.LOCAL) | (outcome == Outcome.FALLBACK)
    sizes = RowSizes.of(dataset)
    hop = draws if not tiers else tier_view(tiers, tl.tier, draws)
    quality, cost = (_quality_cost(tl, sc, dataset, sizes, row, by_cloud) if not tiers else
                     _tiered_quality_cost(tl, tiers, dataset, sizes, row, by_cloud))
    quality *= answered  # 0 without an answer (multiplying: branch-free, unlike a masked assignment)
    energy = (tl.device_start_ns >= 0).astype(np.float32)
    energy *= sc.device.energy_per_inference_j
    offdevice = sizes.input_bytes[row]  # int64: bytes x attempts (<= 101) cannot wrap
    offdevice *= tl.attempts
    sent_at = None if not tiers else tl.hop_sent_ns
    network_ms = _network_ms(tl, hop, route, by_cloud, overhead_ns, sent_at)
    rec = Records(
        arrival_ns=draws.arrival_ns, row=row, route=route, outcome=outcome, sensitive=sensitive, sent=tl.sent,
        device_enter_ns=tl.device_enter_ns, device_start_ns=tl.device_start_ns,
        device_done_ns=tl.device_done_ns, cloud_enter_ns=tl.cloud_enter_ns,
        cloud_start_ns=tl.cloud_start_ns, cloud_done_ns=tl.cloud_done_ns, end_ns=tl.end_ns,
        network_ms=network_ms, quality=quality, cost_usd=cost, energy_j=energy, offdevice_bytes=offdevice, attempts=tl.attempts,
        sensitive_blocked=int(sensitive_blocked), engine=engine,
        overhead_ns=overhead_ns, decision_log=decision_log,
        tier=tl.tier if tiers else None, hop_sent_ns=tl.hop_sent_ns if tiers else None,
        decided_tier=decided_tier if tiers else None, tier_cost=tl.tier_cost if tiers else None,
        models=dataset.models if tiers else (),
    )
    return replace(rec, violations=audit(rec, draws, sc, sizes, tiers)) if audit_model else rec


def _quality_cost(tl: Timeline, sc: Scenario, dataset: Dataset, sizes: RowSizes, row: np.ndarray,
                  by_cloud: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two tiers: the device's or the cloud's quality; the cloud's bill when it ran the request."""
    quality = dataset.device_quality().astype(np.float32)[row]
    np.copyto(quality, dataset.cloud_quality().astype(np.float32)[row], where=by_cloud)
    cost = cost_table(sc, sizes)[row]
    cost *= tl.cloud_start_ns >= 0  # billed when the cloud ran it (even if the client gave up)
    return quality, cost


def _tiered_quality_cost(tl: Timeline, tiers: tuple, dataset: Dataset, sizes: RowSizes, row: np.ndarray,
                         by_cloud: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tiers: the answering model's quality; each tier's bill where it ran the request (the last
    tier's added to ``tl.tier_cost``, where the engines put the earlier tiers'), summed from the
    dearest tier down (the order a request tries them)."""
    quality = dataset.quality(dataset.models[0]).astype(np.float32)[row]
    ran = tl.cloud_start_ns >= 0
    for t in tiers:
        mine = tl.tier == t.index
        np.copyto(quality, dataset.quality(dataset.models[t.index]).astype(np.float32)[row], where=by_cloud & mine)
        billed = np.flatnonzero(ran & mine)
        tl.tier_cost[billed, t.index] = cost_table(t.sc, sizes)[row[billed]]
    cost = np.zeros(len(row), dtype=np.float32)
    for t in tiers[::-1]:
        cost += tl.tier_cost[:, t.index]
    return quality, cost


def _network_ms(tl: Timeline, d: Draws, route: np.ndarray, by_cloud: np.ndarray, overhead_ns: int,
                hop_sent_ns: np.ndarray | None) -> np.ndarray:
    """Time in transit (the last remote tier's, in a tiered run), float32 ms."""
    network_ms = d.uplink_ns.astype(np.float32)
    network_ms *= tl.sent
    cut = np.flatnonzero(tl.sent & (tl.cloud_enter_ns < 0) & ~d.uplink_failed)
    if cut.size:  # uploads cut by an outage: in transit until it began (when the requester learnt it)
        learnt = np.where(tl.device_enter_ns[cut] >= 0, tl.device_enter_ns[cut], tl.end_ns[cut])
        cascade = route[cut] == Route.CASCADE
        learnt[cascade] = tl.end_ns[cut[cascade]]
        sent_at = np.where(cascade, tl.device_done_ns[cut], d.arrival_ns[cut] + overhead_ns)
        if hop_sent_ns is not None:
            sent_at = hop_sent_ns[cut]
            learnt = np.maximum(learnt, sent_at)
        network_ms[cut] = (learnt - sent_at).astype(np.float32)
    np.add(network_ms, d.downlink_ns.astype(np.float32), out=network_ms, where=by_cloud)
    network_ms /= NS_PER_MS
    return network_ms
