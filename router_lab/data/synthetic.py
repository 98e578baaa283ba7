"""The `synthetic` dataset: a scalable generator for load and scale work.

Each request has a latent difficulty; its features are noisy views of it; the device and the cloud
answer correctly with a probability that falls with difficulty (the cloud is stronger).  Sizes and
token counts are lognormal, a fraction of requests is sensitive, timestamps are Poisson arrivals,
and an optional drift shifts the difficulty mix from the first request to the last.  Optional
``tiers`` add models between the device and the cloud (a quality/cost ladder: each its own skill
and per-call price, columns ``model_<name>_correct``), drawn after everything else so that the
two-model columns do not change.  Vectorised: a million rows take about a second.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from router_lab.data.builders import BUILDERS, BuiltDataset, random_split
from router_lab.data.config import SyntheticConfig
from router_lab.data.contract import BASE_MODELS, MAX_COST_USD, MODEL_NAME
from router_lab.errors import RouterLabError


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _check(cfg: SyntheticConfig) -> None:
    if cfg.n_rows < 1:
        raise RouterLabError(f"dataset.n_rows: got {cfg.n_rows}; expected a positive number of rows")
    if cfg.n_features < 1:
        raise RouterLabError(f"dataset.n_features: got {cfg.n_features}; expected at least 1")
    if not 0.0 <= cfg.sensitive_fraction <= 1.0:
        raise RouterLabError(f"dataset.sensitive_fraction: got {cfg.sensitive_fraction}; expected a probability in [0, 1]")
    for name in ("feature_noise", "confidence_noise", "rate_per_s", "input_bytes_median",
                 "output_bytes_median", "tokens_in_median", "tokens_out_median"):
        value = getattr(cfg, name)
        if not value > 0 and not (name.endswith("noise") and value == 0):
            raise RouterLabError(f"dataset.{name}: got {value}; expected a positive number")


def _tier_value(tier: Any, name: str, default: Any = None) -> Any:
    return tier.get(name, default) if isinstance(tier, dict) else getattr(tier, name, default)


def ladder(cfg: SyntheticConfig) -> list[dict[str, Any]]:
    """The extra tiers as checked plain dicts (name, role, skill, price_usd_per_call)."""
    tiers = list(getattr(cfg, "tiers", None) or [])
    out: list[dict[str, Any]] = []
    for i, tier in enumerate(tiers):
        where = f"dataset.tiers[{i}]"
        name, role = _tier_value(tier, "name"), _tier_value(tier, "role", "edge")
        skill, price = _tier_value(tier, "skill"), _tier_value(tier, "price_usd_per_call", 0.0)
        if not isinstance(name, str) or not MODEL_NAME.match(name) or name in BASE_MODELS:
            raise RouterLabError(f"{where}.name: got {name!r}; expected a new model name (letters, "
                                 "digits, '.', '-', single '_'; not device or cloud)")
        if name in (t["name"] for t in out):
            raise RouterLabError(f"{where}.name: model {name!r} is named twice; expected unique names")
        if role not in ("edge", "cloud"):
            raise RouterLabError(f"{where}.role: got {role!r}; expected edge or cloud")
        if isinstance(skill, bool) or not isinstance(skill, (int, float)) or not math.isfinite(skill):
            raise RouterLabError(f"{where}.skill: got {skill!r}; expected a finite logit offset")
        if isinstance(price, bool) or not isinstance(price, (int, float)) or not 0 <= price <= MAX_COST_USD:
            raise RouterLabError(f"{where}.price_usd_per_call: got {price!r}; expected a number in "
                                 f"[0, {MAX_COST_USD:,.0f}]")
        out.append({"name": name, "role": role, "skill": float(skill), "price_usd_per_call": float(price)})
    cloud_price = getattr(cfg, "cloud_price_usd_per_call", 0.0)
    if not 0 <= cloud_price <= MAX_COST_USD:
        raise RouterLabError(f"dataset.cloud_price_usd_per_call: got {cloud_price}; expected a number "
                             f"in [0, {MAX_COST_USD:,.0f}]")
    return out


@BUILDERS.register("synthetic", summary="seeded synthetic requests (difficulty, drift, sensitive share)")
def build_synthetic(cfg: SyntheticConfig, rng: np.random.Generator) -> BuiltDataset:
    _check(cfg)
    tiers = ladder(cfg)
    n = cfg.n_rows
    position = np.arange(n, dtype=np.float64) / max(n - 1, 1)
    difficulty = rng.standard_normal(n) + cfg.drift * position
    noise = rng.standard_normal((n, cfg.n_features)).astype(np.float32)
    loadings = np.linspace(1.0, 0.3, cfg.n_features, dtype=np.float32)
    features = difficulty.astype(np.float32)[:, None] * loadings + cfg.feature_noise * noise

    p_device = _sigmoid(cfg.device_skill - cfg.difficulty_slope * difficulty)
    p_cloud = _sigmoid(cfg.cloud_skill - cfg.difficulty_slope * difficulty)
    u = rng.random((3, n))
    confidence = _sigmoid(np.log(p_device / (1 - p_device)) + cfg.confidence_noise * rng.standard_normal(n))
    tokens_in = np.maximum(1, np.rint(cfg.tokens_in_median * np.exp(0.3 * difficulty + 0.5 * rng.standard_normal(n))))
    tokens_out = np.maximum(1, np.rint(cfg.tokens_out_median * np.exp(0.3 * difficulty + 0.5 * rng.standard_normal(n))))
    size_noise = rng.standard_normal((2, n))

    columns: dict[str, np.ndarray] = {"request_id": np.arange(n, dtype=np.int64)}
    for j in range(cfg.n_features):
        columns[f"x{j}"] = features[:, j]
    columns.update(
        device_confidence=confidence,
        device_correct=(u[0] < p_device).astype(np.int8),
        cloud_correct=(u[1] < p_cloud).astype(np.int8),
        input_bytes=np.rint(cfg.input_bytes_median * np.exp(0.8 * size_noise[0])).astype(np.int64),
        output_bytes=np.rint(cfg.output_bytes_median * np.exp(0.8 * size_noise[1])).astype(np.int64),
        tokens_in=tokens_in.astype(np.int64),
        tokens_out=tokens_out.astype(np.int64),
        sensitive=(u[2] < cfg.sensitive_fraction).astype(np.int8),
        timestamp=np.cumsum(rng.exponential(1.0 / cfg.rate_per_s, n)),
        split=random_split(n, cfg.split_fractions, rng),
    )
    # the ladder's draws come last, so a two-tier build is the same with or without this code
    for tier in tiers:
        p_tier = _sigmoid(tier["skill"] - cfg.difficulty_slope * difficulty)
        columns[f"model_{tier['name']}_correct"] = (rng.random(n) < p_tier).astype(np.int8)
    frame = pd.DataFrame(columns)
    card: dict[str, Any] = {
        "name": cfg.name,
        "task": "synthetic routing workload (latent difficulty model)",
        "source": "generated by router_lab.data.synthetic from the seed",
        "license": "generated data; no licence restrictions",
        "outcomes": (
            f"device_correct ~ Bernoulli(sigmoid({cfg.device_skill} - {cfg.difficulty_slope} d)), "
            f"cloud_correct ~ Bernoulli(sigmoid({cfg.cloud_skill} - {cfg.difficulty_slope} d)), "
            f"d ~ N({cfg.drift} * t, 1) with t the request's position in [0, 1]"
        ),
        "features": {
            f"x0..x{cfg.n_features - 1}": f"noisy views of the difficulty: loading * d + {cfg.feature_noise} * N(0, 1)",
            "device_confidence": "the device's P(correct) seen through logit noise (post-routing feature)",
            "input_bytes/output_bytes": "lognormal request and response sizes",
            "tokens_in/tokens_out": "lognormal token counts, longer for harder requests",
            "timestamp": f"Poisson arrivals at {cfg.rate_per_s}/s (for trace replay)",
            "sensitive": f"Bernoulli({cfg.sensitive_fraction})",
        },
        "metrics": {
            "device_accuracy": round(float(columns["device_correct"].mean()), 6),
            "cloud_accuracy": round(float(columns["cloud_correct"].mean()), 6),
        },
    }
    if tiers:
        card["outcomes"] += "".join(f"; model_{t['name']}_correct ~ Bernoulli(sigmoid({t['skill']} - "
                                    f"{cfg.difficulty_slope} d))" for t in tiers)
        card["models"] = [{"name": "device", "role": "device", "price_usd_per_call": 0.0},
                          *({k: t[k] for k in ("name", "role", "price_usd_per_call")} for t in tiers),
                          {"name": "cloud", "role": "cloud",
                           "price_usd_per_call": float(cfg.cloud_price_usd_per_call)}]
        for t in tiers:
            card["metrics"][f"{t['name']}_accuracy"] = round(float(columns[f"model_{t['name']}_correct"].mean()), 6)
    return BuiltDataset(frame=frame, card=card)
