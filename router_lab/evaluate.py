"""Offline routing evaluation: every policy's quality-vs-cloud-fraction curve on a held-out split.

No load, no latency: each policy's score is swept over its threshold (``router_lab.train.curves``)
and summarised by APGR, PGR at fixed cloud fractions, CPT(50/80), AUROC; random and the oracle
(an upper bound) are always included.  `router-lab evaluate` writes evaluation.csv, curves.csv
and routing_curves.png to the run folder.
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

from router_lab.data.builders import resolve_dataset, stratified_split
from router_lab.data.commands import datasets_dir
from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError
from router_lab.features import default_modes, device_wrong
from router_lab.io import atomic_path, run_dir
from router_lab.policies import PolicyContext, make_policy
from router_lab.report import steps
from router_lab.train.artifacts import TrainedRouter, load_trained_router
from router_lab.train.config import plain_config
from router_lab.train.curves import auroc, curve_metrics, performance_gap_recovered, routing_curve
from router_lab.train.fit import train_router, with_splits

EVALUATION_FILE = "evaluation.csv"
CURVES_FILE = "curves.csv"
PLOT_FILE = "routing_curves.png"
# The policy that uses a router of each feature mode (other modes pre-route like `learned`).
POLICY_FOR_MODE = {"input": "learned", "input+confidence": "learned_cascade"}


@dataclass(frozen=True)
class Evaluation:
    table: pd.DataFrame  # one row per policy and mode (evaluation.csv)
    curves: pd.DataFrame  # every point of every curve (curves.csv)


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


def policy_entries(dataset: Dataset, routers: dict[str, TrainedRouter]) -> list[tuple[str, str, Any]]:
    """(policy, mode, router) to evaluate: random, the confidence cascade (when the dataset has a
    confidence column), one learned policy per router, and the oracle."""
    entries: list[tuple[str, str, Any]] = [("random", "-", None)]
    if "device_confidence" in dataset.frame.columns:
        entries.append(("confidence", "confidence", None))
    entries += [(POLICY_FOR_MODE.get(mode, "learned"), mode, router) for mode, router in routers.items()]
    entries.append(("oracle", "-", None))
    return entries


def run_policies(dataset: Dataset, routers: dict[str, TrainedRouter], indices: np.ndarray,
                 seed_seq: np.random.SeedSequence) -> list[PolicyRun]:
    """Every policy of :func:`policy_entries` on the rows ``indices`` (each with its own generator)."""
    entries = policy_entries(dataset, routers)
    runs = []
    for child, (name, mode, router) in zip(seed_seq.spawn(len(entries)), entries, strict=True):
        context = PolicyContext(dataset, np.random.default_rng(child), router=router)
        policy = make_policy(OmegaConf.create({"name": name}), context)
        runs.append(PolicyRun(policy=name, mode=mode, upper_bound=bool(policy.upper_bound),
                              estimator=router.estimator_name if router is not None else "-",
                              rows=indices, scores=policy.scores(indices),
                              sent=policy.offline_cloud(indices)))
    return runs


def summarise_run(run: PolicyRun, dataset: Dataset, labels: np.ndarray,
                  pgr_fractions: Sequence[float] = (0.2, 0.5)) -> tuple[dict[str, Any], pd.DataFrame]:
    """One policy's summary row (APGR, PGR@, CPT, AUROC, operating point) and its curve's points."""
    rows = run.rows
    device_q, cloud_q = dataset.device_quality()[rows], dataset.cloud_quality()[rows]
    allowed = ~dataset.column_or("sensitive", False).astype(bool)[rows]
    curve = routing_curve(run.scores, device_q, cloud_q, allowed)
    quality = float(np.where(run.sent, cloud_q, device_q).mean())
    row = {"policy": run.policy, "mode": run.mode, "estimator": run.estimator,
           **curve_metrics(curve, tuple(pgr_fractions)), "auroc": auroc(run.scores, labels[rows]),
           "cloud_fraction": float(run.sent.mean()), "quality": quality,
           "pgr": float(performance_gap_recovered(quality, curve.device_quality, curve.cloud_quality)),
           "upper_bound": run.upper_bound, "n_rows": int(len(rows))}
    points = pd.DataFrame({"policy": run.policy, "mode": run.mode, "threshold": curve.thresholds,
                           "cloud_fraction": curve.cloud_fraction, "quality": curve.quality,
                           "pgr": curve.pgr()})
    return row, points


def summarise(runs: list[PolicyRun], dataset: Dataset, label_margin: float = 0.0,
              pgr_fractions: Sequence[float] = (0.2, 0.5), protocol: str = "test") -> Evaluation:
    labels = device_wrong(dataset, label_margin)
    rows, curves = zip(*(summarise_run(run, dataset, labels, pgr_fractions) for run in runs), strict=True)
    table = pd.DataFrame(list(rows)).assign(protocol=protocol)
    return Evaluation(table=table, curves=pd.concat(curves, ignore_index=True))


def evaluate_routers(dataset: Dataset, routers: dict[str, TrainedRouter], split: str = "test",
                     seed: int = 0, pgr_fractions: Sequence[float] = (0.2, 0.5),
                     label_margin: float = 0.0) -> Evaluation:
    """Every policy on the rows of ``split`` (the routers were trained on the other splits)."""
    indices = np.flatnonzero(dataset.split_mask(split))
    if indices.size == 0:
        raise RouterLabError(f"{dataset.source}: the '{split}' split is empty; expected held-out rows")
    runs = run_policies(dataset, routers, indices, np.random.SeedSequence(seed))
    return summarise(runs, dataset, label_margin, pgr_fractions, protocol=f"split={split}")


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
                     sent=np.concatenate([p.sent for p in parts]))


def cross_fitted(dataset: Dataset, router_cfg: Any, target_cfg: Any, modes: Sequence[str],
                 folds: int = 5, repeats: int = 1, seed: int = 0,
                 pgr_fractions: Sequence[float] = (0.2, 0.5)) -> Evaluation:
    """Every row scored by routers trained on the other folds (train/val drawn from those), for
    ``repeats`` different fold assignments, pooled: the same protocol on all rows, far less split
    luck than one small test split."""
    if folds < 2 or repeats < 1:
        raise RouterLabError(f"train.folds: got {folds} (repeats {repeats}); expected folds >= 2 and repeats >= 1")
    margin = float(plain_config(router_cfg, {}).get("label_margin", 0.0))
    labels = device_wrong(dataset, margin)
    parts: list[list[PolicyRun]] = []
    steps.expect(folds * repeats)
    for repeat, repeat_seq in enumerate( np.random.SeedSequence(seed).spawn(repeats)):
        split_seq, *fold_seqs = repeat_seq.spawn(folds + 1)
        fold_of = fold_assignment(labels, folds, np.random.default_rng(split_seq))
        for fold, fold_seq in enumerate(fold_seqs):
            steps.step(f"fold {fold + 1} of {folds}" + (f", repeat {repeat + 1} of {repeats}" if repeats > 1 else "")
                       + f": train {len(modes)} router(s) on the other folds, score the held-out rows")
            held = fold_of == fold
            train_val = stratified_split(labels[~held], [0.75, 0.25, 0.0], np.random.default_rng(fold_seq))
            split = np.full(len(dataset), "test", dtype=object)
            split[~held] = train_val
            fold_ds = dataclasses.replace(dataset, frame=dataset.frame.assign(split=split))
            fit_seed = int(np.random.default_rng(fold_seq).integers(2**31 - 1))
            routers = {mode: train_router(fold_ds, router_cfg, target_cfg, mode, fit_seed) for mode in modes}
            parts.append(run_policies(fold_ds, routers, np.flatnonzero(held), fold_seq))
    runs = [_pooled([part[i] for part in parts]) for i in range(len(parts[0]))]
    return summarise(runs, dataset, margin, pgr_fractions, protocol=f"cross-fit {folds} folds x {repeats}")


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


@steps.reported("evaluate", total=2)
def evaluate_command(cfg: DictConfig) -> Evaluation:
    steps.step(f"load the {cfg.dataset.name} dataset")
    dataset = resolve_dataset(cfg.dataset, datasets_dir(cfg))
    section = cfg.train
    fractions = [float(f) for f in section.pgr_fractions]
    if section.folds:
        if _model_path(cfg):
            raise RouterLabError("train.folds: cross-fitting trains its own routers; drop model_path "
                                 "(or train.folds) to evaluate a trained router")
        evaluation = cross_fitted(dataset, cfg.router, cfg.target,
                                  evaluation_modes(cfg, dataset), int(section.folds), int(section.repeats),
                                  int(cfg.seed), fractions)
    else:
        margin = float(OmegaConf.select(cfg, "router.label_margin", default=0.0) or 0.0)
        dataset = with_splits(dataset, int(cfg.seed), margin)
        routers = evaluation_routers(cfg, dataset)
        evaluation = evaluate_routers(dataset, routers, section.split, int(cfg.seed), fractions, margin)
    steps.step("write the evaluation and plot the curves")
    folder = run_dir()
    with atomic_path(folder / EVALUATION_FILE) as tmp:
        evaluation.table.to_csv(tmp, index=False)
    with atomic_path(folder / CURVES_FILE) as tmp:
        evaluation.curves.to_csv(tmp, index=False)
    protocol = evaluation.table["protocol"].iloc[0]
    plot_curves(evaluation, folder / PLOT_FILE, f"{dataset.name}: routing curves ({protocol})")
    shown = ["policy", "mode", "apgr", *[c for c in evaluation.table.columns if c.startswith("pgr_at_")],
             "cpt_50", "cpt_80", "auroc", "cloud_fraction", "quality"]
    print(f"{dataset.name}, {protocol}, {int(evaluation.table['n_rows'].iloc[0]):,} scored rows")
    print(evaluation.table[shown].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {folder}/{{{EVALUATION_FILE}, {CURVES_FILE}, {PLOT_FILE}}}")
    return evaluation
