"""`router-lab search`: each trial is a `simulate` job that returns its objective to Optuna; the
search then names the best feasible trial, writes ``search.json`` and the one export command.

    router-lab search +experiment=search_digits            # Hydra's Optuna sweeper, TPE seeded
    router-lab search +experiment=search_digits +resume=true   # continue: finished trials skip

The trials are ordinary job folders (``config.yaml``, ``metrics.json``, ``requests.parquet``,
``_complete.json``) plus ``trial.json`` (the verdict), so ``router-lab report`` reads a search like
any sweep.  Feasibility is decided on confidence intervals (:mod:`router_lab.search.feasibility`).
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from router_lab import metric_catalogue as catalogue
from router_lab.constants import CONFIG_FILE, METRICS_FILE, MULTIRUN_FILE
from router_lab.errors import RouterLabError
from router_lab.io import atomic_write_json, run_dir
from router_lab.report.jobs import check_job
from router_lab.search.feasibility import check_section, judge
from router_lab.search.space import MODES, ROUTER_MODES, router_dir

# optuna imports alembic, whose INFO lines ("setup plugin …") would flood the sweep's console.
logging.getLogger("alembic").setLevel(logging.WARNING)
TRIAL_FILE = "trial.json"
SEARCH_FILE = "search.json"
BUNDLE_DIR = "bundle"
# Overrides of a trial that say how the search ran, not what the policy is.
_NOT_EXPORTED = ("command", "resume", "export_best", "search.export_best", "policy.model_path",
                 "policy.inner.model_path", "bundle", "out", "run_dir")
RULE_TEXT = {"ci": "a constraint holds when its whole 95% CI does (upper bound <= max, lower bound >= min)",
             "mean": "a constraint holds when the point estimate does (search.feasibility=mean)"}


def require_optuna(target: str) -> None:
    """`search` needs the Optuna sweeper (``target``: ``hydra.sweeper._target_``)."""
    if "optuna" not in str(target).lower():
        raise RouterLabError("search: expected Hydra's Optuna sweeper and a search space, e.g. "
                             "'router-lab search +experiment=search_digits' (or hydra/sweeper=optuna "
                             "with hydra.sweeper.params); got the sweeper "
                             f"{target or '(none)'}")


def search_trial(cfg: DictConfig) -> float:
    """One trial: simulate the configured policy, judge its metrics, return Optuna's value."""
    from hydra.core.hydra_config import HydraConfig

    from router_lab.sim.commands import simulate

    constraints = check_section(cfg.search)
    if HydraConfig.initialized():
        require_optuna(str(HydraConfig.get().sweeper.get("_target_", "")))
    metrics = simulate(cfg)
    verdict = judge(metrics, cfg.search.objective, constraints, cfg.search.feasibility)
    value = verdict.optuna_value(cfg.search.direction)
    atomic_write_json(run_dir() / TRIAL_FILE, {**verdict.to_dict(), "optuna_value": value,
                                               "feasibility": cfg.search.feasibility})
    state = "feasible" if verdict.feasible else "infeasible"
    print(f"  search: {cfg.search.objective} {verdict.objective}, {state}")
    return value


def describe_trial(job_dir: Path, config: Any) -> tuple[str | None, str | None]:
    """The search's line for a finished trial (router_lab.report.progress): the parameters it drew
    and its verdict, e.g. ``policy=learned policy.threshold=0.2`` and ``cost_per_1k_usd 0.04687,
    infeasible (not shown: accuracy>=0.95)``, from its ``.hydra/overrides.yaml`` and ``trial.json``."""
    try:
        trial = json.loads((Path(job_dir) / TRIAL_FILE).read_text())
        params = trial_params(Path(job_dir), _task(config))
    except (OSError, ValueError):
        return None, None
    value = trial.get("objective")
    found = f"{config.search.objective} {'–' if value is None else format(value, '.4g')}, "
    failing = [c["constraint"] for c in trial.get("checks", []) if not c.get("holds")]
    if trial.get("feasible"):
        found += "feasible"
    else:
        found += "infeasible" + (f" (not shown: {', '.join(failing)})" if failing else "")
    return " ".join(params) or None, found


