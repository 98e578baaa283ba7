"""Text router settings on GSM8K, paired against the default: what each choice of `router=text` is worth.

    python benchmarks/bench_text_variants.py [--repeats N] [--folds K] [--seed S] [--only NAME ...] [--json]

Each variant is the default text router (router=text, label expected_gain) with some keys changed,
cross-fitted on RouteLLM's GSM8K (../shared/data) exactly as `bench_quality.py` does (K folds x N
repeats, the same fold assignments and bootstrap resamples for every variant, so the rows are
paired).  Printed: each variant's APGR with its 95 % bootstrap interval and its paired APGR
difference against the default.  `--seed` draws other fold assignments (a check that a difference
is not one draw's luck; the README's figures use seed 0 unless it says otherwise).
About 70 s per variant at 10 repeats on one idle core.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from _table import evaluation_parser, run_and_emit
from bench_quality import CSV, REPO

from router_lab.data.builders import build_dataset
from router_lab.data.config import RouteLLMConfig
from router_lab.evaluate import cross_fitted
from router_lab.train.bootstrap import percentile_interval

DEFAULT = "default"
# name -> the keys that differ from router=text's defaults
VARIANTS: dict[str, dict[str, Any]] = {
    DEFAULT: {},
    "raw tf, min_df=1 (before)": {"sublinear_tf": False, "min_df": 1},
    "raw tf": {"sublinear_tf": False},
    "min_df=1": {"min_df": 1},
    "binary tf": {"sublinear_tf": False, "binary": True},
    "no counts": {"counts": False},
    "word 1-grams": {"word_ngram_max": 1},
    "word 1-3-grams": {"word_ngram_max": 3},
    "C=0.3": {"C": 0.3},
    "C=3": {"C": 3.0},
    "class_weight=balanced": {"class_weight": "balanced"},
    "C by inner CV (neg_log_loss)": {"inner_cv": 3, "inner_cv_scoring": "neg_log_loss"},
}


def run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if not CSV.is_file():
        raise SystemExit(f"bench_text_variants: {CSV} is missing (RouteLLM's GSM8K outcomes)")
    gsm8k = build_dataset(RouteLLMConfig(name="gsm8k_bench", source=str(CSV),
                                         device_model="mistralai/Mixtral-8x7B-Instruct-v0.1",
                                         cloud_model="gpt-4-1106-preview"), Path(args.datasets))
    names = [DEFAULT, *[n for n in (args.only or VARIANTS) if n != DEFAULT]]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"bench_text_variants: unknown variant(s) {unknown}; expected some of {list(VARIANTS)}")
    rows: list[dict[str, Any]] = []
    figures: dict[str, Any] = {"repeats": args.repeats, "folds": args.folds, "seed": args.seed}
    default_apgr = None
    for name in names:
        start = time.perf_counter()
        ev = cross_fitted(gsm8k, {"name": "text", "label": "expected_gain", **VARIANTS[name]}, None, ("text",),
                          folds=args.folds, repeats=args.repeats, seed=args.seed, n_boot=args.boot)
        apgr = ev.replicates["learned"]["apgr"]  # index 0: no resampling; the rest: the resamples
        lo, hi = percentile_interval(apgr[1:])
        row = {"variant": name, "apgr": f"{apgr[0]:.3f} [{lo:.3f}, {hi:.3f}]", "vs default": "–"}
        if default_apgr is None:
            default_apgr = apgr
        else:
            diff = apgr - default_apgr
            dlo, dhi = percentile_interval(diff[1:])
            row["vs default"] = f"{diff[0]:+.4f} [{dlo:+.4f}, {dhi:+.4f}]"
            figures[f"{name} - default"] = float(diff[0])
        figures[name] = float(apgr[0])
        rows.append(row)
        print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return rows, figures


def main(argv: list[str] | None = None) -> None:
    parser = evaluation_parser(__doc__.splitlines()[0], str(REPO / "datasets"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", help="variant names (the default is always run first)")
    run_and_emit(run, parser.parse_args(argv))


if __name__ == "__main__":
    main()
