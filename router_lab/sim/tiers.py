"""The remote tiers of a run: which dataset model each serves, its own draws, and the fallback order.

A scenario without ``tiers`` has one remote tier, today's ``network`` + ``cloud``, serving the model
named ``cloud``.  With ``tiers``, each configured tier serves its ``model``; the model named ``cloud``
is still served by ``network`` + ``cloud`` unless a tier claims it.  Tiers are ordered as the
dataset's models (tier order, 0 = the device): a failed remote attempt falls back to the next
cheaper tier that serves a model (then that tier's network and station decide again), finally the
device.  Each extra tier draws its network and service times from its own seed (the run's seed
spawned past the base streams), so adding a tier never changes the other tiers' draws.
``deployment=every_model`` (:func:`with_every_model`) gives every remote model no tier serves a tier
of one template preset, priced per request from the dataset where it knows the model's cost.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from router_lab.data.contract import Dataset, ModelSpec, model_column
from router_lab.errors import RouterLabError
from router_lab.sim.config import TierConfig
from router_lab.sim.draws import (
    Draws,
    Outages,
    RowSizes,
    cloud_times_ns,
    network_times_ns,
    retry_ns,
    sample_pool,
    seed_sequence,
    timeout_ns,
)
from router_lab.sim.scenario import MAX_ATTEMPTS_TOTAL, Scenario, validate

BASE_STREAMS = 6  # draws.draw spawns this many generators; tier k uses child BASE_STREAMS + k


@dataclass(frozen=True)
class Tier:
    """One remote tier of a run: its model's index in ``dataset.models`` and its own scenario
    (``network`` and ``cloud`` replaced by the tier's), and its draws."""

    index: int  # into dataset.models (>= 1)
    name: str  # the config key (``cloud`` for the base network + cloud)
    sc: Scenario
    draws: Draws
    timeout_ns: int | None
    retry_ns: int


def with_every_model(sc: Scenario, dataset: Dataset) -> Scenario:
    """``sc`` with a tier of ``sc.every_model`` (the template preset) for every remote model of
    ``dataset`` that no configured tier serves — ``cloud`` included, so every model is billed at the
    dataset's price and ``network`` + ``cloud`` then serve nothing; unchanged without a template.
    Each generated tier is named by its model and priced per request from the dataset when it
    knows that model's cost."""
    template = sc.every_model
    if template is None:
        return sc
    claimed = {t.model for t in sc.tiers}
    pool = sample_pool(dataset, sc.sim.split)
    added = tuple(_model_tier(template, spec, dataset, pool) for spec in dataset.model_specs[1:]
                  if spec.name not in claimed)
    _check_attempts(sc, template, len(added))
    return validate(replace(sc, tiers=(*sc.tiers, *added), every_model=None))


def model_price_usd(dataset: Dataset, spec: ModelSpec, rows: np.ndarray) -> float | None:
    """A model's price per request as the dataset knows it: the card's ``price_usd_per_call``, else
    the mean of its cost column over ``rows`` (the rows a run samples), else None (unknown)."""
    if spec.price_usd_per_call is not None:
        return float(spec.price_usd_per_call)
    column = model_column(spec.name, "cost_usd")
    if column not in dataset.frame.columns:
        return None
    return float(dataset.frame[column].to_numpy(dtype=np.float64)[rows].mean())


def _model_tier(template: TierConfig, spec: ModelSpec, dataset: Dataset, rows: np.ndarray) -> TierConfig:
    """The template's tier for ``spec``'s model: the dataset's price per request when known (no
    token prices then: the dataset's cost is the whole bill), else the template's prices."""
    price = model_price_usd(dataset, spec, rows)
    cloud = template.cloud if price is None else replace(
        template.cloud, cost_per_request_usd=price, cost_per_1k_input_tokens_usd=0.0,
        cost_per_1k_output_tokens_usd=0.0)
    return replace(template, name=spec.name, model=spec.name, cloud=cloud)


def _check_attempts(sc: Scenario, template: TierConfig, n_added: int) -> None:
    """A one-line error when the generated tiers' upload attempts, with every other tier's, would
    not fit the records' int8 counter (a request may try every remote tier once)."""
    others = sc.network.max_retries + 1 + sum(t.network.max_retries + 1 for t in sc.tiers)
    if others + n_added * (template.network.max_retries + 1) <= MAX_ATTEMPTS_TOTAL:
        return
    fit = (MAX_ATTEMPTS_TOTAL - others) // n_added - 1
    expected = f"at most {fit}" if fit >= 0 else "fewer tiers (even 0 retries do not fit)"
    raise RouterLabError(f"every_model.network.max_retries: got {template.network.max_retries}; expected "
                         f"{expected} for the {n_added} generated tiers (every tier's attempts together, "
                         f"max_retries + 1 each, at most {MAX_ATTEMPTS_TOTAL})")


def tier_scenarios(sc: Scenario, dataset: Dataset) -> dict[int, tuple[str, Scenario]]:
    """Model index -> (tier name, the tier's scenario), for every model a remote tier serves."""
    models = dataset.models
    out: dict[int, tuple[str, Scenario]] = {}
    for t in sc.tiers:
        if t.model not in models:
            raise RouterLabError(f"tiers.{t.name}.model: got {t.model!r}; expected one of the dataset's models "
                                 f"({', '.join(models[1:])})")
        out[models.index(t.model)] = (t.name, replace(sc, network=t.network, cloud=t.cloud, tiers=()))
    if "cloud" in models and models.index("cloud") not in out:
        out[models.index("cloud")] = ("cloud", replace(sc, tiers=()))
    return dict(sorted(out.items()))


def tier_draws(base: Draws, sc: Scenario, dataset: Dataset, seed: int | np.random.SeedSequence,
               index: int) -> Draws:
    """Tier ``index``'s network and service draws (its own streams), sharing the base's arrivals,
    rows and device service times."""
    ss = seed_sequence(seed)
    child = np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, BASE_STREAMS + index))
    g_network, g_outage, g_cloud = child.spawn(3)
    sizes = RowSizes.of(dataset)
    uplink_ns, attempts, failed, downlink_ns = network_times_ns(sc, sizes, base.row, np.random.default_rng(g_network))
    service = cloud_times_ns(sc, sizes, base.row, np.random.default_rng(g_cloud))
    outages = Outages(sc.network, g_outage)
    outages.cover(int(base.arrival_ns[-1]))
    return Draws(base.arrival_ns, base.row, base.device_service_ns, uplink_ns, attempts, failed, downlink_ns,
                 service, outages)


