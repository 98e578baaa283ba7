"""Reference routing curves for the requests a job simulated: random routing and the oracle.

Both are computed offline on the same dataset rows the job drew (``requests.parquet``'s ``row``),
from the dataset's device and cloud outcomes; the dataset is read from disk, never built here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from router_lab.constants import CONFIG_FILE
from router_lab.report.summary import Job


@dataclass(frozen=True)
class ReferenceCurves:
    cloud_fraction_oracle: np.ndarray
    accuracy_oracle: np.ndarray
    cloud_fraction_random: np.ndarray
    accuracy_random: np.ndarray


def _dataset_path(job: Job) -> Path | None:
    from omegaconf import OmegaConf

    from router_lab.data.builders import default_path

    config = OmegaConf.load(job.path / CONFIG_FILE)
    node = OmegaConf.select(config, "dataset")
    if node is None:
        return None
    path = default_path(node, OmegaConf.select(config, "datasets_dir", default="datasets"))
    return path if path.is_file() else None


def reference_curves(job: Job) -> ReferenceCurves | None:
    """The oracle and random curves over ``job``'s requests, or None when the data is not at hand."""
    from router_lab.data.files import load_dataset_file
    from router_lab.errors import RouterLabError
    from router_lab.policies.base import sensitive_rows
    from router_lab.train.curves import routing_curve

    try:
        path = _dataset_path(job)
        if path is None:
            return None
        dataset = load_dataset_file(path)
        requests = pd.read_parquet(job.requests_path, columns=["row"])
    except (OSError, ValueError, KeyError, RouterLabError):
        return None
    rows = requests["row"].to_numpy(np.int64)
    if len(rows) == 0 or rows.max() >= len(dataset.frame):
        return None
    device_q, cloud_q = dataset.device_quality()[rows], dataset.cloud_quality()[rows]
    allowed = ~sensitive_rows(dataset)[rows]  # the policies' sensitive rule: these never leave
    oracle = routing_curve(cloud_q - device_q, device_q, cloud_q, allowed)
    random = routing_curve(np.zeros(len(rows)), device_q, cloud_q, allowed)
    return ReferenceCurves(oracle.cloud_fraction, oracle.quality, random.cloud_fraction, random.quality)
