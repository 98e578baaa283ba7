"""Offline references over N models, under bootstrap weights: each single model, the zero router
(the hull of the single models), the oracle's quality-cost frontier, and a two-model policy's
curve on the N-model cost axis.  Cost is normalised to [0, 1] between the cheapest and the dearest
single model (RouterBench's AIQ, ``router_lab.train.curves.aiq``).

Requests that may not leave the device (``sensitive``) stay on the device's model in the oracle
(an edge box is off the device too); the single models are the plain "every row to model m"
references, like ``device_quality`` and ``cloud_quality`` of the two-model evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError
from router_lab.policies.base import sensitive_rows
from router_lab.train.curves import hull_areas


@dataclass(frozen=True)
class ModelTable:
    """Per-row quality and cost of every model (columns in the dataset's tier order)."""

    names: tuple[str, ...]
    quality: np.ndarray  # (n, M)
    cost_usd: np.ndarray  # (n, M)
    allowed: np.ndarray  # (n,) may leave the device


def model_table(dataset: Dataset, rows: np.ndarray) -> ModelTable | None:
    """The rows' qualities and costs of every model, or None when there are two models or a
    model's cost is unknown (no cost column and no price: the cost axis would be made up)."""
    if len(dataset.models) <= 2:
        return None
    costs = [dataset.cost(m) for m in dataset.models]
    if any(c is None for c in costs):
        return None
    allowed = ~sensitive_rows(dataset)[rows]
    return ModelTable(names=dataset.models,
                      quality=np.column_stack([dataset.quality(m)[rows] for m in dataset.models]),
                      cost_usd=np.column_stack([c[rows] for c in costs]), allowed=allowed)


def _cost_range(table: ModelTable, W: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per weight row: each single model's mean cost (B, M), and the cheapest and dearest of them."""
    mean_cost = W @ table.cost_usd / W.sum(axis=1)[:, None]
    return mean_cost, mean_cost.min(axis=1), mean_cost.max(axis=1)


def _normalise(cost: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    span = hi - lo
    if (span <= 0).any():
        raise RouterLabError("AIQ over models: every model costs the same; expected a cheapest and a "
                             "dearest model (set the card's price_usd_per_call)")
    return (cost - lo[:, None]) / span[:, None]


def area_on_unit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per row of a non-decreasing (B, m) polyline: its area over [0, 1], flat beyond its last point
    and nothing left of its first (RouterBench's convention); pieces outside [0, 1] are cut off."""
    xa, xb, ya, yb = x[:, :-1], x[:, 1:], y[:, :-1], y[:, 1:]
    a, b = np.clip(xa, 0.0, 1.0), np.clip(xb, 0.0, 1.0)
    width = xb - xa
    slope = np.divide(yb - ya, width, out=np.zeros_like(width), where=width > 0)
    inside = (ya + slope * (a - xa) + ya + slope * (b - xa)) / 2 * (b - a)
    tail = (1.0 - np.clip(x[:, -1], 0.0, 1.0)) * y[:, -1]
    return inside.sum(axis=1) + tail


def single_models(table: ModelTable, W: np.ndarray) -> dict[str, np.ndarray]:
    """Per weight row: every model's quality and normalised cost, the best single model's quality,
    and the zero router's AIQ (the non-decreasing hull of the single-model points)."""
    total = W.sum(axis=1)
    quality = W @ table.quality / total[:, None]
    mean_cost, lo, hi = _cost_range(table, W)
    x = _normalise(mean_cost, lo, hi)
    order = np.lexsort((quality, x), axis=-1)  # per weight row: by cost, then quality
    xs, ys = np.take_along_axis(x, order, 1), np.take_along_axis(quality, order, 1)
    out = {f"quality_{m}": quality[:, i] for i, m in enumerate(table.names)}
    out.update({f"cost_{m}": x[:, i] for i, m in enumerate(table.names)})
    out["best_single_quality"] = quality.max(axis=1)
    out["zero_router_aiq"] = hull_areas(xs, ys)[0]
    return out


def _row_frontier(cost: np.ndarray, quality: np.ndarray) -> tuple[int, list[tuple[float, float, float]]]:
    """One row's cheapest option and the segments of its non-decreasing concave frontier, as
    (slope, added cost, added quality), cheapest first."""
    order = np.lexsort((-quality, cost))
    c, q = cost[order], quality[order]
    hull: list[int] = [0]
    for j in range(1, len(c)):
        if q[j] <= q[hull[-1]]:
            continue  # dearer and no better: never worth it
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            if (c[b] - c[a]) * (q[j] - q[a]) - (q[b] - q[a]) * (c[j] - c[a]) >= 0:
                hull.pop()
            else:
                break
        hull.append(j)
    segments = [(float((q[b] - q[a]) / (c[b] - c[a])) if c[b] > c[a] else np.inf,
                 float(c[b] - c[a]), float(q[b] - q[a])) for a, b in zip(hull, hull[1:], strict=False)]
    return int(order[0]), segments


def oracle_frontier(table: ModelTable, W: np.ndarray) -> dict[str, np.ndarray]:
    """The oracle that knows every model's outcome and picks, per request, the model maximising
    quality - lambda * cost, swept over lambda from infinity to 0: the best mean quality reachable at
    each mean cost (mixing allowed).  Its AIQ bounds every cost-aware router's from above.

    A request moves along its own frontier's segments; the aggregate frontier takes all segments in
    decreasing slope, which does not depend on the weights, so every resample is one cumulative sum.
    """
    n = table.quality.shape[0]
    start = np.full(n, table.names.index("device"), dtype=np.int64)
    seg_row, seg_slope, seg_dc, seg_dq = [], [], [], []
    for r in range(n):
        if not table.allowed[r]:
            continue  # the device's model: a sensitive request never leaves the device
        start[r], segments = _row_frontier(table.cost_usd[r], table.quality[r])
        for slope, dc, dq in segments:
            seg_row.append(r), seg_slope.append(slope), seg_dc.append(dc), seg_dq.append(dq)
    order = np.argsort(-np.asarray(seg_slope, dtype=np.float64), kind="stable")
    rows_of = np.asarray(seg_row, dtype=np.int64)[order]
    dc, dq = np.asarray(seg_dc)[order], np.asarray(seg_dq)[order]
    total = W.sum(axis=1)
    x0 = W @ table.cost_usd[np.arange(n), start] / total
    y0 = W @ table.quality[np.arange(n), start] / total
    Ws = W[:, rows_of]
    x = np.c_[x0, x0[:, None] + np.cumsum(Ws * dc, axis=1) / total[:, None]]
    y = np.c_[y0, y0[:, None] + np.cumsum(Ws * dq, axis=1) / total[:, None]]
    _, lo, hi = _cost_range(table, W)
    xn = _normalise(x, lo, hi)
    return {"oracle_aiq": area_on_unit(xn, y), "oracle_quality": y[:, -1], "oracle_cost": xn[:, -1]}


def cost_axis_is_cloud_fraction(table: ModelTable) -> bool:
    """Whether a two-model policy's normalised N-model cost is exactly its cloud fraction: one price
    per call for the device and the cloud, the device never dearer and the cloud never cheaper than
    any model on any row (then ``policy_aiq`` equals the ``aiq`` metric, for every resample)."""
    device, cloud = table.names.index("device"), table.names.index("cloud")
    c = table.cost_usd
    return bool(np.ptp(c[:, device]) == 0 and np.ptp(c[:, cloud]) == 0 and c[0, device] < c[0, cloud]
                and (c[:, device][:, None] <= c).all() and (c[:, cloud][:, None] >= c).all())


def policy_aiq(scores: np.ndarray, allowed: np.ndarray, table: ModelTable, W: np.ndarray) -> np.ndarray:
    """AIQ of a two-model policy's threshold curve (device below the threshold, cloud at or above)
    on the N-model cost axis, per weight row.  When the device is free of per-row variation and the
    cheapest model, and the cloud the dearest at one price per call, this is the ``aiq`` metric."""
    device, cloud = table.names.index("device"), table.names.index("cloud")
    idx = np.flatnonzero(allowed)
    order = idx[np.argsort(-scores[idx], kind="stable")]
    s = scores[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], len(order) > 0]) + 1
    total = W.sum(axis=1)
    dq = (table.quality[:, cloud] - table.quality[:, device])[order]
    dc = (table.cost_usd[:, cloud] - table.cost_usd[:, device])[order]
    Wo = W[:, order]
    x0 = W @ table.cost_usd[:, device] / total
    y0 = W @ table.quality[:, device] / total
    x = np.c_[x0, x0[:, None] + np.cumsum(Wo * dc, axis=1)[:, ends - 1] / total[:, None]]
    y = np.c_[y0, y0[:, None] + np.cumsum(Wo * dq, axis=1)[:, ends - 1] / total[:, None]]
    return _hull_aiq(x, y, table, W)


def _hull_aiq(x: np.ndarray, y: np.ndarray, table: ModelTable, W: np.ndarray) -> np.ndarray:
    """Per weight row: the area over the normalised cost range [0, 1] of the non-decreasing convex
    hull of the (mean cost USD, mean quality) points (B, m)."""
    _, lo, hi = _cost_range(table, W)
    xn = _normalise(x, lo, hi)  # may pass 0 or 1 where a row's device is dearer than its cloud
    sort = np.argsort(xn, axis=1, kind="stable")
    _, hx, hy, top = hull_areas(np.take_along_axis(xn, sort, 1), np.take_along_axis(y, sort, 1))
    last = np.arange(hx.shape[1])[None, :] >= top[:, None]  # past the hull's end: its last vertex
    end = top[:, None] - 1
    hx = np.where(last, np.take_along_axis(hx, end, 1), hx)
    hy = np.where(last, np.take_along_axis(hy, end, 1), hy)
    return area_on_unit(hx, hy)  # the hull's area over the cost range [0, 1] only


def tier_policy_aiq(settings: list, qualities: np.ndarray, allowed: np.ndarray, table: ModelTable,
                    W: np.ndarray) -> np.ndarray:
    """AIQ of an N-model policy swept over its ``settings`` (runtime cores, e.g. cost_aware at
    each λ of a grid), per weight row: each setting's tiers on these rows (a row that may not leave
    the device on tier 0) give one (mean cost, mean quality) point; the area is that of the points'
    non-decreasing convex hull, as for the two-model policies (``policy_aiq``)."""
    n = qualities.shape[0]
    tiers = np.column_stack([np.asarray(core.choose(qualities), dtype=np.int64) for core in settings])
    tiers[~allowed] = table.names.index("device")
    rows = np.arange(n)[:, None]
    total = W.sum(axis=1)[:, None]
    x = W @ table.cost_usd[rows, tiers] / total
    y = W @ table.quality[rows, tiers] / total
    return _hull_aiq(x, y, table, W)