def build_tiers(sc: Scenario, dataset: Dataset, base: Draws, seed: int | np.random.SeedSequence) -> list[Tier]:
    """The run's remote tiers in tier order; the one serving ``cloud`` from the base scenario uses
    the base draws (so a tiered run's cloud sees what the two-tier run's cloud sees)."""
    tiers = []
    for index, (name, tsc) in tier_scenarios(sc, dataset).items():
        draws = base if not tsc.tiers and tsc.network is sc.network and tsc.cloud is sc.cloud else \
            tier_draws(base, tsc, dataset, seed, index)
        tiers.append(Tier(index, name, tsc, draws, timeout_ns(tsc), retry_ns(tsc)))
    return tiers


def check_routed(tiers: list[Tier], chosen: np.ndarray, models: tuple[str, ...]) -> None:
    """A one-line error when the policy sends requests to a model no tier serves."""
    served = {t.index for t in tiers} | {0}
    missing = sorted(set(np.unique(chosen).tolist()) - served)
    if missing:
        k = int(missing[0])
        name = models[k] if 0 <= k < len(models) else str(k)
        raise RouterLabError(f"tiers: the policy routes to model {name!r} but no tier serves it; add one "
                             f"(e.g. +tier@tiers.{name}=<preset> tiers.{name}.model={name})")


def tier_view(tiers: tuple[Tier, ...] | list[Tier], tier: np.ndarray, base: Draws) -> Draws:
    """Per request, the draws of its last remote tier (the base draws where it never left)."""
    columns = {}
    for name in ("uplink_ns", "uplink_attempts", "uplink_failed", "downlink_ns", "cloud_service_ns"):
        column = getattr(base, name).copy()
        for t in tiers:
            mine = np.flatnonzero(tier == t.index)
            column[mine] = getattr(t.draws, name)[mine]
        columns[name] = column
    return replace(base, **columns)
