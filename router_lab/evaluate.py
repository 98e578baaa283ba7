"""Offline routing evaluation: every policy's quality-vs-cloud-fraction curve on a held-out split.

No load, no latency: each policy's score is swept over its threshold (``router_lab.train.curves``)
and summarised by APGR, PGR at fixed cloud fractions, CPT(50/80), AUROC; random and the oracle
(an upper bound) are always included.  Every policy also gets AIQ (RouterBench's area under the
non-decreasing convex hull of quality against cost; cost here is the cloud fraction, see
``router_lab.train.curves.aiq``) beside the references ``aiq_single_models`` (the two models mixed
at random) and ``best_single_quality``.  `router-lab evaluate` writes evaluation.csv, curves.csv
(with each point's ``hull_quality``) and routing_curves.png to the run folder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from router_lab.constants import SEED_BOUND
from router_lab.data.builders import resolve_dataset, stratified_split
from router_lab.data.commands import datasets_dir
from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError
from router_lab.features import cloud_wins, default_modes, outcome_strata
from router_lab.io import atomic_path, run_dir
from router_lab.policies.base import PolicyContext, sensitive_rows
from router_lab.policies.registry import make_policy
from router_lab.report import steps
from router_lab.train.artifacts import TrainedRouter, load_trained_router
from router_lab.train.bootstrap import percentile_interval, resample_counts, weighted_metrics
from router_lab.train.config import plain_config
from router_lab.train.curves import quality_cost_hull, routing_curve
from router_lab.train.fit import train_router, with_splits
from router_lab.train.multimodel import (
    ModelTable,
    cost_axis_is_cloud_fraction,
    model_table,
    oracle_frontier,
    policy_aiq,
    single_models,
    tier_policy_aiq,
)
from router_lab.train.quality import QualityRouter, train_quality_router

EVALUATION_FILE = "evaluation.csv"
DIFFERENCES_FILE = "differences.csv"
CURVES_FILE = "curves.csv"
MODELS_FILE = "models.csv"
PLOT_FILE = "routing_curves.png"
# The policy that uses a router of each feature mode (other modes pre-route like `learned`).
POLICY_FOR_MODE = {"input": "learned", "input+confidence": "learned_cascade"}


@dataclass(frozen=True)
class Evaluation:
    table: pd.DataFrame  # one row per policy and mode, metric, metric_lo, metric_hi (evaluation.csv)
    curves: pd.DataFrame  # every point of every curve (curves.csv)
    differences: pd.DataFrame  # policy - baseline per metric, with its paired interval (differences.csv)
    # policy -> metric -> its value under no resampling (index 0) and each bootstrap resample; the
    # resamples depend only on the seed and the rows, so evaluations with one seed can be paired
    replicates: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    # datasets with more than two models: each single model, the zero router and the oracle over
    # all models, with intervals (models.csv); empty otherwise
    models: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)


@dataclass(frozen=True)
class PolicyRun:
    """One policy's offline output on some rows: its scores and which rows the cloud answered."""

    policy: str
    mode: str
    estimator: str
    upper_bound: bool
    rows: np.ndarray  # dataset row indices (a row may appear once per cross-fit repeat)
    scores: np.ndarray
    sent: np.ndarray
    # N-model policies (cost_aware, tier_cascade): predicted quality per model (rows, M) and the
    # prices they route by; their `aiq_models` sweeps λ / the threshold over these
    qualities: np.ndarray | None = None
    prices: np.ndarray | None = None


# The N-model policies evaluated with a per-model quality router (datasets with > 2 models and costs).
TIER_POLICIES = ("cost_aware", "tier_cascade")


