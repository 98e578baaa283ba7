"""The text router: raw prompts in, the routing score out; ONNX with the string inside the graph."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from omegaconf import OmegaConf

from router_lab.data.builders import resolve_dataset
from router_lab.data.config import RouteLLMConfig
from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError
from router_lab.export.text import STRING_LOCALE, convert_text_router, text_input
from router_lab.features import router_inputs
from router_lab.train.curves import average_pgr, routing_curve
from router_lab.train.fit import train_router
from router_lab.train.text import make_text_router

DEVICE = "mistralai/Mixtral-8x7B-Instruct-v0.1"
CLOUD = "gpt-4-1106-preview"
# Strings where a careless export differs from scikit-learn: non-ASCII capitals (locale case
# folding), characters whose Python lower() is ASCII (İ, the Kelvin sign), whitespace runs, tabs,
# newlines, no-break spaces, emoji, an empty prompt, and a long one.
TRICKY = ["ÉCOLE Straße İstanbul \u212a", "a  b\t\tc\n\nd \xa0 e", "Price: $2.50 (50%)!", "🙂 ok?", "",
          "x", "WHAT IS 7/8 OF 1,000?", "The QUICK brown fox. " * 40, "Ünïcödé 42 ✓ " * 400]


def gsm8k(csv: Path, folder: Path, seed: int) -> Dataset:
    cfg = RouteLLMConfig(name=f"gsm8k_s{seed}", source=str(csv), device_model=DEVICE,
                         cloud_model=CLOUD, seed=seed)
    return resolve_dataset(cfg, folder)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("text_router")


@pytest.fixture(scope="module")
def trained(gsm8k_csv: Path, folder: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = gsm8k(gsm8k_csv, folder, seed=0)
        return ds, train_router(ds, {"name": "text"}, None, mode="text", seed=0)


@pytest.fixture(scope="module")
def onnx_file(trained, folder: Path) -> Path:
    _, router = trained
    path = folder / "text_router.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path.write_bytes(convert_text_router(router.estimator).SerializeToString())
    return path


def onnx_scores(path: Path, texts) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"text": text_input(texts)})[0][:, 1]


def test_onnx_scores_and_decisions_equal_sklearn_on_heldout(trained, onnx_file: Path) -> None:
    ds, router = trained
    test = ds.split_mask("test")
    texts = ds.frame["text"].to_numpy(dtype=object)[test]
    sk = router.estimator.predict_proba(texts)[:, 1]
    on = onnx_scores(onnx_file, texts)
    assert np.abs(sk - on).max() <= 1e-5
    clear = np.abs(sk - router.threshold) > 1e-6
    assert ((sk >= router.threshold) == (on >= router.threshold))[clear].all()


def test_tricky_strings_score_the_same_in_onnx(trained, onnx_file: Path) -> None:
    _, router = trained
    sk = router.estimator.predict_proba(np.array(TRICKY, dtype=object))[:, 1]
    assert np.abs(sk - onnx_scores(onnx_file, TRICKY)).max() <= 1e-5


@pytest.mark.parametrize("prompt", ["", " ", "!!!", "É", "\n", "🙂", "12"])
def test_a_single_prompt_without_tokens_scores_the_same(trained, onnx_file: Path, prompt: str) -> None:
    _, router = trained  # one prompt alone: the tokenizers' outputs may be empty tensors
    sk = router.estimator.predict_proba(np.array([prompt], dtype=object))[:, 1]
    assert np.abs(sk - onnx_scores(onnx_file, [prompt])).max() <= 1e-5


def test_graph_takes_the_raw_string_and_folds_case_under_the_c_locale(onnx_file: Path) -> None:
    model = onnx.load(str(onnx_file))
    (given,) = model.graph.input
    assert given.name == "text" and given.type.tensor_type.elem_type == onnx.TensorProto.STRING
    locales = [a.s.decode() for n in model.graph.node if n.op_type == "StringNormalizer"
               for a in n.attribute if a.name == "locale"]
    assert locales == [STRING_LOCALE] == ["C"]


SUBPROCESS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import onnxruntime as ort
    texts = json.load(open(sys.argv[2], encoding="utf-8"))
    session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
    probs = session.run(["probabilities"], {"text": np.array(texts, dtype=object).reshape(-1, 1)})[0]
    heavy = sorted(m for m in ("sklearn", "pandas", "skl2onnx", "router_lab", "scipy") if m in sys.modules)
    print(json.dumps({"scores": probs[:, 1].tolist(), "heavy": heavy}))
""")


