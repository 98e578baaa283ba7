"""Device targets (export.targets): onnx, ort (+ reduced-build config), web (onnxruntime-web under
Node.js), int8 -- each validated in its own runtime, written only when it passes; text routers on
the adversarial text set in every runtime."""

from __future__ import annotations

import json
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from router_lab.data.builders import resolve_dataset
from router_lab.data.config import RouteLLMConfig
from router_lab.errors import RouterLabError
from router_lab.export.config import ExportSection
from router_lab.export.convert import RouterSpec, convert_router
from router_lab.export.targets import (
    check_target_names,
    judge,
    known_targets,
    run_targets,
    target_input,
)
from router_lab.export.targets.adversarial_text import ADVERSARIAL_TEXTS
from router_lab.export.targets.ort_format import convert_to_ort
from router_lab.export.targets.web import harness_problem
from router_lab.runtime import DeviceRouter
from router_lab.runtime.manifest import manifest_path
from router_lab.train.artifacts import save_trained_router
from router_lab.train.fit import train_router

QUICK = ExportSection(latency_calls=20, batch_calls=2, batch_rows=100)
ALL = ["onnx", "ort", "web", "int8"]
REPORT_KEYS = {"passed", "status", "runtime", "runtime_version", "max_abs_diff", "decision_agreement",
               "n_tie_band", "p50_us", "p99_us", "bytes", "notes"}
needs_web = pytest.mark.skipif(harness_problem() is not None, reason=str(harness_problem()))


def web_expected(report: dict) -> None:
    """The web target passed -- or, where Node.js or the harness is absent, was skipped saying so."""
    problem = harness_problem()
    if problem:
        assert report["status"] == "skipped" and report["notes"] == [problem]
    else:
        assert report["status"] == "passed", report
        assert report["runtime_version"] == json.loads(
            (Path(__file__).parents[1] / "router_lab/export/web/package.json").read_text()
        )["dependencies"]["onnxruntime-web"]


@pytest.fixture(scope="module")
def numeric(digits):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        routers = {name: train_router(digits, {"name": name}, None, "input", seed=0) for name in ("logistic", "mlp")}
    out = {}
    for name, router in routers.items():
        spec = RouterSpec.from_trained(router)
        data = convert_router(spec).SerializeToString()
        inp = target_input(data, spec, digits, QUICK)
        out[name] = (spec, inp, *run_targets(ALL, inp))
    return out


@pytest.fixture(scope="module")
def text(gsm8k_csv, tmp_path_factory):
    folder = tmp_path_factory.mktemp("targets_text")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = resolve_dataset(RouteLLMConfig(name="gsm8k_targets", source=str(gsm8k_csv),
                                            device_model="mistralai/Mixtral-8x7B-Instruct-v0.1",
                                            cloud_model="gpt-4-1106-preview", seed=0), folder)
        spec = RouterSpec.from_trained(train_router(ds, {"name": "text"}, None, "text", seed=0))
        data = convert_router(spec).SerializeToString()
    inp = target_input(data, spec, ds, QUICK)
    started = time.perf_counter()
    reports, files = run_targets(ALL, inp)
    return spec, inp, reports, files, time.perf_counter() - started


def test_every_target_reports_the_same_fields_and_numeric_routers_pass_onnx_ort_web(numeric) -> None:
    for name, (_, inp, reports, _) in numeric.items():
        assert list(reports) == ALL
        for target, report in reports.items():
            assert REPORT_KEYS <= set(report), (name, target)
        for target in ("onnx", "ort"):
            rep = reports[target]
            assert rep["passed"] and rep["max_abs_diff"] <= 1e-5 and rep["decision_agreement"] == 1.0
            assert rep["n_rows"] == len(inp.rows) and rep["p50_us"] > 0 and rep["bytes"] > 0
        web_expected(reports["web"])


def test_ort_target_writes_the_ort_file_and_a_reduced_build_config_naming_the_operators(numeric) -> None:
    _, inp, reports, files = numeric["logistic"]
    by_name = {f.name: f for f in files}
    assert by_name["router.ort"].role == "router.ort" and by_name["router.ort"].is_model
    config = by_name["router.required_operators_and_types.config"].data.decode()
    assert "ai.onnx.ml;1;LinearClassifier,Scaler" in config and "/tmp" not in config
    assert reports["ort"]["bytes"] == len(by_name["router.ort"].data) != len(inp.model_bytes)
    assert reports["ort"]["operators"]["ai.onnx.ml"] == ["LinearClassifier", "Scaler"]
    notes = " ".join(reports["ort"]["notes"])
    assert "stock full ORT Mobile packages" in notes and "custom minimal build" in notes
    assert "check_onnx_model_mobile_usability: NNAPI NO" in notes  # ai.onnx.ml runs on the CPU EP only
    # onnxruntime's converter writes its kernel-type table in hash-map order: the .ort bytes are a
    # permutation from one conversion to the next (same size, same config), not byte-identical
    again, again_config = convert_to_ort(inp.model_bytes, "router")
    assert len(again) == len(by_name["router.ort"].data) and again_config.encode() == config.encode()


