"""N-model policies: ``cost_aware`` (argmax predicted quality − λ · price) and ``tier_cascade``
(the first tier in price order whose predicted quality reaches its threshold).

Both score with a per-model quality router (``router_lab.train.quality``: ``context.router`` when it
is one, else trained here on the train split with the run's `router` group's estimator, the
default without one) and ship the runtime kinds
of the same names (``router_lab.runtime.tiers``).  Prices: each model's mean cost per call on the
train split (the card's ``price_usd_per_call``, or its cost column); a two-model dataset without
any cost gets prices (0, 1), so cost is the cloud fraction and ``cost_aware`` is a threshold policy
on q̂_cloud − q̂_device (the special case).  A dataset with more than two models and an unknown cost
is refused in one line.

λ is set in the config as ``lam``, in quality per *dearest-model call* (λ_usd = lam / the dearest
model's price, so one setting means the same on every price scale), or chosen for a budget:
``budget_usd_per_request`` picks, on the val split, the λ with the best quality whose mean cost
per request fits the budget.  ``tier_cascade``'s thresholds come from the config (``thresholds``,
one per tier but the last, in price order) or are chosen on val: one common threshold, the best
val quality within the budget when one is set, else the best val quality − lam · normalised cost.

``mode`` is the quality router's feature mode.  ``input+confidence`` (the default where the
dataset has the device's confidence columns) makes the policy a cascade: the device answers first
(route CASCADE) and the tier is chosen after it, from the inputs and the device's confidence — the
N-model form of ``learned_cascade``, the one `evaluate` compares with the cascades.  ``input``
pre-routes (the tier is chosen before the device runs: no device time for requests that leave).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from router_lab.errors import RouterLabError
from router_lab.policies.base import Policy, PolicyContext
from router_lab.policies.config import PolicyConfig
from router_lab.policies.registry import register_policy
from router_lab.policies.seeds import child_seed
from router_lab.runtime.policy import Request, Route
from router_lab.runtime.tiers import TierPolicy, runs_after_device


@dataclass
class CostAwarePolicyConfig(PolicyConfig):
    name: str = "cost_aware"
    lam: float = 0.05  # λ: quality worth one call of the dearest model (ignored with a budget)
    budget_usd_per_request: float | None = None  # choose λ on val: best quality within this mean cost
    mode: str | None = None  # quality router inputs: input | input+confidence (a cascade) | text; None: see above


@dataclass
class TierCascadePolicyConfig(PolicyConfig):
    name: str = "tier_cascade"
    thresholds: list[float] | None = None  # one per tier but the last, in price order; None: chosen on val
    lam: float = 0.05  # choosing on val without a budget: best quality − lam · normalised cost
    budget_usd_per_request: float | None = None  # choosing on val: best quality within this mean cost
    mode: str | None = None  # quality router inputs: input | input+confidence (a cascade) | text; None: see above


def model_prices(context: PolicyContext, rows: np.ndarray) -> np.ndarray:
    """Each model's price per call (mean cost over ``rows``), in tier order; see the module docstring."""
    dataset = context.dataset
    costs = [dataset.cost(m) for m in dataset.models]
    if all(c is None for c in costs) and len(dataset.models) == 2:
        return np.array([0.0, 1.0])  # no prices: cost = the cloud fraction (the two-model axis)
    missing = [m for m, c in zip(dataset.models, costs, strict=True) if c is None]
    if missing:
        raise RouterLabError(f"{dataset.source}: model {missing[0]!r} has no cost column and no "
                             "price_usd_per_call; cost-aware routing needs every model's cost")
    return np.array([float(c[rows].mean()) for c in costs])


