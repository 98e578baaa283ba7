"""Structured configs owned by router_lab.sim: the workload/device/network/cloud groups and `sim.*`.

Every option file in ``router_lab/conf/<group>/`` names one of these schemas; the numbers of the shipped
profiles (and where they come from) are documented in those YAML files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING


@dataclass
class WorkloadConfig:
    kind: str = MISSING  # arrival process: poisson | bursty | diurnal | trace
    rate_per_s: float = 4.0  # mean arrival rate


@dataclass
class BurstyWorkloadConfig(WorkloadConfig):
    """Two-state Markov-modulated Poisson process (MMPP-2)."""

    kind: str = "bursty"
    rate_low_per_s: float = 2.0
    rate_high_per_s: float = 12.0
    mean_low_s: float = 60.0  # mean sojourn in the quiet state
    mean_high_s: float = 10.0  # mean sojourn in the burst state


@dataclass
class DiurnalWorkloadConfig(WorkloadConfig):
    """Rate ``rate_per_s * (1 + amplitude * sin(2 pi (t + phase_s) / period_s))`` by thinning."""

    kind: str = "diurnal"
    amplitude: float = 0.8  # in [0, 1]
    period_s: float = 86_400.0
    phase_s: float = 0.0


@dataclass
class TraceWorkloadConfig(WorkloadConfig):
    """Replay recorded arrival times: the dataset's `timestamp` column or a CSV of times."""

    kind: str = "trace"
    path: str | None = None  # CSV with a time column (seconds); None: the dataset's timestamps
    column: str = "timestamp"
    time_scale: float = 1.0  # >1 replays faster (times are divided by it)


@dataclass
class ServiceConfig:
    """A service-time distribution: deterministic | exponential | lognormal (mean, cv) | profile."""

    service: str = "lognormal"
    service_mean_ms: float = 100.0
    service_cv: float = 0.5  # coefficient of variation (lognormal only)
    profile_path: str | None = None  # service=profile: CSV of measured times, column `service_ms`


@dataclass
class DeviceConfig(ServiceConfig):
    name: str = MISSING
    units: int = 1  # parallel execution units (c)
    queue_limit: int | None = None  # max requests waiting; None: unbounded
    router_overhead_ms: float = 0.2  # the router's own cost, paid by every request before routing
    energy_per_inference_j: float = 0.5
    idle_w: float = 0.05
    battery_j: float | None = None  # usable energy; when spent, device inference fails


@dataclass
class NetworkConfig:
    name: str = MISSING
    rtt_ms: float = 20.0  # mean round-trip time (lognormal)
    rtt_cv: float = 0.5
    uplink_mbps: float = 20.0
    downlink_mbps: float = 50.0
    loss: float = 0.001  # probability that one upload attempt is lost
    max_retries: int = 3
    retry_timeout_ms: float = 200.0  # time lost per lost attempt
    mean_up_s: float = 0.0  # outage process: mean time up; 0 = never goes down
    mean_down_s: float = 0.0  # mean outage length
    offline: bool = False  # no connectivity at all


@dataclass
class CloudConfig(ServiceConfig):
    name: str = MISSING
    units: int = 64  # concurrency limit
    queue_limit: int | None = None
    llm: bool = True  # service = ttft + tokens_out * tpot (else the service distribution)
    ttft_ms: float = 400.0  # mean time to first token (lognormal, cv = service_cv)
    tpot_ms: float = 20.0  # time per output token
    rate_limit_rpm: int | None = None  # fixed one-minute windows; over the limit is rejected
    timeout_s: float | None = 30.0  # the client gives up after this (then falls back)
    cost_per_request_usd: float = 0.0
    cost_per_1k_input_tokens_usd: float = 0.00015
    cost_per_1k_output_tokens_usd: float = 0.0006


@dataclass
class TierConfig:
    """One more remote tier (``+tier@tiers.<name>=<preset>``): the dataset model it serves, the
    network path to it (the ``network`` group's fields) and its station (the ``cloud`` group's:
    units, service, rate limit, timeout, prices).  Tiers answer in the dataset's model order; a
    request whose remote tier fails falls back to the next cheaper tier, finally the device."""

    name: str = ""  # the preset's name (default: the key under `tiers`)
    model: str = MISSING  # the dataset model (card `models[].name`) this tier serves
    network: NetworkConfig = field(default_factory=lambda: NetworkConfig(name="network"))
    cloud: CloudConfig = field(default_factory=lambda: CloudConfig(name="cloud"))


@dataclass
class SimSection:
    """Run options of the simulator (`sim.*` on the command line)."""

    engine: str = "auto"  # simpy | fast | auto (fast when the policy is stateless)
    n_requests: int = 10_000  # requests per replication (ignored when duration_s is set)
    duration_s: float | None = None  # end the arrivals after this much simulated time instead
    warmup_s: float = 0.0  # requests arriving earlier are simulated but not measured
    replications: int = 1  # independent runs (seeds spawned from `seed`) for the 95 % CIs
    batches: int = 10  # batch means for the CIs when replications == 1
    slo_ms: float = 500.0  # latency SLO for slo_miss_rate (an interactive on-device answer)
    split: str = "auto"  # rows to sample: auto (test split if any, else all) | all | train | val | test
    on_cloud_failure: str = "fallback"  # fallback (answer on the device) | fail
    allow_unstable: bool = False  # permit utilisation >= 1 without a queue limit
    progress: bool = True  # progress bar on a terminal


SCHEMAS: list[tuple[str, str, type]] = [
    ("workload", "schema_workload", WorkloadConfig),
    ("workload", "schema_bursty", BurstyWorkloadConfig),
    ("workload", "schema_diurnal", DiurnalWorkloadConfig),
    ("workload", "schema_trace", TraceWorkloadConfig),
    ("device", "schema_device", DeviceConfig),
    ("network", "schema_network", NetworkConfig),
    ("cloud", "schema_cloud", CloudConfig),
    ("tier", "schema_tier", TierConfig),
]
