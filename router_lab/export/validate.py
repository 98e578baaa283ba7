"""Validation gates for an exported model, run on its bytes before anything is written.

Checks: ``onnx.checker`` and strict shape inference; parity with scikit-learn on the held-out split
(max |probability difference| and decision agreement outside a tie band around the threshold);
onnxruntime latency beside scikit-learn's; file size.  The result is a :class:`ValidationReport`
whose ``to_dict()`` is ``validation.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError, one_line
from router_lab.export.convert import RouterSpec
from router_lab.export.device_graph import OUTPUTS as DEVICE_OUTPUTS
from router_lab.export.device_graph import reference_outputs
from router_lab.export.latency import measure_latency, tile_rows
from router_lab.features import exported_router_inputs
from router_lab.runtime.device_router import DeviceRouter, open_session
from router_lab.runtime.schema import decode_metadata


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    detail: str  # the measured value against its limit, for people


@dataclass(frozen=True)
class ValidationReport:
    figures: dict[str, Any]  # every measured value (flat; the keys of validation.json)
    gates: tuple[Gate, ...]

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def failed(self) -> list[str]:
        return [g.name for g in self.gates if not g.passed]

    def to_dict(self) -> dict[str, Any]:
        return {**self.figures, "passed": self.passed,
                "gates": [{"name": g.name, "passed": g.passed, "detail": g.detail} for g in self.gates]}


def parse_model(model_bytes: bytes, source: str) -> onnx.ModelProto:
    """The ModelProto of ``model_bytes``; a non-ONNX file is a one-line error."""
    try:
        model = onnx.load_from_string(model_bytes)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise RouterLabError(f"{source}: not a loadable ONNX model ({type(exc).__name__}: "
                             f"{one_line(str(exc))[:200]})") from exc
    if not model.graph.node:
        raise RouterLabError(f"{source}: not a loadable ONNX model (no graph nodes)")
    return model


def structure_checks(model_bytes: bytes, source: str) -> dict[str, str]:
    """``onnx.checker`` and strict shape inference: "ok" or the one-line failure."""
    model = parse_model(model_bytes, source)
    results = {}
    for name, check in (("checker", lambda: onnx.checker.check_model(model)),
                        ("shape_inference", lambda: onnx.shape_inference.infer_shapes(
                            model, check_type=True, strict_mode=True))):
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # ValidationError, InferenceError
            results[name] = f"{type(exc).__name__}: {one_line(str(exc))[:300]}"
    return results


def held_out_mask(dataset: Dataset, split: str) -> np.ndarray:
    """Rows of ``split`` (all rows when the dataset has no split column); never empty."""
    mask = dataset.split_mask(split) if "split" in dataset.frame.columns else np.ones(len(dataset), bool)
    if not mask.any():
        raise RouterLabError(f"{dataset.source}: no rows in split {split!r}; set export.split to a "
                             "split the dataset has (train, val or test)")
    return mask


def check_reference(reference: RouterSpec, metadata: dict[str, Any], source: str) -> None:
    """The scikit-learn reference must be the router the model was exported from."""
    names = metadata.get("router_feature_names", metadata["feature_names"])
    problems = []
    if not str(metadata["mode"]).startswith("text") and list(reference.feature_columns) != list(names):
        problems.append(f"features {len(reference.feature_columns)} vs {len(names)} (or their order)")
    if reference.mode != metadata["mode"]:
        problems.append(f"mode {reference.mode!r} vs {metadata['mode']!r}")
    if np.float32(reference.threshold) != np.float32(metadata["threshold"]):
        problems.append(f"threshold {reference.threshold!r} vs {metadata['threshold']!r}")
    if reference.estimator_name != metadata["estimator"]:
        problems.append(f"estimator {reference.estimator_name!r} vs {metadata['estimator']!r}")
    if problems:
        raise RouterLabError(f"{source}: the reference router does not match the model ({'; '.join(problems)}); "
                             "pass the `router-lab train` run it was exported from as export.run_dir=…")


def parity(onnx_score: np.ndarray, onnx_decision: np.ndarray, sk_score: np.ndarray, threshold: float,
           tie_band: float) -> dict[str, Any]:
    """max |difference| of scores and decision agreement outside the tie band around the threshold."""
    sk_score = np.asarray(sk_score, dtype=np.float64)
    tie = np.abs(sk_score - threshold) <= tie_band
    agree = np.asarray(onnx_decision, dtype=bool) == (sk_score >= threshold)
    outside = ~tie
    return {
        "n_rows": int(len(sk_score)),
        "max_abs_diff": float(np.max(np.abs(onnx_score.astype(np.float64) - sk_score))),
        "decision_agreement": float(agree[outside].mean()) if outside.any() else 1.0,
        "n_tie_band": int(tie.sum()),
        "n_decisions_differ_in_tie_band": int((~agree & tie).sum()),
        "cloud_fraction_onnx": float(np.mean(onnx_decision)),
    }


def _latency(router: DeviceRouter, sk_single: Any, sk_batch: Any, x: np.ndarray, options: Any) -> dict[str, Any]:
    for key in ("latency_calls", "batch_rows", "batch_calls", "threads"):
        if int(getattr(options, key)) < 1:
            raise RouterLabError(f"export.{key}: got {getattr(options, key)}; expected at least 1")
    rows = list(x[: min(len(x), 500)])
    batch = tile_rows(x, int(options.batch_rows))
    onnx_fig = measure_latency(router.route, router.route, rows, batch, int(options.latency_calls),
                               int(options.batch_rows), int(options.batch_calls))
    figures = {**onnx_fig.as_dict("onnx"), "threads": int(options.threads)}
    sk_calls = int(options.sklearn_latency_calls)
    if sk_calls < 1:  # scikit-learn's timing is a comparison only; it gates nothing
        return figures
    from threadpoolctl import threadpool_limits

    # One thread, as onnxruntime gets: OpenMP estimators (gbdt) otherwise spend most of each
    # single-row call waking threads (484 s for a gbdt export on a busy 2-core machine).
    sk_rows = [x[i: i + 1] for i in range(len(rows))]
    with threadpool_limits(limits=1):
        sk_fig = measure_latency(sk_single, sk_batch, sk_rows, batch, sk_calls,
                                 int(options.batch_rows), min(int(options.batch_calls), 3))
    return {**figures, **sk_fig.as_dict("sklearn"), "speedup_p50": sk_fig.p50_us / onnx_fig.p50_us}


def _gates(figures: dict[str, Any], options: Any) -> tuple[Gate, ...]:
    gates = [Gate("checker", figures["checker"] == "ok", figures["checker"]),
             Gate("shape_inference", figures["shape_inference"] == "ok", figures["shape_inference"]),
             Gate("max_abs_diff", figures["max_abs_diff"] <= options.max_abs_diff,
                  f"{figures['max_abs_diff']:.3g} <= {options.max_abs_diff:g}"),
             Gate("decision_agreement", figures["decision_agreement"] == 1.0,
                  f"{figures['decision_agreement']:.6f} == 1 outside the tie band "
                  f"({figures['n_tie_band']} rows within {options.tie_band:g} of the threshold)")]
    if options.max_model_bytes is not None:
        gates.append(Gate("model_bytes", figures["model_bytes"] <= options.max_model_bytes,
                          f"{figures['model_bytes']:,} <= {options.max_model_bytes:,}"))
    if options.max_p99_us is not None and "onnx_p99_us" in figures:
        gates.append(Gate("onnx_p99_us", figures["onnx_p99_us"] <= options.max_p99_us,
                          f"{figures['onnx_p99_us']:.1f} <= {options.max_p99_us:g}"))
    return tuple(gates)


def session_router(model_bytes: bytes, source: str, threads: int) -> DeviceRouter:
    """A DeviceRouter on in-memory bytes (signature and metadata checked; no manifest involved)."""
    session = open_session(model_bytes, source, threads)
    return DeviceRouter(session, decode_metadata(session.get_modelmeta().custom_metadata_map, source), source)


def validate_router(model_bytes: bytes, source: str, reference: RouterSpec, dataset: Dataset,
                    options: Any, measure: bool = True) -> ValidationReport:
    """Validate a router graph against its scikit-learn ``reference`` on ``dataset``'s held-out rows."""
    figures: dict[str, Any] = {"kind": "router", "file": source, "model_bytes": len(model_bytes),
                               **structure_checks(model_bytes, source)}
    router = session_router(model_bytes, source, int(options.threads))
    check_reference(reference, router.metadata, source)
    mask = held_out_mask(dataset, options.split)
    x = exported_router_inputs(dataset, router.metadata, source)[mask]
    result = router.route(x)
    figures.update(split=options.split, dataset=dataset.name, threshold=router.threshold,
                   **parity(result.score, result.decision, reference.scores(x), reference.threshold,
                            options.tie_band))
    if measure:
        figures.update(_latency(router, reference.estimator.predict_proba, reference.estimator.predict_proba,
                                x, options))
    return ValidationReport(figures, _gates(figures, options))


