"""`router-lab replay RUN_DIR bundle=PATH`: a simulate run's requests through a shipped bundle.

Proof that the simulated policy is the shipped policy.  For every replication of the run, a fresh
policy loaded from the bundle gets the run's requests in arrival order — each request's own
features or text (scored by the bundle's router, one request at a time, as on a device), its
sensitive flag and session — with the signals the simulated decision saw, and, before each
decision, the same feedback the simulator gave it (everything learned strictly before that
instant, in the order (time, failures before finishes, request number)).  Its routes (and a
cascade's escalations) are compared with the run's, and for an N-model bundle the tier (by model
name) with the tier the run decided (``decided_tier``, before any fallback): a pre-routing policy's
at its decision, a cascade's at its escalation, after the device; ``replay.json`` counts the
mismatches and the command exits 2 when there is any.
"""

from __future__ import annotations

import heapq
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra.utils import to_absolute_path
from omegaconf import OmegaConf

from router_lab.constants import CONFIG_FILE, METRICS_FILE, REQUESTS_FILE
from router_lab.data.builders import resolve_dataset
from router_lab.errors import RouterLabError
from router_lab.features import exported_router_inputs
from router_lab.io import atomic_write_json, run_dir
from router_lab.runtime.bundle import Bundle, load_bundle
from router_lab.runtime.policy import IDLE, Outcome, Request, Route, Signals, decision_tier
from router_lab.sim.core import FAIL, FINISH, session_lookup
from router_lab.sim.draws import NS_PER_MS, NS_PER_S

REPLAY_FILE = "replay.json"
ANSWERED_BY = {"local": "local", "fallback": "local", "cloud": "cloud", "cascade": "cloud"}
ESCALATED = ("cascade", "fallback")  # a cascade that asked the cloud (answered, or fell back)


def read_run(folder: Path) -> tuple[Any, pd.DataFrame, dict[str, Any]]:
    """The run's composed config, its requests and its metrics (one-line errors naming the file)."""
    for name in (CONFIG_FILE, REQUESTS_FILE, METRICS_FILE):
        if not (folder / name).is_file():
            raise RouterLabError(f"{folder / name}: no such file; expected the folder of a "
                                 "'router-lab simulate' run")
    import json

    try:
        run_cfg = OmegaConf.load(folder / CONFIG_FILE)
        frame = pd.read_parquet(folder / REQUESTS_FILE)
        metrics = json.loads((folder / METRICS_FILE).read_text(encoding="utf-8"))
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's
        raise RouterLabError(f"{folder}: cannot read the run's files ({type(exc).__name__}); expected a "
                             "complete 'router-lab simulate' run") from exc
    needed = {"replication", "row", "route", "outcome", "sensitive", "decided_ns", "end_ns", "arrival_s",
              "cost_usd"}
    missing = sorted(needed - set(frame.columns))
    if missing:
        raise RouterLabError(f"{folder / 'requests.parquet'}: lacks column {missing[0]!r}; re-run the "
                             "simulation with this version of router_lab")
    return run_cfg, frame, metrics


def request_inputs(bundle: Bundle, dataset: Any) -> tuple[Any, np.ndarray | None]:
    """Per dataset row: what the bundle's router reads (features or text), and for a confidence
    cascade the score the device would report (1 - its confidence)."""
    scoring = bundle.policy_spec["scoring"]
    if scoring["source"] == "router":
        router = bundle.router
        return exported_router_inputs(dataset, router.metadata, router.source), None
    if scoring["source"] == "device_confidence":
        column = scoring.get("column", "device_confidence")
        if column not in dataset.frame.columns:
            raise RouterLabError(f"{dataset.source}: no column {column!r}; the bundle escalates on it")
        return None, 1.0 - dataset.frame[column].to_numpy(dtype=np.float64)
    return None, None


def learned_events(part: pd.DataFrame) -> list[tuple[int, int, int]]:
    """What the requesters learned, as the simulator queued it: (time, FAIL|FINISH, request)."""
    n = len(part)
    events = [(int(t), FINISH, i) for i, t in enumerate(part["end_ns"].to_numpy())]
    if "fail_ns" in part.columns:
        fail_ns = part["fail_ns"].to_numpy()
        events += [(int(fail_ns[i]), FAIL, i) for i in np.flatnonzero(fail_ns >= 0)]
    heapq.heapify(events)
    assert len(events) >= n
    return events