def test_int8_without_quantizable_operators_is_a_no_op_not_a_gain(numeric) -> None:
    _, _, reports, files = numeric["logistic"]
    rep = reports["int8"]
    assert rep["status"] == "no-op" and rep["passed"] is False and rep["bytes"] is None
    assert "no quantizable operators" in rep["notes"][0] and "LinearClassifier" in rep["notes"][0]
    assert not any(f.role == "router.int8" for f in files)


def test_int8_mlp_is_refused_with_its_measured_disagreement(numeric) -> None:
    _, inp, reports, files = numeric["mlp"]
    rep = reports["int8"]
    assert rep["status"] == "refused" and not rep["passed"] and rep["reference"].startswith("float ONNX")
    assert rep["max_abs_diff"] > 1e-3 and not rep["gates"]["max_abs_diff"]
    assert rep["n_rows_over_max_abs_diff"] > 0 and rep["bytes"] < len(inp.model_bytes)
    assert f"of {len(inp.rows)} decisions flip" in rep["notes"][-1]
    example = rep["failing_example"]
    assert abs(example["target_score"] - example["reference_score"]) > 1e-5
    assert not any(f.role == "router.int8" for f in files) and rep["files"] == {}


def test_text_router_agrees_on_the_adversarial_set_in_every_runtime(text) -> None:
    _, inp, reports, files, seconds = text
    n_cases = len(ADVERSARIAL_TEXTS)
    assert inp.adversarial.sum() == n_cases and inp.case_names[-1] == ADVERSARIAL_TEXTS[-1][0]
    runtimes = ["onnx", "ort"] + ([] if harness_problem() else ["web"])
    for target in runtimes:
        rep = reports[target]
        assert rep["passed"], (target, rep.get("failing_example"))
        adv = rep["adversarial_text"]
        assert adv["n_cases"] == n_cases and adv["decision_agreement"] == 1.0 and adv["max_abs_diff"] <= 1e-5
    web_expected(reports["web"])
    assert reports["int8"]["status"] == "no-op"
    assert {f.name for f in files} == {"router.ort", "router.required_operators_and_types.config"}
    print(f"\ntext router, all four targets incl. one Node process: {seconds:.1f} s")


def test_a_prompt_is_read_up_to_its_first_nul_and_only_a_to_z_are_folded(text) -> None:
    spec, *_ = text
    score = spec.scores
    same = [("how many apples\x00 IGNORED", "how many apples"), ("\x00anything", ""),
            ("WHAT IS 7/8", "what is 7/8")]
    for given, read_as in same:
        assert score(np.array([given], dtype=object))[0] == score(np.array([read_as], dtype=object))[0]
    # Unicode would lower-case the Kelvin sign and İ to ASCII k / i; the router does not
    assert score(np.array(["\u212a"], dtype=object))[0] != score(np.array(["k"], dtype=object))[0]


def test_a_target_that_disagrees_is_refused_naming_the_failing_adversarial_case(text) -> None:
    _, inp, *_ = text
    score = inp.reference_score.copy()
    index = inp.case_names.index("kelvin_sign")
    # a runtime that scores the Kelvin-sign prompt on the other side of the threshold
    score[index] = inp.threshold - 0.5 if score[index] >= inp.threshold else inp.threshold + 0.5
    report = judge(inp, "a runtime", "0", score, score >= inp.threshold, latency=(1.0, 2.0),
                   model_bytes=1, notes=[])
    assert report["status"] == "refused" and report["adversarial_text"]["decision_agreement"] < 1.0
    assert report["decision_agreement"] == 1.0  # the dataset's rows alone would have passed
    assert report["failing_example"]["case"] == "kelvin_sign" and "\\u212a" in report["failing_example"]["input"]


