"""Accounting checks every run's records must pass: conservation laws a wrong model can fail.

:func:`audit` counts, per check, the requests (or station events) that break it; a correct engine
gives zero everywhere.  The checks re-derive what the draws and the model's rules imply, with no
knowledge of how an engine computed its timeline:

- ``outcome_code``: every request ends in exactly one known outcome; ``end_after_arrival``.
- per station (``device_*``, ``cloud_*``): ``enter`` (device: at or after arrival + router overhead;
  cloud: exactly when the upload completes, ``sent + uplink``), ``start >= enter``, ``done = start +
  the drawn service time``, ``fifo`` (in order of entry, ties by request number, starts never
  decrease) and ``units`` (never more than ``units`` requests in service at once).
- ``end_after_stages``: the end is at or after the device's completion and both entries.
- ``outcome_stages``: the outcome matches the stages visited and the end time (a local answer ends
  when the device is done, a cloud answer when its download is done, a refusal when it entered, ...).
- ``timeout``: no cloud answer arrives later than ``sent + cloud.timeout_s``.
- ``outage``: no cloud answer's upload or download overlaps a network outage.
- ``attempts``: an upload was sent iff it has attempts, at most the drawn ones (<= max_retries + 1);
  ``bytes``: off-device bytes = input bytes x attempts.
- ``sensitive``: a sensitive request never leaves the device.
- ``quality_cost_energy``: no answer scores 0; only cloud work is billed; energy per device inference.

Vectorised; the FIFO and unit checks sort each station's requests once (nearly sorted data, so
the stable sort is cheap).  Run on every run by :func:`router_lab.sim.records.finish`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from router_lab.policies.base import Route
from router_lab.sim.draws import NEVER, Draws, RowSizes, router_overhead_ns, timeout_ns
from router_lab.sim.scenario import Scenario
from router_lab.sim.tiers import tier_view

if TYPE_CHECKING:  # records imports this module
    from router_lab.sim.records import Records

CHECKS = ("outcome_code", "end_after_arrival",
          "device_enter", "device_start", "device_done", "device_fifo", "device_units",
          "cloud_enter", "cloud_start", "cloud_done", "cloud_fifo", "cloud_units",
          "end_after_stages", "outcome_stages", "timeout", "outage", "attempts", "bytes", "sensitive",
          "quality_cost_energy")

# Outcome codes (records.Outcome; not imported to keep this module free of a cycle).
LOCAL, CLOUD, CASCADE, FALLBACK, REJECTED, FAILED = range(6)


CHUNK = 1 << 14  # element-wise checks run over this many requests at a time (little memory)


def _count(bad: np.ndarray) -> int:
    return int(np.count_nonzero(bad))


def _station(enter: np.ndarray, start: np.ndarray, done: np.ndarray, units: int) -> tuple[int, int]:
    """(FIFO breaks, excess over ``units``) for one station, keeping few per-request temporaries."""
    e = np.compress(start >= 0, enter)  # (np.compress: much faster than boolean indexing)
    order = None
    if len(e) and not bool((e[1:] >= e[:-1]).all()):  # admission order: entry time, then request
        order = np.argsort(e, kind="stable").astype(np.int32)  # int32: this is the audit's peak memory
    del e
    ran = start >= 0
    s = np.compress(ran, start)
    if order is not None:
        s = s[order]
    bad_fifo = _count(s[1:] < s[:-1])
    if bad_fifo:
        s.sort()
    finished = np.compress(ran, done)
    del ran
    if units == 1 and not bad_fifo:  # one unit: each starts once the one before it is done
        if order is not None:
            finished = finished[order]
        return bad_fifo, _count(s[1:] < finished[:-1])
    del order
    finished.sort(kind="stable")  # in service at s_k (the last of equal starts): k + 1 - #{done <= s_k}
    bad_units = 0
    for lo in range(0, len(s), CHUNK):
        in_service = np.arange(lo + 1, lo + 1 + len(s[lo:lo + CHUNK]))
        in_service -= np.searchsorted(finished, s[lo:lo + CHUNK], side="right")
        bad_units += _count(in_service > units)
    return bad_fifo, bad_units


def audit(rec: Records, draws: Draws, sc: Scenario, sizes: RowSizes, tiers: tuple = ()) -> dict[str, int]:
    """Per check (:data:`CHECKS`), how many requests or events break it (all 0 when consistent).

    ``tiers`` (tiered runs): the cloud checks hold per remote tier, each against its own draws,
    units, timeout and outages (a request's cloud columns are those of the tier it tried last)."""
    n = dict.fromkeys(CHECKS, 0)
    n["device_fifo"], n["device_units"] = _station(rec.device_enter_ns, rec.device_start_ns,
                                                   rec.device_done_ns, sc.device.units)
    if not tiers:
        n["cloud_fifo"], n["cloud_units"] = _station(rec.cloud_enter_ns, rec.cloud_start_ns,
                                                     rec.cloud_done_ns, sc.cloud.units)
        ctx = _Context(sc, draws, sizes)
    else:
        for t in tiers:
            mine = rec.tier == t.index
            fifo, units = _station(rec.cloud_enter_ns, np.where(mine, rec.cloud_start_ns, -1),
                                   rec.cloud_done_ns, t.sc.cloud.units)
            n["cloud_fifo"] += fifo
            n["cloud_units"] += units
        ctx = _TieredContext(sc, draws, sizes, tiers, rec.tier)
    for lo in range(0, len(rec), CHUNK):
        ctx.chunk(rec, slice(lo, lo + CHUNK), n)
    return n


ENTERED, RAN_DEVICE, SENT, REACHED, RAN_CLOUD = 1, 2, 4, 8, 16  # the stages a request visited
R_LOCAL, R_CLOUD, R_CASCADE = int(Route.LOCAL), int(Route.CLOUD), int(Route.CASCADE)


def _allowed(outcome: int, route: int, visited: int, fail_mode: bool) -> bool:
    """Whether an outcome can come from a route and a set of visited stages (the model's rules)."""
    if (visited & RAN_DEVICE and not visited & ENTERED) or (visited & REACHED and not visited & SENT) or (
            visited & RAN_CLOUD and not visited & REACHED):
        return False
    device, cloud = visited & (ENTERED | RAN_DEVICE), visited & (SENT | REACHED | RAN_CLOUD)
    ran, refused, everywhere = ENTERED | RAN_DEVICE, ENTERED, SENT | REACHED | RAN_CLOUD
    on_device = route in (R_LOCAL, R_CASCADE)
    if outcome == LOCAL:
        return on_device and device == ran and not cloud
    if outcome == CLOUD:
        return route == R_CLOUD and not device and cloud == everywhere
    if outcome == CASCADE:
        return route == R_CASCADE and device == ran and cloud == everywhere
    if outcome == FALLBACK:
        return device == ran and (route == R_CASCADE or (route == R_CLOUD and not fail_mode))
    if outcome in (REJECTED, FAILED) and device == refused:  # the device queue was full / battery empty
        return (on_device and not cloud) or (route == R_CLOUD and not fail_mode)
    return outcome == FAILED and not device and route == R_CLOUD and fail_mode


class _Context:
    """The scenario's constants for the element-wise checks, and one chunk's checks."""

    def __init__(self, sc: Scenario, draws: Draws, sizes: RowSizes) -> None:
        self.sc, self.d, self.input_bytes = sc, draws, sizes.input_bytes
        self.overhead = router_overhead_ns(sc)
        self.timeout = timeout_ns(sc)
        self.billed_only_if_ran = True
        self.energy = np.float32(sc.device.energy_per_inference_j)
        self.max_attempts = sc.network.max_retries + 1
        fail_mode = sc.sim.on_cloud_failure == "fail"
        # allowed[outcome, route, visited]; an unknown outcome (6) or route (3) is never allowed.
        self.allowed = np.array([[[o < 6 and r < 3 and _allowed(o, r, v, fail_mode) for v in range(32)]
                                  for r in range(4)] for o in range(7)]).ravel()

    def chunk(self, rec: Records, k: slice, n: dict[str, int]) -> None:
        """Run every element-wise check on the requests ``k``, adding to the counts ``n``."""
        s = _Stages.of(rec, k, self.overhead)
        n["outcome_code"] += _count(s.out.view(np.uint8) > FAILED)
        n["end_after_arrival"] += _count(s.end < s.arrival)
        self.station_checks(s, k, n)
        self.outcome_checks(s, k, n)
        self.network_checks(s, k, n)
        self.accounting_checks(rec, s, k, n)

    def station_checks(self, s: _Stages, k: slice, n: dict[str, int]) -> None:
        """The device: entered after the router, started after entering, done = start + service;
        the cloud: reached exactly when the upload completes, the same start and done rules."""
        d = self.d
        n["device_enter"] += _count(s.entered & (s.d_enter < s.arrival + self.overhead))
        n["device_start"] += _count(s.ran_device & (s.d_start < s.d_enter))
        n["device_done"] += _count(s.d_done != np.where(s.ran_device, s.d_start + d.device_service_ns[k], -1))
        n["cloud_enter"] += _count(s.reached & ((s.c_enter != s.sent_at + d.uplink_ns[k]) | d.uplink_failed[k]))
        n["cloud_start"] += _count(s.ran_cloud & (s.c_start < s.c_enter))
        n["cloud_done"] += _count(s.c_done != np.where(s.ran_cloud, s.c_start + d.cloud_service_ns[k], -1))
        n["end_after_stages"] += _count((s.end < s.d_done) | (s.end < s.d_enter) | (s.end < s.c_enter))

    def outcome_checks(self, s: _Stages, k: slice, n: dict[str, int]) -> None:
        """The outcome agrees with the route and the stages visited (a table), and with the end time."""
        out = s.out
        visited = s.entered.view(np.uint8) | (s.ran_device.view(np.uint8) << 1)
        visited |= s.sent.view(np.uint8) << 2
        visited |= s.reached.view(np.uint8) << 3
        visited |= s.ran_cloud.view(np.uint8) << 4
        key = np.minimum(out.view(np.uint8), 6).astype(np.int16)
        key *= 4
        key += np.minimum(s.route.view(np.uint8), 3)
        key *= 32
        key += visited
        bad = ~self.allowed[key]
        expected = np.where(s.by_cloud, s.c_done + self.d.downlink_ns[k], s.d_done)  # local answers, fallbacks
        np.copyto(expected, s.d_enter, where=s.refused)  # refused at the device: ends on entering
        loose = (out == FALLBACK) & s.cascade  # the device's answer stands, learnt when the cloud failed
        bad |= ~loose & ~(s.failed & ~s.entered) & (s.end != expected)
        bad |= loose & (s.end < s.d_done)
        n["outcome_stages"] += _count(bad)

    def network_checks(self, s: _Stages, k: slice, n: dict[str, int]) -> None:
        """No cloud answer later than the client's timeout, nor across an outage."""
        if self.timeout is not None:
            n["timeout"] += _count(s.by_cloud & (s.end - s.sent_at > self.timeout))
        if self.d.has_outages:
            answered = np.flatnonzero(s.by_cloud)
            lost_up = self.d.first_down(s.sent_at[answered], s.c_enter[answered]) != NEVER
            lost_down = self.d.first_down(s.c_done[answered], s.end[answered]) != NEVER
            n["outage"] += _count(lost_up | lost_down)

    def accounting_checks(self, rec: Records, s: _Stages, k: slice, n: dict[str, int]) -> None:
        """Attempts and bytes, the sensitive rule, and quality, cost and energy."""
        d, sent = self.d, s.sent
        attempts = rec.attempts[k]
        n["attempts"] += (_count(sent != (attempts > 0)) + _count(attempts > d.uplink_attempts[k])
                          + _count(attempts.view(np.uint8) > self.max_attempts))  # negative: > 127
        n["bytes"] += _count(rec.offdevice_bytes[k] != self.input_bytes[rec.row[k]] * attempts)
        n["sensitive"] += _count(rec.sensitive[k] & (sent | (s.route != R_LOCAL)))
        quality = rec.quality[k]
        n["quality_cost_energy"] += (_count(s.refused & (quality != 0)) + _count(s.failed & (quality != 0))
                                     + _count(~(s.ran_cloud if self.billed_only_if_ran else sent)
                                              & (rec.cost_usd[k] != 0))
                                     + _count(rec.energy_j[k] != np.where(s.ran_device, self.energy, np.float32(0))))


class _TieredContext(_Context):
    """The element-wise checks of a tiered run: each request against its last tier's draws and
    timeout; attempts bounded by the tiers' together (a request may try several); no outage
    crossed on its tier's network; billed only if it was sent."""

    def __init__(self, sc: Scenario, draws: Draws, sizes: RowSizes, tiers: tuple, tier: np.ndarray) -> None:
        super().__init__(sc, tier_view(tiers, tier, draws), sizes)
        self.tiers, self.tier = tiers, tier
        self.max_attempts = sum(t.sc.network.max_retries + 1 for t in tiers)
        total = np.zeros(len(tier), dtype=np.int16)
        for t in tiers:
            total += t.draws.uplink_attempts
        self.d = replace(self.d, uplink_attempts=total)
        self.timeout_col = np.full(len(tier), NEVER, dtype=np.int64)
        for t in tiers:
            if t.timeout_ns is not None:
                self.timeout_col[tier == t.index] = t.timeout_ns
        self.billed_only_if_ran = False  # an earlier tier may have billed a request the last one refused

    def network_checks(self, s: _Stages, k: slice, n: dict[str, int]) -> None:
        n["timeout"] += _count(s.by_cloud & (s.end - s.sent_at > self.timeout_col[k]))
        tier = self.tier[k]
        for t in self.tiers:
            if not t.draws.has_outages:
                continue
            answered = np.flatnonzero(s.by_cloud & (tier == t.index))
            lost_up = t.draws.first_down(s.sent_at[answered], s.c_enter[answered]) != NEVER
            lost_down = t.draws.first_down(s.c_done[answered], s.end[answered]) != NEVER
            n["outage"] += _count(lost_up | lost_down)


@dataclass(frozen=True)
class _Stages:
    """One chunk's view of the records: times, and which stages each request visited."""

    out: np.ndarray
    route: np.ndarray
    end: np.ndarray
    arrival: np.ndarray
    d_enter: np.ndarray
    d_start: np.ndarray
    d_done: np.ndarray
    c_enter: np.ndarray
    c_start: np.ndarray
    c_done: np.ndarray
    sent: np.ndarray
    sent_at: np.ndarray  # when the upload began: after the router, or after the device (cascades)

    @classmethod
    def of(cls, rec: Records, k: slice, overhead_ns: int) -> _Stages:
        cascade = rec.route[k] == R_CASCADE
        return cls(out=rec.outcome[k], route=rec.route[k], end=rec.end_ns[k], arrival=rec.arrival_ns[k],
                   d_enter=rec.device_enter_ns[k], d_start=rec.device_start_ns[k], d_done=rec.device_done_ns[k],
                   c_enter=rec.cloud_enter_ns[k], c_start=rec.cloud_start_ns[k], c_done=rec.cloud_done_ns[k],
                   sent=rec.sent[k],
                   sent_at=np.where(cascade, rec.device_done_ns[k], rec.arrival_ns[k] + overhead_ns)
                   if rec.hop_sent_ns is None else rec.hop_sent_ns[k])

    @cached_property
    def entered(self) -> np.ndarray:
        return self.d_enter >= 0

    @cached_property
    def ran_device(self) -> np.ndarray:
        return self.d_start >= 0

    @cached_property
    def reached(self) -> np.ndarray:
        return self.c_enter >= 0

    @cached_property
    def ran_cloud(self) -> np.ndarray:
        return self.c_start >= 0

    @cached_property
    def cascade(self) -> np.ndarray:
        return self.route == R_CASCADE

    @cached_property
    def by_cloud(self) -> np.ndarray:
        return (self.out == CLOUD) | (self.out == CASCADE)

    @cached_property
    def failed(self) -> np.ndarray:
        return self.out == FAILED

    @cached_property
    def refused(self) -> np.ndarray:
        return (self.out == REJECTED) | (self.failed & self.entered)
