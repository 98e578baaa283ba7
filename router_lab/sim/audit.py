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

from typing import TYPE_CHECKING

import numpy as np

from router_lab.policies.base import Route
from router_lab.sim.draws import NEVER, NS_PER_MS, Draws, RowSizes, timeout_ns
from router_lab.sim.scenario import Scenario

if TYPE_CHECKING:  # records imports this module
    from router_lab.sim.records import Records

CHECKS = ("outcome_code", "end_after_arrival",
          "device_enter", "device_start", "device_done", "device_fifo", "device_units",
          "cloud_enter", "cloud_start", "cloud_done", "cloud_fifo", "cloud_units",
          "end_after_stages", "outcome_stages", "timeout", "outage", "attempts", "bytes", "sensitive",
          "quality_cost_energy")

# Outcome codes (records.Outcome; not imported to keep this module free of a cycle).
LOCAL, CLOUD, CASCADE, FALLBACK, REJECTED, FAILED = range(6)


def _count(bad: np.ndarray) -> int:
    return int(np.count_nonzero(bad))


def _station(enter: np.ndarray, start: np.ndarray, done: np.ndarray, service: np.ndarray,
             units: int) -> tuple[int, int, int, int]:
    """(start < enter, done != start + service, FIFO breaks, excess over ``units``) for a station."""
    ran = np.flatnonzero(start >= 0)
    s, e = start[ran], enter[ran]
    bad_start = _count((s < e) | (e < 0))
    bad_done = _count(done[ran] != s + service[ran]) + _count(done[start < 0] != -1)
    if len(ran) and not bool((e[1:] >= e[:-1]).all()):  # admission order: entry time, then request
        order = np.argsort(e, kind="stable")
        s = s[order]
    bad_fifo = _count(s[1:] < s[:-1])
    if bad_fifo:
        s = np.sort(s)
    finished = np.sort(done[ran], kind="stable")  # in service at t: #{start <= t} - #{done <= t}
    in_service = np.searchsorted(s, s, side="right") - np.searchsorted(finished, s, side="right")
    bad_units = _count(in_service > units)
    return bad_start, bad_done, bad_fifo, bad_units


def audit(rec: Records, draws: Draws, sc: Scenario, sizes: RowSizes) -> dict[str, int]:
    """Per check (:data:`CHECKS`), how many requests or events break it (all 0 when consistent)."""
    n = {}
    out, route, end, arrival = rec.outcome, rec.route, rec.end_ns, rec.arrival_ns
    overhead = int(round(sc.device.router_overhead_ms * NS_PER_MS))
    n["outcome_code"] = _count((out < LOCAL) | (out > FAILED))
    n["end_after_arrival"] = _count(end < arrival)

    # The device.
    d_enter, d_start, d_done = rec.device_enter_ns, rec.device_start_ns, rec.device_done_ns
    entered = d_enter >= 0
    n["device_enter"] = _count(d_enter[entered] < arrival[entered] + overhead) + _count(~entered & (d_start >= 0))
    (n["device_start"], n["device_done"], n["device_fifo"],
     n["device_units"]) = _station(d_enter, d_start, d_done, draws.device_service_ns, sc.device.units)

    # The network and the cloud: a request reaches the cloud when its upload completes.
    cascade = route == Route.CASCADE
    sent_at = arrival + overhead
    np.copyto(sent_at, d_done, where=cascade)
    c_enter, c_start, c_done = rec.cloud_enter_ns, rec.cloud_start_ns, rec.cloud_done_ns
    reached = c_enter >= 0
    n["cloud_enter"] = (_count(c_enter[reached] != sent_at[reached] + draws.uplink_ns[reached])
                        + _count(reached & (~rec.sent | draws.uplink_failed)) + _count(~reached & (c_start >= 0)))
    (n["cloud_start"], n["cloud_done"], n["cloud_fifo"],
     n["cloud_units"]) = _station(c_enter, c_start, c_done, draws.cloud_service_ns, sc.cloud.units)

    n["end_after_stages"] = _count((end < d_done) | (end < d_enter) | (end < c_enter))

    # The outcome agrees with the stages visited and the end time.
    by_cloud = (out == CLOUD) | (out == CASCADE)
    answer_at = c_done + draws.downlink_ns
    ran_device = d_start >= 0
    bad = np.zeros(len(rec), dtype=bool)
    local = out == LOCAL
    bad |= local & (~ran_device | (route == Route.CLOUD) | rec.sent | reached | (end != d_done))
    bad |= by_cloud & ((c_done < 0) | (end != answer_at) | ~rec.sent)
    bad |= (out == CLOUD) & ((route != Route.CLOUD) | entered)
    bad |= (out == CASCADE) & (~cascade | ~ran_device)
    fallback = out == FALLBACK
    bad |= fallback & (route == Route.CLOUD) & (~ran_device | (end != d_done))
    bad |= fallback & cascade & (~ran_device | (end < d_done))
    bad |= fallback & (route == Route.LOCAL)
    bad |= (out == REJECTED) & (~entered | ran_device | (end != d_enter))
    failed = out == FAILED
    refused = failed & entered  # the battery was empty
    bad |= refused & (ran_device | (end != d_enter))
    bad |= failed & ~entered & ((route != Route.CLOUD) | (sc.sim.on_cloud_failure != "fail"))
    n["outcome_stages"] = _count(bad)

    timeout = timeout_ns(sc)
    n["timeout"] = 0 if timeout is None else _count(by_cloud & (end - sent_at > timeout))
    answered = np.flatnonzero(by_cloud)
    if draws.has_outages and len(answered):
        lost_up = draws.first_down(sent_at[answered], c_enter[answered]) != NEVER
        lost_down = draws.first_down(c_done[answered], end[answered]) != NEVER
        n["outage"] = _count(lost_up | lost_down)
    else:
        n["outage"] = 0

    attempts = rec.attempts
    n["attempts"] = (_count(rec.sent != (attempts > 0)) + _count(attempts > draws.uplink_attempts)
                     + _count(attempts < 0) + _count(attempts > sc.network.max_retries + 1))
    n["bytes"] = _count(rec.offdevice_bytes != sizes.input_bytes[rec.row] * attempts)
    n["sensitive"] = _count(rec.sensitive & (rec.sent | (route != Route.LOCAL)))
    no_answer = (out == REJECTED) | failed
    energy = np.float32(sc.device.energy_per_inference_j)
    n["quality_cost_energy"] = (_count(no_answer & (rec.quality != 0)) + _count((c_start < 0) & (rec.cost_usd != 0))
                                + _count(rec.energy_j != np.where(ran_device, energy, np.float32(0))))
    return {name: int(n[name]) for name in CHECKS}
