"""Structured configs of the `dataset` group (one dataclass per kind of dataset)."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from router_lab.constants import SPLIT_FRACTIONS


@dataclass
class DatasetConfig:
    kind: str = MISSING  # registry key: which builder makes (or loads) the data
    name: str = MISSING  # the dataset's name; built files are datasets/<name>.parquet
    path: str | None = None  # where the file lives; default datasets/<name>.parquet


@dataclass
class DigitsConfig(DatasetConfig):
    kind: str = "digits"
    name: str = "digits"
    seed: int = 0
    n_folds: int = 5  # out-of-fold scoring: no row is scored by a model that saw it
    pool: int = 2  # the device model sees the 8x8 image average-pooled by this factor (4x4)
    device_C: float = 0.1  # inverse regularisation of the device's logistic regression
    cloud_C: float = 10.0  # the cloud's RBF SVM
    edge_C: float = 0.1  # the edge box's logistic regression on all 64 pixels (the third model)
    # assumed per-call prices (the AIQ cost axis); the device's own answer costs nothing
    edge_price_usd_per_call: float = 0.00002
    cloud_price_usd_per_call: float = 0.0001
    sensitive_fraction: float = 0.05
    split_fractions: list[float] = field(default_factory=lambda: list(SPLIT_FRACTIONS))


@dataclass
class SyntheticTier:
    """A model of the synthetic ladder between the device and the cloud (issue 17)."""

    name: str = MISSING  # its columns are model_<name>_correct
    role: str = "edge"  # edge or cloud
    skill: float = MISSING  # P(correct) = sigmoid(skill - difficulty_slope * difficulty)
    price_usd_per_call: float = 0.0


@dataclass
class SyntheticConfig(DatasetConfig):
    kind: str = "synthetic"
    name: str = "synthetic"
    seed: int = 0
    n_rows: int = 20_000
    n_features: int = 8
    feature_noise: float = 0.6  # std of each feature's noise around the latent difficulty
    device_skill: float = 1.0  # logit offsets: P(correct) = sigmoid(skill - slope * difficulty)
    cloud_skill: float = 3.0
    difficulty_slope: float = 2.0
    confidence_noise: float = 0.5  # how noisily device_confidence tracks the device's P(correct)
    sensitive_fraction: float = 0.05
    drift: float = 0.0  # shift of the mean difficulty from the first to the last request
    rate_per_s: float = 50.0  # timestamps: Poisson arrivals at this rate (for trace replay)
    input_bytes_median: float = 2_000.0
    output_bytes_median: float = 1_000.0
    tokens_in_median: float = 300.0
    tokens_out_median: float = 200.0
    split_fractions: list[float] = field(default_factory=lambda: list(SPLIT_FRACTIONS))
    # the quality/cost ladder: models between device and cloud in tier order (none: two models)
    tiers: list[SyntheticTier] = field(default_factory=list)
    cloud_price_usd_per_call: float = 0.0001  # the card's price of the top tier ('cloud')


@dataclass
class FileConfig(DatasetConfig):
    kind: str = "file"
    name: str = "file"
    path: str | None = MISSING


@dataclass
class RouteLLMConfig(DatasetConfig):
    """A dataset imported from RouteLLM-format CSVs when it is first used (`dataset=gsm8k`)."""

    kind: str = "routellm"
    name: str = MISSING
    source: str = MISSING  # file, folder or glob; relative: to the working folder, else the project
    device_model: str = MISSING  # the model column that plays the on-device model
    cloud_model: str = MISSING  # the model column that plays the cloud model
    prompt_column: str = "prompt"
    seed: int = 0  # seeds the train/val/test split
    split_fractions: list[float] = field(default_factory=lambda: list(SPLIT_FRACTIONS))


SCHEMAS: list[tuple[str, str, type]] = [
    ("dataset", "schema_digits", DigitsConfig),
    ("dataset", "schema_synthetic", SyntheticConfig),
    ("dataset", "schema_file", FileConfig),
    ("dataset", "schema_routellm", RouteLLMConfig),
]
