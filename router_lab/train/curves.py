"""Routing curves and the routing literature's metrics (PGR, APGR, CPT, AUROC, AIQ, area under the curve).

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


def hull_areas(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row of (B, m) points, the area under their non-decreasing convex hull on [x_first, 1].

    ``x`` is cost already normalised to [0, 1] and non-decreasing along each row.  The hull is the
    upper (concave) hull of the points plus (1, max y): the smallest non-decreasing concave function
    above every point, flat at the best quality beyond it (a row with points past 1 closes at its
    last point instead, and its area runs there).  Only a point higher than every point before it
    (a "record") can be a vertex: a monotone chain (Andrew, 1979) runs over each row's records, for
    all rows at once, one column at a time (columns without a record in any row are skipped).
    Returns (areas, hull x, hull y, hull sizes): row b's vertices are ``hull_x[b, :size[b]]``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    rows_n = x.shape[0]
    running = np.maximum.accumulate(y, axis=1)
    record = np.empty(y.shape, dtype=bool)
    record[:, 0] = True
    np.greater(y[:, 1:], running[:, :-1], out=record[:, 1:])
    keep = np.flatnonzero(record.any(axis=0))  # columns where some row sets a record
    packed_x = np.c_[x[:, keep], np.maximum(x[:, -1], 1.0)]  # closing point: (1, max y)
    packed_y = np.c_[y[:, keep], running[:, -1]]
    packed_record = np.c_[record[:, keep], np.ones(rows_n, dtype=bool)]
    width = packed_x.shape[1]
    hx, hy = np.zeros((rows_n, width)), np.zeros((rows_n, width))
    top = np.zeros(rows_n, dtype=np.int64)
    every = np.arange(rows_n)
    for j in range(width):
        px, py = packed_x[:, j], packed_y[:, j]
        rows = every[packed_record[:, j]]  # along a row the records rise strictly
        active = rows[top[rows] >= 2]
        while active.size:
            t = top[active]
            ax, ay = hx[active, t - 2], hy[active, t - 2]
            bx, by = hx[active, t - 1], hy[active, t - 1]
            # b on or below the chord a -> p is not a vertex of the upper hull
            pop = (bx - ax) * (py[active] - ay) - (by - ay) * (px[active] - ax) >= 0
            active = active[pop]
            top[active] -= 1
            active = active[top[active] >= 2]
        hx[rows, top[rows]], hy[rows, top[rows]] = px[rows], py[rows]
        top[rows] += 1
    k = np.arange(width - 1)[None, :]
    segment = (hx[:, 1:] - hx[:, :-1]) * (hy[:, 1:] + hy[:, :-1]) / 2
    areas = np.where(k + 1 < top[:, None], segment, 0.0).sum(axis=1)
    return areas, hx, hy, top


def _normalised(cost: np.ndarray, cost_range: tuple[float, float] | None) -> tuple[np.ndarray, bool]:
    lo, hi = (float(cost.min()), float(cost.max())) if cost_range is None else map(float, cost_range)
    if hi < lo or (cost_range is not None and (cost.min() < lo - 1e-12 or cost.max() > hi + 1e-12)):
        raise RouterLabError(f"AIQ: cost range [{lo:g}, {hi:g}] does not hold the points' costs "
                             f"[{cost.min():g}, {cost.max():g}]; expected the cheapest and dearest cost")
    if hi == lo:
        return np.zeros_like(cost), True
    return (cost - lo) / (hi - lo), False


def quality_cost_hull(cost: np.ndarray, quality: np.ndarray,
                      cost_range: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The vertices (normalised cost, quality) of the points' non-decreasing convex hull, ending at
    normalised cost 1 (see :func:`aiq`)."""
    cost, quality = _checked_points(cost, quality)
    x, degenerate = _normalised(cost, cost_range)
    order = np.lexsort((quality, x))
    _, hx, hy, top = hull_areas(x[order][None, :], quality[order][None, :])
    return hx[0, :top[0]], hy[0, :top[0]]


def _checked_points(cost: np.ndarray, quality: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cost = np.asarray(cost, dtype=np.float64).ravel()
    quality = np.asarray(quality, dtype=np.float64).ravel()
    if cost.size == 0 or cost.shape != quality.shape or not (np.isfinite(cost).all() and np.isfinite(quality).all()):
        raise RouterLabError(f"AIQ: got {cost.size} costs and {quality.size} qualities; expected as many "
                             "finite costs as qualities, at least one")
    return cost, quality


def aiq(cost: np.ndarray, quality: np.ndarray, cost_range: tuple[float, float] | None = None) -> float:
    """AIQ (Average Improvement in Quality): the area under the non-decreasing convex hull of the
    (cost, quality) points, with cost normalised to [0, 1] between ``cost_range`` (default: the
    cheapest and the dearest point), so the area is a mean quality over the cost range.

    Follows RouterBench (Hu et al., 2024, "RouterBench: A Benchmark for Multi-LLM Routing System",
    arXiv:2403.12031, §3 "AIQ": AIQ = 1/(c_max - c_min) * integral of the non-decreasing convex hull
    over [c_min, c_max]) and its code (withmartian/routerbench, evaluation/AIQ.py:
    ``get_non_descreasing_convex_hull_of`` and ``calc_AIQ``, which extend every hull flat to the
    dearest cost).  As there, the hull starts at the cheapest point it has (no area to its left),
    so a single point at normalised cost c has AIQ (1 - c) * quality; when every point has the same
    cost the range is empty and AIQ is the best quality.
    """
    cost, quality = _checked_points(cost, quality)
    x, degenerate = _normalised(cost, cost_range)
    if degenerate:
        return float(quality.max())
    order = np.lexsort((quality, x))
    return float(hull_areas(x[order][None, :], quality[order][None, :])[0][0])


def curve_aiq(curve: RoutingCurve) -> float:
    """AIQ of a two-model routing curve with cost = the cloud fraction on [0, 1] (all on the device
    .. all in the cloud).  Why the fraction and not the cloud's bill: with a free device and one
    price per cloud call, cost normalised between the cheapest and the dearest single model *is* the
    cloud fraction, and most two-model datasets carry no per-request cost.  Per-request costs (token
    prices, N models) are ``router_lab.train.multimodel.policy_aiq``'s axis (``aiq_models``)."""
    x, y = _extended(curve, curve.quality)
    return float(hull_areas(x[None, :], y[None, :])[0][0])


def single_models_aiq(device_quality: float, cloud_quality: float) -> float:
    """AIQ of the two single models alone, (0, device) and (1, cloud): RouterBench's zero router
    (mixing the two at random), the reference a router's AIQ should beat."""
    return aiq(np.array([0.0, 1.0]), np.array([device_quality, cloud_quality]))


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
    row["aiq"] = curve_aiq(curve)
    row["aiq_single_models"] = single_models_aiq(curve.device_quality, curve.cloud_quality)
    row["best_single_quality"] = max(curve.device_quality, curve.cloud_quality)
    return row
