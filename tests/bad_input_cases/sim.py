"""Bad simulator inputs: network/cloud/sim values out of range, unreadable or invalid trace and
profile files (see tests/test_bad_input_corpus.py for the keys)."""

from __future__ import annotations

from pathlib import Path


def negative_trace_time(tmp: Path) -> None:
    (tmp / "times.csv").write_text("timestamp\n0.0\n1.5\n-2\n")


def trace_without_the_column(tmp: Path) -> None:
    (tmp / "times.csv").write_text("when\n0.0\n1.5\n")


def profile_with_text(tmp: Path) -> None:
    (tmp / "npu.csv").write_text("service_ms\n12\nfast\n")


CASES = [
    {"id": "sim-max-retries-wraps-int8", "args": ["simulate", "network.max_retries=126"],
     "expect": ["network.max_retries", "got 126", "[0, 100]"]},
    {"id": "sim-max-retries-traceback", "args": ["simulate", "network.max_retries=127"],
     "expect": ["network.max_retries", "got 127", "[0, 100]"]},
    {"id": "sim-max-retries-negative", "args": ["simulate", "network.max_retries=-1"],
     "expect": ["network.max_retries", "got -1", "[0, 100]"]},
    {"id": "sim-loss-above-one", "args": ["simulate", "network.loss=1.5"],
     "expect": ["network.loss", "probability"]},
    {"id": "sim-outages-without-length", "args": ["simulate", "network.mean_up_s=10", "network.mean_down_s=0"],
     "expect": ["network.mean_down_s"]},
    {"id": "sim-timeout-zero", "args": ["simulate", "cloud.timeout_s=0"], "expect": ["cloud.timeout_s", "positive"]},
    {"id": "sim-trace-missing-file", "args": ["simulate", "workload=trace", "workload.path={tmp}/nope.csv"],
     "expect": ["workload.path", "nope.csv"]},
    {"id": "sim-trace-negative-time", "setup": "negative_trace_time",
     "args": ["simulate", "workload=trace", "workload.path={tmp}/times.csv"],
     "expect": ["times.csv", "row 3", "got -2.0;", "non-negative"]},
    {"id": "sim-trace-no-column", "setup": "trace_without_the_column",
     "args": ["simulate", "workload=trace", "workload.path={tmp}/times.csv"],
     "expect": ["times.csv", "timestamp"]},
    {"id": "sim-profile-not-numbers", "setup": "profile_with_text",
     "args": ["simulate", "device.service=profile", "device.profile_path={tmp}/npu.csv"],
     "expect": ["npu.csv", "service_ms", "row 2", "'fast'"]},
    {"id": "sim-warmup-covers-run", "args": ["simulate", "sim.n_requests=50", "sim.warmup_s=100000"],
     "expect": ["sim.warmup_s"]},
]