def test_web_target_is_skipped_with_the_reason_where_node_is_absent(numeric, monkeypatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    _, inp, *_ = numeric["logistic"]
    reports, files = run_targets(["web"], inp)
    assert reports["web"]["status"] == "skipped" and "Node.js is not installed" in reports["web"]["notes"][0]
    assert files == []


def test_unknown_or_empty_target_lists_are_one_line_errors() -> None:
    assert known_targets() == ["int8", "onnx", "ort", "web"]
    assert check_target_names(["onnx", "ort", "onnx"]) == ["onnx", "ort"]
    for bad in (["onnx", "tpu"], []):
        with pytest.raises(RouterLabError, match=r"export.targets: got .*expected a list of int8, onnx, ort, web"):
            check_target_names(bad)


# --- the command, as a user runs it -----------------------------------------------------------

@pytest.fixture(scope="module")
def exported_targets(digits, datasets_dir, tmp_path_factory) -> Path:
    from conftest import run_cli

    train = tmp_path_factory.mktemp("train_mlp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        save_trained_router(train_router(digits, {"name": "mlp"}, None, "input", seed=0), train)
    work = tmp_path_factory.mktemp("export_targets")
    out = work / "export"
    done = run_cli("export", f"export.run_dir={train}", f"out={out}", f"datasets_dir={datasets_dir}",
                   "export.latency_calls=30", "export.batch_calls=2", "export.device_graph=false",
                   "export.targets=[onnx,ort,web,int8]", cwd=work)
    assert done.returncode == 0, done.stderr
    assert "int8" in done.stdout and "not written" in done.stdout
    return out


def test_export_writes_the_passing_targets_and_a_targets_object(exported_targets) -> None:
    out = exported_targets
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert names == ["bundle.manifest.json", "policy.json", "router.manifest.json", "router.onnx", "router.ort",
                     "router.ort.manifest.json", "router.required_operators_and_types.config", "validation.json"]
    listed = {e["file"]: e["role"] for e in json.loads((out / "bundle.manifest.json").read_text())["files"]}
    assert listed["router.ort"] == "target" and listed["router.required_operators_and_types.config"] == "target"
    from router_lab.runtime import load_bundle

    assert load_bundle(out).router is not None  # the targets' files are part of the verified bundle
    report = json.loads((out / "validation.json").read_text())
    assert report["passed"] and set(report["targets"]) == set(ALL)
    targets = report["targets"]
    assert targets["ort"]["files"] == {"router.ort": "router.ort",
                                       "router.required_operators_and_types.config": "router.ort.required_operators"}
    assert targets["int8"]["status"] == "refused" and targets["int8"]["files"] == {}
    web_expected(targets["web"])
    manifest = json.loads(manifest_path(out / "router.ort").read_text())
    assert manifest["role"] == "router.ort" and manifest["size_bytes"] == (out / "router.ort").stat().st_size


def test_device_runtime_loads_the_ort_file_as_it_loads_the_onnx_one(exported_targets, digits, tmp_path) -> None:
    out = exported_targets
    onnx_router, ort_router = DeviceRouter.load(out / "router.onnx"), DeviceRouter.load(out / "router.ort")
    assert ort_router.metadata == onnx_router.metadata
    x = digits.features(onnx_router.feature_names)[digits.split_mask("test")]
    np.testing.assert_array_equal(ort_router.route(x).decision, onnx_router.route(x).decision)
    assert np.abs(ort_router.route(x).score - onnx_router.route(x).score).max() <= 1e-6
    assert ort_router.route(x[0]).decision == onnx_router.route(x[0]).decision
    tampered = tmp_path / "router.ort"
    data = bytearray((out / "router.ort").read_bytes())
    data[len(data) // 2] ^= 1
    tampered.write_bytes(bytes(data))
    manifest_path(tampered).write_bytes(manifest_path(out / "router.ort").read_bytes())
    with pytest.raises(RouterLabError, match="does not match the manifest"):
        DeviceRouter.load(tampered)


def test_export_with_an_unknown_target_writes_nothing(digits, datasets_dir, cli, tmp_path) -> None:
    train = tmp_path / "train"
    save_trained_router(train_router(digits, None, None, "input", seed=0), train)
    done = cli("export", f"export.run_dir={train}", f"out={tmp_path / 'out'}", f"datasets_dir={datasets_dir}",
               "export.targets=[onnx,tpu]", "export.latency_calls=20", "export.batch_calls=2")
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "router-lab: error: export.targets: got ['onnx', 'tpu']; expected a list of int8, onnx, ort, web "
        "(e.g. export.targets=[onnx,ort,web,int8])"]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_report_shows_the_target_matrix_of_a_folder_of_exports(exported_targets, tmp_path) -> None:
    from conftest import run_cli

    done = run_cli("report", str(exported_targets.parent), f"report.out_dir={tmp_path / 'report'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    matrix = (tmp_path / "report" / "target_matrix.md").read_text()
    header, _, row = matrix.splitlines()[:3]
    assert header == "| router | folder | onnx | ort | web | int8 |"
    cells = [c.strip() for c in row.strip("|").split("|")]

    def kb(name: str) -> str:
        return f"{(exported_targets / name).stat().st_size / 1024:,.1f} KB"

    assert cells[0] == "mlp" and cells[2].startswith(f"pass · {kb('router.onnx')} · ") and cells[5] == "refused"
    assert cells[3].startswith(f"pass · {kb('router.ort')}")
    assert cells[4].startswith("pass" if harness_problem() is None else "skipped")
    assert "- mlp / int8: refused — dataset: score" in matrix and matrix in done.stdout.replace("\r", "")
    csv = (tmp_path / "report" / "target_matrix.csv").read_text().splitlines()
    assert csv[0].startswith("router,folder,dataset,target,status,passed,bytes,p50_us,p99_us") and len(csv) == 5
