"""N-model (tier) decision rules that ship: ``cost_aware`` and ``tier_cascade`` (numpy/stdlib only).

Both read a vector of predicted qualities, one per model of ``models`` (tier order, 0 = the
device), from ``Request.score`` (a sequence of M numbers when the caller computed it) or from the
scorer (the bundle's router graph, output [n, M]), and answer a
:class:`~router_lab.runtime.policy.TierDecision`: route LOCAL for tier 0, CLOUD for any other tier
(the app sends the request to ``models[tier]``), the chosen model's predicted quality as the score.
A sensitive request stays on tier 0 (the base class pins it).

* :class:`CostAwarePolicy` — argmax over m of q̂_m − λ · price_m (CARROT-style: predict each
  model's quality, price each call, take the best trade-off); ties go to the cheaper tier.
* :class:`TierCascadePolicy` — a *predictive* cascade: the first tier in price order whose predicted
  quality reaches its threshold answers, else the last (dearest) tier.  FrugalGPT (Chen et al., 2023)
  cascades by *calling* each model in price order and scoring its answer before deciding to go on,
  which costs one round trip (and one call's price) per tier tried and needs a scorer of answers
  wherever the cascade runs.  Here the decision is made before any call, from one graph on the
  device that predicts every tier's quality at once: no round trips, one call per request, and the
  rule is stateless (batchable, replayable).  The price is that it cannot see the answer.

Either rule can run *after the device* (``cascade``: policy.json ``params.cascade``, default false):
``decide`` then answers CASCADE (the device answers first) and ``escalate(request)`` — with the
request's features now including the device's confidence, or its quality vector as the score —
answers the TierDecision: tier 0 keeps the device's answer, any other tier sends the request on to
``models[tier]``.  This is how a quality router of mode ``input+confidence`` ships, like
``learned_cascade`` for two models.

With two models, (device, cloud), ``cost_aware`` is the special case of a threshold policy: it sends
to the cloud when q̂_cloud − q̂_device > λ · (price_cloud − price_device), i.e. a threshold on the
score q̂_cloud − q̂_device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from router_lab.runtime.policy import (
    CASCADE,
    CLOUD,
    LOCAL,
    NAN,
    Decision,
    Request,
    RoutingPolicy,
    Scorer,
    Signals,
    TierDecision,
)


def _finite_list(value: Any, low: float | None = None) -> bool:
    if not isinstance(value, list | tuple) or not value:
        return False
    return all(not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)
               and (low is None or v >= low) for v in value)


MODELS_CHECK = (lambda v: isinstance(v, list | tuple) and len(v) >= 2 and len(set(v)) == len(v)
                and all(isinstance(m, str) and m for m in v),
                "a list of at least two distinct model names, in tier order")
PRICES_CHECK = (lambda v: _finite_list(v, 0.0), "a list of finite prices >= 0 (USD per call), one per model")
LAMBDA_CHECK = (lambda v: not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v) and v >= 0,
                "a finite number >= 0 (quality per USD)")
THRESHOLDS_CHECK = (lambda v: _finite_list(v), "a list of finite numbers, one per tier but the last")
CASCADE_CHECK = (lambda v: isinstance(v, bool), "true (the device answers first, the tier is chosen after it) or false")


def runs_after_device(mode: str) -> bool:
    """Whether a quality router of feature ``mode`` reads the device's confidence, so that a rule
    scoring with it is a cascade (the device answers first): ``input+confidence``."""
    return "confidence" in str(mode)


def check_lengths(params: dict[str, Any]) -> str | None:
    """A cross-field problem of a tier kind's params (one line), or None."""
    n = len(params["models"])
    if len(params["prices_usd"]) != n:
        return f"'prices_usd' has {len(params['prices_usd'])} prices for {n} models; expected one per model"
    if "thresholds" in params and len(params["thresholds"]) != n - 1:
        return (f"'thresholds' has {len(params['thresholds'])} values for {n} models; expected one per "
                "tier but the last")
    return None


