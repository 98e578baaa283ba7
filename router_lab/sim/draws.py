"""All randomness of one simulated run, drawn up front and vectorised, in integer nanoseconds.

Both engines consume the same :class:`Draws`, so they see identical arrivals, service times,
network delays and outages.  Times are int64 nanoseconds: sums and maxima are then exact, which
is what lets the fast path reproduce the event-driven engine to the nanosecond.

Network rules shared by every engine (and the reference model):

- An upload's drawn time includes its lost attempts (``retry_timeout_ms`` each); the client's
  timeout (``cloud.timeout_s``) bounds it: an upload that would take ``>= timeout`` (retries
  included) ends in a timeout at ``sent + timeout`` with the attempts begun by then.
- Outages are windows ``[start, end)``.  A transfer (upload, answer or refusal) that starts while
  the network is down, or during which an outage begins, is lost: the requester learns it when the
  outage begins (the connection drops), or at its timeout if that comes first.  An upload cut that
  way counts the attempts begun before the cut.
- The outage timeline is drawn lazily, only as far as the run uses the network (from separate
  up-time and down-time streams, so how far it was drawn never changes its values).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError
from router_lab.sim.arrivals import arrival_times
from router_lab.sim.config import NetworkConfig, ServiceConfig
from router_lab.sim.scenario import MAX_RETRIES, Scenario  # noqa: F401 - attempts fit int8

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
# Sizes for datasets that lack the columns (a short chat turn).
DEFAULT_SIZES = {"input_bytes": 2_000, "output_bytes": 1_000, "tokens_in": 300, "tokens_out": 200}
NEVER = np.iinfo(np.int64).max  # "no such time" (no outage hit, no timeout)


@dataclass(frozen=True)
class RowSizes:
    """Per dataset row: payload sizes and token counts (defaults where the dataset has none)."""

    input_bytes: np.ndarray
    output_bytes: np.ndarray
    tokens_in: np.ndarray
    tokens_out: np.ndarray

    @classmethod
    def of(cls, dataset: Dataset) -> RowSizes:
        return cls(**{name: dataset.column_or(name, default).astype(np.int64)
                      for name, default in DEFAULT_SIZES.items()})


class Outages:
    """The network's outage windows ``[start, end)``, drawn lazily as far as they are asked about.

    Up and down times come from two generators, so the windows do not depend on how far (or in
    how many steps) the timeline was drawn.  ``offline``: one window over all time; ``mean_up_s
    = 0``: none.
    """

    CHUNK = 1024

    def __init__(self, net: NetworkConfig, seed: np.random.SeedSequence) -> None:
        self.mean_up_s, self.mean_down_s = net.mean_up_s, net.mean_down_s
        self.rng_up, self.rng_down = (np.random.default_rng(s) for s in seed.spawn(2))
        if net.offline:
            self.starts, self.ends = np.array([0], dtype=np.int64), np.array([NEVER], dtype=np.int64)
            self.known_ns = NEVER
        elif net.mean_up_s == 0:
            self.starts, self.ends = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
            self.known_ns = NEVER
        else:
            self.starts, self.ends = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
            self.known_ns = 0  # the timeline is known on [0, known_ns]: the end of the last window

    @property
    def any(self) -> bool:
        return len(self.starts) > 0 or self.known_ns != NEVER

    def cover(self, t_ns: int) -> None:
        """Draw windows until the timeline is known beyond ``t_ns``."""
        if t_ns < self.known_ns or self.known_ns == NEVER:  # known already, or never any outage to draw
            return
        starts, ends, t = [self.starts], [self.ends], self.known_ns
        while t <= t_ns:
            k = max(self.CHUNK, len(self.starts) // 2)  # geometric growth: few concatenations
            up = to_ns(self.rng_up.exponential(self.mean_up_s, k))
            down = to_ns(self.rng_down.exponential(self.mean_down_s, k))
            begin = t + np.cumsum(up + down) - down
            starts.append(begin)
            ends.append(begin + down)
            t = int(ends[-1][-1])
        self.starts, self.ends, self.known_ns = np.concatenate(starts), np.concatenate(ends), t

    def down(self, t_ns: np.ndarray | int) -> np.ndarray | bool:
        """Whether the network is in an outage at time(s) ``t_ns``."""
        if np.size(t_ns):
            self.cover(int(np.max(t_ns)))
        k = np.searchsorted(self.starts, t_ns, side="right") - 1
        kk = np.maximum(k, 0)
        ends = self.ends[kk] if len(self.ends) else np.zeros_like(kk)
        return (k >= 0) & (t_ns < ends)

    def first_down(self, begin_ns: np.ndarray | int, end_ns: np.ndarray | int) -> np.ndarray | int:
        """The first moment in ``[begin, end)`` the network is down (``begin`` itself when it is
        down then, else the first outage start inside), or NEVER; vectorised or scalar."""
        if not np.ndim(begin_ns):  # the event-driven engine's per-request call
            begin, end = int(begin_ns), int(end_ns)
            self.cover(end)
            starts, m = self.starts, len(self.starts)
            k = int(starts.searchsorted(begin, side="right"))  # windows starting at or before begin
            if k and begin < self.ends[k - 1]:
                return begin
            return int(starts[k]) if k < m and starts[k] < end else NEVER
        if not len(begin_ns):
            return np.empty(0, dtype=np.int64)
        self.cover(int(np.max(end_ns)))
        starts, m = self.starts, len(self.starts)
        if not m:
            return np.full(len(begin_ns), NEVER, dtype=np.int64)
        k = np.searchsorted(starts, begin_ns, side="right")
        down_now = (k > 0) & (begin_ns < self.ends[np.maximum(k - 1, 0)])
        nxt = starts[np.minimum(k, m - 1)]
        inside = (k < m) & (nxt < end_ns)
        return np.where(down_now, begin_ns, np.where(inside, nxt, NEVER))


@dataclass(frozen=True)
class Draws:
    """Per-request draws (index = request number, in arrival order) and the outage timeline."""

    arrival_ns: np.ndarray  # int64, sorted
    row: np.ndarray  # int32 dataset row of each request
    device_service_ns: np.ndarray  # int64 >= 1, used if the request runs on the device
    uplink_ns: np.ndarray  # int64: upload time incl. lost attempts (or until giving up / the timeout)
    uplink_attempts: np.ndarray  # int8: attempts made, 1 .. max_retries + 1 (<= MAX_RETRIES + 1)
    uplink_failed: np.ndarray  # bool: every attempt was lost, or the client's timeout came first
    downlink_ns: np.ndarray  # int64: response download time
    cloud_service_ns: np.ndarray  # int64 >= 1
    outages: Outages

    def __len__(self) -> int:
        return len(self.arrival_ns)

    @property
    def outage_start_ns(self) -> np.ndarray:
        """Starts of the outage windows drawn so far (non-empty whenever the network has outages)."""
        return self.outages.starts

    @property
    def outage_end_ns(self) -> np.ndarray:
        return self.outages.ends

    @property
    def has_outages(self) -> bool:
        return self.outages.any

    def network_down(self, t_ns: np.ndarray | int) -> np.ndarray | bool:
        """Whether the network is in an outage at time(s) ``t_ns``."""
        return self.outages.down(t_ns)

    def first_down(self, begin_ns: np.ndarray | int, end_ns: np.ndarray | int) -> np.ndarray | int:
        """When a transfer over ``[begin, end)`` is cut by an outage, or NEVER (see Outages)."""
        return self.outages.first_down(begin_ns, end_ns)


def attempts_begun(elapsed_ns: np.ndarray | int, attempts: np.ndarray | int, retry_ns: int) -> np.ndarray | int:
    """Upload attempts begun in the first ``elapsed_ns`` (> 0) of an upload: attempt k begins at
    ``k * retry_ns``."""
    if retry_ns <= 0:
        return attempts
    if np.ndim(elapsed_ns) or np.ndim(attempts):
        return np.minimum(attempts, (np.asarray(elapsed_ns) + (retry_ns - 1)) // retry_ns).astype(np.int8)
    return min(int(attempts), (int(elapsed_ns) + retry_ns - 1) // retry_ns)


def timeout_ns(sc: Scenario) -> int | None:
    """The client timeout in ns (``cloud.timeout_s``), or None."""
    return None if sc.cloud.timeout_s is None else int(round(sc.cloud.timeout_s * NS_PER_S))


def retry_ns(sc: Scenario) -> int:
    return int(round(sc.network.retry_timeout_ms * NS_PER_MS))


def router_overhead_ns(sc: Scenario) -> int:
    """The router's own cost in ns: a request is decided (and sent) at arrival + this."""
    return int(round(sc.device.router_overhead_ms * NS_PER_MS))