def resumed_trial_value(job_dir: Path) -> float:
    """What a complete trial skipped on resume returns to Optuna: the value it returned before."""
    return float(json.loads((Path(job_dir) / TRIAL_FILE).read_text())["optuna_value"])


search_trial.resumed_result = resumed_trial_value  # read by report.jobs.run_job on resume


def train_search_routers(config: Any, sweep_dir: Path) -> list[Path]:
    """Train the router of each mode in ``search.routers`` once (as `router-lab train` would:
    ``router``, ``target``, ``seed``), so every trial and the exported bundle use the same one."""
    from router_lab.data.builders import resolve_dataset
    from router_lab.data.commands import datasets_dir
    from router_lab.train.artifacts import META_FILE, save_trained_router
    from router_lab.train.fit import train_router

    folders = []
    for mode in config.search.routers:
        if mode not in MODES:
            raise RouterLabError(f"search.routers: got {mode!r}; expected feature modes from {', '.join(MODES)}")
        folder = router_dir(sweep_dir, mode)
        if not (folder / META_FILE).exists():  # a resumed search keeps the router its trials used
            dataset = resolve_dataset(config.dataset, datasets_dir(config))
            save_trained_router(train_router(dataset, config.router, config.target, mode, int(config.seed)), folder)
            print(f"router-lab: search: trained the {mode} router into {folder}", file=sys.stderr)
        folders.append(folder)
    return folders


def _job_number(path: Path) -> int:
    head = path.name.split("_", 1)[0]
    return int(head) if head.isdigit() else -1


