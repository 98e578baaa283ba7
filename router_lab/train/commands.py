"""`router-lab train`: fit a router for a dataset, mode and target; write it to the run folder."""

from __future__ import annotations

from typing import Any

import numpy as np
from omegaconf import DictConfig

from router_lab.constants import QUALITY_HEAD_FILE
from router_lab.data.builders import resolve_dataset
from router_lab.data.commands import datasets_dir
from router_lab.data.contract import Dataset
from router_lab.features import default_modes, quality_default_mode
from router_lab.io import run_dir
from router_lab.report.steps import reported, step
from router_lab.train.artifacts import (
    CURVE_FILE,
    MODEL_FILE,
    TrainedRouter,
    dataset_hash,
    save_trained_router,
    score_meaning,
)
from router_lab.train.fit import train_router
from router_lab.train.quality_files import save_quality_router


def format_summary(router: TrainedRouter) -> str:
    m = router.metrics
    target = ", ".join(f"{k}={v}" for k, v in router.target.items())
    lines = [
        f"router {router.estimator_name} (mode {router.mode}) on {router.dataset_name}: "
        f"{len(router.feature_columns)} features, {m['n_train']:,} train / {m['n_val']:,} val / "
        f"{m['n_test']:,} test rows",
        f"  target            {target}",
        f"  label             {router.params.get('label', 'device_wrong')}  (score: "
        f"{score_meaning(router.params.get('label')).split(';')[0]})",
        f"  threshold         {router.threshold:.6f}  (cloud when score >= threshold)",
        f"  val               cloud fraction {m['val_cloud_fraction']}, quality {m['val_quality']}",
        f"  test              cloud fraction {m['test_cloud_fraction']}, quality {m['test_quality']} "
        f"(device {m['test_device_quality']}, cloud {m['test_cloud_quality']})",
        f"  test APGR / AUROC {m['test_apgr']} / {m['test_auroc']}  (AUROC of 'cloud wins')",
    ]
    if m.get("guarantee"):
        g = m["guarantee"]
        lines.append(f"  guarantee         {g['bound']} {g['value']} with probability >= {1 - g['delta']:.3g} "
                     f"({g['method']}, {g['n_val']} val rows)")
    return "\n".join(lines)


def train_config(cfg: DictConfig) -> TrainedRouter:
    """The router the config describes, fitted (nothing written): the library side of `train`."""
    step(f"load the {cfg.dataset.name} dataset")
    dataset = resolve_dataset(cfg.dataset, datasets_dir(cfg))
    mode = cfg.train.mode or default_modes(cfg.router.name, dataset)[0]
    calibration = cfg.router.get("calibration")
    calibration = None if str(calibration).lower() in ("none", "null", "false", "") else calibration
    step(f"fit the {cfg.router.name} router (mode {mode}"
         + (f", {calibration} calibration, {cfg.router.get('calibration_cv', 3)}-fold CV" if calibration else "")
         + ") and choose its threshold on val")
    return train_router(dataset, cfg.router, cfg.target, mode, int(cfg.seed))


def train_quality_config(cfg: DictConfig) -> tuple[Any, Dataset]:
    """`train.per_model=true`: one quality head per dataset model, fitted on the train split (the
    dataset's own, else the seeded one two-model training uses); with the split dataset."""
    from router_lab.train.fit import with_splits
    from router_lab.train.quality import train_quality_router

    step(f"load the {cfg.dataset.name} dataset")
    dataset = with_splits(resolve_dataset(cfg.dataset, datasets_dir(cfg)), int(cfg.seed))
    mode = cfg.train.mode or ("text" if cfg.router.name == "text" else quality_default_mode(dataset))
    step(f"fit one {cfg.router.name} quality head per model ({len(dataset.models)}, mode {mode})")
    return train_quality_router(dataset, cfg.router, int(cfg.seed), mode=mode), dataset


def format_quality_summary(router: Any, dataset: Dataset) -> str:
    """Per model: its held-out (test split) quality, the heads' mean prediction and their AUROC."""
    from router_lab.train.curves import auroc

    test = dataset.split_mask("test")
    Q = router.qualities_for(dataset)[test]
    lines = [f"quality router {router.estimator_name} (mode {router.mode}) on {dataset.name}: "
             f"{len(router.models)} heads, {router.metrics['n_train']:,} train / {int(test.sum()):,} test rows"]
    for k, model in enumerate(router.models):
        actual = dataset.quality(model)[test]
        binary = np.unique(actual).size == 2 and set(np.unique(actual)) <= {0.0, 1.0}
        lines.append(f"  {model:<36} test quality {actual.mean():.4f}, predicted {Q[:, k].mean():.4f}"
                     + (f", AUROC {auroc(Q[:, k], actual):.3f}" if binary else ""))
    return "\n".join(lines)


@reported("train", total=3)
def train(cfg: DictConfig) -> Any:
    if cfg.train.per_model:
        router, dataset = train_quality_config(cfg)
        step("write the quality heads")
        meta = save_quality_router(router, run_dir(), dataset.name, dataset_hash(dataset))
        print(format_quality_summary(router, dataset))
        print(f"wrote {meta.parent}/{{{meta.name}, {QUALITY_HEAD_FILE.format(index='<k>')}}}; use it with "
              f"policy=cost_aware|tier_cascade model_path={meta.parent}")
        return router
    router = train_config(cfg)
    step("write the router and its routing curve")
    meta = save_trained_router(router, run_dir())
    print(format_summary(router))
    print(f"wrote {meta.parent}/{{{meta.name}, {MODEL_FILE}, {CURVE_FILE}}}")
    return router
