"""The per-model quality router: one head per model predicting that model's quality from the inputs.

For N-model routing (``cost_aware``, ``tier_cascade``) a router predicts, per request, the quality of
every model (CARROT-style), not one "escalate?" score.  Each head is the estimator the `router`
config names (``router=logistic`` etc., the same registry as the two-model routers), fitted on the
`train` split to the model's outcome: a 0/1 ``correct`` outcome directly; a ``score`` in [0, 1] as a
weighted two-row target (label 1 with weight q, label 0 with weight 1 − q), so ``predict_proba``
estimates the expected score with any classifier of the registry.  ``predict(X)`` is (n, M), in the
dataset's tier order.  The offline evaluation cross-fits it like the other routers
(``router_lab.evaluate.cross_fitted`` trains one per fold on the other folds).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from router_lab.constants import SEED_BOUND
from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError
from router_lab.features import router_inputs
from router_lab.train.config import LogisticRouterConfig, plain_config
from router_lab.train.estimators import make_router_estimator
from router_lab.train.fit import weight_key


@dataclass(frozen=True)
class QualityRouter:
    """Fitted heads, one per model of ``models`` (tier order); ``predict(X)`` is (n, M)."""

    models: tuple[str, ...]
    heads: tuple[Any, ...]
    feature_columns: tuple[str, ...]
    estimator_name: str
    mode: str = "input"
    metrics: dict[str, Any] = field(default_factory=dict)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.column_stack([head.predict_proba(X)[:, 1] for head in self.heads]).astype(np.float64)

    def qualities_for(self, dataset: Dataset) -> np.ndarray:
        """Predicted quality of every model for every row of ``dataset`` (n, M)."""
        if tuple(dataset.models) != self.models:
            raise RouterLabError(f"{dataset.source}: models {', '.join(dataset.models)}; the quality router "
                                 f"was trained for {', '.join(self.models)}")
        X, columns = router_inputs(dataset, self.mode)
        if tuple(columns) != self.feature_columns:
            raise RouterLabError(f"{dataset.source}: router inputs {len(columns)} columns; the quality router "
                                 f"was trained on {len(self.feature_columns)} ({', '.join(self.feature_columns[:3])}, …)")
        return self.predict(X)


def _fit_head(estimator: Any, X: np.ndarray, quality: np.ndarray, binary: bool, model: str, name: str) -> Any:
    if binary:
        y, Xf, weight = quality.astype(np.int64), X, None
    else:  # E[score] through a weighted pair of rows per request
        y = np.r_[np.ones(len(quality), dtype=np.int64), np.zeros(len(quality), dtype=np.int64)]
        Xf, weight = np.concatenate([X, X]), np.r_[quality, 1.0 - quality]
        keep = weight > 0
        y, Xf, weight = y[keep], Xf[keep], weight[keep]
    if np.unique(y).size < 2:
        raise RouterLabError(f"router {name}: model {model!r} has one outcome on every training row "
                             f"({'correct' if y[0] else 'wrong'}); its quality head needs both to learn from")
    fit_params = {} if weight is None else {weight_key(estimator): weight}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            estimator.fit(Xf, y, **fit_params)
        except (ValueError, TypeError) as exc:
            raise RouterLabError(f"router {name}: the quality head of {model!r} failed to fit ({exc})") from exc
    return estimator


def train_quality_router(dataset: Dataset, router_cfg: Any = None, seed: int = 0,
                         mode: str = "input") -> QualityRouter:
    """One head per model, fitted on the `train` split (``dataset`` must carry a split column;
    ``router_lab.train.fit.with_splits`` gives one)."""
    params = plain_config(router_cfg, vars(LogisticRouterConfig()))
    name = str(params.get("name", "logistic"))
    train = dataset.split_mask("train")
    if not train.any():
        raise RouterLabError(f"{dataset.source}: the 'train' split is empty; the quality router needs rows")
    X, columns = router_inputs(dataset, mode)
    rng = np.random.default_rng(np.random.SeedSequence(int(seed)).spawn(3)[2])
    heads = []
    binary = dataset.outcome == "correct"
    for model in dataset.models:
        estimator = make_router_estimator(params, int(rng.integers(SEED_BOUND)))
        heads.append(_fit_head(estimator, X[train], dataset.quality(model)[train], binary, model, name))
    return QualityRouter(models=tuple(dataset.models), heads=tuple(heads), feature_columns=tuple(columns),
                         estimator_name=name, mode=mode, metrics={"n_train": int(train.sum())})
