"""`router-lab train`: fit a router for a dataset, mode and target; write it to the run folder."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from router_lab.data.builders import resolve_dataset
from router_lab.data.commands import datasets_dir
from router_lab.errors import RouterLabError
from router_lab.io import run_dir
from router_lab.train.artifacts import CURVE_FILE, MODEL_FILE, TrainedRouter, save_trained_router
from router_lab.train.fit import train_router


def group_option(cfg: DictConfig, group: str) -> Any:
    """The config of ``group``; a one-line error when the chosen option does not exist (the
    defaults list marks groups `optional`, so Hydra would silently leave them empty)."""
    node = cfg.get(group)
    if node is not None:
        return node
    try:
        from hydra.core.hydra_config import HydraConfig

        choice = HydraConfig.get().runtime.choices.get(group)
    except ValueError:  # not running under Hydra
        choice = None
    if choice is None:
        return None
    from router_lab.cli import CONF_DIR

    options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
    raise RouterLabError(f"{group}={choice}: no such option; expected one of: {', '.join(options)} "
                         f"(see conf/{group}/)")


def format_summary(router: TrainedRouter) -> str:
    m = router.metrics
    target = ", ".join(f"{k}={v}" for k, v in router.target.items())
    lines = [
        f"router {router.estimator_name} (mode {router.mode}) on {router.dataset_name}: "
        f"{len(router.feature_columns)} features, {m['n_train']:,} train / {m['n_val']:,} val / "
        f"{m['n_test']:,} test rows",
        f"  target            {target}",
        f"  threshold         {router.threshold:.6f}  (cloud when P(device wrong) >= threshold)",
        f"  val               cloud fraction {m['val_cloud_fraction']}, quality {m['val_quality']}",
        f"  test              cloud fraction {m['test_cloud_fraction']}, quality {m['test_quality']} "
        f"(device {m['test_device_quality']}, cloud {m['test_cloud_quality']})",
        f"  test APGR / AUROC {m['test_apgr']} / {m['test_auroc']}",
    ]
    return "\n".join(lines)


def train(cfg: DictConfig) -> TrainedRouter:
    dataset = resolve_dataset(cfg.dataset, datasets_dir(cfg))
    router = train_router(dataset, group_option(cfg, "router"), group_option(cfg, "target"),
                          cfg.train.mode, int(cfg.seed))
    meta = save_trained_router(router, run_dir())
    print(format_summary(router))
    print(f"wrote {meta.parent}/{{{meta.name}, {MODEL_FILE}, {CURVE_FILE}}}")
    return router
