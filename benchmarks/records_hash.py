"""Hash the simulator's records over a grid of scenarios x policies x engines (a regression check).

Run it on two commits and compare the printed table: equal hashes mean byte-identical records
(every array of :class:`~router_lab.sim.records.Records`, its audit counts, and ``metrics.json``'s
content).  Used to show that a two-tier scenario (no ``tiers``) is unchanged by a refactor:

    nice -n 19 .venv/bin/python benchmarks/records_hash.py /tmp/datasets
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import fields

import numpy as np
from omegaconf import OmegaConf

from router_lab.data.builders import resolve_dataset
from router_lab.data.config import DigitsConfig, SyntheticConfig
from router_lab.policies.base import PolicyContext
from router_lab.policies.registry import make_policy
from router_lab.sim.engines import ENGINES, FastPathUnsupported
from router_lab.sim.metrics import summarize
from router_lab.sim.scenario import make_scenario

SCENARIOS = {
    "default": {},
    "lossy_outages": {"network": {"loss": 0.2, "mean_up_s": 20.0, "mean_down_s": 3.0},
                      "cloud": {"timeout_s": 0.3, "queue_limit": 4, "units": 2, "rate_limit_rpm": 200}},
    "fail_mode": {"network": {"loss": 0.3}, "sim": {"on_cloud_failure": "fail"},
                  "device": {"queue_limit": 3}},
    "battery_llm": {"device": {"battery_j": 300.0}, "cloud": {"llm": True, "units": 8}},
}
POLICIES = ("always_local", "always_cloud", "random", "confidence", "load_aware")


def records_digest(rec) -> str:  # noqa: ANN001 - Records
    h = hashlib.sha256()
    for f in fields(rec):
        value = getattr(rec, f.name)
        if isinstance(value, np.ndarray):
            h.update(f.name.encode())
            h.update(np.ascontiguousarray(value).tobytes())
    h.update(json.dumps(rec.violations, sort_keys=True).encode())
    return h.hexdigest()[:16]


def main(datasets_dir: str) -> None:
    datasets = {"digits": resolve_dataset(DigitsConfig(), datasets_dir),
                "synthetic": resolve_dataset(SyntheticConfig(name="synthetic_hash", n_rows=3_000), datasets_dir)}
    print(f"{'dataset':10} {'scenario':14} {'policy':16} {'engine':6} records          metrics")
    for dname, dataset in datasets.items():
        for sname, groups in SCENARIOS.items():
            sim = {"n_requests": 3_000, "allow_unstable": True, **groups.get("sim", {})}
            workload = {"rate_per_s": 20.0}
            sc = make_scenario(workload=workload, sim=sim, **{k: v for k, v in groups.items() if k != "sim"})
            for pname in POLICIES:
                for engine in ("simpy", "fast"):
                    policy = make_policy(OmegaConf.create({"name": pname}),
                                         PolicyContext(dataset, np.random.default_rng(3)))
                    try:
                        rec = ENGINES.get(engine)(sc, policy, dataset, 7)
                    except FastPathUnsupported:
                        print(f"{dname:10} {sname:14} {pname:16} {engine:6} (stateful: simpy only)")
                        continue
                    metrics = json.dumps(summarize(rec, sc), sort_keys=True).encode()
                    print(f"{dname:10} {sname:14} {pname:16} {engine:6} {records_digest(rec)} "
                          f"{hashlib.sha256(metrics).hexdigest()[:16]}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "datasets")