def validate_device_graph(model_bytes: bytes, source: str, device_model: Any, reference: RouterSpec,
                          dataset: Dataset, options: Any, measure: bool = True) -> ValidationReport:
    """Validate the combined graph against running the device model and the router separately."""
    figures: dict[str, Any] = {"kind": "device_graph", "file": source, "model_bytes": len(model_bytes),
                               **structure_checks(model_bytes, source)}
    graph = session_router(model_bytes, source, int(options.threads))
    check_reference(reference, graph.metadata, source)
    mask = held_out_mask(dataset, options.split)
    x = exported_router_inputs(dataset, graph.metadata, source)[mask]
    names = tuple(graph.metadata["feature_names"])
    got = graph.run(x)
    want = reference_outputs(device_model, reference, names, x)
    missing = [n for n in DEVICE_OUTPUTS if n not in got]
    if missing:
        raise RouterLabError(f"{source}: device graph lacks output(s) {', '.join(missing)}")
    figures.update(split=options.split, dataset=dataset.name, threshold=graph.threshold,
                   **parity(got["score"], got["decision"], want["score"], reference.threshold,
                            options.tie_band))
    prob_diff = float(np.abs(got["device_probabilities"] - want["device_probabilities"]).max())
    conf_diff = float(np.abs(got["device_confidence"] - want["device_confidence"]).max())
    label_tie = want["device_margin"] <= options.tie_band  # two classes equally likely: either label
    label_agree = (got["device_label"] == want["device_label"]) | label_tie
    figures.update(score_max_abs_diff=figures["max_abs_diff"], device_probability_max_abs_diff=prob_diff,
                   device_confidence_max_abs_diff=conf_diff,
                   max_abs_diff=max(figures["max_abs_diff"], prob_diff, conf_diff),
                   label_agreement=float(label_agree.mean()))
    if measure:
        def separately(rows: np.ndarray) -> Any:
            return reference_outputs(device_model, reference, names, rows)

        figures.update(_latency(graph, separately, separately, x, options))
    gates = (*_gates(figures, options),
             Gate("label_agreement", figures["label_agreement"] == 1.0, f"{figures['label_agreement']:.6f} == 1"))
    return ValidationReport(figures, gates)
