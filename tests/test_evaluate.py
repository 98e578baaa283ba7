"""Offline evaluation: the issue's claims on `digits`, and the files `router-lab evaluate` writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from router_lab.errors import RouterLabError
from router_lab.evaluate import (
    TIER_POLICIES,
    Evaluation,
    cross_fitted,
    evaluate_routers,
    fold_assignment,
    format_differences,
    format_table,
)
from router_lab.train.artifacts import save_trained_router
from router_lab.train.fit import train_router

MODES = ("input", "input+confidence")


@pytest.fixture(scope="module")
def digits_cross_fit(digits) -> Evaluation:
    """Default router and label, 5-fold cross-fit repeated 3 times: every row scored 3 times by
    routers that never saw it, with 300 bootstrap resamples (the README's figures use 10 repeats)."""
    evaluation = cross_fitted(digits, None, None, MODES, folds=5, repeats=3, seed=0, n_boot=300)
    print("\n" + format_table(evaluation) + "\n" + format_differences(evaluation))
    return evaluation


def _table(evaluation: Evaluation) -> pd.DataFrame:
    return evaluation.table.set_index("policy")


def _difference(evaluation: Evaluation, policy: str, versus: str, metric: str = "apgr") -> pd.Series:
    d = evaluation.differences
    return d[(d.policy == policy) & (d.versus == versus) & (d.metric == metric)].iloc[0]


def test_default_evaluation_ranks_learned_cascade_over_confidence_over_random(digits_cross_fit):
    apgr = _table(digits_cross_fit)["apgr"]
    assert apgr["learned_cascade"] > apgr["confidence"] > apgr["random"] + 0.2
    assert _difference(digits_cross_fit, "learned_cascade", "confidence")["difference"] > 0


def test_every_metric_has_an_interval_around_its_estimate(digits_cross_fit):
    table = digits_cross_fit.table
    for metric in ("apgr", "pgr_at_20", "cpt_50", "auroc_cloud_wins", "cloud_fraction", "quality", "aiq"):
        inside = (table[f"{metric}_lo"] <= table[metric] + 1e-9) & (table[metric] <= table[f"{metric}_hi"] + 1e-9)
        assert inside.all(), metric
    learned = _table(digits_cross_fit).loc["learned"]
    assert 0.005 < learned["apgr_hi"] - learned["apgr_lo"] < 0.2  # a real, finite spread


def test_paired_differences_are_reported_against_confidence_and_random(digits_cross_fit):
    diff = _difference(digits_cross_fit, "learned_cascade", "random")
    assert diff["lo"] > 0.2  # the cascade beats random, and the interval says so
    table = _table(digits_cross_fit)
    assert diff["difference"] == pytest.approx(table.loc["learned_cascade", "apgr"] - table.loc["random", "apgr"])
    # paired: the difference's interval is narrower than the sum of the two half-widths
    conf = _difference(digits_cross_fit, "learned_cascade", "confidence")
    width = table["apgr_hi"] - table["apgr_lo"]
    assert conf["hi"] - conf["lo"] < 0.5 * (width["learned_cascade"] + width["confidence"])
    d = digits_cross_fit.differences
    assert set(d[~d.policy.isin(TIER_POLICIES)]["versus"]) == {"confidence", "random"}
    # the N-model policies are paired with every deployable two-model policy
    assert set(d[d.policy == "cost_aware"]["versus"]) == {"random", "confidence", "learned", "learned_cascade"}


def test_input_only_learned_router_beats_random_on_digits(digits_cross_fit):
    table = _table(digits_cross_fit)
    assert table.loc["learned", "apgr"] > table.loc["random", "apgr"] + 0.1
    assert table.loc["learned", "auroc_cloud_wins"] > 0.65


def test_random_is_the_diagonal_and_the_oracle_the_ceiling(digits_cross_fit):
    table = _table(digits_cross_fit)
    assert table.loc["random", "auroc_cloud_wins"] == 0.5
    assert table.loc["random", "apgr"] == pytest.approx(0.5, abs=0.03)  # minus sensitive rows
    assert bool(table.loc["oracle", "upper_bound"])
    assert (table["apgr"].drop("oracle") < table.loc["oracle", "apgr"]).all()


def test_aiq_ranks_the_oracle_first_and_every_hull_lies_above_its_curve(digits_cross_fit):
    table = _table(digits_cross_fit)
    assert (table["aiq"].drop("oracle") < table.loc["oracle", "aiq"]).all()
    assert table.loc["learned_cascade", "aiq"] > table.loc["random", "aiq"]
    assert (table["aiq"] >= table["auc_quality"] - 1e-12).all()  # the hull is above the curve
    assert table["aiq_single_models"].nunique() == 1 and table["best_single_quality"].nunique() == 1
    first = table.iloc[0]
    assert first["aiq_single_models"] == pytest.approx((first["device_quality"] + first["cloud_quality"]) / 2)
    curves = digits_cross_fit.curves
    assert (curves["hull_quality"] >= curves["quality"] - 1e-12).all()
    assert _difference(digits_cross_fit, "learned_cascade", "random", "aiq")["lo"] > 0


def test_three_model_digits_references_bound_the_two_model_policies(digits_cross_fit, digits):
    refs = digits_cross_fit.models.set_index(["reference", "model"])
    table = _table(digits_cross_fit)
    single = refs.loc["single_model"]
    assert list(single.index) == ["device", "edge", "cloud"]
    assert single["quality"].tolist() == pytest.approx([digits.quality(m).mean() for m in digits.models])
    assert single.loc["device", "cost"] == 0 and single.loc["cloud", "cost"] == 1
    assert 0 < single.loc["edge", "cost"] < 1
    oracle = refs.loc[("oracle", "device+edge+cloud")]
    assert oracle["aiq_lo"] <= oracle["aiq"] <= oracle["aiq_hi"]
    assert (table["aiq_models"] < oracle["aiq"]).all()  # the two-model oracle included
    assert oracle["aiq"] > refs.loc[("zero_router", "device+edge+cloud"), "aiq"] > table.loc["random", "aiq"]
    assert refs.loc["best_single_model"].index.tolist() == ["cloud"]
    # device free, cloud dearest, one price per call: the model axis is the cloud fraction
    two = table.drop(list(TIER_POLICIES))
    assert two["aiq_models"].tolist() == two["aiq"].tolist()


def test_on_three_model_digits_the_n_model_policies_beat_every_two_model_policy(digits_cross_fit):
    """Done-when #1 (offline half): cost_aware's and tier_cascade's AIQ over the three models is
    above every two-model policy's on the same cross-fitted rows, below the oracle over all three;
    paired differences against each, with intervals (the README's table)."""
    table = _table(digits_cross_fit)
    two = table[~table.index.isin(TIER_POLICIES) & ~table["upper_bound"].astype(bool)]
    oracle = digits_cross_fit.models.set_index("reference").loc["oracle", "aiq"]
    for name in TIER_POLICIES:
        assert table.loc[name, "mode"] == "input+confidence"  # the device answers first, as in the cascades
        assert (table.loc[name, "aiq_models"] > two["aiq_models"]).all(), name
        assert table.loc[name, "aiq_models"] < oracle
        for versus in two.index:
            diff = _difference(digits_cross_fit, name, versus, "aiq_models")
            assert diff["lo"] <= diff["difference"] <= diff["hi"] and diff["difference"] > 0, (name, versus)
    assert _difference(digits_cross_fit, "cost_aware", "random", "aiq_models")["lo"] > 0


def test_bootstrap_metrics_with_unit_weights_equal_the_curve_metrics(digits):
    from router_lab.features import cloud_wins
    from router_lab.train.bootstrap import weighted_metrics
    from router_lab.train.curves import auroc, curve_metrics, routing_curve

    rng = np.random.default_rng(3)
    scores = np.round(rng.random(len(digits)), 2)  # ties on purpose
    dq, cq = digits.device_quality(), digits.cloud_quality()
    allowed = ~digits.column_or("sensitive", False).astype(bool)
    helps = cloud_wins(digits)
    sent = scores > 0.7
    got = weighted_metrics(scores, sent, dq, cq, allowed, helps, np.ones((1, len(digits))))
    want = curve_metrics(routing_curve(scores, dq, cq, allowed))
    for key, value in want.items():
        assert got[key][0] == pytest.approx(value, abs=1e-9), key
    assert got["auroc_cloud_wins"][0] == pytest.approx(auroc(scores, helps), abs=1e-12)


def test_cross_fit_scores_every_row_once_per_repeat(digits):
    evaluation = cross_fitted(digits, None, None, ("input",), folds=3, repeats=2, seed=1, n_boot=50)
    assert (evaluation.table["n_rows"] == len(digits)).all()
    assert (evaluation.table["n_repeats"] == 2).all()
    again = cross_fitted(digits, None, None, ("input",), folds=3, repeats=2, seed=1, n_boot=50)
    pd.testing.assert_frame_equal(evaluation.table, again.table)
    other = cross_fitted(digits, None, None, ("input",), folds=3, repeats=2, seed=2, n_boot=50)
    assert not np.allclose(other.table["apgr"], evaluation.table["apgr"])
    with pytest.raises(RouterLabError, match="evaluate.folds"):
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
    evaluation = evaluate_routers(digits, {"input+confidence": load_trained_router(tmp_path)}, n_boot=50)
    table = evaluation.table.set_index("policy")
    assert list(table.index) == ["random", "confidence", "learned_cascade", "oracle"]
    assert (table["n_rows"] == digits.split_mask("test").sum()).all()
    # the curve's operating point: the threshold chosen for the default target (30 % budget)
    assert abs(table.loc["learned_cascade", "cloud_fraction"] - 0.3) < 0.06
    assert table.loc["learned_cascade", "apgr"] == pytest.approx(router.metrics["test_apgr"], abs=1e-6)


def test_evaluate_cli_writes_table_curves_and_plot(cli, tmp_path):
    result = cli("evaluate", "evaluate.repeats=1", "evaluate.n_boot=100")
    assert result.returncode == 0, result.stderr
    [folder] = list((tmp_path / "outputs" / "evaluate").iterdir())
    table = pd.read_csv(folder / "evaluation.csv")
    assert {"policy", "mode", "apgr", "apgr_lo", "apgr_hi", "pgr_at_20", "pgr_at_50", "cpt_50",
            "cpt_80", "auroc_cloud_wins", "auc_quality", "cloud_fraction", "quality",
            "upper_bound", "aiq", "aiq_lo", "aiq_hi", "aiq_single_models", "best_single_quality"} <= set(table.columns)
    assert (table["protocol"] == "cross-fit 5 folds x 1").all()
    differences = pd.read_csv(folder / "differences.csv")
    assert set(differences[~differences.policy.isin(TIER_POLICIES)]["versus"]) == {"confidence", "random"}
    assert set(table["policy"]) == {"random", "confidence", "learned", "learned_cascade", *TIER_POLICIES, "oracle"}
    assert table.set_index("policy").loc[list(TIER_POLICIES), "aiq_models"].notna().all()
    curves = pd.read_csv(folder / "curves.csv")
    assert {"random", "oracle"} <= set(curves["policy"])
    models = pd.read_csv(folder / "models.csv")  # digits has three models
    assert set(models["reference"]) == {"single_model", "best_single_model", "zero_router", "oracle"}
    assert (curves.groupby(["policy", "mode"])["cloud_fraction"].min() == 0).all()
    assert (folder / "routing_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "learned_cascade" in result.stdout and "paired differences" in result.stdout


def test_evaluate_cli_split_protocol_and_bad_protocol(cli, tmp_path):
    result = cli("evaluate", "evaluate.protocol=split", "evaluate.n_boot=50")
    assert result.returncode == 0, result.stderr
    [folder] = list((tmp_path / "outputs" / "evaluate").iterdir())
    assert (pd.read_csv(folder / "evaluation.csv")["protocol"] == "split=test").all()
    bad = cli("evaluate", "evaluate.protocol=holdout")
    assert bad.returncode == 2 and "evaluate.protocol" in bad.stderr and "Traceback" not in bad.stderr


def test_a_dataset_without_splits_is_evaluated_on_the_split_training_made(synthetic_small):
    import dataclasses

    from router_lab.train.fit import with_splits

    unsplit = dataclasses.replace(synthetic_small, frame=synthetic_small.frame.drop(columns="split"))
    router = train_router(unsplit, None, None, "input", 4)
    evaluation = evaluate_routers(with_splits(unsplit, 4), {"input": router}, n_boot=50)
    learned = evaluation.table.set_index("policy").loc["learned"]
    assert learned["apgr"] == pytest.approx(router.metrics["test_apgr"], abs=1e-6)
    assert learned["n_rows"] == router.metrics["n_test"]
