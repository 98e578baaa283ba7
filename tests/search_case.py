"""The small search the tests share (tests/test_search.py checks its answer, tests/test_sweep.py
runs it again through Ray): the space, the scenario, the preset and the command line."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

# A small space: 4 confidence levels and 3 thresholds of the learned router (7 points), on a
# lighter load than the default so that some points meet the constraints and some do not.
CONFIDENCES = (0.7, 0.8, 0.9, 0.95)
THRESHOLDS = (0.2, 0.4, 0.6)
SCENARIO = ["sim.n_requests=500", "sim.replications=3", "workload.rate_per_s=2", "seed=0"]
CONSTRAINTS = ["accuracy>=0.935", "latency_p99_ms<=900"]
N_TRIALS = 7
PRESET = f"""\
# @package _global_
defaults:
  - override /hydra/sweeper: optuna
search:
  objective: cost_per_1k_usd
  constraints: {json.dumps(CONSTRAINTS)}
  routers: [input]
  space:
    - when: policy=confidence
      params: ["policy.min_confidence=choice({','.join(map(str, CONFIDENCES))})"]
    - when: policy=learned
      params: ["policy.threshold=choice({','.join(map(str, THRESHOLDS))})"]
hydra:
  sweeper:
    sampler:
      seed: ${{seed}}
      n_startup_trials: 3
    direction: minimize
    n_trials: {N_TRIALS}
    n_jobs: 1
    custom_search_space: router_lab.search.space.extend
    params:
      policy: choice(confidence,learned)
"""


def search_args(work: Path, sweep_dir: Path, datasets_dir: Path) -> list[str]:
    """`router-lab search` of the small space in ``work`` (which gets the preset), without launcher
    (a cheap export, should ``search.export_best=true`` ask for one)."""
    (work / "conf" / "experiment").mkdir(parents=True, exist_ok=True)
    (work / "conf" / "experiment" / "search_small.yaml").write_text(textwrap.dedent(PRESET))
    return ["search", "+experiment=search_small", f"hydra.searchpath=[file://{work / 'conf'}]",
            f"hydra.sweep.dir={sweep_dir}", f"datasets_dir={datasets_dir}", *SCENARIO,
            "export.latency_calls=20", "export.batch_calls=1"]
