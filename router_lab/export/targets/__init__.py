"""Device targets: each converts the validated float ONNX router for one runtime and validates it there.

A target is a function ``TargetInput -> TargetResult`` registered by name with
:func:`register_target` (``export.targets=[onnx,ort,web,int8]``).  Every target is judged by the
same gates -- max |score difference| and decision agreement outside the tie band, on the dataset's
held-out rows and, for a text router, on the adversarial text set -- and its files are written only
when it passes.  A target that cannot run here (no Node.js) is ``skipped``; one whose conversion
changes nothing (int8 without quantizable operators) is ``no-op``; both write nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from router_lab.errors import RouterLabError
from router_lab.export.validate import held_out_mask, parity
from router_lab.features import exported_router_inputs
from router_lab.registry import Registry

STATUSES = ("passed", "refused", "no-op", "skipped")


@dataclass(frozen=True)
class TargetInput:
    """What every target gets: the validated float model, the rows and the reference scores."""

    model_bytes: bytes  # the float ONNX router that passed the export gates
    model_stem: str  # "router": a target's files are named router.<suffix>
    rows: np.ndarray  # float32 [n, F], or object [n] of str for a text router
    case_names: tuple[str, ...]  # "" for a dataset row, the adversarial case's name otherwise
    reference_score: np.ndarray  # scikit-learn's score of each row (float64)
    float_score: np.ndarray  # the float ONNX model's score in Python onnxruntime (float64)
    threshold: float
    metadata: dict[str, Any]  # the model's router_lab metadata (input name, outputs, ...)
    options: Any  # the export section: gates, latency calls, threads

    @property
    def is_text(self) -> bool:
        return self.metadata["input_dtype"] == "string"

    @property
    def adversarial(self) -> np.ndarray:
        return np.array([bool(n) for n in self.case_names], dtype=bool)


@dataclass(frozen=True)
class TargetFile:
    name: str  # file name in the export folder
    data: bytes
    role: str  # manifest role: router.ort, router.int8, ...
    is_model: bool = True  # a model gets a manifest beside it; a config file does not


@dataclass(frozen=True)
class TargetResult:
    report: dict[str, Any]  # one entry of validation.json's "targets"
    files: tuple[TargetFile, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return bool(self.report["passed"])


Target = Callable[[TargetInput], TargetResult]
# Every module of this package is imported on first lookup: a new target module registers itself.
TARGETS: Registry[Target] = Registry("export target", field="export.targets", modules=("router_lab.export.targets",))


def register_target(name: str, summary: str = "") -> Callable[[Target], Target]:
    """Offer ``function(TargetInput) -> TargetResult`` as ``export.targets=[name]``."""
    return TARGETS.register(name, summary=summary)


def known_targets() -> list[str]:
    return TARGETS.names()


def check_target_names(names: Any) -> list[str]:
    """``export.targets`` as a list of known names (one-line error otherwise)."""
    known = known_targets()
    given = [names] if isinstance(names, str) else list(names or [])
    unknown = [str(n) for n in given if str(n) not in TARGETS]
    if unknown or not given:
        raise RouterLabError(f"export.targets: got {given}; expected a list of {', '.join(known)} "
                             "(e.g. export.targets=[onnx,ort,web,int8])")
    return list(dict.fromkeys(str(n) for n in given))


def target_input(model_bytes: bytes, reference: Any, dataset: Any, options: Any,
                 model_stem: str = "router") -> TargetInput:
    """The held-out rows (plus the adversarial text set for a text router) and their scores."""
    from router_lab.export.targets.adversarial_text import ADVERSARIAL_TEXTS
    from router_lab.export.validate import session_router

    router = session_router(model_bytes, f"{model_stem}.onnx", int(options.threads))
    rows = exported_router_inputs(dataset, router.metadata, f"{model_stem}.onnx")[held_out_mask(dataset, options.split)]
    names: list[str] = [""] * len(rows)
    if router.is_text:
        rows = np.concatenate([np.asarray(rows, dtype=object).reshape(-1),
                               np.array([t for _, t in ADVERSARIAL_TEXTS], dtype=object)])
        names += [n for n, _ in ADVERSARIAL_TEXTS]
    return TargetInput(model_bytes=model_bytes, model_stem=model_stem, rows=rows, case_names=tuple(names),
                       reference_score=reference.scores(rows), threshold=float(reference.threshold),
                       float_score=np.asarray(router.route(rows).score, dtype=np.float64),
                       metadata=router.metadata, options=options)


def _example(inp: TargetInput, score: np.ndarray, mask: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """The row whose score differs most from the reference (what to show when a target is refused)."""
    index = np.flatnonzero(mask)[int(np.argmax(np.abs(score[mask] - reference[mask])))]
    row = inp.rows[index]
    shown = ascii(row)[:120] if inp.is_text else f"row {int(index)} of the held-out split"
    return {"case": inp.case_names[index] or "dataset", "input": shown,
            "reference_score": float(reference[index]), "target_score": float(score[index]),
            "reference_decision": bool(reference[index] >= inp.threshold),
            "target_decision": bool(score[index] >= inp.threshold)}


def judge(inp: TargetInput, runtime: str, runtime_version: str, score: np.ndarray, decision: np.ndarray,
          *, latency: tuple[float, float], model_bytes: int, notes: list[str],
          against_float: bool = False, **extra: Any) -> dict[str, Any]:
    """A target's report: the parity gates on the dataset rows and the adversarial set, figures, notes."""
    reference = inp.float_score if against_float else inp.reference_score
    score, decision = np.asarray(score, dtype=np.float64), np.asarray(decision, dtype=bool)
    opts = inp.options
    adversarial = inp.adversarial
    whole = parity(score, decision, reference, inp.threshold, float(opts.tie_band))
    dataset_part = parity(score[~adversarial], decision[~adversarial], reference[~adversarial],
                          inp.threshold, float(opts.tie_band))
    gates = {"max_abs_diff": whole["max_abs_diff"] <= float(opts.max_abs_diff),
             "decision_agreement": whole["decision_agreement"] == 1.0}
    report: dict[str, Any] = {
        "runtime": runtime, "runtime_version": runtime_version,
        "reference": "float ONNX model (Python onnxruntime)" if against_float else "scikit-learn",
        "max_abs_diff": dataset_part["max_abs_diff"], "decision_agreement": dataset_part["decision_agreement"],
        "n_tie_band": dataset_part["n_tie_band"], "n_rows": dataset_part["n_rows"],
        "p50_us": float(latency[0]), "p99_us": float(latency[1]), "bytes": int(model_bytes),
    }
    if adversarial.any():
        adv = parity(score[adversarial], decision[adversarial], reference[adversarial], inp.threshold,
                     float(opts.tie_band))
        report["adversarial_text"] = {"n_cases": adv["n_rows"], "max_abs_diff": adv["max_abs_diff"],
                                      "decision_agreement": adv["decision_agreement"],
                                      "n_tie_band": adv["n_tie_band"]}
    passed = all(gates.values())
    if not passed:
        bad = np.abs(score - reference) > float(opts.max_abs_diff)
        flipped = (decision != (reference >= inp.threshold)) & (np.abs(reference - inp.threshold) > float(opts.tie_band))
        worst = flipped if flipped.any() else bad if bad.any() else np.ones(len(score), dtype=bool)
        report["failing_example"] = _example(inp, score, worst, reference)
        report["n_rows_over_max_abs_diff"] = int(bad.sum())
        report["n_decisions_flipped"] = int(flipped.sum())
    report.update(extra)
    report.update(status="passed" if passed else "refused", passed=passed,
                  gates={k: bool(v) for k, v in gates.items()}, notes=list(notes))
    return report