def policy_entries(dataset: Dataset, routers: dict[str, TrainedRouter],
                   quality: QualityRouter | None = None) -> list[tuple[str, str, Any]]:
    """(policy, mode, router) to evaluate: random, the confidence cascade (when the dataset has a
    confidence column), one learned policy per router, the N-model policies (with a quality
    router), and the oracle."""
    entries: list[tuple[str, str, Any]] = [("random", "-", None)]
    if "device_confidence" in dataset.frame.columns:
        entries.append(("confidence", "confidence", None))
    entries += [(POLICY_FOR_MODE.get(mode, "learned"), mode, router) for mode, router in routers.items()]
    if quality is not None:
        entries += [(name, quality.mode, quality) for name in TIER_POLICIES]
    entries.append(("oracle", "-", None))
    return entries


def quality_router_for(dataset: Dataset, router_cfg: Any, seed: int,
                       modes: Sequence[str] = ("input",)) -> QualityRouter | None:
    """A per-model quality router trained on ``dataset``'s train split when it has more than two
    models with known costs (the N-model policies are evaluated then), else None."""
    if model_table(dataset, np.arange(min(len(dataset), 1))) is None:
        return None
    return train_quality_router(dataset, router_cfg, seed, mode=quality_mode(modes))


def quality_mode(modes: Sequence[str]) -> str:
    """The feature mode of the N-model policies' quality router in an evaluation: the device's
    confidence among the inputs when the evaluation trains a router with it (``input+confidence``:
    the device answers first, as for ``learned_cascade``, and the policy then picks the tier — the
    comparison with the cascades on the same features), else the first mode (``input``:
    pre-routing; ``text`` for a text-only dataset)."""
    return "input+confidence" if "input+confidence" in modes else (list(modes) or ["input"])[0]


def run_policies(dataset: Dataset, routers: dict[str, TrainedRouter], indices: np.ndarray,
                 seed_seq: np.random.SeedSequence, quality: QualityRouter | None = None) -> list[PolicyRun]:
    """Every policy of :func:`policy_entries` on the rows ``indices`` (each with its own generator)."""
    entries = policy_entries(dataset, routers, quality)
    runs = []
    for child, (name, mode, router) in zip(seed_seq.spawn(len(entries)), entries, strict=True):
        context = PolicyContext(dataset, np.random.default_rng(child), router=router)
        policy = make_policy(OmegaConf.create({"name": name}), context)
        tiered = name in TIER_POLICIES
        runs.append(PolicyRun(policy=name, mode=mode, upper_bound=bool(policy.upper_bound),
                              estimator=router.estimator_name if router is not None else "-",
                              rows=indices, scores=policy.scores(indices),
                              sent=policy.offline_cloud(indices),
                              qualities=policy.quality_table[indices] if tiered else None,
                              prices=policy.prices if tiered else None))
    return runs


METRICS = ("apgr", "pgr_at_20", "pgr_at_50", "cpt_50", "cpt_80", "auc_quality", "auroc_cloud_wins",
           "cloud_fraction", "quality", "pgr", "device_quality", "cloud_quality", "aiq",
           "aiq_single_models", "best_single_quality")
# The baselines every policy is compared with, paired on the same bootstrap resamples.
BASELINES = ("confidence", "random")


def _metric_names(pgr_fractions: Sequence[float]) -> list[str]:
    pgr_at = [f"pgr_at_{round(100 * f)}" for f in pgr_fractions]
    return ["apgr", *pgr_at, *[m for m in METRICS if m != "apgr" and not m.startswith("pgr_at_")]]


