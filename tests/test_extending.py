"""docs/extending.md is tested code: its python blocks run, in order, in one namespace; what they
register then passes the conformance checks (tests/conformance.py) and is unregistered."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from conformance import Bench, check_policy_files, make_bench, run_policy_checks

from router_lab.data.builders import BUILDERS, build_dataset
from router_lab.export.config import ExportSection
from router_lab.export.convert import RouterSpec, convert_router
from router_lab.export.targets import TARGETS, run_targets, target_input
from router_lab.extensions import options_help
from router_lab.policies.registry import POLICIES
from router_lab.train.fit import train_router

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
REGISTERED = {"quantile": POLICIES, "coins": BUILDERS, "nodoc": TARGETS}  # what the page adds


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture(scope="module")
def doc() -> dict:
    """The namespace after every python block of the page ran (its registrations undone after)."""
    assert not any(name in registry for name, registry in REGISTERED.items())
    module = types.ModuleType("docs_extending")  # a module of its own, as the page's files would be
    sys.modules[module.__name__] = module
    try:
        for code in blocks("python"):
            exec(compile(code, str(DOC), "exec", dont_inherit=True), module.__dict__)  # noqa: S102 - the project's own page
        yield module.__dict__
    finally:
        for name, registry in REGISTERED.items():
            registry.unregister(name)
        del sys.modules[module.__name__]


@pytest.fixture(scope="module")
def bench(datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Bench:
    return make_bench(datasets_dir, tmp_path_factory)


def test_the_page_has_the_examples_it_promises() -> None:
    assert len(blocks("python")) == 4 and len(blocks("yaml")) == 1
    assert "## A metric" in DOC.read_text()


def test_the_config_files_of_the_page_compose(doc: dict, tmp_path: Path) -> None:
    """Each yaml block, written where its first line says (under a search path of its own), composes."""
    from hydra import compose, initialize_config_dir

    from router_lab.config import CONF_DIR, register_configs

    for code in blocks("yaml"):
        path_line = next(line for line in code.splitlines() if line.startswith("# router_lab/conf/"))
        target = path_line.removeprefix("# router_lab/conf/").split()[0]
        (tmp_path / target).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / target).write_text(code)
    register_configs()  # the policy registry now holds quantile: schema_quantile is stored
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        search = f"hydra.searchpath=[file://{tmp_path}]"
        plain = compose("config", overrides=[search, "policy=quantile"]).policy
    assert plain.name == "quantile" and plain.cloud_fraction == 0.25


def test_the_policy_example_joins_the_conformance_suite(doc: dict, bench: Bench, tmp_path: Path) -> None:
    assert "quantile" in POLICIES and "quantile" in options_help()
    run_policy_checks(bench, "quantile", tmp_path)
    policy = POLICIES.get("quantile")
    assert policy is doc["QuantilePolicy"] and POLICIES.entry("quantile").schema is doc["QuantilePolicyConfig"]
    # its config file is not in the package (the page shows it): completeness names the file
    with pytest.raises(AssertionError, match=r"router_lab/conf/policy/quantile\.yaml is missing"):
        check_policy_files("quantile")


def test_the_quantile_policy_sends_its_share(doc: dict, bench: Bench) -> None:
    from omegaconf import OmegaConf

    from router_lab.policies.registry import make_policy

    policy = make_policy(OmegaConf.create({"name": "quantile", "cloud_fraction": 0.4}), bench.context())
    validation = np.flatnonzero(bench.dataset.frame["split"].to_numpy() == "val")
    sent = policy.offline_cloud(validation)
    sensitive = bench.dataset.frame["sensitive"].to_numpy()[validation].astype(bool)
    assert abs(sent.mean() - 0.4 * (1 - sensitive.mean())) < 0.06  # the share, sensitive rows kept local


def test_the_dataset_example_meets_the_contract(doc: dict, datasets_dir: Path) -> None:
    dataset = build_dataset(doc["CoinsConfig"](n_rows=300), datasets_dir)
    assert len(dataset) == 300 and set(dataset.frame["split"]) == {"train", "val", "test"}
    assert BUILDERS.entry("coins").schema is doc["CoinsConfig"]


def test_the_export_target_example_passes_the_gates(doc: dict, bench: Bench) -> None:
    spec = RouterSpec.from_trained(train_router(bench.dataset, None, None, "input", 0))
    data = convert_router(spec).SerializeToString()
    inp = target_input(data, spec, bench.dataset, ExportSection(latency_calls=20, batch_calls=1, batch_rows=50))
    reports, files = run_targets(["nodoc"], inp)
    assert reports["nodoc"]["status"] == "passed", reports
    (file,) = files
    assert file.name == "router.nodoc.onnx" and len(file.data) <= len(data)


def test_the_metric_example_is_one_entry_plus_its_computation(doc: dict, digits, monkeypatch) -> None:  # noqa: ANN001
    """The page's two edits, applied in place (the entry into the catalogue, the computation into
    ``_measure``): the summary then has the metric with its interval, the catalogue check passes,
    the README table has its row; with the computation alone the check names it."""
    from omegaconf import OmegaConf
    from test_metric_catalogue import catalogue_mismatches

    from router_lab import metric_catalogue as catalogue
    from router_lab.policies.base import PolicyContext
    from router_lab.policies.registry import make_policy
    from router_lab.sim import metrics
    from router_lab.sim.draws import NS_PER_MS
    from router_lab.sim.engines import run
    from router_lab.sim.scenario import make_scenario

    entry, compute = doc["P75"], doc["latency_p75_ms"]
    measure = metrics._measure

    def measure_with_p75(rec, keep, sc):  # noqa: ANN001, ANN202 - the page's line in _measure
        out = measure(rec, keep, sc)
        answered = np.isin(rec.outcome[keep], metrics.ANSWERED)
        out[entry.name] = compute(((rec.end_ns[keep] - rec.arrival_ns[keep]) / NS_PER_MS)[answered])
        return out

    monkeypatch.setattr(metrics, "_measure", measure_with_p75)
    sc = make_scenario(sim={"n_requests": 300})
    policy = make_policy(OmegaConf.create({"name": "random"}), PolicyContext(digits, np.random.default_rng(0)))
    records = [run(sc, policy, digits, seed) for seed in (0, 1)]
    computed_only = metrics.summarize(records, sc)
    assert [p.split(":")[0] for p in catalogue_mismatches(computed_only)] == [entry.name]

    monkeypatch.setattr(catalogue, "CATALOGUE", (*catalogue.CATALOGUE, entry))
    monkeypatch.setattr(metrics, "CI_KEYS", frozenset(catalogue.names(interval=True)))
    summary = metrics.summarize(records, sc)
    assert catalogue_mismatches(summary) == []
    lo, hi = summary["ci95"][entry.name]
    assert lo <= summary[entry.name] <= hi
    assert summary["latency_p50_ms"] <= summary[entry.name] <= summary["latency_p90_ms"]
    assert f"| `{entry.name}` | ms | lower | yes |" in catalogue.readme_block()