def seed_sequence(seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
    """A fresh copy (spawning mutates a SeedSequence, so never spawn from the caller's object)."""
    if isinstance(seed, np.random.SeedSequence):
        return np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key)
    return np.random.SeedSequence(int(seed))


def to_ns(seconds: np.ndarray | float, scratch: bool = False) -> np.ndarray:
    """Non-negative seconds to integer nanoseconds (rounded half up).

    ``scratch=True`` lets it overwrite a float64 input instead of allocating a copy.
    """
    seconds = np.asarray(seconds, dtype=np.float64)
    if scratch and seconds.ndim:
        seconds *= NS_PER_S
        seconds += 0.5
        return seconds.astype(np.int64)
    return (seconds * NS_PER_S + 0.5).astype(np.int64)


def service_times_ns(svc: ServiceConfig, n: int, rng: np.random.Generator, group: str) -> np.ndarray:
    """``n`` service times in ns (>= 1 ns) from a service config."""
    mean_s = svc.service_mean_ms / 1000.0
    if svc.service == "deterministic":
        seconds = np.full(n, mean_s)
    elif svc.service == "exponential":
        seconds = rng.exponential(mean_s, n)
    elif svc.service == "lognormal":
        seconds = lognormal(mean_s, svc.service_cv, n, rng)
    else:
        seconds = rng.choice(measured_profile_s(svc.profile_path, group), n)
    ns = to_ns(seconds, scratch=True)
    return np.maximum(ns, 1, out=ns)