def run_bare(model: Path, texts: list[str], folder: Path) -> subprocess.CompletedProcess[str]:
    """Score ``texts`` in a fresh interpreter under LANG=C that imports only numpy and onnxruntime."""
    (folder / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LC_")}
    env.update(LANG="C", LC_ALL="C")
    return subprocess.run([sys.executable, "-S", "-c", SUBPROCESS, str(model), str(folder / "texts.json")],
                          env={**env, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
                          capture_output=True, text=True, timeout=120)


def test_exported_router_routes_under_lang_c_with_only_numpy_and_onnxruntime(
        trained, onnx_file: Path, folder: Path) -> None:
    _, router = trained
    done = run_bare(onnx_file, TRICKY, folder)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["heavy"] == []
    sk = router.estimator.predict_proba(np.array(TRICKY, dtype=object))[:, 1]
    assert np.abs(np.array(out["scores"]) - sk).max() <= 1e-5


def test_the_default_locale_is_the_pitfall_the_c_locale_avoids(onnx_file: Path, folder: Path) -> None:
    available = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout.lower()
    if "en_us.utf8" in available or "en_us.utf-8" in available:
        pytest.skip("en_US.UTF-8 is installed here, so the pitfall cannot show")
    model = onnx.load(str(onnx_file))
    for node in model.graph.node:
        for attr in node.attribute:
            if node.op_type == "StringNormalizer" and attr.name == "locale":
                attr.s = b"en_US.UTF-8"  # what skl2onnx writes when no locale is given
    broken = folder / "default_locale.onnx"
    broken.write_bytes(model.SerializeToString())
    done = run_bare(broken, ["hello"], folder)
    assert done.returncode != 0 and "locale" in done.stderr


def test_text_router_beats_random_apgr_on_heldout_gsm8k(gsm8k_csv: Path, folder: Path) -> None:
    """Five different train/val/test splits; random's APGR is measured on the same test rows."""
    router_apgr, random_apgr = [], []
    for seed in range(5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = gsm8k(gsm8k_csv, folder, seed)
            router = train_router(ds, {"name": "text"}, None, mode="text", seed=seed)
        test = ds.split_mask("test")
        dq, cq = ds.device_quality()[test], ds.cloud_quality()[test]
        allowed = np.ones(test.sum(), dtype=bool)
        rng = np.random.default_rng(seed)
        random_apgr.append(np.mean([average_pgr(routing_curve(rng.random(test.sum()), dq, cq, allowed))
                                    for _ in range(200)]))
        router_apgr.append(router.metrics["test_apgr"])
    router_apgr, random_apgr = np.array(router_apgr), np.array(random_apgr)
    print(f"text router APGR {router_apgr.round(3)} vs random {random_apgr.round(3)}")
    assert np.allclose(random_apgr, 0.5, atol=0.02)  # random is the diagonal
    assert (router_apgr > random_apgr).all()
    assert (router_apgr - random_apgr).mean() >= 0.05


def test_conversion_is_byte_identical(trained) -> None:
    _, router = trained
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = convert_text_router(router.estimator).SerializeToString()
        second = convert_text_router(router.estimator).SerializeToString()
    assert first == second


def test_sublinear_term_frequencies_export_as_scikit_learn_computes_them(monkeypatch) -> None:
    """scikit-learn's sublinear tf is 1 + log(count); skl2onnx converts it as log(1 + count), so
    the export rewrites those nodes: with the rewrite ONNX = scikit-learn, without it not."""
    import router_lab.export.text as export_text

    rng = np.random.default_rng(0)
    words = np.array(["apples", "pears", "Total", "twice", "sum", "cost", "12", "3.5"])
    texts = np.array([" ".join(rng.choice(words, size=rng.integers(1, 12))) for _ in range(120)], dtype=object)
    labels = np.array([t.count("apples") >= 2 for t in texts], dtype=int)
    router = make_text_router({"sublinear_tf": True, "min_df": 1}).fit(texts, labels)
    probe = [*texts[:40], *TRICKY, "apples " * 30]
    sk = router.predict_proba(np.array(probe, dtype=object))[:, 1]

    def exported_scores() -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = convert_text_router(router)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(["probabilities"], {"text": text_input(probe)})[0][:, 1]

    assert np.abs(exported_scores() - sk).max() <= 1e-5
    monkeypatch.setattr(export_text, "sublinear_tf_as_sklearn", lambda model: None)
    assert np.abs(exported_scores() - sk).max() > 1e-3


def test_text_mode_needs_a_text_column(digits: Dataset) -> None:
    with pytest.raises(RouterLabError, match="no 'text' column; feature mode 'text'"):
        router_inputs(digits, "text")


def test_bad_text_router_params_are_one_line_errors() -> None:
    with pytest.raises(RouterLabError, match="unknown key.* ngram_max"):
        make_text_router({"ngram_max": 3})
    with pytest.raises(RouterLabError, match="every text feature is off"):
        make_text_router({"word_ngram_max": 0, "char_ngram_max": 0, "counts": False})
    with pytest.raises(RouterLabError, match="char_ngram_min: got 5"):
        make_text_router({"char_ngram_max": 3, "char_ngram_min": 5})
    with pytest.raises(RouterLabError, match="router.max_chars: got 5000"):
        make_text_router({"max_chars": 5000})


def test_export_refuses_a_non_text_estimator() -> None:
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(RouterLabError, match="expected the text router pipeline"):
        convert_text_router(LogisticRegression())


def test_cli_trains_and_exports_a_text_router_that_passes_the_gates(cli, gsm8k_csv: Path, tmp_path: Path) -> None:
    data = [f"dataset.source={gsm8k_csv}", "dataset.name=gsm8k_cli"]
    done = cli("train", "dataset=gsm8k", *data, "router=text")  # train.mode follows the router
    assert done.returncode == 0, done.stderr
    (run,) = (tmp_path / "outputs" / "train").iterdir()
    done = cli("export", "dataset=gsm8k", *data, f"export.run_dir={run}", "export.latency_calls=200",
               "export.batch_calls=2")
    assert done.returncode == 0, done.stderr
    (out,) = (tmp_path / "outputs" / "export").iterdir()
    report = json.loads((out / "validation.json").read_text())
    assert report["passed"] is True and report["max_abs_diff"] <= 1e-5
    assert (out / "router.onnx").stat().st_size <= 2_000_000
    # The shipped artifact through the device runtime, under LANG=C, without the training stack.
    script = ("import sys, json; from router_lab.runtime import DeviceRouter; "
              f"r = DeviceRouter.load({str(out / 'router.onnx')!r}).route('What is 7/8 of 1,000?'); "
              "heavy = [m for m in ('sklearn', 'pandas', 'skl2onnx', 'hydra') if m in sys.modules]; "
              "print(json.dumps({'decision': bool(r.decision), 'score': r.score, 'heavy': heavy}))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LC_")}
    done = subprocess.run([sys.executable, "-c", script], env={**env, "LANG": "C", "LC_ALL": "C"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    routed = json.loads(done.stdout)
    assert routed["heavy"] == [] and 0.0 < routed["score"] < 1.0
    # An empty batch is a one-line user error, not onnxruntime's raw refusal of an empty tensor.
    from router_lab.errors import RouterLabError
    from router_lab.runtime import DeviceRouter

    router = DeviceRouter.load(out / "router.onnx")
    for empty in ([], (), np.array([], dtype=object)):
        with pytest.raises(RouterLabError, match="empty batch"):
            router.route(empty)


def test_simulator_routes_text_requests_and_tokens_set_cloud_cost(trained) -> None:
    from router_lab.policies.base import PolicyContext, Route
    from router_lab.policies.registry import make_policy
    from router_lab.sim.engines import run
    from router_lab.sim.scenario import make_scenario

    ds, router = trained
    price_in, price_out = 0.001, 0.002
    scenario = make_scenario(workload={"rate_per_s": 0.5}, device={"units": 4, "service_mean_ms": 300.0},
                             cloud={"cost_per_1k_input_tokens_usd": price_in, "timeout_s": None,
                                    "cost_per_1k_output_tokens_usd": price_out},
                             sim={"n_requests": 1500, "split": "test", "progress": False})
    policy = make_policy(OmegaConf.create({"name": "learned"}), PolicyContext(ds, np.random.default_rng(0), router=router))
    records = run(scenario, policy, ds, np.random.SeedSequence(0))
    rows = records.row.astype(np.int64)
    assert set(ds.frame["split"].to_numpy()[rows]) == {"test"}
    expected_route = policy.decide_batch(rows)
    assert np.array_equal(records.route, expected_route)
    assert 0.05 < (records.route == Route.CLOUD).mean() < 0.95
    cloud = records.route == Route.CLOUD
    tokens_in, tokens_out = (ds.frame[c].to_numpy()[rows] for c in ("tokens_in", "tokens_out"))
    want = (tokens_in * price_in + tokens_out * price_out) / 1000
    assert np.allclose(records.cost_usd[cloud], want[cloud], rtol=1e-5)
    assert (records.cost_usd[~cloud] == 0).all()
    answered_by = np.where(cloud, ds.cloud_quality()[rows], ds.device_quality()[rows])
    assert np.array_equal(records.quality, answered_by.astype(np.float32))


def test_a_prompt_is_read_only_up_to_max_chars(trained, onnx_file: Path) -> None:
    _, router = trained
    bound = router.estimator.steps[0][1].max_chars
    assert bound == 1000  # the default: GSM8K's longest prompts fit (see the README for the cost)
    long_prompt = "How many apples? " * 300 + "ZEBRA " * 200
    head = long_prompt[:bound]
    sk = router.estimator.predict_proba(np.array([long_prompt, head], dtype=object))[:, 1]
    assert sk[0] == sk[1]
    on = onnx_scores(onnx_file, [long_prompt, head])
    assert np.abs(on - sk).max() <= 1e-5 and on[0] == on[1]


def test_inner_cv_chooses_c_from_the_grid_and_ships_a_plain_pipeline(trained) -> None:
    from sklearn.pipeline import Pipeline

    ds, _ = trained
    grid = [0.01, 1.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        router = train_router(ds, {"name": "text", "inner_cv": 2, "C_grid": grid}, None, mode="text", seed=0)
    assert isinstance(router.estimator, Pipeline)  # what export converts, not the search
    chosen = router.metrics["inner_cv_choice"]["C"]
    assert chosen in grid and router.estimator.steps[-1][1].C == chosen
    assert "inner_cv_choice" not in trained[1].metrics  # off by default


def test_category_folded_into_the_text_is_learned_and_exports(trained, folder: Path) -> None:
    """A category that tells the gain (as a subject or an app feature can): the text+category
    router uses it, and its ONNX graph, fed the same folded string, scores the same."""
    import dataclasses

    from router_lab.features import exported_router_inputs
    from router_lab.train.text import category_token, with_category

    ds, _ = trained
    gain = ds.cloud_quality() - ds.device_quality()
    rng = np.random.default_rng(0)
    informative = np.where(gain > 0, "Word problems", np.where(rng.random(len(gain)) < 0.5, "Arithmetic", "Geometry"))
    ds_cat = dataclasses.replace(ds, frame=ds.frame.assign(category=informative))
    params = {"name": "text", "inner_cv": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = train_router(ds_cat, params, None, mode="text", seed=0)
        with_cat = train_router(ds_cat, params, None, mode="text+category", seed=0)
    assert with_cat.feature_columns == ("category", "text")
    assert with_cat.metrics["test_apgr"] > plain.metrics["test_apgr"] + 0.1
    assert category_token("Word problems") == "zzcatwordproblems"
    folded = with_category(["Word problems"], ["What is 2+2?"])
    assert folded[0] == "zzcatwordproblems What is 2+2?"
    texts = exported_router_inputs(ds_cat, {"input_dtype": "string", "mode": "text+category"}, "x")
    assert texts[0].startswith("zzcat")
    path = folder / "text_category.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path.write_bytes(convert_text_router(with_cat.estimator).SerializeToString())
    sk = with_cat.estimator.predict_proba(texts[:200])[:, 1]
    assert np.abs(onnx_scores(path, texts[:200]) - sk).max() <= 1e-5