def _overrides(job_dir: Path) -> list[str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    return [str(x) for x in OmegaConf.load(path)] if path.exists() else []


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _task(config: Any) -> list[str]:
    """The search's own overrides (every trial has them; they are not what a trial drew)."""
    return [str(x) for x in OmegaConf.select(config, "hydra.overrides.task", default=[]) or []]


def trial_params(job_dir: Path, task: list[str]) -> list[str]:
    """The parameters a trial drew: its overrides but the search's own and the run-only ones."""
    return [o for o in _overrides(job_dir) if o not in task and _key(o) not in _NOT_EXPORTED]


def trial_rows(sweep_dir: Path, section: Any, task: list[str]) -> list[dict[str, Any]]:
    """Every complete trial of the sweep, judged again from its metrics.json under ``section``."""
    constraints = check_section(section)
    rows = []
    for job_dir in sorted((p for p in sweep_dir.iterdir() if p.is_dir() and _job_number(p) >= 0), key=_job_number):
        if not check_job(job_dir).complete or not (job_dir / TRIAL_FILE).exists():
            continue
        metrics = json.loads((job_dir / METRICS_FILE).read_text())
        verdict = judge(metrics, section.objective, constraints, section.feasibility)
        overrides = _overrides(job_dir)
        params = trial_params(job_dir, task)
        ci = (metrics.get("ci95") or {}).get(section.objective)
        rows.append({"job": job_dir.name, "path": str(job_dir), "params": params, "overrides": overrides,
                     "objective": verdict.objective, "objective_ci95": ci, **verdict.to_dict()})
    return rows


def best_row(rows: list[dict[str, Any]], direction: str) -> dict[str, Any] | None:
    feasible = [r for r in rows if r["feasible"]]
    if not feasible:
        return None
    sign = 1.0 if direction == "minimize" else -1.0
    return min(feasible, key=lambda r: (sign * r["objective"], _job_number(Path(r["path"]))))


# (metric, "min" | "max"): the direction is the catalogue's.
PARETO_METRICS = tuple((name, "max" if catalogue.metric(name).better == "higher" else "min")
                       for name in ("cost_per_1k_usd", "accuracy", "latency_p99_ms"))


def pareto_jobs(rows: list[dict[str, Any]], sweep_dir: Path) -> list[dict[str, Any]]:
    """The feasible trials that no other feasible trial beats on cost, accuracy and p99 at once
    (at least as good on all three, better on one): the trade-offs left once the constraints hold."""
    points = []
    for row in rows:
        if not row["feasible"]:
            continue
        metrics = json.loads((sweep_dir / row["job"] / METRICS_FILE).read_text())
        values = [metrics.get(m) for m, _ in PARETO_METRICS]
        if all(isinstance(v, int | float) for v in values):
            signed = tuple(v if sense == "min" else -v for v, (_, sense) in zip(values, PARETO_METRICS, strict=True))
            points.append((row, signed, dict(zip((m for m, _ in PARETO_METRICS), values, strict=True))))

    def dominated(a: tuple[float, ...]) -> bool:
        return any(all(x <= y for x, y in zip(b, a, strict=True)) and b != a for _, b, _ in points)

    return [{"job": row["job"], "params": row["params"], **values}
            for row, signed, values in points if not dominated(signed)]


def export_arguments(row: dict[str, Any], sweep_dir: Path, searchpath: list[str]) -> list[str]:
    """The `router-lab export` overrides that write the bundle of ``row``'s configuration
    (``searchpath``: the search's own ``hydra.searchpath`` override, if it had one)."""
    args = [o for o in row["overrides"] if _key(o) not in _NOT_EXPORTED and not _key(o).startswith("hydra")]
    config = OmegaConf.load(Path(row["path"]) / CONFIG_FILE)
    policy = str(config.policy.name)
    scorer = str(OmegaConf.select(config, "policy.inner.name", default="")) if policy == "load_aware" else policy
    router = OmegaConf.select(config, "policy.inner.model_path" if policy == "load_aware" else "policy.model_path",
                              default=None)
    if scorer in ROUTER_MODES and router:
        args.append(f"run_dir={router}")
    args.append(f"out={sweep_dir / BUNDLE_DIR}")
    return [*searchpath, *args]


def export_command(args: list[str]) -> str:
    return "router-lab export " + " ".join(shlex.quote(a) for a in args)


def metric_table(metrics: dict[str, Any], names: list[str]) -> dict[str, Any]:
    intervals = metrics.get("ci95") or {}
    return {n: {"estimate": metrics.get(n), "ci95": intervals.get(n)} for n in names if n in metrics}


def summarize_search(config: Any, sweep_dir: Path) -> dict[str, Any]:
    section = config.search
    rows = trial_rows(sweep_dir, section, _task(config))
    best = best_row(rows, section.direction)
    document: dict[str, Any] = {
        "objective": section.objective, "direction": section.direction,
        "constraints": [str(c) for c in check_section(section)], "feasibility": section.feasibility,
        "feasibility_rule": RULE_TEXT[section.feasibility],
        "sampler": OmegaConf.to_container(OmegaConf.select(config, "hydra.sweeper.sampler"), resolve=True),
        "n_trials": len(rows), "n_feasible": sum(r["feasible"] for r in rows), "best": None,
        "trials": [{k: r[k] for k in ("job", "params", "objective", "objective_ci95", "feasible",
                                      "violation", "checks")} for r in rows],
    }
    document["pareto"] = pareto_jobs(rows, sweep_dir)
    if best is not None:
        metrics = json.loads((Path(best["path"]) / METRICS_FILE).read_text())
        names = [section.objective, *[c["metric"] for c in best["checks"]],
                 "accuracy", "cost_per_1k_usd", "latency_p99_ms", "cloud_fraction", "slo_miss_rate"]
        hydra_overrides = OmegaConf.select(config, "hydra.overrides.hydra", default=[]) or []
        searchpath = [str(o) for o in hydra_overrides if str(o).lstrip("+").startswith("hydra.searchpath=")]
        args = export_arguments(best, sweep_dir, searchpath)
        document["best"] = {"job": best["job"], "params": best["params"], "objective": best["objective"],
                            "objective_ci95": best["objective_ci95"], "checks": best["checks"],
                            "metrics": metric_table(metrics, list(dict.fromkeys(names))),
                            "export_arguments": args, "export_command": export_command(args)}
    return document


def format_search(document: dict[str, Any], path: Path) -> str:
    lines = [f"search: {document['n_trials']} trial(s), {document['n_feasible']} feasible "
             f"({document['feasibility_rule']})"]
    best = document["best"]
    if best is None:
        lines.append("  no feasible trial: relax the constraints, widen the space or add trials")
    else:
        ci = best["objective_ci95"] or [None, None]
        ci_text = "" if None in ci else f" (95% CI {ci[0]:.4g} – {ci[1]:.4g})"
        lines.append(f"  best: trial {best['job'].split('_', 1)[0]} ({' '.join(best['params'])}): "
                     f"{document['objective']} {best['objective']:.4g}{ci_text}")
        for check in best["checks"]:
            lines.append(f"    {check['constraint']}: estimate {check['estimate']:.4g}, decisive bound "
                         f"{check['decisive']:.4g}")
    if document.get("pareto"):
        lines.append(f"  {len(document['pareto'])} feasible trial(s) on the cost / accuracy / p99 Pareto front "
                     "(search.json: pareto)")
    lines.append(f"  wrote {path}")
    if best is not None:
        lines.append(f"  export it: {best['export_command']}")
    return "\n".join(lines)


def export_best(document: dict[str, Any], sweep_dir: Path) -> dict[str, Any]:
    """Export the best trial with the same overrides (Hydra's compose, as the CLI composes them),
    load the bundle back through the runtime, and simulate it as shipped under the same scenario."""
    from router_lab.api import config as compose_config
    from router_lab.export.commands import export
    from router_lab.runtime.bundle import load_bundle
    from router_lab.sim.commands import simulate_config

    args = document["best"]["export_arguments"]
    export(compose_config(*args, command="export"))
    out = sweep_dir / BUNDLE_DIR
    bundle = load_bundle(out)
    sim_args = [a for a in args if _key(a) not in ("out", "run_dir")]
    _, metrics = simulate_config(compose_config(*sim_args, f"bundle={out}", command="simulate"))
    section_metrics = document["best"]["metrics"]
    return {"path": str(out), "sha256": bundle.sha256,
            "simulated": {name: metrics.get(name) for name in section_metrics},
            "same_as_trial": all(metrics.get(n) == v["estimate"] for n, v in section_metrics.items())}


def finish_search(sweep_dir: Path | None) -> dict[str, Any]:
    """After the sweep (the CLI calls it): judge every trial, write search.json, print the best
    and its export command; with ``search.export_best=true`` export it and load the bundle back."""
    if sweep_dir is None or not (Path(sweep_dir) / MULTIRUN_FILE).exists():
        raise RouterLabError("search: the sweep wrote no multirun.yaml; expected Hydra's Optuna sweeper, e.g. "
                             "'router-lab search +experiment=search_digits'")
    sweep_dir = Path(sweep_dir).resolve()
    config = OmegaConf.load(sweep_dir / MULTIRUN_FILE)
    document = summarize_search(config, sweep_dir)
    wanted = bool(config.search.export_best)
    if wanted and document["best"] is not None:
        document["bundle"] = export_best(document, sweep_dir)
    path = atomic_write_json(sweep_dir / SEARCH_FILE, document)
    print(format_search(document, path))
    if "bundle" in document:
        print(f"  exported and loaded the bundle: {document['bundle']['path']} (simulated as shipped, "
              f"the same metrics as the trial: {document['bundle']['same_as_trial']})")
    return document


class SearchCallback(Callback):
    """``hydra.callbacks.search`` in conf/config.yaml: before a search's first trial, record the
    sweep's config (multirun.yaml, for resume and search.json) and train its routers."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra turns a callback's exception into a warning: a wrong sweeper or search section is
        # refused by each trial instead (search_trial), as a failed job with the one-line reason.
        target = str(OmegaConf.select(config, "hydra.sweeper._target_", default=""))
        if str(config.get("command", "")) != "search" or "optuna" not in target.lower():
            return
        check_section(config.search)
        import optuna

        # Optuna's own INFO line ("A new study created in memory …"): the search prints its trials
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(config, sweep_dir / MULTIRUN_FILE)  # as Hydra's basic sweeper: resume finds it
        train_search_routers(config, sweep_dir)
