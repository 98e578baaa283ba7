"""Offline evaluation: the issue's claims on `digits`, and the files `router-lab evaluate` writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from router_lab.errors import RouterLabError
from router_lab.evaluate import cross_fitted, evaluate_routers, fold_assignment
from router_lab.train.artifacts import save_trained_router
from router_lab.train.fit import train_router

MODES = ("input", "input+confidence")


@pytest.fixture(scope="module")
def digits_cross_fit(digits) -> pd.DataFrame:
    """Default router, 5-fold cross-fit repeated 3 times: every row scored 3 times by routers that
    never saw it (5,391 scored rows, against 355 in the fixed test split)."""
    table = cross_fitted(digits, None, None, MODES, folds=5, repeats=3, seed=0).table
    print("\n" + table[["policy", "mode", "apgr", "pgr_at_20", "pgr_at_50", "cpt_50", "cpt_80",
                        "auroc"]].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return table.set_index("policy")


def test_learned_cascade_beats_the_confidence_cascade_on_digits(digits_cross_fit):
    apgr = digits_cross_fit["apgr"]
    assert apgr["learned_cascade"] > apgr["confidence"]


def test_both_cascades_beat_random_on_digits(digits_cross_fit):
    apgr = digits_cross_fit["apgr"]
    assert apgr["confidence"] > apgr["random"] + 0.2
    assert apgr["learned_cascade"] > apgr["random"] + 0.2


def test_input_only_learned_router_beats_random_on_digits(digits_cross_fit):
    apgr = digits_cross_fit["apgr"]
    assert apgr["learned"] > apgr["random"] + 0.1
    assert digits_cross_fit.loc["learned", "auroc"] > 0.65


def test_random_is_the_diagonal_and_the_oracle_the_ceiling(digits_cross_fit):
    assert digits_cross_fit.loc["random", "auroc"] == 0.5
    assert digits_cross_fit.loc["random", "apgr"] == pytest.approx(0.5, abs=0.03)  # minus sensitive rows
    assert bool(digits_cross_fit.loc["oracle", "upper_bound"])
    assert (digits_cross_fit["apgr"].drop("oracle") < digits_cross_fit.loc["oracle", "apgr"]).all()


def test_cross_fit_scores_every_row_once_per_repeat(digits):
    evaluation = cross_fitted(digits, None, None, ("input",), folds=3, repeats=2, seed=1)
    assert (evaluation.table["n_rows"] == 2 * len(digits)).all()
    again = cross_fitted(digits, None, None, ("input",), folds=3, repeats=2, seed=1)
    pd.testing.assert_frame_equal(evaluation.table, again.table)
    with pytest.raises(RouterLabError, match="train.folds"):
        cross_fitted(digits, None, None, ("input",), folds=1)


def test_fold_assignment_is_balanced_within_each_label():
    labels = np.repeat([0, 1], [100, 23])
    folds = fold_assignment(labels, 5, np.random.default_rng(0))
    for value in (0, 1):
        counts = np.bincount(folds[labels == value], minlength=5)
        assert counts.max() - counts.min() <= 1


def test_evaluation_of_a_saved_router_on_the_test_split(digits, tmp_path):
    from router_lab.train.artifacts import load_trained_router

    router = train_router(digits, None, None, "input+confidence", 0)
    save_trained_router(router, tmp_path)
    evaluation = evaluate_routers(digits, {"input+confidence": load_trained_router(tmp_path)})
    table = evaluation.table.set_index("policy")
    assert list(table.index) == ["random", "confidence", "learned_cascade", "oracle"]
    assert (table["n_rows"] == digits.split_mask("test").sum()).all()
    # the curve's operating point: the threshold chosen for the default target (30 % budget)
    assert abs(table.loc["learned_cascade", "cloud_fraction"] - 0.3) < 0.06
    assert table.loc["learned_cascade", "apgr"] == pytest.approx(router.metrics["test_apgr"], abs=1e-6)


def test_evaluate_cli_writes_table_curves_and_plot(cli, tmp_path):
    result = cli("evaluate")
    assert result.returncode == 0, result.stderr
    [folder] = list((tmp_path / "outputs" / "evaluate").iterdir())
    table = pd.read_csv(folder / "evaluation.csv")
    assert {"policy", "mode", "apgr", "pgr_at_20", "pgr_at_50", "cpt_50", "cpt_80", "auroc",
            "auc_quality", "cloud_fraction", "quality", "upper_bound"} <= set(table.columns)
    assert set(table["policy"]) == {"random", "confidence", "learned", "learned_cascade", "oracle"}
    curves = pd.read_csv(folder / "curves.csv")
    assert {"random", "oracle"} <= set(curves["policy"])
    assert (curves.groupby(["policy", "mode"])["cloud_fraction"].min() == 0).all()
    assert (folder / "routing_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "learned_cascade" in result.stdout


def test_a_dataset_without_splits_is_evaluated_on_the_split_training_made(synthetic_small):
    import dataclasses

    from router_lab.train.fit import with_splits

    unsplit = dataclasses.replace(synthetic_small, frame=synthetic_small.frame.drop(columns="split"))
    router = train_router(unsplit, None, None, "input", 4)
    evaluation = evaluate_routers(with_splits(unsplit, 4), {"input": router})
    learned = evaluation.table.set_index("policy").loc["learned"]
    assert learned["apgr"] == pytest.approx(router.metrics["test_apgr"], abs=1e-6)
    assert learned["n_rows"] == router.metrics["n_test"]