def lambda_grid(Q: np.ndarray, prices: np.ndarray, size: int = 400) -> list[float]:
    """λ (USD) values where some row of predicted qualities ``Q`` changes its choice (quantiles of
    them), plus 0 and a λ at which every row takes the cheapest model; largest (cheapest) first."""
    dq = Q[:, :, None] - Q[:, None, :]
    dp = prices[:, None] - prices[None, :]
    slopes = np.where(dp[None] > 0, dq / np.where(dp > 0, dp, 1.0)[None], np.nan)
    slopes = slopes[np.isfinite(slopes) & (slopes > 0)]
    top = float(slopes.max()) * 2 + 1.0 / float(prices.max()) if slopes.size else 1.0
    inner = np.quantile(slopes, np.linspace(0, 1, size)) if slopes.size else np.array([])
    return sorted({0.0, top, *map(float, inner)}, reverse=True)


def threshold_grid(Q: np.ndarray, size: int = 200) -> list[float]:
    """Common thresholds: quantiles of the predicted qualities, plus one above them all (every
    request to the dearest tier) and the lowest (every request to the cheapest); lowest first."""
    q = Q.ravel()
    inner = np.quantile(q, np.linspace(0, 1, size)) if q.size else np.array([0.5])
    return sorted({float(q.min(initial=0.0)), *map(float, inner), float(q.max(initial=1.0)) + 1.0})


def sweep_settings(kind: str, models: tuple[str, ...], prices: np.ndarray, Q: np.ndarray) -> list[TierPolicy]:
    """The runtime cores an offline sweep of ``kind`` runs over (its AIQ curve): cost_aware at each λ
    of :func:`lambda_grid`, tier_cascade at each common threshold of :func:`threshold_grid`."""
    from router_lab.runtime.tiers import CostAwarePolicy as CostCore
    from router_lab.runtime.tiers import TierCascadePolicy as CascadeCore

    if kind == "cost_aware":
        return [CostCore(models, prices, lam) for lam in lambda_grid(Q, prices)]
    return [CascadeCore(models, prices, [t] * (len(models) - 1)) for t in threshold_grid(Q)]


