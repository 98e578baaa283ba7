"""Routing metrics under row weights, vectorised over many weightings: the engine of the bootstrap.

A bootstrap resample of rows is a vector of counts (how often each row was drawn), so every metric
of ``router_lab.train.curves`` is recomputed here as a function of a (B, n) weight matrix, one
sort per policy.  With all weights 1 the numbers equal ``curve_metrics`` and ``auroc`` exactly.
Intervals are percentile intervals of a seeded nonparametric bootstrap over rows (Efron &
Tibshirani, 1993); differences between policies use the same resamples (paired).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from router_lab.train.curves import hull_areas

_CHUNK_CELLS = 2_000_000  # resamples x rows per block (bounds memory: ~16 MB per float matrix)


def resample_counts(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` bootstrap resamples of ``n`` rows as a (n_boot, n) matrix of draw counts."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)


def _interp_rows(x: np.ndarray, y: np.ndarray, at: float) -> np.ndarray:
    """Per row of (B, m) monotone ``x``, the linear interpolation of ``y`` at ``at``."""
    right = np.clip((x < at - 1e-15).sum(axis=1), 1, x.shape[1] - 1)
    rows = np.arange(x.shape[0])
    x0, x1 = x[rows, right - 1], x[rows, right]
    y0, y1 = y[rows, right - 1], y[rows, right]
    span = x1 - x0
    step = np.divide(at - x0, span, out=np.zeros_like(span), where=span > 0)
    return y0 + np.clip(step, 0.0, 1.0) * (y1 - y0)


def _crossing(x: np.ndarray, pgr: np.ndarray, target: float) -> np.ndarray:
    """CPT per row: the smallest x where ``pgr`` reaches ``target`` (NaN when it never does)."""
    reached = pgr >= target - 1e-12
    first = np.argmax(reached, axis=1)
    rows = np.arange(x.shape[0])
    out = np.full(x.shape[0], np.nan)
    hit = reached.any(axis=1)
    at_zero = hit & (first == 0)
    out[at_zero] = 0.0
    mid = hit & (first > 0)
    i = first[mid]
    r = rows[mid]
    dp = pgr[r, i] - pgr[r, i - 1]
    step = np.divide(target - pgr[r, i - 1], dp, out=np.zeros_like(dp), where=dp != 0)
    out[mid] = x[r, i - 1] + step * (x[r, i] - x[r, i - 1])
    return out


def _weighted_auroc(scores: np.ndarray, labels: np.ndarray, W: np.ndarray) -> np.ndarray:
    """AUROC of ``scores`` for ``labels`` under each row of weights (ties count one half)."""
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    Ws = W[:, order]
    pos = np.add.reduceat(Ws * labels[order], starts, axis=1)
    neg = np.add.reduceat(Ws * (1 - labels[order]), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    total = pos.sum(axis=1) * neg.sum(axis=1)
    num = (pos * (below + 0.5 * neg)).sum(axis=1)
    return np.divide(num, total, out=np.full(len(total), np.nan), where=total > 0)


def weighted_metrics(scores: np.ndarray, sent: np.ndarray, device_q: np.ndarray, cloud_q: np.ndarray,
                     allowed: np.ndarray, helps: np.ndarray, W: np.ndarray,
                     pgr_fractions: Sequence[float] = (0.2, 0.5)) -> dict[str, np.ndarray]:
    """Every summary metric of one policy's scores (and operating point ``sent``) per weight row."""
    out: dict[str, list[np.ndarray]] = {}
    step = max(1, _CHUNK_CELLS // max(1, len(scores)))
    for lo in range(0, W.shape[0], step):
        for key, value in _metrics_block(scores, sent, device_q, cloud_q, allowed, helps,
                                         W[lo:lo + step], tuple(pgr_fractions)).items():
            out.setdefault(key, []).append(value)
    return {key: np.concatenate(parts) for key, parts in out.items()}


def _metrics_block(scores: np.ndarray, sent: np.ndarray, device_q: np.ndarray, cloud_q: np.ndarray,
                   allowed: np.ndarray, helps: np.ndarray, W: np.ndarray,
                   pgr_fractions: tuple[float, ...]) -> dict[str, np.ndarray]:
    total = W.sum(axis=1)
    dev = W @ device_q / total
    cloud = W @ cloud_q / total
    gap = cloud - dev
    idx = np.flatnonzero(allowed)
    order = idx[np.argsort(-scores[idx], kind="stable")]
    s = scores[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], len(order) > 0]) + 1  # group ends (exclusive)
    Wo = W[:, order]
    routed = np.c_[np.zeros(len(W)), np.cumsum(Wo, axis=1)[:, ends - 1]] if len(order) else np.zeros((len(W), 1))
    gained = (np.c_[np.zeros(len(W)), np.cumsum(Wo * (cloud_q - device_q)[order], axis=1)[:, ends - 1]]
              if len(order) else np.zeros((len(W), 1)))
    x = np.c_[routed / total[:, None], np.ones(len(W))]  # flat after the last reachable point
    quality = (dev * total)[:, None] + gained
    y = np.c_[quality, quality[:, -1]] / total[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        pgr = np.where(gap[:, None] > 0, (y - dev[:, None]) / gap[:, None], np.nan)
        row = {"apgr": np.trapezoid(pgr, x, axis=1)}
        for fraction in pgr_fractions:
            row[f"pgr_at_{round(100 * fraction)}"] = (_interp_rows(x, y, fraction) - dev) / gap
        row["cpt_50"] = _crossing(x, pgr, 0.5)
        row["cpt_80"] = _crossing(x, pgr, 0.8)
        row["auc_quality"] = np.trapezoid(y, x, axis=1)
        row["device_quality"], row["cloud_quality"] = dev, cloud
        row["aiq"] = hull_areas(x, y)[0]
        row["aiq_single_models"] = hull_areas(np.tile([0.0, 1.0], (len(W), 1)), np.c_[dev, cloud])[0]
        row["best_single_quality"] = np.maximum(dev, cloud)
        row["auroc_cloud_wins"] = _weighted_auroc(scores, helps, W)
        row["cloud_fraction"] = W @ sent.astype(np.float64) / total
        row["quality"] = W @ np.where(sent, cloud_q, device_q) / total
        row["pgr"] = np.where(gap > 0, (row["quality"] - dev) / gap, np.nan)
    return row


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap replicates (NaNs ignored)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return float(lo), float(hi)