def _by_row(run: PolicyRun, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The run's scores and sent flags in the order of ``rows`` (each row scored once)."""
    position = np.searchsorted(rows, run.rows)
    scores, sent = np.empty(len(rows)), np.zeros(len(rows), dtype=bool)
    scores[position], sent[position] = run.scores, run.sent
    return scores, sent


def _aiq_models(run: PolicyRun, rows: np.ndarray, allowed: np.ndarray, models: ModelTable,
                W: np.ndarray, aiq: np.ndarray) -> np.ndarray:
    """A run's AIQ on the N-model cost axis: an N-model policy swept over λ / its threshold; a
    two-model policy's threshold curve (its ``aiq`` when the axis is the cloud fraction)."""
    if run.qualities is not None:
        from router_lab.policies.tiered import sweep_settings

        Q = np.empty((len(rows), run.qualities.shape[1]))
        Q[np.searchsorted(rows, run.rows)] = run.qualities
        return tier_policy_aiq(sweep_settings(run.policy, models.names, run.prices, Q), Q, allowed, models, W)
    if cost_axis_is_cloud_fraction(models):
        return aiq
    return policy_aiq(_by_row(run, rows)[0], allowed, models, W)


def summarise(repeats: list[list[PolicyRun]], dataset: Dataset, label_margin: float = 0.0,
              pgr_fractions: Sequence[float] = (0.2, 0.5), protocol: str = "test", seed: int = 0,
              n_boot: int = 1000, level: float = 0.95) -> Evaluation:
    """Each policy's metrics (the mean over repeats, every repeat scoring the same rows once) with
    seeded percentile-bootstrap intervals over rows, and paired differences against the baselines."""
    rows = np.sort(repeats[0][0].rows)
    helps = cloud_wins(dataset, label_margin)[rows]
    device_q, cloud_q = dataset.device_quality()[rows], dataset.cloud_quality()[rows]
    allowed = ~sensitive_rows(dataset)[rows]
    boot_seq = np.random.SeedSequence(int(seed)).spawn(3)[2]
    W = np.vstack([np.ones(len(rows)), resample_counts(len(rows), n_boot, np.random.default_rng(boot_seq))])
    names = _metric_names(pgr_fractions)
    replicates: list[dict[str, np.ndarray]] = []  # per policy: metric -> (1 + n_boot,) mean over repeats
    models = model_table(dataset, rows)
    if models is not None:
        names.append("aiq_models")
    for i in range(len(repeats[0])):
        per_repeat = [weighted_metrics(*_by_row(part[i], rows), device_q, cloud_q, allowed, helps, W,
                                       pgr_fractions) for part in repeats]
        if models is not None:
            for part, metrics in zip(repeats, per_repeat, strict=True):
                metrics["aiq_models"] = _aiq_models(part[i], rows, allowed, models, W, metrics["aiq"])
        replicates.append({m: np.mean([r[m] for r in per_repeat], axis=0) for m in names})
    table_rows, diff_rows = [], []
    for i, run in enumerate(repeats[0]):
        row: dict[str, Any] = {"policy": run.policy, "mode": run.mode, "estimator": run.estimator}
        for m in names:
            row[m] = float(replicates[i][m][0])
            row[f"{m}_lo"], row[f"{m}_hi"] = percentile_interval(replicates[i][m][1:], level)
        table_rows.append({**row, "upper_bound": run.upper_bound, "n_rows": int(len(rows)),
                           "n_repeats": len(repeats)})
        for j, base in enumerate(repeats[0]):
            versus = base.policy in BASELINES or (  # an N-model policy against every two-model one
                run.policy in TIER_POLICIES and base.policy not in TIER_POLICIES and not base.upper_bound)
            if not versus or j == i or run.upper_bound or run.policy == "random":
                continue
            for m in names:
                diff = replicates[i][m] - replicates[j][m]
                lo, hi = percentile_interval(diff[1:], level)
                diff_rows.append({"policy": run.policy, "mode": run.mode, "versus": base.policy,
                                  "metric": m, "difference": float(diff[0]), "lo": lo, "hi": hi})
    table = pd.DataFrame(table_rows).assign(protocol=protocol, level=level, n_boot=n_boot)
    curves = [_curve_points(_pooled([part[i] for part in repeats]), dataset) for i in range(len(repeats[0]))]
    differences = pd.DataFrame(diff_rows, columns=["policy", "mode", "versus", "metric", "difference", "lo", "hi"])
    return Evaluation(table=table, curves=pd.concat(curves, ignore_index=True), differences=differences,
                      replicates={run.policy: replicates[i] for i, run in enumerate(repeats[0])},
                      models=model_references(models, dataset, W, level) if models is not None else pd.DataFrame())


def model_references(models: ModelTable, dataset: Dataset, W: np.ndarray, level: float) -> pd.DataFrame:
    """One row per reference over all models (each single model, the best of them, the zero router
    and the oracle), each value with its bootstrap interval; cost normalised between the cheapest
    and the dearest single model."""
    single = single_models(models, W)
    oracle = oracle_frontier(models, W)

    def cell(values: np.ndarray) -> dict[str, float]:
        lo, hi = percentile_interval(values[1:], level)
        return {"value": float(values[0]), "lo": lo, "hi": hi}

    out = []
    for spec in dataset.model_specs:
        out.append({"reference": "single_model", "model": spec.name, "role": spec.role,
                    "quality": cell(single[f"quality_{spec.name}"]), "cost": cell(single[f"cost_{spec.name}"]),
                    "mean_cost_usd": float(models.cost_usd[:, models.names.index(spec.name)].mean())})
    best = max(dataset.models, key=lambda m: single[f"quality_{m}"][0])
    out.append({"reference": "best_single_model", "model": best, "quality": cell(single["best_single_quality"]),
                "cost": cell(single[f"cost_{best}"])})
    out.append({"reference": "zero_router", "model": "+".join(dataset.models), "aiq": cell(single["zero_router_aiq"])})
    out.append({"reference": "oracle", "model": "+".join(dataset.models), "aiq": cell(oracle["oracle_aiq"]),
                "quality": cell(oracle["oracle_quality"]), "cost": cell(oracle["oracle_cost"])})
    rows = []
    for entry in out:
        row = {k: v for k, v in entry.items() if not isinstance(v, dict)}
        for metric in ("aiq", "quality", "cost"):
            value = entry.get(metric, {"value": np.nan, "lo": np.nan, "hi": np.nan})
            row[metric], row[f"{metric}_lo"], row[f"{metric}_hi"] = value["value"], value["lo"], value["hi"]
        rows.append(row)
    return pd.DataFrame(rows)


def _curve_points(run: PolicyRun, dataset: Dataset) -> pd.DataFrame:
    """The points of a policy's routing curve (all its scored rows pooled), for curves.csv and the plot."""
    rows = run.rows
    allowed = ~sensitive_rows(dataset)[rows]
    curve = routing_curve(run.scores, dataset.device_quality()[rows], dataset.cloud_quality()[rows], allowed)
    hull_x, hull_y = quality_cost_hull(curve.cloud_fraction, curve.quality, cost_range=(0.0, 1.0))
    return pd.DataFrame({"policy": run.policy, "mode": run.mode, "threshold": curve.thresholds,
                         "cloud_fraction": curve.cloud_fraction, "quality": curve.quality,
                         "pgr": curve.pgr(), "hull_quality": np.interp(curve.cloud_fraction, hull_x, hull_y)})


def evaluate_routers(dataset: Dataset, routers: dict[str, TrainedRouter], split: str = "test",
                     seed: int = 0, pgr_fractions: Sequence[float] = (0.2, 0.5),
                     label_margin: float = 0.0, n_boot: int = 1000, level: float = 0.95,
                     quality: QualityRouter | None = None) -> Evaluation:
    """Every policy on the rows of ``split`` (the routers were trained on the other splits; with
    ``quality``, a per-model quality router, the N-model policies too)."""
    indices = np.flatnonzero(dataset.split_mask(split))
    if indices.size == 0:
        raise RouterLabError(f"{dataset.source}: the '{split}' split is empty; expected held-out rows")
    runs = run_policies(dataset, routers, indices, np.random.SeedSequence(seed), quality)
    return summarise([runs], dataset, label_margin, pgr_fractions, protocol=f"split={split}",
                     seed=seed, n_boot=n_boot, level=level)


def fold_assignment(labels: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    """A fold number per row, balanced within each label (stratified K-fold, seeded)."""
    fold_of = np.empty(len(labels), dtype=np.int64)
    for value in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == value))
        fold_of[rows] = (np.arange(len(rows)) + int(rng.integers(folds))) % folds
    return fold_of


