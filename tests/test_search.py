"""Policy search: Optuna's seeded TPE through `router-lab search` finds a configuration at least as
cheap as the best feasible point of the full grid over the same space, feasibility is decided on
confidence intervals, the best exports as a bundle that loads, and a resumed search reruns nothing."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import run_cli
from search_case import CONFIDENCES, CONSTRAINTS, SCENARIO, THRESHOLDS

from router_lab import api
from router_lab.errors import RouterLabError
from router_lab.policies.registry import router_policies
from router_lab.runtime.bundle import load_bundle
from router_lab.search.config import SearchSection
from router_lab.search.feasibility import PENALTY, check_section, judge, parse_constraint
from router_lab.search.space import router_dir
from router_lab.sim.commands import simulate_config


def metrics(ci: dict[str, list[float]], **point: float) -> dict:
    return {**point, "ci95": ci}


def test_a_constraint_met_only_by_noise_is_not_feasible() -> None:
    constraints = [parse_constraint("latency_p99_ms<=500"), parse_constraint("accuracy >= 0.95")]
    noisy = metrics({"latency_p99_ms": [450.0, 520.0], "accuracy": [0.955, 0.97]},
                    cost_per_1k_usd=0.01, latency_p99_ms=480.0, accuracy=0.96)
    by_ci = judge(noisy, "cost_per_1k_usd", constraints, "ci")
    by_mean = judge(noisy, "cost_per_1k_usd", constraints, "mean")
    assert by_mean.feasible and not by_ci.feasible
    assert [c["holds"] for c in by_ci.checks] == [False, True]
    assert by_ci.violation == pytest.approx(20 / 500)
    # Optuna sees an infeasible trial as worse than any feasible one, and worse the more it misses.
    assert by_ci.optuna_value("minimize") > PENALTY > by_mean.optuna_value("minimize")
    assert by_ci.optuna_value("maximize") < -PENALTY
    lower = metrics({"latency_p99_ms": [400.0, 499.0], "accuracy": [0.949, 0.97]},
                    cost_per_1k_usd=0.01, latency_p99_ms=450.0, accuracy=0.96)
    assert not judge(lower, "cost_per_1k_usd", constraints).feasible  # accuracy's lower bound
    no_interval = metrics({"latency_p99_ms": [None, None], "accuracy": [0.96, 0.97]},
                          cost_per_1k_usd=0.01, latency_p99_ms=450.0, accuracy=0.965)
    assert not judge(no_interval, "cost_per_1k_usd", constraints).feasible  # not shown to hold


def test_bad_search_settings_are_one_line_errors() -> None:
    with pytest.raises(RouterLabError, match="search.constraints: got 'p99 < 5'"):
        parse_constraint("p99 < 5")
    with pytest.raises(RouterLabError, match="search.feasibility"):
        check_section(api.config("search.feasibility=maybe").search)
    with pytest.raises(RouterLabError, match="'nosuch' is not a metric"):
        judge({"cost_per_1k_usd": 1.0}, "cost_per_1k_usd", [parse_constraint("nosuch<=1")])
    # the metric catalogue refuses a bad objective or constraint before any trial simulates
    section = SearchSection(constraints=["accuracy>=0.9"])
    assert check_section(section) == [parse_constraint("accuracy>=0.9")]
    with pytest.raises(RouterLabError, match=r"^search.objective: got 'cost'; expected a metric of metrics.json: "
                                             r"accuracy, cloud_fraction, cost_per_1k_usd, "):
        check_section(replace(section, objective="cost"))
    with pytest.raises(RouterLabError, match=r"^search.constraints: 'p99<=500': 'p99' is not a metric"):
        check_section(replace(section, constraints=["p99<=500"]))
    with pytest.raises(RouterLabError, match=r"'outcomes' is not a metric"):  # a dict of counts, not a number
        check_section(replace(section, constraints=["outcomes<=5"]))
    # under the CI rule a metric without an interval could never hold; on point estimates it can
    no_ci = replace(section, constraints=["offdevice_bytes<=1000"])
    with pytest.raises(RouterLabError, match=r"offdevice_bytes has no 95% CI, so under search.feasibility=ci"):
        check_section(no_ci)
    assert check_section(replace(no_ci, feasibility="mean")) == [parse_constraint("offdevice_bytes<=1000")]


def test_search_without_a_search_space_says_what_to_do(tmp_path: Path, datasets_dir: Path) -> None:
    result = run_cli("search", f"datasets_dir={datasets_dir}", cwd=tmp_path)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]  # the sweep's one-line verdict on its failed job
    assert last.startswith("router-lab: error: ")
    assert "search: expected Hydra's Optuna sweeper and a search space" in last
    assert "Traceback" not in result.stderr


def grid(sweep_dir: Path, datasets_dir: Path) -> list[tuple[list[str], dict]]:
    """Every point of the space, simulated through the same library call as a trial."""
    points = [["policy=confidence", f"policy.min_confidence={c}"] for c in CONFIDENCES]
    points += [["policy=learned", f"policy.threshold={t}", f"policy.model_path={router_dir(sweep_dir, 'input')}"]
               for t in THRESHOLDS]
    return [(p, simulate_config(api.config(*p, *SCENARIO, f"datasets_dir={datasets_dir}"))[1]) for p in points]


def test_search_is_at_least_as_cheap_as_the_best_feasible_grid_point(searched, datasets_dir: Path) -> None:  # noqa: ANN001
    work, sweep_dir, _, result = searched
    document = json.loads((sweep_dir / "search.json").read_text())
    assert document["n_trials"] == 7 and document["feasibility"] == "ci"
    constraints = [parse_constraint(c) for c in CONSTRAINTS]
    points = grid(sweep_dir, datasets_dir)
    by_ci = [(m["cost_per_1k_usd"], p) for p, m in points if judge(m, "cost_per_1k_usd", constraints).feasible]
    by_mean = [(m["cost_per_1k_usd"], p) for p, m in points
               if judge(m, "cost_per_1k_usd", constraints, "mean").feasible]
    assert by_ci, "the small space has no feasible point: the test would prove nothing"
    best = document["best"]
    assert best is not None
    assert best["objective"] <= min(by_ci)[0] + 1e-12
    # The interval rule matters here: on point estimates a cheaper, noisier point would win.
    assert min(by_mean)[0] < min(by_ci)[0]
    assert all(t["feasible"] == (t["violation"] == 0) for t in document["trials"])
    # The Pareto front (cost, accuracy, p99) among feasible trials: feasible, mutually undominated.
    feasible_jobs = {t["job"] for t in document["trials"] if t["feasible"]}
    front = document["pareto"]
    assert front and {f["job"] for f in front} <= feasible_jobs
    signed = [(f["cost_per_1k_usd"], -f["accuracy"], f["latency_p99_ms"]) for f in front]
    assert not any(a != b and all(x <= y for x, y in zip(a, b, strict=True)) for a in signed for b in signed)
    # Every trial is an ordinary job: its metrics are the grid's for the same parameters.
    trial = sweep_dir / best["job"]
    same = [m for p, m in points if all(x in best["params"] for x in p[:2])]
    assert same and json.loads((trial / "metrics.json").read_text()) == same[0]
    assert f"export it: {best['export_command']}" in result.stdout
    # search.export_best=true exported it; the runtime loads it, and simulated as shipped it is the trial.
    bundle = load_bundle(sweep_dir / "bundle")
    assert bundle.kind == best["params"][0].split("=")[1]
    assert document["bundle"]["sha256"] == bundle.sha256
    assert document["bundle"]["same_as_trial"] is True


def test_search_prints_one_line_per_finished_trial_in_order_and_no_hydra_dumps(searched) -> None:  # noqa: ANN001
    _, sweep_dir, _, result = searched
    document = json.loads((sweep_dir / "search.json").read_text())
    printed = result.stderr.splitlines()
    trials = [line for line in printed if line.startswith("router-lab: search: [")]
    line = re.compile(r"router-lab: search: \[(\d)/7\] trial (\d) complete \((.*)\) in [\d.]+ s: "
                      r"cost_per_1k_usd (\S+), (feasible|infeasible \(not shown: .*\))$")
    assert [line.match(t).groups()[:4] for t in trials] == [
        (str(k + 1), t["job"].split("_")[0], " ".join(t["params"]), f"{t['objective']:.4g}")
        for k, t in enumerate(document["trials"])]
    assert [line.match(t).group(5) == "feasible" for t in trials] == [t["feasible"] for t in document["trials"]]
    # Nothing else: no Hydra launcher lines ("Launching 1 jobs locally", "#0 : policy=…"), no
    # Optuna INFO ("A new study created in memory"), no trial's own printout (its output.log).
    trained = f"router-lab: search: trained the input router into {router_dir(sweep_dir, 'input')}"
    assert trained in printed  # printed by the sweep's callback while the watcher starts: either order
    assert [p for p in printed if p != trained] == [
        f"router-lab: search: 7 trials in {sweep_dir}", *trials, "router-lab: search: 7/7 trials complete"]
    assert not re.search(r"Launching|#\d+ : |new study|\[I \d", result.stdout + result.stderr)


def test_a_search_is_a_sweep_the_report_reads(searched) -> None:  # noqa: ANN001
    from router_lab.report.build import build_report

    _, sweep_dir, _, _ = searched
    result = build_report(sweep_dir)
    assert result.n_jobs == 7 and not result.left_out


def test_resumed_search_reruns_no_trial_and_gives_the_same_answer(searched) -> None:  # noqa: ANN001
    work, sweep_dir, args, _ = searched
    before = json.loads((sweep_dir / "search.json").read_text())
    result = run_cli(*args, "+resume=true", cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("complete, skipped (resume)") == 7
    after = json.loads((sweep_dir / "search.json").read_text())
    assert after["best"] == before["best"] and after["trials"] == before["trials"]


@pytest.mark.parametrize("preset", ["search_digits", "search_assistant"])
def test_search_presets_draw_trials_that_compose_to_valid_scenarios(preset: str) -> None:
    """Trials drawn as the sweeper draws them (its parser, the preset's seeded TPE, our extender)
    each compose to a config whose policy has exactly the parameters drawn for it."""
    import optuna
    from hydra import compose, initialize_config_dir
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    from router_lab.cli import CONF_DIR
    from router_lab.config import register_configs
    from router_lab.search.space import extend
    from router_lab.sim.scenario import scenario_from_config

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        sweep = compose("config", overrides=[f"+experiment={preset}", "command=search"], return_hydra_config=True)
        check_section(sweep.search)
        distributions, _ = create_params_from_overrides([f"{k}={v}" for k, v in sweep.hydra.sweeper.params.items()])
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        kinds = set()
        for _ in range(12):
            trial = study.ask()
            for name, distribution in distributions.items():
                trial._suggest(name, distribution)
            extend(sweep, trial)
            overrides = [f"+experiment={preset}", *[f"{k}={v}" for k, v in trial.params.items()]]
            cfg = compose("config", overrides=overrides)
            scenario_from_config(cfg)
            kinds.add(cfg.policy.name)
            if cfg.policy.name in router_policies():
                assert "routers" in str(cfg.policy.model_path)  # the router the search trained
            study.tell(trial, 0.0)
        assert len(kinds) >= 2
