"""Routing quality with intervals: every router and label, cross-fitted, against fair baselines.

    python benchmarks/bench_quality.py [--repeats N] [--folds K] [--boot B] [--only digits|gsm8k] [--json]

For `digits` (numeric features; the logistic router in modes input and input+confidence) and
RouteLLM's GSM8K (../shared/data; the text router), each label of `router.label` is cross-fitted
(K folds x N repeats, the same fold assignments for every row of the table, so the rows are
paired) and reported as APGR / CPT(50) / AUROC of "cloud wins" with 95 % bootstrap intervals,
beside random, the confidence cascade (digits) and, on GSM8K, a plain baseline: scikit-learn's
default word TF-IDF + LogisticRegression trained for device-wrong on the same rows.  The last
rows give each router's paired APGR difference against that baseline (or against confidence).
Defaults: 10 repeats (about 15 minutes on one idle core, most of it GSM8K).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _table import evaluation_parser, run_and_emit
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from router_lab.data.builders import build_dataset
from router_lab.data.config import DigitsConfig, RouteLLMConfig
from router_lab.evaluate import cross_fitted
from router_lab.features import LABELS
from router_lab.train.bootstrap import percentile_interval
from router_lab.train.estimators import register_estimator

REPO = Path(__file__).resolve().parent.parent
CSV = REPO.parent / "shared" / "data" / "routellm_gsm8k.csv"
METRICS = ("apgr", "cpt_50", "auroc_cloud_wins")


def plain_tfidf_lr(params: dict[str, Any], random_state: int) -> Any:
    """The baseline: scikit-learn's defaults, nothing tuned (benchmark only, not offered)."""
    return make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=2000, random_state=random_state))


register_estimator("plain_tfidf_lr", plain_tfidf_lr)


def _cell(row: Any, metric: str) -> str:
    return f"{row[metric]:.3f} [{row[f'{metric}_lo']:.3f}, {row[f'{metric}_hi']:.3f}]"


def _rows_of(name: str, label: str, evaluation: Any, keep: set[str]) -> list[dict[str, Any]]:
    out = []
    for _, row in evaluation.table.iterrows():
        if row["policy"] not in keep:
            continue
        router = "-" if row["policy"] in ("random", "confidence") else f"{row['estimator']} ({row['mode']})"
        out.append({"dataset": name, "policy": row["policy"], "router": router,
                    "label": label if router != "-" else "-",
                    **{m: _cell(row, m) for m in METRICS}})
    return out


def run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    figures: dict[str, Any] = {"repeats": args.repeats, "folds": args.folds}
    common = dict(folds=args.folds, repeats=args.repeats, seed=0, n_boot=args.boot)
    folder = Path(args.datasets)
    if args.only in (None, "digits"):
        digits = build_dataset(DigitsConfig(), folder)
        for i, label in enumerate(LABELS):
            start = time.perf_counter()
            ev = cross_fitted(digits, {"name": "logistic", "label": label}, None,
                              ("input", "input+confidence"), **common)
            keep = {"learned", "learned_cascade"} | ({"random", "confidence"} if i == 0 else set())
            rows += _rows_of("digits", label, ev, keep)
            d = ev.differences
            diff = d[(d.policy == "learned_cascade") & (d.versus == "confidence") & (d.metric == "apgr")].iloc[0]
            rows.append({"dataset": "digits", "policy": "learned_cascade - confidence", "router": "paired",
                         "label": label, "apgr": f"{diff.difference:+.3f} [{diff.lo:+.3f}, {diff.hi:+.3f}]"})
            figures[f"digits_{label}"] = {r["policy"]: float(r["apgr"]) for _, r in ev.table.iterrows()}
            print(f"digits {label}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    if args.only in (None, "gsm8k") and CSV.is_file():
        gsm8k = build_dataset(RouteLLMConfig(name="gsm8k_bench", source=str(CSV),
                                             device_model="mistralai/Mixtral-8x7B-Instruct-v0.1",
                                             cloud_model="gpt-4-1106-preview"), folder)
        start = time.perf_counter()
        base = cross_fitted(gsm8k, {"name": "plain_tfidf_lr", "label": "device_wrong"}, None, ("text",), **common)
        rows += [{**r, "router": "plain word TF-IDF + LR (text)"} if r["policy"] == "learned" else r
                 for r in _rows_of("gsm8k", "device_wrong", base, {"random", "learned"})]
        print(f"gsm8k baseline: {time.perf_counter() - start:.0f} s", file=sys.stderr)
        base_apgr = _replicates_apgr(base)
        for label in LABELS:
            start = time.perf_counter()
            ev = cross_fitted(gsm8k, {"name": "text", "label": label}, None, ("text",), **common)
            rows += _rows_of("gsm8k", label, ev, {"learned"})
            diff = _replicates_apgr(ev) - base_apgr
            lo, hi = percentile_interval(diff[1:])
            rows.append({"dataset": "gsm8k", "policy": "text - plain baseline", "router": "paired",
                         "label": label, "apgr": f"{diff[0]:+.3f} [{lo:+.3f}, {hi:+.3f}]"})
            figures[f"gsm8k_{label}"] = float(diff[0] + base_apgr[0])
            print(f"gsm8k {label}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
        figures["gsm8k_plain_baseline"] = float(base_apgr[0])
    return rows, figures


def _replicates_apgr(evaluation: Any) -> np.ndarray:
    """The learned policy's APGR under the evaluation's bootstrap resamples (index 0: no resampling)."""
    return evaluation.replicates["learned"]["apgr"]


def main(argv: list[str] | None = None) -> None:
    parser = evaluation_parser(__doc__.splitlines()[0], str(REPO / "datasets"))
    parser.add_argument("--only", choices=("digits", "gsm8k"))
    run_and_emit(run, parser.parse_args(argv))


if __name__ == "__main__":
    main()