def _pooled(parts: list[PolicyRun]) -> PolicyRun:
    first = parts[0]
    return PolicyRun(policy=first.policy, mode=first.mode, estimator=first.estimator,
                     upper_bound=first.upper_bound, rows=np.concatenate([p.rows for p in parts]),
                     scores=np.concatenate([p.scores for p in parts]),
                     sent=np.concatenate([p.sent for p in parts]),
                     qualities=None if first.qualities is None else np.concatenate([p.qualities for p in parts]),
                     prices=first.prices)


def cross_fitted(dataset: Dataset, router_cfg: Any, target_cfg: Any, modes: Sequence[str],
                 folds: int = 5, repeats: int = 3, seed: int = 0,
                 pgr_fractions: Sequence[float] = (0.2, 0.5), n_boot: int = 1000,
                 level: float = 0.95) -> Evaluation:
    """Every row scored by routers trained on the other folds (train/val drawn from those), for
    ``repeats`` different fold assignments: the metrics are means over repeats, with bootstrap
    intervals over rows (see :func:`summarise`)."""
    if folds < 2 or repeats < 1:
        raise RouterLabError(f"evaluate.folds: got {folds} (evaluate.repeats {repeats}); expected "
                             "folds >= 2 and repeats >= 1")
    margin = float(plain_config(router_cfg, {}).get("label_margin", 0.0))
    strata = outcome_strata(dataset, margin)
    parts: list[list[PolicyRun]] = []
    steps.expect(folds * repeats)
    for repeat, repeat_seq in enumerate( np.random.SeedSequence(seed).spawn(repeats)):
        split_seq, *fold_seqs = repeat_seq.spawn(folds + 1)
        fold_of = fold_assignment(strata, folds, np.random.default_rng(split_seq))
        folds_runs: list[list[PolicyRun]] = []
        for fold, fold_seq in enumerate(fold_seqs):
            steps.step(f"fold {fold + 1} of {folds}" + (f", repeat {repeat + 1} of {repeats}" if repeats > 1 else "")
                       + f": train {len(modes)} router(s) on the other folds, score the held-out rows")
            held = fold_of == fold
            train_val = stratified_split(strata[~held], [0.75, 0.25, 0.0], np.random.default_rng(fold_seq))
            split = np.full(len(dataset), "test", dtype=object)
            split[~held] = train_val
            fold_ds = dataclasses.replace(dataset, frame=dataset.frame.assign(split=split))
            fit_seed = int(np.random.default_rng(fold_seq).integers(SEED_BOUND))
            routers = {mode: train_router(fold_ds, router_cfg, target_cfg, mode, fit_seed) for mode in modes}
            quality = quality_router_for(fold_ds, router_cfg, fit_seed, modes)
            folds_runs.append(run_policies(fold_ds, routers, np.flatnonzero(held), fold_seq, quality))
        parts.append([_pooled([f[i] for f in folds_runs]) for i in range(len(folds_runs[0]))])
    return summarise(parts, dataset, margin, pgr_fractions, f"cross-fit {folds} folds x {repeats}",
                     seed=seed, n_boot=n_boot, level=level)


