"""Figures and names used in more than one module, named once (standard library only).

* the files a run folder holds (the layout is in the README), so that the writer and every
  reader (report, search, replay, tracking, export) agree by construction;
* the bound of the seeds handed to child generators and scikit-learn's ``random_state``;
* the default train / val / test split.
"""

from __future__ import annotations

# A run folder (simulate, testbed, train, export): its resolved config and what it measured.
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
REQUESTS_FILE = "requests.parquet"
# A `train` folder: the router's metadata (its fitted weights sit beside it, in skops files).
ROUTER_META_FILE = "router.json"
# `train train.per_model=true`: one skops file per model's quality head (index = tier order).
QUALITY_HEAD_FILE = "quality_head_{index}.skops"
# A report folder.
SUMMARY_CSV = "summary.csv"
SUMMARY_PARQUET = "summary.parquet"
SUMMARY_MD = "summary.md"
# A sweep folder: Hydra's record of the sweep (the search writes it too, so that resume finds it).
MULTIRUN_FILE = "multirun.yaml"

# Seeds handed to child generators and to scikit-learn's random_state are below this (an int32:
# what every estimator accepts).
SEED_BOUND = 2**31 - 1

# The default train / val / test fractions: dataset builders, importers and training's own split.
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)
