"""The metric catalogue is the one list of the simulator's metrics: the summary computes exactly the
metrics it declares (a metric added in one place only fails here, named), every metric it gives an
interval has one, the README's table is generated from it, and importing it is cheap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from router_lab import metric_catalogue as catalogue
from router_lab.metric_catalogue import CATALOGUE, SUMMARY_FIELDS, Metric
from router_lab.policies.base import PolicyContext
from router_lab.policies.registry import make_policy
from router_lab.report.build import MARKDOWN_METRICS, METRIC_COLUMNS, markdown_table
from router_lab.report.html import OBJECTIVES, best_per_objective
from router_lab.sim.engines import run
from router_lab.sim.metrics import summarize
from router_lab.sim.scenario import make_scenario

REPO = Path(__file__).resolve().parents[1]


def catalogue_mismatches(summary: dict, tiered: bool = False) -> list[str]:
    """What keeps ``summarize``'s output and the catalogue from being the same list, each named
    (``tiered``: a scenario with tiers, which adds the tiered-only metrics)."""
    computed = [k for k in summary if k not in SUMMARY_FIELDS]
    declared = catalogue.names() if tiered else catalogue.names(tiered=False)
    problems = [f"{k}: computed by router_lab/sim/metrics.py but not declared in router_lab/metric_catalogue.py"
                for k in computed if k not in declared]
    problems += [f"{k}: declared in router_lab/metric_catalogue.py but the summary never produces it"
                 for k in declared if k not in summary]
    problems += [f"{k}: a summary field (SUMMARY_FIELDS) the summary no longer produces"
                 for k in SUMMARY_FIELDS if k not in summary]
    intervals = summary.get("ci95", {})
    problems += [f"{k}: declared with an interval but has none in ci95 (compute it in _measure)"
                 for k in catalogue.names(interval=True) if k not in intervals]
    problems += [f"{k}: has an interval in ci95 but is not declared with one" for k in intervals
                 if k not in catalogue.names(interval=True)]
    return problems


@pytest.fixture(scope="module")
def summaries(digits) -> dict[str, dict]:  # noqa: ANN001 - the session's Dataset
    """One run (batch means) and two replications, 300 requests each, a policy that uses the cloud."""
    sc = make_scenario(sim={"n_requests": 300})

    def records(seed: int):  # noqa: ANN202
        policy = make_policy(OmegaConf.create({"name": "random"}), PolicyContext(digits, np.random.default_rng(seed)))
        return run(sc, policy, digits, seed)

    return {"batch_means": summarize(records(0), sc), "replications": summarize([records(0), records(1)], sc)}


@pytest.mark.parametrize("method", ["batch_means", "replications"])
def test_the_summary_computes_exactly_the_catalogued_metrics(summaries, method: str) -> None:  # noqa: ANN001
    summary = summaries[method]
    assert summary["ci_method"] == method
    assert catalogue_mismatches(summary) == []
    # the intervals are real ones (300 requests, the random policy: every metric varies)
    assert all(lo is not None and lo <= hi for lo, hi in summary["ci95"].values())


def test_a_metric_added_in_one_place_only_is_named(summaries) -> None:  # noqa: ANN001
    summary = dict(summaries["replications"])
    summary["queue_peak"] = 3  # computed, not declared
    del summary["latency_p90_ms"]  # declared, not computed
    summary["ci95"] = {k: v for k, v in summary["ci95"].items() if k != "cloud_utilization"}
    problems = catalogue_mismatches(summary)
    assert [p.split(":")[0] for p in problems] == ["queue_peak", "latency_p90_ms", "cloud_utilization"]


def test_fraction_intervals_stay_in_the_unit_interval(summaries) -> None:  # noqa: ANN001
    for summary in summaries.values():
        for name in catalogue.names(fraction=True, interval=True):
            lo, hi = summary["ci95"][name]
            assert 0.0 <= lo <= hi <= 1.0, name


def test_declarations_are_consistent() -> None:
    with pytest.raises(ValueError, match="metric x: an objective needs a direction"):
        Metric("x", "ms", None, ".1f", False, True, False, "a made-up metric", objective="lowest x")
    with pytest.raises(ValueError, match="metric y: in summary.md but not in the table"):
        Metric("y", "", "lower", ".4f", True, False, True, "a made-up metric", in_markdown=True)
    with pytest.raises(ValueError, match="metric z: fmt '.1q' is not a format spec"):
        Metric("z", "ms", "lower", ".1q", True, False, False, "a made-up metric")
    assert all(m.description and m.fmt for m in CATALOGUE)


def test_report_columns_and_objectives_follow_the_catalogue() -> None:
    # summary.md's columns are the first of report.html's, both in the catalogue's order
    assert METRIC_COLUMNS == tuple(m.name for m in CATALOGUE if m.in_table)
    assert METRIC_COLUMNS[:len(MARKDOWN_METRICS)] == MARKDOWN_METRICS
    assert [(o.column, o.maximise) for o in OBJECTIVES] == [
        (m.name, m.better == "higher") for m in CATALOGUE if m.objective]
    # each objective picks the row its direction says, printed with the metric's unit
    import pandas as pd

    frame = pd.DataFrame({"job": ["0_a", "1_b"], "policy": ["a", "b"], **{
        o.column: [1.0, 2.0] for o in OBJECTIVES}})
    best = {title: (label, value) for title, label, value in best_per_objective(frame, ["policy"], ())}
    for o in OBJECTIVES:
        label, value = best[o.title]
        assert label == ("policy=b" if o.maximise else "policy=a"), o.title
        assert value.startswith(o.prefix) and value.endswith(o.unit), (o.title, value)
    table = markdown_table(frame, ["policy", *MARKDOWN_METRICS])
    assert table.splitlines()[0] == "| " + " | ".join(["policy", *[m for m in MARKDOWN_METRICS if m in frame]]) + " |"


def test_readme_table_is_the_catalogue(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert catalogue.readme_block() in readme, (
        "README.md's metric table is stale: run `python -m router_lab.metric_catalogue README.md`")
    for m in CATALOGUE:
        assert f"| `{m.name}` |" in catalogue.readme_block()
    stale = tmp_path / "README.md"
    stale.write_text(readme.replace("| `accuracy` |", "| `acc` |"), encoding="utf-8")
    assert catalogue.main([str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == readme


def test_importing_the_catalogue_is_cheap() -> None:
    code = ("import sys, router_lab.metric_catalogue; "
            "print(sorted(m for m in ('numpy', 'pandas', 'scipy', 'omegaconf') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_tiered_summary_adds_exactly_the_tiered_metrics(digits) -> None:  # noqa: ANN001
    """With tiers, metrics.json gains the tiered-only metrics (and keeps every other key)."""
    sc = make_scenario(sim={"n_requests": 300}, tiers={"edge": {"cloud": {"llm": False}}})
    runs = [run(sc, make_policy(OmegaConf.create({"name": "random"}), PolicyContext(digits, np.random.default_rng(s))),
                digits, s) for s in (0, 1)]
    summary = summarize(runs, sc)
    assert catalogue_mismatches(summary, tiered=True) == []
    assert catalogue_mismatches(summary) != []  # the tiered keys are not in a two-tier summary
    assert sum(summary["tier_shares"].values()) <= 1.0 and summary["tier_shares"]["cloud"] > 0
