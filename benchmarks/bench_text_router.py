"""Text router speed and size: single prompts through onnxruntime and scikit-learn.

    python benchmarks/bench_text_router.py [--json] [--calls N]

Trains the default text router (router=text) on RouteLLM's GSM8K (../shared/data), exports it with
the string input inside the graph, and times single-prompt calls (one intra-op thread, after
warm-up) at the dataset's 95th-percentile prompt length and at 4,900 characters (a long prompt:
the router reads at most `router.max_chars` of it).  Targets: onnxruntime p50 <= 200 µs at the
95th-percentile length, model file <= 2 MB.  Baseline for the default's settings: the router
before sublinear tf and min_df=2 (raw tf, min_df=1), timed in alternating blocks with the default
at the 95th-percentile length, so that machine load hits both alike.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
from _table import emit

REPO = Path(__file__).resolve().parent.parent
CSV = REPO.parent / "shared" / "data" / "routellm_gsm8k.csv"
LONG_PROMPT_CHARS = 4_900
TARGET_P50_US = 200.0
TARGET_BYTES = 2_000_000


def prompt_of_length(texts: np.ndarray, n_chars: int) -> str:
    """A real prompt of exactly ``n_chars`` characters (GSM8K prompts joined, then cut)."""
    return " ".join(texts.tolist())[:n_chars]


def time_calls_us(call, n_calls: int) -> np.ndarray:  # noqa: ANN001 - any zero-argument callable
    for _ in range(max(10, n_calls // 20)):
        call()
    times = np.empty(n_calls)
    for i in range(n_calls):
        start = time.perf_counter_ns()
        call()
        times[i] = (time.perf_counter_ns() - start) / 1e3
    return times


def alternating_p50_us(calls: list, n_calls: int, blocks: int = 10) -> list[float]:  # noqa: ANN001
    """p50 of each zero-argument callable, timed in ``blocks`` alternating blocks of calls."""
    times: list[list[np.ndarray]] = [[] for _ in calls]
    for _ in range(blocks):
        for i, call in enumerate(calls):
            times[i].append(time_calls_us(call, max(1, n_calls // blocks)))
    return [float(np.percentile(np.concatenate(t), 50)) for t in times]


BEFORE = {"sublinear_tf": False, "min_df": 1}  # the default's settings before 2026-12-02


def main(argv: list[str]) -> None:
    from router_lab.data.builders import resolve_dataset
    from router_lab.data.config import RouteLLMConfig
    from router_lab.export.text import convert_text_router, text_input
    from router_lab.train.fit import train_router

    calls = int(argv[argv.index("--calls") + 1]) if "--calls" in argv else 3000
    if not CSV.exists():
        sys.exit(f"bench_text_router: {CSV} is absent (see ../shared/data/README.md)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            ds = resolve_dataset(RouteLLMConfig(name="gsm8k", source=str(CSV),
                                                device_model="mistralai/Mixtral-8x7B-Instruct-v0.1",
                                                cloud_model="gpt-4-1106-preview"), tmp)
        router = train_router(ds, {"name": "text"}, None, mode="text", seed=0)
        model_bytes = convert_text_router(router.estimator).SerializeToString()
        before = train_router(ds, {"name": "text", **BEFORE}, None, mode="text", seed=0)
        before_bytes = convert_text_router(before.estimator).SerializeToString()
    texts = ds.frame["text"].to_numpy(dtype=object)
    p95_chars = int(np.percentile([len(t) for t in texts], 95))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    figures: dict = {"p95_prompt_chars": p95_chars, "model_bytes": len(model_bytes),
                     "max_chars": int(router.estimator.steps[0][1].max_chars),
                     "n_features": int(router.estimator.named_steps["classifier"].coef_.shape[1]),
                     "target_p50_us": TARGET_P50_US, "target_model_bytes": TARGET_BYTES}
    rows = []
    for tag, n_chars in (("p95", p95_chars), ("long", LONG_PROMPT_CHARS)):
        prompt = prompt_of_length(texts, n_chars)
        feed = {"text": text_input([prompt])}
        onnx_us = time_calls_us(lambda feed=feed: session.run(["probabilities"], feed), calls)
        batch = np.array([prompt], dtype=object)
        sklearn_us = time_calls_us(lambda batch=batch: router.estimator.predict_proba(batch), max(200, calls // 10))
        figures[f"{tag}_onnx_p50_us"] = round(float(np.percentile(onnx_us, 50)), 1)
        figures[f"{tag}_onnx_p99_us"] = round(float(np.percentile(onnx_us, 99)), 1)
        figures[f"{tag}_sklearn_p50_us"] = round(float(np.percentile(sklearn_us, 50)), 1)
        rows += [{"prompt chars": n_chars, "runtime": "onnxruntime (1 thread)", "p50 µs": figures[f"{tag}_onnx_p50_us"],
                  "p99 µs": figures[f"{tag}_onnx_p99_us"], "calls": calls, "model bytes": len(model_bytes)},
                 {"prompt chars": n_chars, "runtime": "scikit-learn predict_proba",
                  "p50 µs": figures[f"{tag}_sklearn_p50_us"],
                  "p99 µs": round(float(np.percentile(sklearn_us, 99)), 1), "calls": len(sklearn_us),
                  "model bytes": ""}]
    before_session = ort.InferenceSession(before_bytes, options, providers=["CPUExecutionProvider"])
    feed = {"text": text_input([prompt_of_length(texts, p95_chars)])}
    now_us, before_us = alternating_p50_us([lambda: session.run(["probabilities"], feed),
                                            lambda: before_session.run(["probabilities"], feed)], calls)
    figures["p95_alternating_p50_us"] = {"default": round(now_us, 1), "before": round(before_us, 1)}
    rows += [{"prompt chars": p95_chars, "runtime": f"onnxruntime, alternating: {label}", "p50 µs": round(us, 1),
              "p99 µs": "", "calls": calls, "model bytes": size}
             for label, us, size in (("default", now_us, len(model_bytes)),
                                     ("before: raw tf, min_df=1", before_us, len(before_bytes)))]
    figures["meets_targets"] = bool(figures["p95_onnx_p50_us"] <= TARGET_P50_US and len(model_bytes) <= TARGET_BYTES)
    emit(rows, figures, argv)
    if "--json" not in argv:
        print(f"\n{figures['n_features']:,} features, reads at most {figures['max_chars']} characters; "
              f"targets: p50 <= {TARGET_P50_US:.0f} µs at the 95th-percentile prompt "
              f"({p95_chars} characters), file <= {TARGET_BYTES / 1e6:.0f} MB; "
              f"met: {'yes' if figures['meets_targets'] else 'NO'}")


if __name__ == "__main__":
    main(sys.argv[1:])