class TierPolicy(RoutingPolicy):
    """Base of the N-model rules: the quality vector of a request, batches of tiers."""

    uses_score = True

    def __init__(self, models: Sequence[str], prices_usd: Sequence[float], scorer: Scorer | None = None,
                 cascade: bool = False) -> None:
        super().__init__(scorer)
        self.models = tuple(str(m) for m in models)  # type: ignore[misc] - per instance
        self.prices = np.asarray(prices_usd, dtype=np.float64)
        self.cascade = bool(cascade)  # type: ignore[misc] - per instance: the tier is chosen after the device
        self.uses_score = not self.cascade  # type: ignore[misc] - a cascade scores after the device

    def qualities(self, request: Request) -> np.ndarray:
        """The request's predicted quality per model (``Request.score`` or the scorer)."""
        value = request.score if request.score is not None else None
        if value is None:
            if self.scorer is None:
                raise ValueError(f"policy {self.kind!r} needs the predicted quality of each model: pass "
                                 "Request.score (one per model) or load the policy from a bundle")
            value = self.scorer(request)
        q = np.asarray(value, dtype=np.float64).reshape(-1)
        if q.shape != (len(self.models),):
            raise ValueError(f"policy {self.kind!r}: got {q.size} predicted qualities; expected one per "
                             f"model ({', '.join(self.models)})")
        return q

    def choose(self, Q: np.ndarray) -> np.ndarray:
        """The tier (int8) per row of predicted qualities (n, M)."""
        raise NotImplementedError

    def _tier_decision(self, q: np.ndarray) -> TierDecision:
        tier = int(self.choose(q[None, :])[0])
        return TierDecision(LOCAL if tier == 0 else CLOUD, float(q[tier]), self.kind, tier)

    def _decide(self, request: Request, signals: Signals, pinned: bool) -> Decision:
        if self.cascade:  # the device answers first; escalate() picks the tier
            return TierDecision(CASCADE, NAN, "cascade", 0)  # type: ignore[return-value]
        return self._tier_decision(self.qualities(request))  # type: ignore[return-value]

    def escalate(self, request: Request, score: Any = None) -> Decision:
        """After a CASCADE route's device answer: the TierDecision on the request's quality vector
        (``score``, else ``Request.score``, else the bundle's router on ``request.features``, which
        then include the device's confidence); tier 0 keeps the device's answer.  A sensitive
        request (or session) stays on tier 0.  A rule that is not a cascade never escalates."""
        with self._lock:
            pin = self._pin_reason(request)
            if not self.cascade:
                return TierDecision(LOCAL, NAN, self.kind, 0)  # type: ignore[return-value]
            q = self.qualities(request if score is None else request._replace(score=score))
            if pin is not None:  # (decide pinned it already and counted it)
                return TierDecision(LOCAL, float(q[0]), pin, 0)  # type: ignore[return-value]
            return self._tier_decision(q)  # type: ignore[return-value]

    def _decide_batch(self, scores: np.ndarray | None, n: int) -> np.ndarray:
        if self.cascade:
            return np.full(n, CASCADE, dtype=np.int8)
        tiers = self.choose(np.asarray(scores, dtype=np.float64).reshape(n, len(self.models)))
        return np.where(tiers == 0, LOCAL, CLOUD).astype(np.int8)

    def escalate_batch(self, scores: np.ndarray | None, pinned: np.ndarray) -> np.ndarray:
        """Whether each CASCADE request goes on to a remote tier (vectorised ``escalate``): its
        chosen tier is not the device's."""
        pinned = np.asarray(pinned, dtype=bool)
        if not self.cascade or scores is None:
            return np.zeros(len(pinned), dtype=bool)
        tiers = self.choose(np.asarray(scores, dtype=np.float64).reshape(len(pinned), len(self.models)))
        return (tiers != 0) & ~pinned

    def decide_tiers_batch(self, qualities: np.ndarray, pinned: np.ndarray) -> np.ndarray:
        """Tiers (int8) for many requests: exactly what ``decide(...).tier`` gives one by one (a
        cascade: ``escalate(...).tier``, after the device), with pinned (sensitive) requests on
        tier 0; counted like ``decide_batch``."""
        pinned = np.asarray(pinned, dtype=bool)
        with self._lock:
            tiers = np.asarray(self.choose(np.asarray(qualities, dtype=np.float64)
                                           .reshape(len(pinned), len(self.models))), dtype=np.int8).copy()
            self.n_decided += len(pinned)
            self.n_pinned += int(pinned.sum())
            self.n_blocked += int((pinned if self.cascade else pinned & (tiers != 0)).sum())  # as decide counts
            tiers[pinned] = 0
            return tiers

    def _state(self) -> dict[str, Any]:
        return {"models": list(self.models), "cascade": self.cascade}


class CostAwarePolicy(TierPolicy):
    """argmax_m q̂_m − λ · price_m; ties go to the cheaper tier (then the lower tier)."""

    kind = "cost_aware"

    def __init__(self, models: Sequence[str], prices_usd: Sequence[float], lam: float,
                 scorer: Scorer | None = None, cascade: bool = False) -> None:
        super().__init__(models, prices_usd, scorer, cascade)
        self.lam = float(lam)
        self._order = np.lexsort((np.arange(len(self.prices)), self.prices))  # cheapest first

    def choose(self, Q: np.ndarray) -> np.ndarray:
        utility = Q - self.lam * self.prices[None, :]
        best = np.argmax(utility[:, self._order], axis=1)  # first maximum: the cheapest of the ties
        return self._order[best].astype(np.int8)

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "lambda": self.lam}


class TierCascadePolicy(TierPolicy):
    """The first tier in price order whose predicted quality >= its threshold, else the last
    (``thresholds[k]`` belongs to the k-th cheapest model; ties in price: the lower tier first)."""

    kind = "tier_cascade"

    def __init__(self, models: Sequence[str], prices_usd: Sequence[float], thresholds: Sequence[float],
                 scorer: Scorer | None = None, cascade: bool = False) -> None:
        super().__init__(models, prices_usd, scorer, cascade)
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self._order = np.lexsort((np.arange(len(self.prices)), self.prices))  # price order

    def choose(self, Q: np.ndarray) -> np.ndarray:
        n = Q.shape[0]
        order = self._order
        tiers = np.full(n, order[-1], dtype=np.int8)
        undecided = np.ones(n, dtype=bool)
        for step, tier in enumerate(order[:-1]):  # thresholds[k]: the k-th cheapest tier's
            ok = undecided & (Q[:, tier] >= self.thresholds[step])
            tiers[ok] = tier
            undecided &= ~ok
        return tiers

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "thresholds": self.thresholds.tolist()}
