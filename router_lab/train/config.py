"""Structured configs owned by router_lab.train: the `router` and `target` groups and `train.*`.

A `router` option names an estimator of the registry (``router_lab.train.estimators``) and holds its
hyper-parameters; a `target` option says how the routing threshold is chosen on validation data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf


def plain_config(cfg: Any, default: dict[str, Any] | None = None) -> dict[str, Any]:
    """A config node (DictConfig, dataclass or dict) as a plain dict; ``default`` when None."""
    if cfg is None:
        return dict(default or {})
    if isinstance(cfg, DictConfig):
        return dict(OmegaConf.to_container(cfg, resolve=True))
    if isinstance(cfg, dict):
        return dict(cfg)
    return dict(vars(cfg))


# Keys of a router config that are about training, not the estimator's hyper-parameters.
ROUTER_KEYS = frozenset({"name", "calibration", "calibration_cv", "label_margin", "label"})


@dataclass
class RouterConfig:
    name: str = MISSING  # estimator registry key: logistic, gbdt, random_forest, mlp (, text)
    calibration: str = "none"  # none | sigmoid | isotonic (CalibratedClassifierCV; isotonic: offline only, export refuses it)
    calibration_cv: int = 3  # folds of the calibration
    label_margin: float = 0.0  # score datasets, label win: 1 when cloud_score - device_score > margin
    # what the router learns: expected_gain (P(cloud right, device wrong) - P(cloud wrong, device
    # right); for scores E[cloud - device]) | win (cloud right and device wrong) | device_wrong
    label: str = "expected_gain"


@dataclass
class LogisticRouterConfig(RouterConfig):
    name: str = "logistic"
    C: float = 1.0  # inverse L2 regularisation
    max_iter: int = 1000
    class_weight: str | None = None  # None or "balanced"


@dataclass
class GbdtRouterConfig(RouterConfig):
    name: str = "gbdt"
    learning_rate: float = 0.05
    max_iter: int = 200  # boosting rounds
    max_leaf_nodes: int = 15
    max_depth: int | None = None
    min_samples_leaf: int = 20
    l2_regularization: float = 1.0


@dataclass
class RandomForestRouterConfig(RouterConfig):
    name: str = "random_forest"
    n_estimators: int = 100
    max_depth: int | None = 8
    min_samples_leaf: int = 5
    max_features: str = "sqrt"


@dataclass
class MlpRouterConfig(RouterConfig):
    name: str = "mlp"
    hidden_layer_sizes: list[int] = field(default_factory=lambda: [32])
    alpha: float = 1e-3  # L2 penalty
    learning_rate_init: float = 1e-3
    max_iter: int = 500
    early_stopping: bool = False


@dataclass
class TargetConfig:
    name: str = MISSING  # budget | accuracy | tradeoff (router_lab.train.thresholds.TARGETS)
    # budget/accuracy: DELTA (e.g. 0.05) = the goal holds on new traffic with probability >= 1 -
    # DELTA (a finite-sample bound on the validation rows); null = the point estimate on `val`
    guarantee: float | None = None


@dataclass
class BudgetTargetConfig(TargetConfig):
    name: str = "budget"
    max_cloud_fraction: float = 0.3  # at most this fraction of requests goes to the cloud


@dataclass
class AccuracyTargetConfig(TargetConfig):
    name: str = "accuracy"
    min_quality: float = 0.95  # the cheapest threshold whose accuracy (mean quality) reaches this


@dataclass
class TradeoffTargetConfig(TargetConfig):
    name: str = "tradeoff"
    cost_weight: float = 0.1  # maximise quality - cost_weight * cloud_fraction


@dataclass
class TrainSection:
    """Run options of `router-lab train` and `router-lab evaluate` (`train.*` on the command line)."""

    mode: str | None = None  # feature mode of `train`: input | input+confidence | text; None: the
    # router's natural one (text for router=text, else input; with per_model, the N-model policies'
    # default: input+confidence where the dataset has the device's confidence)
    model_path: str | None = None  # evaluate: a trained router (run folder or router.json)
    per_model: bool = False  # train: one quality head per dataset model (N-model routing: cost_aware,
    # tier_cascade use it via model_path=RUN) instead of the two-model router
    modes: list[str] | None = None  # evaluate: one router per mode; None: [text] for router=text,
    # else input and (where the dataset has confidence columns) input+confidence


@dataclass
class EvaluateSection:
    """Options of `router-lab evaluate` (`evaluate.*` on the command line)."""

    protocol: str = "crossfit"  # crossfit: every row scored by routers that never saw it, `folds` x
    # `repeats`; split: the routers of one seeded split (or model_path) on the `split` rows only
    folds: int = 5
    repeats: int = 3  # fold assignments; metrics are means over them (the README's figures: 10)
    split: str = "test"  # protocol=split: the held-out rows the curves are measured on
    n_boot: int = 1000  # bootstrap resamples over rows (seeded) for every interval
    level: float = 0.95  # of the intervals
    pgr_fractions: list[float] = field(default_factory=lambda: [0.2, 0.5])  # pgr_at_<pct> columns


@dataclass
class TextRouterConfig(RouterConfig):
    """`router=text`: raw prompt → word n-gram TF-IDF + counts → logistic regression.

    Defaults measured on GSM8K (cross-fitted, see the README): word 1-2-grams with counts beat
    adding character n-grams (which also cost the most time per prompt), sublinear term
    frequencies with n-grams seen in at least two training prompts beat raw counts of every
    n-gram, and a fixed C=1 beat C chosen by inner cross-validation on ~800 training prompts
    (the choice is noisy at that size).
    """

    name: str = "text"
    word_ngram_max: int = 2  # word n-grams 1..max (0 turns word features off)
    char_ngram_min: int = 2
    char_ngram_max: int = 0  # character n-grams min..max (0: off)
    max_features_word: int = 20000  # vocabulary caps keep the ONNX file small
    max_features_char: int = 10000
    min_df: int = 2  # drop n-grams seen in fewer training prompts (one prompt's n-grams: noise)
    binary: bool = False  # n-gram presence (1) instead of counts
    sublinear_tf: bool = True  # term frequency 1 + log(count) instead of the count
    counts: bool = True  # add log(1 + count) of characters, words, numbers, decimals, sentences, symbols
    max_chars: int = 1000  # the router reads only a prompt's first max_chars characters (0: all),
    # in scikit-learn and in the ONNX graph alike: a bounded cost for any prompt
    C: float = 1.0  # inverse L2 regularisation of the logistic regression (when inner_cv < 2)
    inner_cv: int = 0  # >= 2: choose C from C_grid by this many folds of the training rows
    C_grid: list[float] = field(default_factory=lambda: [0.3, 1.0, 3.0])
    inner_cv_scoring: str = "roc_auc"  # how inner CV compares C values (a scikit-learn scorer name)
    class_weight: str | None = None  # None or "balanced"
    max_iter: int = 2000


SCHEMAS: list[tuple[str, str, type]] = [
    ("router", "schema_router", RouterConfig),
    ("router", "schema_logistic", LogisticRouterConfig),
    ("router", "schema_gbdt", GbdtRouterConfig),
    ("router", "schema_random_forest", RandomForestRouterConfig),
    ("router", "schema_mlp", MlpRouterConfig),
    ("router", "schema_text", TextRouterConfig),
    ("target", "schema_target", TargetConfig),
    ("target", "schema_budget", BudgetTargetConfig),
    ("target", "schema_accuracy", AccuracyTargetConfig),
    ("target", "schema_tradeoff", TradeoffTargetConfig),
]