class _Columns:
    """One replication's requests.parquet columns, as numpy arrays (signals only if logged)."""

    def __init__(self, part: pd.DataFrame, models: tuple[str, ...] = ()) -> None:
        self.n = len(part)
        # tiered runs: the model each request was decided for (by name, to compare across bundles)
        self.decided_models = (np.asarray(models, dtype=object)[part["decided_tier"].to_numpy()]
                               if models and "decided_tier" in part.columns else None)
        self.rows = part["row"].to_numpy()
        self.routes = part["route"].astype(str).to_numpy()
        self.outcomes = part["outcome"].astype(str).to_numpy()
        self.sensitive = part["sensitive"].to_numpy(dtype=bool)
        self.decided = part["decided_ns"].to_numpy()
        self.end_ns = part["end_ns"].to_numpy()
        self.arrival_ns = np.rint(part["arrival_s"].to_numpy() * NS_PER_S).astype(np.int64)
        self.cost = part["cost_usd"].to_numpy()
        self.has_signals = "signal_local_queued" in part.columns
        if self.has_signals:
            self.busy = part["signal_local_in_flight"].to_numpy()
            self.queued = part["signal_local_queued"].to_numpy()
            self.up = part["signal_network_up"].to_numpy(dtype=bool)
            self.errors = part["fail_error"].astype(str).to_numpy()

    def signals(self, i: int) -> Signals:
        """What request ``i``'s decision saw (idle signals when the run logged none)."""
        if not self.has_signals:
            return IDLE
        return Signals(int(self.decided[i]) / NS_PER_S, int(self.busy[i]), int(self.queued[i]), bool(self.up[i]))


def _observe_before(policy: Any, events: list[tuple[int, int, int]], now: int, cols: _Columns) -> None:
    """Feed ``policy`` what requesters learned strictly before ``now``, as the simulator did."""
    while events and events[0][0] < now:
        t, kind, j = heapq.heappop(events)
        if kind == FAIL:
            policy.observe(Outcome(t / NS_PER_S, cloud_failed=True, error=str(cols.errors[j])))
            continue
        by = ANSWERED_BY.get(cols.outcomes[j])
        policy.observe(Outcome(t / NS_PER_S, latency_ms=(int(cols.end_ns[j]) - int(cols.arrival_ns[j])) / NS_PER_MS,
                               answered_by=by, cost_usd=float(cols.cost[j]) if by == "cloud" else 0.0))


def tier_mismatch(bundle: Bundle, decision: Any, cols: _Columns, i: int) -> dict[str, Any] | None:
    """Where the bundle's decision names a tier and the run logged one: the two models when they
    differ, else {} (None: nothing to compare).  A CASCADE decision names none yet (a cascade picks
    its tier when it escalates, after the device): its escalation's decision is compared instead."""
    tier = decision_tier(decision)
    if tier is None or cols.decided_models is None or decision.route == Route.CASCADE:
        return None
    replayed = bundle.models[tier] if 0 <= tier < len(bundle.models) else f"tier {tier}"
    simulated = str(cols.decided_models[i])
    return {} if replayed == simulated else {"simulated_tier": simulated, "replayed_tier": replayed}


