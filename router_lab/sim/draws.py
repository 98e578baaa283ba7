"""All randomness of one simulated run, drawn up front and vectorised, in integer nanoseconds.

Both engines consume the same :class:`Draws`, so they see identical arrivals, service times,
network delays and outages.  Times are int64 nanoseconds: sums and maxima are then exact, which
is what lets the fast path reproduce the event-driven engine to the nanosecond.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError
from router_lab.sim.arrivals import arrival_times
from router_lab.sim.config import ServiceConfig
from router_lab.sim.scenario import Scenario

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
# Sizes for datasets that lack the columns (a short chat turn).
DEFAULT_SIZES = {"input_bytes": 2_000, "output_bytes": 1_000, "tokens_in": 300, "tokens_out": 200}
OUTAGE_HORIZON_S = 100_000.0  # outages are drawn this far past the last arrival


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


@dataclass(frozen=True)
class Draws:
    """Per-request draws (index = request number, in arrival order) and the outage timeline."""

    arrival_ns: np.ndarray  # int64, sorted
    row: np.ndarray  # int32 dataset row of each request
    device_service_ns: np.ndarray  # int64 >= 1, used if the request runs on the device
    uplink_ns: np.ndarray  # int64: upload time incl. lost attempts (or time until giving up)
    uplink_attempts: np.ndarray  # int8: attempts made; > max_retries + 1 never happens
    uplink_failed: np.ndarray  # bool: every attempt was lost
    downlink_ns: np.ndarray  # int64: response download time
    cloud_service_ns: np.ndarray  # int64 >= 1
    outage_start_ns: np.ndarray  # sorted starts of network outages
    outage_end_ns: np.ndarray

    def __len__(self) -> int:
        return len(self.arrival_ns)

    def network_down(self, t_ns: np.ndarray | int) -> np.ndarray | bool:
        """Whether the network is in an outage at time(s) ``t_ns``."""
        k = np.searchsorted(self.outage_start_ns, t_ns, side="right") - 1
        kk = np.maximum(k, 0)
        ends = self.outage_end_ns[kk] if len(self.outage_end_ns) else np.zeros_like(kk)
        return (k >= 0) & (t_ns < ends)


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
    if len(values) == 0 or not np.all(np.isfinite(values) & (values >= 0)):
        raise RouterLabError(f"{path}: column 'service_ms' must hold non-negative numbers (ms)")
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


def outage_timeline(sc: Scenario, horizon_ns: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    net = sc.network
    if net.offline:
        return np.array([0], dtype=np.int64), np.array([np.iinfo(np.int64).max], dtype=np.int64)
    if net.mean_up_s == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    starts, ends, t = [], [], 0
    while t < horizon_ns:
        k = 1024
        up = to_ns(rng.exponential(net.mean_up_s, k))
        down = to_ns(rng.exponential(net.mean_down_s, k))
        begin = t + np.cumsum(up + down) - down
        starts.append(begin)
        ends.append(begin + down)
        t = int(ends[-1][-1])
    return np.concatenate(starts), np.concatenate(ends)


def draw(sc: Scenario, dataset: Dataset, seed: int | np.random.SeedSequence) -> Draws:
    """Every random quantity of one run, from generators spawned off ``seed``."""
    g_arrival, g_rows, g_device, g_network, g_outage, g_cloud = (
        np.random.default_rng(s) for s in seed_sequence(seed).spawn(6))
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
    horizon = int(arrival_ns[-1]) + int(OUTAGE_HORIZON_S * NS_PER_S)
    outage_start, outage_end = outage_timeline(sc, horizon, g_outage)
    return Draws(arrival_ns, row, device_service_ns, uplink_ns, attempts, failed, downlink_ns,
                 cloud_service_ns, outage_start, outage_end)


def network_times_ns(sc: Scenario, sizes: RowSizes, row: np.ndarray,
                     rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Upload (with lost attempts), whether every attempt was lost, and download, per request.

    Each upload attempt is lost with probability ``loss`` (so lost attempts are geometric); a lost
    attempt costs ``retry_timeout_ms``; after ``max_retries`` retries the upload has failed.
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
    retry_ns = int(round(net.retry_timeout_ms * NS_PER_MS))
    if lost.any():
        unlucky = np.flatnonzero(lost)
        uplink_ns[unlucky] += lost[unlucky].astype(np.int64) * retry_ns
        gave_up = np.flatnonzero(failed)
        uplink_ns[gave_up] = lost[gave_up].astype(np.int64) * retry_ns  # the time until giving up
    attempts = np.minimum(lost + 1, net.max_retries + 1).astype(np.int8)
    return uplink_ns, attempts, failed, to_ns(down_s, scratch=True)


def cloud_times_ns(sc: Scenario, sizes: RowSizes, row: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    cloud = sc.cloud
    if not cloud.llm:
        return service_times_ns(cloud, len(row), rng, "cloud")
    seconds = lognormal(cloud.ttft_ms / 1000.0, cloud.service_cv, len(row), rng)
    seconds += (sizes.tokens_out * (cloud.tpot_ms / 1000.0))[row]
    ns = to_ns(seconds, scratch=True)
    return np.maximum(ns, 1, out=ns)
