"""`router-lab train`: fit a router for a dataset, mode and target; write it to the run folder."""

from __future__ import annotations

from omegaconf import DictConfig

from router_lab.data.builders import resolve_dataset
from router_lab.data.commands import datasets_dir
from router_lab.features import default_modes
from router_lab.io import run_dir
from router_lab.report.steps import reported, step
from router_lab.train.artifacts import (
    CURVE_FILE,
    MODEL_FILE,
    TrainedRouter,
    save_trained_router,
    score_meaning,
)
from router_lab.train.fit import train_router


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


@reported("train", total=3)
def train(cfg: DictConfig) -> TrainedRouter:
    router = train_config(cfg)
    step("write the router and its routing curve")
    meta = save_trained_router(router, run_dir())
    print(format_summary(router))
    print(f"wrote {meta.parent}/{{{meta.name}, {MODEL_FILE}, {CURVE_FILE}}}")
    return router
