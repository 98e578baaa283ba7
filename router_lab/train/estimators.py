"""The estimator registry: router names to factories ``(params, random_state) -> sklearn estimator``.

Every offered estimator is a plain scikit-learn classifier (or Pipeline) that skl2onnx converts;
``make_router_estimator`` adds optional probability calibration from the `router` config.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from router_lab.config import conf_hint
from router_lab.errors import RouterLabError
from router_lab.registry import Registry
from router_lab.train.config import (
    ROUTER_KEYS,
    GbdtRouterConfig,
    LogisticRouterConfig,
    MlpRouterConfig,
    RandomForestRouterConfig,
    RouterConfig,
    plain_config,
)

EstimatorFactory = Callable[[dict[str, Any], int], BaseEstimator]
# The built-ins register below; every module of router_lab.train (the text router's, a new one) is
# imported on the first lookup.
ESTIMATORS: Registry[EstimatorFactory] = Registry("estimator", field="router.name", modules=("router_lab.train",))
DEFAULT_ESTIMATOR = "logistic"
# isotonic is for offline use only: skl2onnx 1.20 converts it as a nearest-point lookup, not
# scikit-learn's interpolation, so `router-lab export` refuses such a router (with the reason).
CALIBRATION_METHODS = ("none", "sigmoid", "isotonic")


def register_estimator(name: str, factory: EstimatorFactory, calibrate_last_step: bool = False,
                       summary: str = "", schema: type = RouterConfig) -> EstimatorFactory:
    """Offer ``factory`` as the router ``name``.  ``calibrate_last_step``: calibration wraps the
    Pipeline's last step rather than the whole Pipeline (the text router, whose string-input steps
    skl2onnx's CalibratedClassifierCV converter cannot take: the vectoriser is then fitted once on
    all training rows; the calibration folds refit the classifier).  ``schema``: the config
    dataclass of ``conf/router/<name>.yaml``, whose defaults fill what a config leaves out."""
    return ESTIMATORS.register(name, factory, schema=schema, summary=summary,
                               calibrate_last_step=calibrate_last_step)


def calibration_of(estimator: Any) -> str:
    """The calibration method of a router: "none", "sigmoid" or "isotonic" (the whole estimator,
    or the last step of a Pipeline, may be a CalibratedClassifierCV)."""
    steps = getattr(estimator, "steps", None)
    for candidate in (estimator, steps[-1][1] if steps else None):
        if isinstance(candidate, CalibratedClassifierCV):
            return str(candidate.method)
    return "none"


def _build(cls: type, params: dict[str, Any], **fixed: Any) -> BaseEstimator:
    try:
        return cls(**params, **fixed)
    except TypeError as exc:  # an unknown hyper-parameter name
        raise RouterLabError(f"router: {exc}; {conf_hint('router')} for the accepted keys") from exc


def logistic(params: dict[str, Any], random_state: int) -> BaseEstimator:
    return make_pipeline(StandardScaler(), _build(LogisticRegression, params, random_state=random_state))


def gbdt(params: dict[str, Any], random_state: int) -> BaseEstimator:
    # early stopping would carve its own validation set out of the training rows; we have `val`
    return _build(HistGradientBoostingClassifier, params, early_stopping=False, random_state=random_state)


def random_forest(params: dict[str, Any], random_state: int) -> BaseEstimator:
    return _build(RandomForestClassifier, params, n_jobs=1, random_state=random_state)


def mlp(params: dict[str, Any], random_state: int) -> BaseEstimator:
    params = dict(params)
    params["hidden_layer_sizes"] = tuple(int(n) for n in params["hidden_layer_sizes"])
    return make_pipeline(StandardScaler(), _build(MLPClassifier, params, random_state=random_state))


register_estimator("logistic", logistic, schema=LogisticRouterConfig,
                   summary="standardised logistic regression (the default)")
register_estimator("gbdt", gbdt, schema=GbdtRouterConfig, summary="histogram gradient-boosted trees")
register_estimator("random_forest", random_forest, schema=RandomForestRouterConfig, summary="random forest")
register_estimator("mlp", mlp, schema=MlpRouterConfig, summary="standardised multi-layer perceptron")


def offered_estimators() -> list[str]:
    """Every estimator name a `router` config may use (each converts with skl2onnx)."""
    return ESTIMATORS.names()


def estimator_params(router_cfg: Any) -> dict[str, Any]:
    """The hyper-parameters of a `router` config: every key except the training ones."""
    return {str(k): v for k, v in plain_config(router_cfg).items() if k not in ROUTER_KEYS}


def make_router_estimator(router_cfg: Any, random_state: int) -> BaseEstimator:
    """A fresh, unfitted estimator for a `router` config (with calibration when configured)."""
    router_cfg = plain_config(router_cfg)
    entry = ESTIMATORS.entry(str(router_cfg.get("name", DEFAULT_ESTIMATOR)))
    router_cfg = {**entry.defaults(), **router_cfg}  # the schema's defaults for what is left out
    estimator = entry.obj(estimator_params(router_cfg), int(random_state))
    method = str(router_cfg["calibration"])
    if method not in CALIBRATION_METHODS:
        raise RouterLabError(f"router.calibration: got {method!r}; expected one of {', '.join(CALIBRATION_METHODS)}")
    if method == "none":
        return estimator
    folds = int(router_cfg["calibration_cv"])
    if folds < 2:
        raise RouterLabError(f"router.calibration_cv: got {folds}; expected at least 2 folds")
    if entry.meta.get("calibrate_last_step") and isinstance(estimator, Pipeline):
        last_name, last = estimator.steps[-1]
        calibrated = CalibratedClassifierCV(last, method=method, cv=folds)
        return Pipeline([*estimator.steps[:-1], (last_name, calibrated)])
    return CalibratedClassifierCV(estimator, method=method, cv=folds)

