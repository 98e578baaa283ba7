"""Routing curves and the routing literature's metrics (PGR, APGR, CPT, AUROC, area under the curve).

A routing curve is quality (accuracy or mean score) against the fraction of requests sent to the
cloud, swept over a score threshold (cloud when score >= threshold).  Rows with tied scores move
together, and points are joined by straight lines (a coin flip between two thresholds reaches any
point between them), so a constant score gives exactly the random-routing line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score

from router_lab.errors import RouterLabError


@dataclass(frozen=True)
class RoutingCurve:
    """Points of a routing curve, in increasing cloud fraction (the first point routes nothing)."""

    thresholds: np.ndarray  # cloud when score >= threshold; +inf at the first point
    cloud_fraction: np.ndarray  # fraction of ALL rows sent to the cloud
    quality: np.ndarray  # mean quality over all rows at that threshold
    device_quality: float  # every row answered on the device
    cloud_quality: float  # every row answered in the cloud (the PGR ceiling)

    def pgr(self) -> np.ndarray:
        return performance_gap_recovered(self.quality, self.device_quality, self.cloud_quality)


def routing_curve(scores: np.ndarray, device_quality: np.ndarray, cloud_quality: np.ndarray,
                  allowed: np.ndarray | None = None) -> RoutingCurve:
    """The curve of ``scores`` (higher = more reason to use the cloud) over these rows.

    ``allowed`` marks rows that may leave the device (sensitive rows never do: they stay local at
    every threshold, but count in every fraction and mean).
    """
    scores = np.asarray(scores, dtype=np.float64)
    device_q = np.asarray(device_quality, dtype=np.float64)
    cloud_q = np.asarray(cloud_quality, dtype=np.float64)
    n = len(scores)
    if n == 0 or device_q.shape != (n,) or cloud_q.shape != (n,):
        raise RouterLabError(f"routing curve: got {n} scores for {device_q.shape[0]} rows; expected "
                             "one score per row and at least one row")
    allowed_idx = np.arange(n) if allowed is None else np.flatnonzero(allowed)
    if not np.isfinite(scores[allowed_idx]).all():
        raise RouterLabError("routing curve: scores contain NaN or inf; expected finite numbers")
    order = allowed_idx[np.argsort(-scores[allowed_idx], kind="stable")]
    sorted_scores = scores[order]
    gain_sum = np.concatenate([[0.0], np.cumsum((cloud_q - device_q)[order])])
    group_ends = np.flatnonzero(np.r_[sorted_scores[1:] != sorted_scores[:-1], len(order) > 0]) + 1
    routed = np.r_[0, group_ends]
    return RoutingCurve(
        thresholds=np.r_[np.inf, sorted_scores[group_ends - 1]],
        cloud_fraction=routed / n,
        quality=(device_q.sum() + gain_sum[routed]) / n,
        device_quality=float(device_q.mean()),
        cloud_quality=float(cloud_q.mean()),
    )


def performance_gap_recovered(quality: np.ndarray | float, device_quality: float,
                              cloud_quality: float) -> np.ndarray:
    """PGR: the share of the device-to-cloud quality gap recovered (0 = device, 1 = cloud)."""
    gap = cloud_quality - device_quality
    if gap <= 0:
        return np.full(np.shape(quality), np.nan)
    return (np.asarray(quality, dtype=np.float64) - device_quality) / gap


def _extended(curve: RoutingCurve, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points on [0, 1]: beyond the last reachable cloud fraction the curve stays flat."""
    x, y = curve.cloud_fraction, values
    if x[-1] < 1.0:
        x, y = np.r_[x, 1.0], np.r_[y, y[-1]]
    return x, y


def quality_at(curve: RoutingCurve, cloud_fraction: float | np.ndarray) -> np.ndarray:
    return np.interp(cloud_fraction, *_extended(curve, curve.quality))


def pgr_at(curve: RoutingCurve, cloud_fraction: float | np.ndarray) -> np.ndarray:
    return performance_gap_recovered(quality_at(curve, cloud_fraction), curve.device_quality,
                                     curve.cloud_quality)


def average_pgr(curve: RoutingCurve) -> float:
    """APGR: the mean PGR over cloud fractions 0..1 (area under the PGR curve)."""
    return float(np.trapezoid(*_extended(curve, curve.pgr())[::-1]))


def area_under_quality(curve: RoutingCurve) -> float:
    """Area under the quality-vs-cloud-fraction curve (the accuracy-cost AUC)."""
    return float(np.trapezoid(*_extended(curve, curve.quality)[::-1]))


def call_performance_threshold(curve: RoutingCurve, pgr_target: float) -> float:
    """CPT(p): the smallest cloud fraction whose PGR reaches ``pgr_target`` (NaN if never)."""
    x, pgr = curve.cloud_fraction, curve.pgr()
    reached = np.flatnonzero(pgr >= pgr_target - 1e-12)
    if reached.size == 0:
        return float("nan")
    i = int(reached[0])
    if i == 0:
        return 0.0
    step = (pgr_target - pgr[i - 1]) / (pgr[i] - pgr[i - 1])
    return float(x[i - 1] + step * (x[i] - x[i - 1]))


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for ``labels`` == 1 (NaN when one class is absent)."""
    labels = np.asarray(labels)
    if labels.min(initial=0) == labels.max(initial=0):
        return float("nan")
    return float(roc_auc_score(labels, np.asarray(scores, dtype=np.float64)))


def curve_metrics(curve: RoutingCurve, pgr_fractions: tuple[float, ...] = (0.2, 0.5)) -> dict[str, float]:
    """The summary row of one curve: APGR, PGR at given cloud fractions, CPT(50/80), AUC."""
    row = {"apgr": average_pgr(curve)}
    for fraction in pgr_fractions:
        row[f"pgr_at_{round(100 * fraction)}"] = float(pgr_at(curve, fraction))
    row["cpt_50"] = call_performance_threshold(curve, 0.5)
    row["cpt_80"] = call_performance_threshold(curve, 0.8)
    row["auc_quality"] = area_under_quality(curve)
    row["device_quality"] = curve.device_quality
    row["cloud_quality"] = curve.cloud_quality
    return row