def lognormal(mean: float, cv: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Lognormal draws with the given mean and coefficient of variation (cv = 0: constant)."""
    if cv == 0 or mean <= 0:
        return np.full(n, max(mean, 0.0))
    sigma2 = np.log1p(cv * cv)
    # exp of a float32 normal: ~3x faster than Generator.lognormal, ample precision for durations.
    z = rng.standard_normal(n, dtype=np.float32)
    z *= np.sqrt(sigma2)
    z += np.log(mean) - sigma2 / 2.0
    np.minimum(z, 60.0, out=z)  # keep absurd configs finite (e**60 s)
    np.exp(z, out=z)
    return z.astype(np.float64)


def measured_profile_s(path: str | None, group: str) -> np.ndarray:
    try:
        frame = pd.read_csv(str(path))
    except (OSError, ValueError) as exc:
        raise RouterLabError(f"{group}.profile_path: cannot read {path}: {exc}") from exc
    if "service_ms" not in frame.columns:
        raise RouterLabError(f"{path}: no column 'service_ms'; expected measured service times in ms")
    values = pd.to_numeric(frame["service_ms"], errors="coerce").to_numpy(dtype=np.float64)
    if len(values) == 0:
        raise RouterLabError(f"{path}: column 'service_ms' is empty; expected measured service times in ms")
    bad = np.flatnonzero(~(np.isfinite(values) & (values >= 0)))
    if bad.size:
        value = frame["service_ms"].iloc[bad[0]]
        value = value.item() if hasattr(value, "item") else value
        raise RouterLabError(f"{path}: column 'service_ms', row {bad[0] + 1}: got {value!r}; expected a "
                             "non-negative number of ms")
    return values / 1000.0


def sample_pool(dataset: Dataset, split: str) -> np.ndarray:
    """Rows requests are sampled from: the test split by default when the dataset has splits."""
    if split == "auto":
        split = "test" if "split" in dataset.frame.columns else "all"
    if split == "all":
        return np.arange(len(dataset))
    pool = np.flatnonzero(dataset.split_mask(split))
    if pool.size == 0:
        raise RouterLabError(f"sim.split: dataset {dataset.name} has no rows in split {split!r}")
    return pool


def draw(sc: Scenario, dataset: Dataset, seed: int | np.random.SeedSequence) -> Draws:
    """Every random quantity of one run, from generators spawned off ``seed``."""
    seeds = seed_sequence(seed).spawn(6)
    g_arrival, g_rows, g_device, g_network, _, g_cloud = (np.random.default_rng(s) for s in seeds)
    sim = sc.sim
    arrivals = arrival_times(sc.workload, sim.n_requests, sim.duration_s, g_arrival, dataset)
    arrival_ns = to_ns(arrivals.times_s)
    n = len(arrival_ns)
    if arrivals.rows is not None:
        row = arrivals.rows.astype(np.int32)
    else:
        pool = sample_pool(dataset, sim.split)
        row = pool[g_rows.integers(0, len(pool), n)].astype(np.int32)
    sizes = RowSizes.of(dataset)
    device_service_ns = service_times_ns(sc.device, n, g_device, "device")
    uplink_ns, attempts, failed, downlink_ns = network_times_ns(sc, sizes, row, g_network)
    cloud_service_ns = cloud_times_ns(sc, sizes, row, g_cloud)
    outages = Outages(sc.network, seeds[4])
    outages.cover(int(arrival_ns[-1]))
    return Draws(arrival_ns, row, device_service_ns, uplink_ns, attempts, failed, downlink_ns,
                 cloud_service_ns, outages)


def network_times_ns(sc: Scenario, sizes: RowSizes, row: np.ndarray,
                     rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Upload (with lost attempts), whether every attempt was lost, and download, per request.

    Each upload attempt is lost with probability ``loss`` (so lost attempts are geometric); a lost
    attempt costs ``retry_timeout_ms``; after ``max_retries`` retries the upload has failed.  An
    upload taking ``>= cloud.timeout_s`` (retries included) has failed at the timeout instead.
    """
    net = sc.network
    n = len(row)
    half_rtt_s = lognormal(net.rtt_ms / 1000.0, net.rtt_cv, n, rng)
    half_rtt_s *= 0.5
    down_s = half_rtt_s + (sizes.output_bytes * (8.0 / (net.downlink_mbps * 1e6)))[row]
    half_rtt_s += (sizes.input_bytes * (8.0 / (net.uplink_mbps * 1e6)))[row]
    uplink_ns = to_ns(half_rtt_s, scratch=True)
    del half_rtt_s
    lost = np.zeros(n, dtype=np.int8)
    if net.loss >= 1.0:
        lost[:] = net.max_retries + 1
    elif net.loss > 0.0:
        u = rng.random(n)
        unlucky = np.flatnonzero(u < net.loss)  # P(lost >= k) = P(u < loss^k) = loss^k
        k = np.floor(np.log(u[unlucky]) / np.log(net.loss))
        lost[unlucky] = np.minimum(k, net.max_retries + 1)
    failed = lost > net.max_retries
    retry = retry_ns(sc)
    if lost.any():
        unlucky = np.flatnonzero(lost)
        uplink_ns[unlucky] += lost[unlucky].astype(np.int64) * retry
        gave_up = np.flatnonzero(failed)
        uplink_ns[gave_up] = lost[gave_up].astype(np.int64) * retry  # the time until giving up
    attempts = np.minimum(lost + 1, net.max_retries + 1).astype(np.int8)  # <= MAX_RETRIES + 1: no wrap
    timeout = timeout_ns(sc)
    if timeout is not None:
        late = np.flatnonzero(uplink_ns >= timeout)  # the client gives up first, retries or not
        if late.size:
            attempts[late] = attempts_begun(timeout, attempts[late], retry)
            uplink_ns[late] = timeout
            failed[late] = True
    return uplink_ns, attempts, failed, to_ns(down_s, scratch=True)


def cloud_times_ns(sc: Scenario, sizes: RowSizes, row: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    cloud = sc.cloud
    if not cloud.llm:
        return service_times_ns(cloud, len(row), rng, "cloud")
    seconds = lognormal(cloud.ttft_ms / 1000.0, cloud.service_cv, len(row), rng)
    seconds += (sizes.tokens_out * (cloud.tpot_ms / 1000.0))[row]
    ns = to_ns(seconds, scratch=True)
    return np.maximum(ns, 1, out=ns)
