"""Structured config of the testbed (`testbed.*` on the command line); the scenario is `sim`'s groups."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TestbedSection:
    """Run options of `router-lab testbed` and `router-lab profile`."""

    time_scale: float = 0.1  # real seconds per configured second (0.1: 10x faster)
    host: str = "127.0.0.1"  # loopback only
    cloud_port: int = 0  # 0: any free port
    startup_timeout_s: float = 30.0  # the cloud service must be ready within this
    max_wall_s: float = 900.0  # hard bound on one live replication's real duration
    max_lateness_ms: float = 25.0  # generator p99 lateness allowed (configured ms) before a run is refused
    max_rate_per_s: float = 100.0  # real request rate the testbed drives here (benchmarks/bench_testbed.py)
    drain_s: float = 60.0  # after the last arrival, real seconds to wait for requests in flight
    profile_calls: int = 2000  # `router-lab profile`: calls per model (warm, one thread)
    experiment: str | None = None  # sim_vs_live: run `scenarios` both ways
    scenarios: list[Any] = field(default_factory=list)  # [{name, overrides: [...]}] for sim_vs_live


SCHEMAS: list[tuple[str, str, type]] = []
