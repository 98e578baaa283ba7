"""Router training time: 100,000 synthetic rows with the default router (target: under 10 s).

    python benchmarks/bench_train.py            # a table
    python benchmarks/bench_train.py --json     # the same figures as one JSON object
    python benchmarks/bench_train.py --all      # also the other offered estimators (slower)

Times `train_router` end to end (inputs, split, fit, validation curve, threshold, test metrics),
median of 3 runs, after building the dataset (not timed) in a temporary folder.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _table import emit  # noqa: E402

from router_lab.data.builders import build_dataset  # noqa: E402
from router_lab.data.config import SyntheticConfig  # noqa: E402
from router_lab.train.estimators import DEFAULT_ESTIMATOR, offered_estimators  # noqa: E402
from router_lab.train.fit import train_router  # noqa: E402

N_ROWS = 100_000
TARGET_S = 10.0
REPEATS = 3


def time_training(dataset, name: str) -> tuple[float, dict]:
    times, router = [], None
    for _ in range(REPEATS):
        start = time.perf_counter()
        router = train_router(dataset, {"name": name}, None, "input", 0)
        times.append(time.perf_counter() - start)
    return statistics.median(times), router.metrics


def main(argv: list[str]) -> None:
    names = [DEFAULT_ESTIMATOR]
    if "--all" in argv:
        names += [n for n in offered_estimators() if n not in (DEFAULT_ESTIMATOR, "text")]
    with tempfile.TemporaryDirectory() as folder:
        dataset = build_dataset(SyntheticConfig(name="bench_train", n_rows=N_ROWS), folder)
        rows, figures = [], {"n_rows": N_ROWS, "target_s": TARGET_S}
        for name in names:
            seconds, metrics = time_training(dataset, name)
            rows.append({"router": name + (" (default)" if name == DEFAULT_ESTIMATOR else ""),
                         "rows": N_ROWS, "train_s": round(seconds, 3),
                         "rows_per_s": round(N_ROWS / seconds), "test_auroc": metrics["test_auroc"],
                         "test_apgr": metrics["test_apgr"],
                         "under_10s": "yes" if seconds < TARGET_S else "NO"})
            figures[f"{name}_train_s"] = round(seconds, 4)
        figures["default_train_s"] = figures[f"{DEFAULT_ESTIMATOR}_train_s"]
        figures["default_under_target"] = figures["default_train_s"] < TARGET_S
    emit(rows, figures, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