def plot_curves(evaluation: Evaluation, path: str | Path, title: str) -> Path:
    """The routing curves (quality against cloud fraction), one line per policy, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    styles = {"random": dict(linestyle="--", color="grey"), "oracle": dict(linestyle=":", color="black")}
    for (name, mode), points in evaluation.curves.groupby(["policy", "mode"], sort=False):
        row = evaluation.table[(evaluation.table.policy == name) & (evaluation.table["mode"] == mode)].iloc[0]
        label = f"{name}" + (f" ({mode})" if mode not in ("-", "confidence") else "")
        label += " — upper bound" if row["upper_bound"] else f"  APGR {row['apgr']:.3f}"
        ax.plot(points.cloud_fraction, points.quality, label=label, **styles.get(name, {}))
    first = evaluation.table.iloc[0]
    ax.axhline(first["device_quality"], color="tab:red", linewidth=0.8, alpha=0.6, label="all on device")
    ax.axhline(first["cloud_quality"], color="tab:green", linewidth=0.8, alpha=0.6, label="all in cloud")
    ax.set_xlabel("fraction of requests sent to the cloud")
    ax.set_ylabel("accuracy (mean quality)")
    ax.set_xlim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)


def _model_path(cfg: DictConfig) -> str | None:
    value = OmegaConf.select(cfg, "model_path", default=None) or cfg.train.model_path
    return str(value) if value else None


def evaluation_routers(cfg: DictConfig, dataset: Dataset) -> dict[str, TrainedRouter]:
    """The routers to evaluate: the one at model_path, else one trained per `train.modes` entry."""
    path = _model_path(cfg)
    if path:
        router = load_trained_router(path)
        return {router.mode: router}
    routers = {}
    modes = evaluation_modes(cfg, dataset)
    for mode in modes:
        try:
            routers[mode] = train_router(dataset, cfg.router, cfg.target,
                                         mode, int(cfg.seed))
        except RouterLabError as exc:
            raise RouterLabError(f"{exc} (evaluate trains one router per train.modes entry; got "
                                 f"{modes}, e.g. router=text for text data)") from exc
    return routers


def evaluation_modes(cfg: DictConfig, dataset: Dataset) -> list[str]:
    return list(cfg.train.modes) if cfg.train.modes else default_modes(cfg.router.name, dataset)


PROTOCOLS = ("crossfit", "split")


def format_table(evaluation: Evaluation, metrics: Sequence[str] = ("apgr", "aiq", "cpt_50", "auroc_cloud_wins")) -> str:
    """The summary table: each metric as ``value [lo, hi]``, plus the operating point."""
    table = evaluation.table
    out = table[["policy", "mode"]].copy()
    for m in metrics:
        out[m] = [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in
                  zip(table[m], table[f"{m}_lo"], table[f"{m}_hi"], strict=True)]
    out["cloud_fraction"] = table["cloud_fraction"].map(lambda v: f"{v:.3f}")
    out["quality"] = table["quality"].map(lambda v: f"{v:.3f}")
    return out.to_string(index=False)


def format_models(evaluation: Evaluation) -> str:
    """The references over all models: each value as ``value [lo, hi]``."""
    shown = evaluation.models[["reference", "model"]].copy()
    for m in ("quality", "cost", "aiq"):
        table = evaluation.models
        shown[m] = ["" if np.isnan(v) else f"{v:.3f} [{lo:.3f}, {hi:.3f}]"
                    for v, lo, hi in zip(table[m], table[f"{m}_lo"], table[f"{m}_hi"], strict=True)]
    return shown.to_string(index=False)


def format_differences(evaluation: Evaluation, metrics: Sequence[str] = ("apgr", "cpt_50")) -> str:
    d = evaluation.differences
    d = d[d.metric.isin(metrics)]
    if d.empty:
        return ""
    shown = d.assign(text=[f"{v:+.3f} [{lo:+.3f}, {hi:+.3f}]" for v, lo, hi in
                           zip(d.difference, d.lo, d.hi, strict=True)])
    wide = shown.pivot_table(index=["policy", "mode", "versus"], columns="metric", values="text",
                             aggfunc="first", sort=False)
    return wide[[m for m in metrics if m in wide.columns]].reset_index().to_string(index=False)


def evaluate_config(cfg: DictConfig) -> tuple[Evaluation, Dataset]:
    """Every policy's offline metrics and curves for the config (nothing written), and the dataset
    they were measured on: the library side of `evaluate`."""
    steps.step(f"load the {cfg.dataset.name} dataset")
    dataset = resolve_dataset(cfg.dataset, datasets_dir(cfg))
    section = cfg.evaluate
    fractions = [float(f) for f in section.pgr_fractions]
    protocol = str(section.protocol)
    if protocol not in PROTOCOLS:
        raise RouterLabError(f"evaluate.protocol: got {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    n_boot, level = int(section.n_boot), float(section.level)
    if n_boot < 1 or not 0 < level < 1:
        raise RouterLabError(f"evaluate.n_boot / evaluate.level: got {n_boot} / {level}; expected "
                             ">= 1 resamples and a level in (0, 1)")
    if protocol == "crossfit" and not _model_path(cfg):
        evaluation = cross_fitted(dataset, cfg.router, cfg.target,
                                  evaluation_modes(cfg, dataset), int(section.folds), int(section.repeats),
                                  int(cfg.seed), fractions, n_boot, level)
    else:  # a trained router (model_path) can only be judged on held-out rows of the split
        margin = float(OmegaConf.select(cfg, "router.label_margin", default=0.0) or 0.0)
        dataset = with_splits(dataset, int(cfg.seed), margin)
        routers = evaluation_routers(cfg, dataset)
        quality = None if _model_path(cfg) else quality_router_for(dataset, cfg.router, int(cfg.seed), list(routers))
        evaluation = evaluate_routers(dataset, routers, section.split, int(cfg.seed), fractions, margin,
                                      n_boot, level, quality)
    return evaluation, dataset


@steps.reported("evaluate", total=2)
def evaluate_command(cfg: DictConfig) -> Evaluation:
    evaluation, dataset = evaluate_config(cfg)
    steps.step("write the evaluation and plot the curves")
    folder = run_dir()
    with atomic_path(folder / EVALUATION_FILE) as tmp:
        evaluation.table.to_csv(tmp, index=False)
    with atomic_path(folder / DIFFERENCES_FILE) as tmp:
        evaluation.differences.to_csv(tmp, index=False)
    with atomic_path(folder / CURVES_FILE) as tmp:
        evaluation.curves.to_csv(tmp, index=False)
    if not evaluation.models.empty:
        with atomic_path(folder / MODELS_FILE) as tmp:
            evaluation.models.to_csv(tmp, index=False)
    described = evaluation.table["protocol"].iloc[0]
    plot_curves(evaluation, folder / PLOT_FILE, f"{dataset.name}: routing curves ({described})")
    print(f"{dataset.name}, {described}, {int(evaluation.table['n_rows'].iloc[0]):,} rows, "
          f"{round(100 * float(cfg.evaluate.level))} % bootstrap intervals ({int(cfg.evaluate.n_boot)} "
          "resamples over rows)")
    print(format_table(evaluation))
    diffs = format_differences(evaluation)
    if diffs:
        print("paired differences (policy - versus):")
        print(diffs)
    written = [EVALUATION_FILE, DIFFERENCES_FILE, CURVES_FILE, PLOT_FILE]
    tier_diffs = format_differences(evaluation.__class__(
        **{**vars(evaluation), "differences": evaluation.differences[
            evaluation.differences.policy.isin(TIER_POLICIES)]}), ("aiq_models",))
    if tier_diffs:
        print("N-model policies against every two-model policy, AIQ over all models (paired):")
        print(tier_diffs)
    if not evaluation.models.empty:
        print(f"over all {len(dataset.models)} models (cost normalised between the cheapest and the dearest):")
        print(format_models(evaluation))
        written.insert(3, MODELS_FILE)
    print(f"wrote {folder}/{{{', '.join(written)}}}")
    return evaluation