def tier_routes(core: TierPolicy, Q: np.ndarray, pinned: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An N-model core's routes and tiers for rows of predicted qualities ``Q``: pre-routing, LOCAL
    for tier 0 and CLOUD otherwise; a cascade, CASCADE (LOCAL when pinned) with the tier chosen
    after the device (0: the device's answer stands).  Pinned rows get tier 0."""
    tiers = core.decide_tiers_batch(Q, pinned)
    if core.cascade:
        return np.where(pinned, Route.LOCAL, Route.CASCADE).astype(np.int8), tiers
    return np.where(tiers == 0, Route.LOCAL, Route.CLOUD).astype(np.int8), tiers


def tier_escalations(core: TierPolicy, Q: np.ndarray, pinned: np.ndarray) -> np.ndarray:
    """A cascade core's CASCADE routes that go on to a remote tier (their chosen tier is not 0)."""
    pinned = np.asarray(pinned, dtype=bool)
    return np.asarray(core.escalate_batch(Q, pinned), dtype=bool) & ~pinned


class TieredPolicy(Policy):
    """The shared part: the quality table, the prices, the val split, tiers per row."""

    kind: ClassVar[str] = ""

    def __init__(self, context: PolicyContext, lam: float, budget_usd_per_request: float | None,
                 mode: str | None) -> None:
        super().__init__(context)
        from router_lab.train.fit import with_splits
        from router_lab.train.quality import QualityRouter, train_quality_router

        if not np.isfinite(lam) or lam < 0:
            raise RouterLabError(f"policy.lam: got {lam}; expected a finite number >= 0")
        if budget_usd_per_request is not None and not (np.isfinite(budget_usd_per_request)
                                                       and budget_usd_per_request >= 0):
            raise RouterLabError(f"policy.budget_usd_per_request: got {budget_usd_per_request}; expected "
                                 "a finite number >= 0 or null")
        dataset = context.dataset
        split_seed = child_seed(context.rng)
        split_ds = with_splits(dataset, split_seed)
        router = context.router
        if isinstance(router, QualityRouter):
            if mode is not None and mode != router.mode:
                raise RouterLabError(f"policy.mode: got {mode!r} but the quality router given was trained in "
                                     f"mode {router.mode!r}; drop policy.mode or train one for {mode!r}")
        else:  # trained here (a text-only dataset: the text router's heads)
            from router_lab.features import offered_modes, quality_default_mode

            mode = quality_default_mode(dataset) if mode is None else mode
            if mode not in offered_modes():
                raise RouterLabError(f"policy.mode: got {mode!r}; expected one of {', '.join(offered_modes())} or null")
            router = train_quality_router(split_ds, {"name": "text"} if mode.startswith("text") else context.router_cfg,
                                          child_seed(context.rng), mode=mode)
        self.router = router
        self.cascade = runs_after_device(router.mode)  # the device's confidence is an input: it answers first
        self.lam_norm = float(lam)
        self.budget = None if budget_usd_per_request is None else float(budget_usd_per_request)
        train = np.flatnonzero(split_ds.split_mask("train"))
        self.val_rows = np.flatnonzero(split_ds.split_mask("val"))
        self.prices = model_prices(context, train if train.size else np.arange(len(dataset)))
        if not self.prices.max() > self.prices.min():
            raise RouterLabError(f"{dataset.source}: every model costs the same "
                                 f"({self.prices.max():g} USD); cost-aware routing needs a cheaper model")

    @cached_property
    def quality_table(self) -> np.ndarray:
        """Predicted quality of every model for every dataset row (n, M)."""
        return self.router.qualities_for(self.context.dataset)

    def _all_scores(self) -> np.ndarray:
        """The two-model score (the sweep of the two-model metrics): q̂_cloud − q̂_device."""
        Q, models = self.quality_table, self.models
        return Q[:, models.index("cloud")] - Q[:, models.index("device")]

    def params(self) -> dict[str, Any]:
        raise NotImplementedError

    def node(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": {"models": list(self.models), "prices_usd": [float(p) for p in self.prices],
                                              **self.params(), "cascade": self.cascade}}

    # -- choosing on val ------------------------------------------------------------------------
    def val_outcome(self, core: TierPolicy) -> tuple[float, float]:
        """(mean quality, mean cost USD) of ``core``'s tiers on the val rows (sensitive: tier 0)."""
        rows = self.val_rows
        if rows.size == 0:
            raise RouterLabError(f"{self.context.dataset.source}: the 'val' split is empty; policy "
                                 f"{self.name} chooses its setting on val")
        tiers = core.choose(self.quality_table[rows]).astype(np.int64)
        tiers[self.pinned(rows)] = 0
        picked = np.arange(len(rows)), tiers
        return float(self.val_quality[picked].mean()), float(self.prices[tiers].mean())

    @cached_property
    def val_quality(self) -> np.ndarray:
        """The val rows' real quality of every model (n_val, M)."""
        dataset = self.context.dataset
        return np.column_stack([dataset.quality(m)[self.val_rows] for m in self.models])

    def pick(self, candidates: list[TierPolicy]) -> TierPolicy:
        """The candidate (cheapest first) with the best val quality within the budget, or (no
        budget) the best val quality − lam · cost normalised by the dearest price; ties: the first."""
        outcomes = [self.val_outcome(c) for c in candidates]
        if self.budget is not None:
            fits = [i for i, (_, cost) in enumerate(outcomes) if cost <= self.budget + 1e-15]
            if not fits:
                cheapest = min(cost for _, cost in outcomes)
                raise RouterLabError(f"policy.budget_usd_per_request: got {self.budget:g}; the cheapest "
                                     f"setting of {self.name} costs {cheapest:g} USD per request on val")
            return candidates[max(fits, key=lambda i: (outcomes[i][0], -i))]
        top = float(self.prices.max())
        value = [q - self.lam_norm * cost / top for q, cost in outcomes]
        return candidates[int(np.argmax(value))]

    # -- decisions ------------------------------------------------------------------------------
    def requests(self, rows: np.ndarray, sensitive: np.ndarray, sessions: list | None = None) -> list[Request]:
        """Runtime requests whose score is the vector of predicted qualities (one per model)."""
        Q = self.quality_table[np.asarray(rows, dtype=np.int64)]
        sessions = sessions if sessions is not None else [None] * len(Q)
        return [Request(score=q, sensitive=p, session_id=se)
                for q, p, se in zip(Q.tolist(), np.asarray(sensitive, dtype=bool).tolist(), sessions, strict=True)]

    def tiers(self, indices: np.ndarray) -> np.ndarray:
        return self.decide_tiers(indices)[1]

    def decide_tiers(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(indices, dtype=np.int64)
        return tier_routes(self.core, self.quality_table[indices], self.pinned(indices))

    def escalate(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        return tier_escalations(self.core, self.quality_table[indices], self.pinned(indices))

    def decide_batch(self, indices: np.ndarray) -> np.ndarray:
        return self.decide_tiers(indices)[0]


@register_policy("cost_aware", schema=CostAwarePolicyConfig, n_models=True,
                 summary="N models: argmax predicted quality - lambda * price (lambda set or chosen for a budget)")
class CostAwarePolicy(TieredPolicy):
    """N models: the model maximising predicted quality − λ · price; λ from ``lam`` or chosen on
    val for ``budget_usd_per_request``."""

    kind = "cost_aware"

    def __init__(self, context: PolicyContext, lam: float, budget_usd_per_request: float | None,
                 mode: str | None) -> None:
        super().__init__(context, lam, budget_usd_per_request, mode)
        top = float(self.prices.max())
        if self.budget is None:
            self.lam_usd = self.lam_norm / top
        else:  # candidate λ: every val row's own switch points, largest (cheapest) first
            self.lam_usd = self.pick([self._core(lam) for lam in self.lambda_grid(self.val_rows)]).lam

    def _core(self, lam_usd: float) -> TierPolicy:
        from router_lab.runtime.tiers import CostAwarePolicy as Core

        return Core(self.models, self.prices, lam_usd)

    def lambda_grid(self, rows: np.ndarray) -> list[float]:
        return lambda_grid(self.quality_table[rows], self.prices)

    def params(self) -> dict[str, Any]:
        return {"lambda": float(self.lam_usd)}


@register_policy("tier_cascade", schema=TierCascadePolicyConfig, n_models=True,
                 summary="N models: the first tier in price order whose predicted quality >= its threshold")
class TierCascadePolicy(TieredPolicy):
    """N models, a predictive cascade: the cheapest tier whose predicted quality reaches its
    threshold answers, else the dearest (thresholds set, or one common threshold chosen on val)."""

    kind = "tier_cascade"

    def __init__(self, context: PolicyContext, thresholds: list[float] | None, lam: float,
                 budget_usd_per_request: float | None, mode: str | None) -> None:
        super().__init__(context, lam, budget_usd_per_request, mode)
        n = len(self.models) - 1
        if thresholds is not None:
            values = [float(t) for t in thresholds]
            if len(values) != n or not all(np.isfinite(values)):
                raise RouterLabError(f"policy.thresholds: got {list(thresholds)}; expected {n} finite numbers "
                                     "(one per tier but the last, in price order)")
            self.thresholds = values
        else:
            self.thresholds = list(self.pick([self._core([t] * n) for t in self.threshold_grid(self.val_rows)])
                                   .thresholds.tolist())

    def _core(self, thresholds: list[float]) -> TierPolicy:
        from router_lab.runtime.tiers import TierCascadePolicy as Core

        return Core(self.models, self.prices, thresholds)

    def threshold_grid(self, rows: np.ndarray) -> list[float]:
        return threshold_grid(self.quality_table[rows])

    def params(self) -> dict[str, Any]:
        return {"thresholds": [float(t) for t in self.thresholds]}