def replay_part(bundle: Bundle, part: pd.DataFrame, inputs: Any, confidence_scores: np.ndarray | None,
                sessions: Any, models: tuple[str, ...] = ()) -> dict[str, Any]:
    """Replay one replication; returns its counts and the first mismatch.  ``models``: the run's
    dataset's models (tier order), naming its ``decided_tier`` column."""
    policy = bundle.make_policy()
    cols = _Columns(part, models)
    events = learned_events(part) if cols.has_signals else []
    text = bundle.router is not None and bundle.router.is_text
    route_mismatch = escalation_mismatch = tier_mismatches = tiers_compared = 0
    first: dict[str, Any] | None = None
    for i in range(cols.n):
        _observe_before(policy, events, int(cols.decided[i]), cols)
        row = int(cols.rows[i])
        x = None if inputs is None else inputs[row]
        request = Request(features=None if text else x, text=x if text else None, sensitive=bool(cols.sensitive[i]),
                          session_id=sessions(row))
        decision = policy.decide(request, cols.signals(i))
        got = decision.route.name.lower()
        if got != cols.routes[i]:
            route_mismatch += 1
            first = first or {"request": i, "row": row, "simulated": cols.routes[i], "replayed": got,
                              "reason": decision.reason}
            continue
        wrong_tier = tier_mismatch(bundle, decision, cols, i)
        tiers_compared += wrong_tier is not None
        if wrong_tier:
            tier_mismatches += 1
            first = first or {"request": i, "row": row, "simulated": cols.routes[i], "replayed": got,
                              **wrong_tier, "reason": decision.reason}
        if decision.route == Route.CASCADE and cols.outcomes[i] not in ("rejected", "failed"):
            score = (float(confidence_scores[row]) if confidence_scores is not None
                     else bundle.score_one(request) if bundle.router is not None else float("nan"))
            after = policy.escalate(request, score)
            escalated = after.route == Route.CLOUD
            if escalated != (cols.outcomes[i] in ESCALATED):
                escalation_mismatch += 1
                first = first or {"request": i, "row": row, "simulated": cols.outcomes[i],
                                  "replayed": "escalate" if escalated else "stay local"}
                continue
            wrong_tier = tier_mismatch(bundle, after, cols, i)  # an N-model cascade: the tier it escalated to
            tiers_compared += wrong_tier is not None
            if wrong_tier:
                tier_mismatches += 1
                first = first or {"request": i, "row": row, "simulated": cols.outcomes[i],
                                  "replayed": "escalate", **wrong_tier, "reason": after.reason}
    return {"n": cols.n, "route_mismatches": route_mismatch, "escalation_mismatches": escalation_mismatch,
            "tier_mismatches": tier_mismatches, "tiers_compared": tiers_compared, "first_mismatch": first,
            "state": policy.state()}


def replay(run_folder: Path, bundle: Bundle, datasets_dir: str | None = None) -> dict[str, Any]:
    """Replay every replication of the run at ``run_folder`` through ``bundle``."""
    run_cfg, frame, metrics = read_run(run_folder)
    dataset = resolve_dataset(run_cfg.dataset, Path(datasets_dir or to_absolute_path(run_cfg.datasets_dir)))
    inputs, confidence_scores = request_inputs(bundle, dataset)
    sessions = session_lookup(dataset)
    parts = [replay_part(bundle, part, inputs, confidence_scores, sessions, dataset.models)
             for _, part in frame.groupby("replication", sort=True)]
    mismatches = sum(p["route_mismatches"] + p["escalation_mismatches"] + p["tier_mismatches"] for p in parts)
    return {
        "n": int(sum(p["n"] for p in parts)), "mismatches": int(mismatches),
        "route_mismatches": int(sum(p["route_mismatches"] for p in parts)),
        "escalation_mismatches": int(sum(p["escalation_mismatches"] for p in parts)),
        "tier_mismatches": int(sum(p["tier_mismatches"] for p in parts)),
        "replications": len(parts), "policy": bundle.kind, "bundle": str(bundle.folder),
        "bundle_sha256": bundle.sha256, "run": str(run_folder),
        "run_bundle_sha256": metrics.get("bundle_sha256"),
        "same_bundle": metrics.get("bundle_sha256") == bundle.sha256,
        "signals_replayed": "signal_local_queued" in frame.columns,
        "tiers_compared": int(sum(p["tiers_compared"] for p in parts)),  # N-model decisions and escalations
        "first_mismatch": next((p["first_mismatch"] for p in parts if p["first_mismatch"]), None),
        "final_state": parts[-1]["state"] if parts else {},
    }


def replay_command(cfg: Any) -> dict[str, Any]:
    """CLI handler: replay, write replay.json, exit 2 when any route differs."""
    if not cfg.path:
        raise RouterLabError("replay: missing RUN_DIR; expected 'router-lab replay outputs/simulate/<time> bundle=PATH'")
    if not OmegaConf.select(cfg, "bundle", default=None):
        raise RouterLabError("replay: missing bundle=PATH; expected the exported bundle folder to replay through")
    folder = Path(to_absolute_path(str(cfg.path)))
    bundle = load_bundle(to_absolute_path(str(cfg.bundle)))
    result = replay(folder, bundle)
    out = Path(to_absolute_path(cfg.out)) if cfg.out else run_dir()
    path = atomic_write_json(out / REPLAY_FILE if out.suffix != ".json" else out, result)
    print(f"replay: {result['n']:,} requests of {folder} through {bundle.folder} ({result['policy']}): "
          f"{result['mismatches']} mismatches; wrote {path}")
    if result["mismatches"]:
        raise RouterLabError(f"replay: {result['mismatches']} of {result['n']:,} decisions differ from the "
                             f"simulation (first: {result['first_mismatch']}); see {path}")
    return result
