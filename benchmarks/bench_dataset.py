"""Benchmark: building datasets (synthetic at 1,000,000 rows; digits with its cross-validation).

    .venv/bin/python benchmarks/bench_dataset.py [--json] [--rows N]

Target (issue 2): the synthetic generator makes 1,000,000 rows in under 10 s here.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import emit  # noqa: E402

from router_lab.data.builders import build_dataset  # noqa: E402
from router_lab.data.config import DigitsConfig, SyntheticConfig  # noqa: E402
from router_lab.data.synthetic import build_synthetic  # noqa: E402


def best_of(repeats: int, func) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str]) -> None:
    rows = int(argv[argv.index("--rows") + 1]) if "--rows" in argv else 1_000_000
    cfg = SyntheticConfig(n_rows=rows)
    generate_s = best_of(3, lambda: build_synthetic(cfg, np.random.default_rng(0)))
    with tempfile.TemporaryDirectory() as tmp:
        build_s = best_of(3, lambda: build_dataset(cfg, tmp))
        digits_s = best_of(1, lambda: build_dataset(DigitsConfig(), tmp))
    emit(
        [
            {"dataset": f"synthetic ({rows:,} rows)", "step": "generate (in memory)", "seconds": generate_s,
             "rows_per_s": rows / generate_s, "target": "-"},
            {"dataset": f"synthetic ({rows:,} rows)", "step": "build (validate + parquet + card)",
             "seconds": build_s, "rows_per_s": rows / build_s, "target": "< 10 s for 1M rows"},
            {"dataset": "digits (1,797 rows)", "step": "build (5-fold device + cloud fits)",
             "seconds": digits_s, "rows_per_s": 1797 / digits_s, "target": "-"},
        ],
        {"synthetic_rows": rows, "synthetic_generate_s": round(generate_s, 4),
         "synthetic_build_s": round(build_s, 4), "digits_build_s": round(digits_s, 4)},
        argv,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