def worst_of(inp: TargetInput, batch: tuple[np.ndarray, np.ndarray], single: tuple[np.ndarray, np.ndarray]
             ) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the run (whole batch, or the row alone) further from the reference: a prompt must
    score the same alone as in a batch (one-row tensors take other code paths)."""
    b_score, b_dec = np.asarray(batch[0], dtype=np.float64), np.asarray(batch[1], dtype=bool)
    s_score, s_dec = np.asarray(single[0], dtype=np.float64), np.asarray(single[1], dtype=bool)
    ref = inp.reference_score
    take = (np.abs(s_score - ref) > np.abs(b_score - ref)) | (s_dec != b_dec)
    return np.where(take, s_score, b_score), np.where(take, s_dec, b_dec)


def not_run(status: str, runtime: str, reason: str, **extra: Any) -> TargetResult:
    """A target that wrote nothing and validated nothing: ``skipped`` or ``no-op``, with why."""
    assert status in ("skipped", "no-op")
    return TargetResult({"status": status, "passed": False, "runtime": runtime, "runtime_version": "",
                         "max_abs_diff": None, "decision_agreement": None, "n_tie_band": None,
                         "p50_us": None, "p99_us": None, "bytes": None, "notes": [reason], **extra})


def run_targets(names: Any, inp: TargetInput) -> tuple[dict[str, dict[str, Any]], list[TargetFile]]:
    """Run every named target; the reports (validation.json "targets") and the files of those that passed."""
    reports: dict[str, dict[str, Any]] = {}
    files: list[TargetFile] = []
    for name in check_target_names(names):
        result = TARGETS.get(name)(inp)
        written = list(result.files) if result.passed else []
        # files: what this target ships -- its own files, or (web, onnx) the router.onnx it validated
        shipped = {f.name: f.role for f in written} or result.report.get("files", {})
        reports[name] = {**result.report, "files": shipped if result.passed else {}}
        files.extend(written)
    return reports, files


def format_targets(reports: dict[str, dict[str, Any]]) -> str:
    """The terminal table of the targets (one line each)."""
    lines = [f"{'target':<8}{'status':>9}{'bytes':>11}{'max|diff|':>11}{'agree':>9}{'p50 µs':>9}"
             f"{'p99 µs':>10}  runtime"]

    def num(value: Any, spec: str) -> str:
        return "–" if value is None else format(value, spec)

    for name, rep in reports.items():
        lines.append(f"{name:<8}{rep['status']:>9}{num(rep['bytes'], ',d'):>11}{num(rep['max_abs_diff'], '.2e'):>11}"
                     f"{num(rep['decision_agreement'], '.4f'):>9}{num(rep['p50_us'], '.1f'):>9}"
                     f"{num(rep['p99_us'], '.1f'):>10}  {rep['runtime']} {rep['runtime_version']}")
        if rep["status"] != "passed":
            example = rep.get("failing_example")
            why = (f"{example['case']}: {example['input']} scores {example['target_score']:.4g} vs "
                   f"{example['reference_score']:.4g}") if example else "; ".join(rep["notes"])[:160]
            lines.append(f"{'':<8}  -> not written: {why}")
    return "\n".join(lines)
