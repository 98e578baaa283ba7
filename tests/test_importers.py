"""Importers of routing benchmarks: RouteLLM CSVs and RouterBench wide tables into the contract."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from router_lab.data.builders import resolve_dataset
from router_lab.data.config import RouteLLMConfig
from router_lab.data.contract import validate_frame
from router_lab.data.files import load_dataset_file, write_dataset
from router_lab.data.importers import (
    estimate_tokens,
    import_routellm,
    import_routerbench,
    run_importer,
)
from router_lab.errors import RouterLabError

DEVICE = "mistralai/Mixtral-8x7B-Instruct-v0.1"
CLOUD = "gpt-4-1106-preview"


def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def write_routellm(path: Path, prompts: list[str], device: list, cloud: list) -> Path:
    pd.DataFrame({"prompt": prompts, DEVICE: device, CLOUD: cloud}).to_csv(path, index=False)
    return path


def test_estimate_is_ceil_of_chars_over_four_and_at_least_one() -> None:
    got = estimate_tokens(pd.Series(["", "abcd", "abcde", "x" * 400]))
    assert got.tolist() == [1, 1, 2, 100]


def test_gsm8k_imports_into_the_contract(gsm8k_csv: Path) -> None:
    raw = pd.read_csv(gsm8k_csv)
    built = import_routellm(gsm8k_csv, DEVICE, CLOUD, rng())
    ds = validate_frame(built.frame, "gsm8k", built.card)
    frame = ds.frame
    assert len(frame) == len(raw)
    assert frame["text"].tolist() == raw["prompt"].tolist()
    assert frame["device_correct"].mean() == pytest.approx(raw[DEVICE].mean())
    assert frame["cloud_correct"].mean() == pytest.approx(raw[CLOUD].mean())
    assert (frame["tokens_estimated"] == 1).all()
    assert frame["tokens_in"].tolist() == np.ceil(raw["prompt"].str.len() / 4).astype(int).tolist()
    assert set(frame["split"]) == {"train", "val", "test"}
    assert ds.feature_columns == ()  # text only: no leaked outcome or cost columns
    assert built.card["device_model"] == DEVICE and built.card["cloud_model"] == CLOUD


def test_same_seed_same_split_other_seed_other_split(gsm8k_csv: Path) -> None:
    a = import_routellm(gsm8k_csv, DEVICE, CLOUD, np.random.default_rng(1)).frame["split"]
    b = import_routellm(gsm8k_csv, DEVICE, CLOUD, np.random.default_rng(1)).frame["split"]
    c = import_routellm(gsm8k_csv, DEVICE, CLOUD, np.random.default_rng(2)).frame["split"]
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()


def test_import_split_is_stratified_by_the_outcome_pair(gsm8k_csv: Path) -> None:
    splits = []
    for seed in range(5):
        frame = import_routellm(gsm8k_csv, DEVICE, CLOUD, np.random.default_rng(seed)).frame
        pair = 2 * frame["device_correct"] + frame["cloud_correct"]
        for value in np.unique(pair):
            share = (frame["split"][pair == value] == "test").mean()
            assert abs(share - 0.2) <= 1.0 / (pair == value).sum() + 1e-9
        splits.append(tuple(frame["split"]))
    assert len(set(splits)) == 5  # five seeds, five different splits


def test_the_experiment_seed_draws_the_gsm8k_split() -> None:
    from hydra import compose, initialize_config_dir

    from router_lab.cli import CONF_DIR
    from router_lab.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        seeds = [compose("config", overrides=["dataset=gsm8k", f"seed={s}"]).dataset.seed for s in (0, 3)]
    assert seeds == [0, 3]


def test_each_file_of_a_folder_becomes_a_category(tmp_path: Path) -> None:
    write_routellm(tmp_path / "algebra.csv", ["Solve x+1=2.", "What is 2+2?"], [True, False], [True, True])
    write_routellm(tmp_path / "law.csv", ["Is a verbal contract binding?"], ["false"], ["TRUE"])
    frame = import_routellm(tmp_path, DEVICE, CLOUD, rng()).frame
    assert frame["category"].tolist() == ["algebra", "algebra", "law"]
    assert frame["device_correct"].tolist() == [1, 0, 0]
    assert frame["cloud_correct"].tolist() == [1, 1, 1]


def test_response_text_gives_the_output_token_estimate(tmp_path: Path) -> None:
    frame = pd.DataFrame({"prompt": ["p1", "p2"], DEVICE: [1, 0], CLOUD: [1, 1],
                          f"{CLOUD}|response": ["x" * 40, "y" * 9]})
    frame.to_csv(tmp_path / "r.csv", index=False)
    got = import_routellm(tmp_path / "r.csv", DEVICE, CLOUD, rng()).frame
    assert got["tokens_out"].tolist() == [10, 3]
    assert got["output_bytes"].tolist() == [40, 12]


@pytest.mark.parametrize(("device", "expected"), [
    ("mixtral", "no column 'mixtral' for device_model; the columns are: prompt"),
    (CLOUD, "device_model and cloud_model are both"),
    (None, "device_model= and cloud_model= are required"),
])
def test_bad_model_names_are_one_line_errors(gsm8k_csv: Path, device: str | None, expected: str) -> None:
    with pytest.raises(RouterLabError, match=expected) as info:
        import_routellm(gsm8k_csv, device, CLOUD, rng())
    assert "\n" not in str(info.value)


def test_non_boolean_correctness_names_file_column_and_row(tmp_path: Path) -> None:
    path = write_routellm(tmp_path / "a.csv", ["q1", "q2", "q3"], [True, "maybe", False], [1, 1, 1])
    with pytest.raises(RouterLabError, match=r"a.csv: column 'mistralai/Mixtral-8x7B-Instruct-v0.1', "
                                             r"row 2: got 'maybe'; expected a correctness value"):
        import_routellm(path, DEVICE, CLOUD, rng())


def test_missing_correctness_value_is_an_error(tmp_path: Path) -> None:
    path = write_routellm(tmp_path / "a.csv", ["q1", "q2"], [True, None], [True, True])
    with pytest.raises(RouterLabError, match="row 2: got nan"):
        import_routellm(path, DEVICE, CLOUD, rng())


@pytest.mark.parametrize("empty", ["", "   "])
def test_empty_prompt_is_an_error(tmp_path: Path, empty: str) -> None:
    path = tmp_path / "a.parquet"
    pd.DataFrame({"prompt": ["fine", empty], DEVICE: [True, True], CLOUD: [True, True]}).to_parquet(path)
    with pytest.raises(RouterLabError, match="column 'prompt', row 2: .*expected a non-empty prompt"):
        import_routellm(path, DEVICE, CLOUD, rng())


def test_files_whose_columns_disagree_are_refused(tmp_path: Path) -> None:
    write_routellm(tmp_path / "a.csv", ["q"], [True], [True])
    pd.DataFrame({"prompt": ["q"], DEVICE: [True], "claude-v1": [True]}).to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(RouterLabError, match=r"b.csv: columns disagree with .*a.csv: missing "
                                             r"\['gpt-4-1106-preview'\], extra \['claude-v1'\]"):
        import_routellm(tmp_path, DEVICE, CLOUD, rng())


def test_pickles_are_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "code_ran"

    class Payload:  # unpickling this would create the marker file
        def __reduce__(self):  # noqa: ANN204
            return (Path.touch, (marker,))

    path = tmp_path / "routerbench_0shot.pkl"
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(RouterLabError, match=r"pickle files are not loaded .*pd.read_pickle\('.*"
                                             r"routerbench_0shot.pkl'\).to_parquet\('.*routerbench_0shot.parquet'\)"):
        import_routerbench(path, "a", "b", rng())
    assert not marker.exists()


def routerbench_table(device: list[float], cloud: list[float]) -> pd.DataFrame:
    return pd.DataFrame({
        "sample_id": ["mmlu.0", "mmlu.1", "gsm8k.0"], "prompt": ["Q one?", "Q two?", "Q three?"],
        "eval_name": ["mmlu", "mmlu", "gsm8k"],
        "small": device, "small|model_response": ["a", "bb", "ccc"], "small|total_cost": [1e-5, 2e-5, 3e-5],
        "big": cloud, "big|model_response": ["x" * 8, "y" * 12, "z"], "big|total_cost": [1e-3, 2e-3, 3e-3],
        "oracle_model_to_route_to": ["small", "big", "big"],
    })


def test_routerbench_scores_categories_and_costs(tmp_path: Path) -> None:
    path = tmp_path / "rb.parquet"
    routerbench_table([0.5, 0.0, 1.0], [0.75, 1.0, 1.0]).to_parquet(path)
    built = import_routerbench(path, "small", "big", rng())
    ds = validate_frame(built.frame, "rb", built.card)
    assert ds.outcome == "score"
    assert ds.device_quality().tolist() == [0.5, 0.0, 1.0]
    assert ds.frame["category"].tolist() == ["mmlu", "mmlu", "gsm8k"]
    assert ds.frame["tokens_out"].tolist() == [2, 3, 1]  # from the cloud model's responses
    assert ds.feature_columns == ()  # cost and response columns are not features
    assert built.card["metrics"]["cloud_mean_cost_usd"] == pytest.approx(2e-3)


def test_routerbench_binary_scores_become_correctness(tmp_path: Path) -> None:
    path = tmp_path / "rb.csv"
    routerbench_table([1, 0, 1], [1, 1, 0]).to_csv(path, index=False)
    frame = import_routerbench(path, "small", "big", rng()).frame
    assert frame["device_correct"].tolist() == [1, 0, 1] and "device_score" not in frame


def test_routerbench_score_outside_unit_interval_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "rb.csv"
    routerbench_table([1, 7, 1], [1, 1, 0]).to_csv(path, index=False)
    with pytest.raises(RouterLabError, match="column 'small', row 2: got 7; expected a score in"):
        import_routerbench(path, "small", "big", rng())


def test_unknown_importer_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(RouterLabError, match="got importer 'routerbenhc'; expected one of routellm, routerbench"):
        run_importer("routerbenhc", str(tmp_path), "a", "b", 0)
    with pytest.raises(RouterLabError, match="missing path="):
        run_importer("routellm", None, "a", "b", 0)
    with pytest.raises(RouterLabError, match="no .csv or .parquet files found"):
        run_importer("routellm", str(tmp_path), "a", "b", 0)


def test_dataset_gsm8k_is_imported_on_first_use(gsm8k_csv: Path, tmp_path: Path) -> None:
    cfg = RouteLLMConfig(name="gsm8k_test", source=str(gsm8k_csv), device_model=DEVICE, cloud_model=CLOUD)
    ds = resolve_dataset(cfg, tmp_path)
    assert (tmp_path / "gsm8k_test.parquet").exists() and len(ds) == 1319 and ds.has_text
    again = resolve_dataset(cfg, tmp_path)  # reused from disk: same content hash
    assert again.card["content_hash"] == ds.card["content_hash"]


def test_dataset_source_missing_is_a_one_line_error(tmp_path: Path) -> None:
    cfg = RouteLLMConfig(name="x", source="no/such/file.csv", device_model=DEVICE, cloud_model=CLOUD)
    with pytest.raises(RouterLabError, match="dataset.source: 'no/such/file.csv' not found"):
        resolve_dataset(cfg, tmp_path)


def test_cli_import_writes_the_dataset_and_its_card(cli, gsm8k_csv: Path, tmp_path: Path) -> None:
    done = cli("dataset", "import", "routellm", f"path={gsm8k_csv}", f"device_model={DEVICE}",
               f"cloud_model={CLOUD}", "out=gsm8k.parquet")
    assert done.returncode == 0, done.stderr
    assert "rows:             1,319" in done.stdout
    assert (tmp_path / "gsm8k.parquet").exists() and (tmp_path / "gsm8k.card.json").exists()
    bad = cli("dataset", "import", "routellm", f"path={gsm8k_csv}", "device_model=mixtral",
              f"cloud_model={CLOUD}", "out=other.parquet")
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "no column 'mixtral' for device_model" in bad.stderr
    assert not (tmp_path / "other.parquet").exists()


# RouterBench's wide table has these 11 models (its README); prices rise down the list here.
ROUTERBENCH_MODELS = ["mistralai/mistral-7b-chat", "WizardLM/WizardLM-13B-V1.2", "meta/code-llama-instruct-34b-chat",
                      "zero-one-ai/Yi-34B-Chat", "mistralai/mixtral-8x7b-chat", "meta/llama-2-70b-chat",
                      "gpt-3.5-turbo-1106", "claude-instant-v1", "claude-v1", "claude-v2", "gpt-4-1106-preview"]


def routerbench_wide(n: int = 36, seed: int = 0) -> pd.DataFrame:
    """A RouterBench-shaped table: per model a 0/1 score, a response and a cost column."""
    gen = np.random.default_rng(seed)
    table: dict[str, object] = {"sample_id": [f"mmlu.{i}" for i in range(n)],
                                "prompt": [f"Question {i}: {'why ' * (i % 5)}?" for i in range(n)],
                                "eval_name": ["mmlu", "hellaswag", "gsm8k"] * (n // 3)}
    for k, model in enumerate(ROUTERBENCH_MODELS):
        table[model] = (gen.random(n) < 0.4 + 0.05 * k).astype(float)
        table[f"{model}|model_response"] = ["a" * int(v) for v in gen.integers(1, 60, n)]
        table[f"{model}|total_cost"] = 1e-5 * (k + 1) * (1 + gen.random(n))
    table["oracle_model_to_route_to"] = [ROUTERBENCH_MODELS[-1]] * n
    return pd.DataFrame(table)


def test_routerbench_wide_table_imports_with_all_eleven_models(tmp_path: Path) -> None:
    raw = routerbench_wide()
    raw.to_parquet(tmp_path / "rb11.parquet")
    built = import_routerbench(tmp_path / "rb11.parquet", ROUTERBENCH_MODELS[0], ROUTERBENCH_MODELS[-1], rng())
    ds = write_dataset(built.frame, built.card, tmp_path / "out" / "rb11.parquet")
    ds = load_dataset_file(ds.card["path"])  # the models survive the card's round trip
    assert len(ds.models) == 11 and ds.models[0] == "device" and ds.models[-1] == "cloud"
    by_source = {s.source_name: s.name for s in ds.model_specs}
    assert sorted(by_source) == sorted(ROUTERBENCH_MODELS)
    assert by_source["meta/llama-2-70b-chat"] == "meta-llama-2-70b-chat"
    for source_name, name in by_source.items():
        np.testing.assert_array_equal(ds.quality(name), raw[source_name])
        np.testing.assert_allclose(ds.cost(name), raw[f"{source_name}|total_cost"])
        assert ds.tokens_out(name).tolist() == np.ceil(raw[f"{source_name}|model_response"].str.len() / 4).tolist()
    mean_costs = [ds.cost(m).mean() for m in ds.models[1:]]
    assert mean_costs == sorted(mean_costs)  # tier order: device first, then by mean cost
    assert ds.outcome == "correct" and ds.feature_columns == ()  # no outcome or cost leaks into features


def test_routerbench_extra_model_with_another_outcome_kind_is_an_error(tmp_path: Path) -> None:
    raw = routerbench_wide()
    raw.loc[4, "claude-v1"] = 0.5
    raw.to_csv(tmp_path / "rb.csv", index=False)
    with pytest.raises(RouterLabError, match=r"column 'claude-v1', row 5: got 0.5; expected 0 or 1"):
        import_routerbench(tmp_path / "rb.csv", ROUTERBENCH_MODELS[0], ROUTERBENCH_MODELS[-1], rng())


def test_routellm_keeps_every_true_false_model_column(tmp_path: Path) -> None:
    frame = pd.DataFrame({"prompt": ["q1", "q2", "q3"], DEVICE: [True, False, True], CLOUD: [True, True, False],
                          "meta/llama-2-70b-chat": ["TRUE", "false", "1"], "note": ["x", "y", "z"],
                          f"{CLOUD}|response": ["a", "b", "c"]})
    frame.to_csv(tmp_path / "r.csv", index=False)
    built = import_routellm(tmp_path / "r.csv", DEVICE, CLOUD, rng())
    ds = validate_frame(built.frame, "r", built.card)
    assert ds.models == ("device", "meta-llama-2-70b-chat", "cloud")
    assert ds.quality("meta-llama-2-70b-chat").tolist() == [1.0, 0.0, 1.0]
    assert built.card["ignored_columns"] == ["note"] and ds.feature_columns == ()


def test_gsm8k_two_model_import_has_no_extra_model_columns(gsm8k_csv: Path) -> None:
    built = import_routellm(gsm8k_csv, DEVICE, CLOUD, rng())
    assert not [c for c in built.frame.columns if c.startswith("model_")] and "models" not in built.card
