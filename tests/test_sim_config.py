"""Configuration of the simulator: bad values are one-line errors; the CLI writes its files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from test_sim_properties import accounting_checked_on_every_run  # noqa: F401 - autouse fixture

from router_lab import metric_catalogue as catalogue
from router_lab.errors import RouterLabError
from router_lab.policies.base import PolicyContext
from router_lab.policies.basic import AlwaysLocal
from router_lab.policies.registry import make_policy
from router_lab.sim.engines import run
from router_lab.sim.scenario import make_scenario

METRICS_KEYS = {"accuracy", "latency_mean_ms", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
                "slo_miss_rate", "cloud_fraction", "cost_per_1k_usd", "energy_per_request_j",
                "device_utilization", "offdevice_bytes", "sensitive_offloaded", "n_requests", "ci95",
                "accounting_violations"}


@pytest.mark.parametrize(("groups", "field"), [
    ({"workload": {"rate_per_s": -1.0}}, "workload.rate_per_s"),
    ({"workload": {"kind": "diurnal", "amplitude": 1.5}}, "workload.amplitude"),
    ({"network": {"loss": 1.2}}, "network.loss"),
    ({"network": {"uplink_mbps": 0.0}}, "network.uplink_mbps"),
    ({"device": {"service_mean_ms": -5.0}}, "device.service_mean_ms"),
    ({"device": {"units": 0}}, "device.units"),
    ({"device": {"service": "gamma"}}, "device.service"),
    ({"cloud": {"queue_limit": -1}}, "cloud.queue_limit"),
    ({"cloud": {"timeout_s": 0.0}}, "cloud.timeout_s"),
    ({"sim": {"engine": "warp"}}, "sim.engine"),
    ({"sim": {"on_cloud_failure": "retry"}}, "sim.on_cloud_failure"),
    ({"workload": {"kind": "weekly"}}, "workload.kind"),
    ({"network": {"max_retries": -1}}, "network.max_retries"),
    ({"network": {"max_retries": 101}}, "network.max_retries"),
    ({"network": {"max_retries": 126}}, "network.max_retries"),  # used to wrap the int8 counter
    ({"network": {"max_retries": 127}}, "network.max_retries"),  # used to be a traceback
])
def test_bad_values_are_one_line_errors_naming_the_field(groups, field):
    with pytest.raises(RouterLabError) as info:
        make_scenario(**groups)
    message = str(info.value)
    assert message.startswith(field) and "\n" not in message and "expected" in message


def test_max_retries_bound_is_named_and_the_largest_allowed_value_counts_right(digits):
    with pytest.raises(RouterLabError, match=r"^network\.max_retries: got 126; expected an integer in \[0, 100\]$"):
        make_scenario(network={"max_retries": 126})
    sc = make_scenario(network={"max_retries": 100, "loss": 1.0, "retry_timeout_ms": 1.0},
                       cloud={"timeout_s": None}, sim={"n_requests": 300, "on_cloud_failure": "fail"})
    rec = run(sc, make_policy(OmegaConf.create({"name": "always_cloud"}),
                              PolicyContext(digits, np.random.default_rng(0))), digits, 0)
    sent = rec.sent
    assert sent.sum() > 250 and (rec.attempts[sent] == 101).all() and (rec.attempts >= 0).all()
    assert (rec.offdevice_bytes[sent] == 101 * digits.column_or("input_bytes", 2000)[rec.row[sent]]).all()
    assert (rec.outcome[sent] == 5).all()  # every attempt lost: failed


def test_max_retries_out_of_range_is_a_one_line_cli_error(cli, tmp_path):
    result = cli("simulate", "policy=always_cloud", "network.max_retries=126", "sim.n_requests=100")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == ("router-lab: error: network.max_retries: got 126; expected an "
                                     "integer in [0, 100]"), result.stderr
    assert not list(tmp_path.glob("outputs/simulate/*/metrics.json"))


def test_unstable_device_without_queue_limit_is_refused(digits):
    sc = make_scenario(workload={"rate_per_s": 20.0}, device={"service_mean_ms": 150.0})
    policy = AlwaysLocal(PolicyContext(digits, np.random.default_rng(0)))
    with pytest.raises(RouterLabError, match=r"^device: utilisation 3\.\d+ >= 1 with no queue limit"):
        run(sc, policy, digits, 0)
    bounded = make_scenario(workload={"rate_per_s": 20.0}, device={"queue_limit": 5},
                            sim={"n_requests": 2000})
    assert (run(bounded, policy, digits, 0).outcome == 4).sum() > 0  # rejected, but it runs


def test_unknown_profile_name_is_a_one_line_cli_error(cli):
    result = cli("simulate", "policy=always_local", "device=nosuch")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "device=nosuch" in lines[0] and "phone_npu" in lines[0], result.stderr


def test_negative_rate_is_a_one_line_cli_error(cli):
    result = cli("simulate", "policy=always_local", "workload.rate_per_s=-2")
    assert result.returncode == 2
    assert result.stderr.strip() == ("router-lab: error: workload.rate_per_s: got -2.0; expected a "
                                     "positive number"), result.stderr
    assert "Traceback" not in result.stderr


def test_cli_writes_metrics_and_requests(cli, tmp_path):
    result = cli("simulate", "policy=random", "sim.n_requests=3000", "network=lte", "cloud=gpu_pool",
                 "sim.replications=2")
    assert result.returncode == 0, result.stderr
    (metrics_path,) = tmp_path.glob("outputs/simulate/*/metrics.json")
    metrics = json.loads(metrics_path.read_text())
    assert METRICS_KEYS <= set(metrics)
    # every key simulate writes is declared (a metric, a summary field or one of simulate's own)
    declared = {*catalogue.names(), *catalogue.SUMMARY_FIELDS, *catalogue.RUN_FIELDS}
    assert set(metrics) <= declared, f"undeclared in router_lab/metric_catalogue.py: {set(metrics) - declared}"
    assert metrics["n_requests"] == 6000 and metrics["ci_method"] == "replications"
    assert metrics["sensitive_offloaded"] == 0
    assert metrics["accounting_violations"] == 0
    requests = pd.read_parquet(metrics_path.with_name("requests.parquet"))
    assert len(requests) == 6000 and set(requests["replication"]) == {0, 1}
    assert {"latency_ms", "outcome", "route", "device_wait_ms", "cloud_wait_ms", "network_ms",
            "correct", "cost_usd", "energy_j", "offdevice_bytes"} <= set(requests.columns)
    assert "accuracy" in result.stdout and "wrote" in result.stdout
    assert not list(tmp_path.glob("outputs/simulate/*/.tmp-*"))  # atomic writes leave no temp files
