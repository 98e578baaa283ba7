"""Conformance suites parametrized from the registries (no hand-written lists of names).

Every registered policy runs offline and in both engines (simpy always, the fast path when
stateless), keeps sensitive requests on the device, is deterministic for a seed, exports as a
bundle (or, an upper bound, is refused in one line) and replays with 0 mismatches
(``tests/conformance.py``).  Every dataset builder's output meets the contract; every workload's
arrivals are a sorted, seeded process at a positive finite rate.  Completeness: a registered entry
without its config file, its schema or its slot in the comparison presets fails naming the file.
Estimators go through train -> export -> parity in tests/test_conversion_pins.py, parametrized from
the same registry (``offered_estimators()``), so that cost is not paid twice.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from conformance import (
    REPO_CONF,
    Bench,
    check_engines,
    check_export_and_replay,
    check_offline,
    check_policy_files,
    check_schema_holds_every_default,
    composed,
    conf_file,
    defaults_of,
    make_bench,
)
from hydra import compose, initialize_config_dir

from router_lab.config import CONF_DIR, all_schemas, register_configs
from router_lab.data.builders import BUILDERS, resolve_dataset
from router_lab.data.contract import validate_frame
from router_lab.errors import RouterLabError
from router_lab.extensions import EXTENSION_POINTS
from router_lab.policies.registry import POLICIES
from router_lab.registry import Registry
from router_lab.sim.arrivals import ARRIVALS, arrival_times
from router_lab.sim.scenario import scenario_from_config
from router_lab.train.estimators import ESTIMATORS
from router_lab.train.thresholds import TARGETS


@pytest.fixture(scope="module")
def bench(datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Bench:
    return make_bench(datasets_dir, tmp_path_factory)


# -- policies -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", POLICIES.names())
def test_policy_schema_holds_its_defaults(bench: Bench, name: str) -> None:
    check_schema_holds_every_default(bench, name)


@pytest.mark.parametrize("name", POLICIES.names())
def test_policy_offline(bench: Bench, name: str) -> None:
    check_offline(bench, name)


@pytest.mark.parametrize("name", POLICIES.names())
def test_policy_in_both_engines(bench: Bench, name: str) -> None:
    check_engines(bench, name)


@pytest.mark.parametrize("name", POLICIES.names())
def test_policy_exports_or_refuses_and_replays(bench: Bench, name: str, tmp_path: Path) -> None:
    check_export_and_replay(bench, name, tmp_path)


@pytest.mark.parametrize("name", POLICIES.names())
def test_policy_has_its_config_file_schema_and_comparison_slots(name: str) -> None:
    check_policy_files(name)


# -- estimators, targets, datasets, workloads ----------------------------------------------------
@pytest.mark.parametrize("name", ESTIMATORS.names())
def test_router_has_its_config_file_and_schema(name: str) -> None:
    entry = ESTIMATORS.entry(name)
    path = conf_file("router", name)
    assert f"schema_{name}" in defaults_of(path), f"{REPO_CONF}/router/{name}.yaml: its defaults list must name schema_{name}"
    stored = {n: s for g, n, s in all_schemas() if g == "router"}
    assert stored.get(f"schema_{name}") is entry.schema, \
        f"router {name}: register_estimator's schema is not schema_{name} of router_lab/train/config.py SCHEMAS"


@pytest.mark.parametrize("name", TARGETS.names())
def test_target_has_its_config_file(name: str) -> None:
    assert f"schema_{name}" in defaults_of(conf_file("target", name))


def dataset_files() -> dict[str, list[Path]]:
    """dataset.kind -> the conf/dataset/ files of that kind (as each composes)."""
    out: dict[str, list[Path]] = {}
    for path in sorted((CONF_DIR / "dataset").glob("*.yaml")):
        out.setdefault(str(composed("dataset", path.stem).dataset.kind), []).append(path)
    return out


@pytest.mark.parametrize("kind", BUILDERS.names())
def test_dataset_builder_output_meets_the_contract(kind: str, datasets_dir: Path, request: pytest.FixtureRequest) -> None:
    paths = dataset_files().get(kind)
    assert paths, f"{REPO_CONF}/dataset/: no option with kind: {kind} (dataset builder {kind} has no config file)"
    assert f"schema_{kind}" in {n for g, n, _ in all_schemas() if g == "dataset"}, f"dataset kind {kind}: no schema_{kind}"
    if kind == "digits":
        request.getfixturevalue("digits")  # built once per session already: reused from disk below
    small = {"synthetic": ["dataset.n_rows=500"]}.get(kind, [])
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"dataset={paths[0].stem}", f"datasets_dir={datasets_dir}", *small])
    if kind == "routellm":
        source = Path(cfg.dataset.source)
        if not (CONF_DIR.parent.parent / source).exists():
            pytest.skip(f"{source} is absent")
    dataset = resolve_dataset(cfg.dataset, datasets_dir)
    again = validate_frame(dataset.frame, f"dataset {kind}")  # the contract, checked afresh
    assert len(again) == len(dataset) > 0
    assert set(dataset.frame["split"]) == {"train", "val", "test"}


def workload_names() -> list[str]:
    return sorted(ARRIVALS)  # a dict today; a Registry iterates its names the same way


@pytest.mark.parametrize("name", workload_names())
def test_workload_arrivals_are_a_seeded_sorted_process(name: str, bench: Bench) -> None:
    conf_file("workload", name)
    cfg = bench.compose(f"workload={name}", "sim.n_requests=2000")
    scenario = scenario_from_config(cfg)
    times = [arrival_times(scenario.workload, 2000, None, np.random.default_rng(seed), bench.dataset).times_s
             for seed in (0, 0, 1)]
    first = times[0]
    assert len(first) > 0 and np.isfinite(first).all() and (first >= 0).all() and (np.diff(first) >= 0).all()
    np.testing.assert_array_equal(first, times[1])  # same seed, same arrivals
    rate = (len(first) - 1) / (first[-1] - first[0])
    assert np.isfinite(rate) and rate > 0
    if name != "trace":  # a trace replays recorded times, whatever the seed
        assert not np.array_equal(first, times[2]), "another seed gives the same arrivals"


# -- every extension point ------------------------------------------------------------------------
@pytest.mark.parametrize("point", EXTENSION_POINTS, ids=lambda p: p.registry)
def test_every_registered_option_has_a_help_summary(point) -> None:  # noqa: ANN001
    found = point.load()
    lines = point.help_lines()
    assert lines, f"{point.registry}: no options"
    if isinstance(found, Registry):
        blank = [e.name for e in found.entries() if not e.summary]
        assert not blank, f"{point.registry}: {blank} have no summary for --help (summary= or a docstring)"
        if point.group:
            for name in found.names():
                conf_file(point.group, name)


def test_schemas_in_the_store_are_dataclasses() -> None:
    assert all(dataclasses.is_dataclass(node) for _, _, node in all_schemas())


def test_a_new_runtime_kind_is_one_registration() -> None:
    """A rule the runtime lacks registers its kind; policy.json then validates and builds with it."""
    from router_lab.runtime.policy import CLOUD, FixedPolicy, Request, Signals
    from router_lab.runtime.spec import (
        KINDS,
        POLICY_FORMAT,
        build_policy,
        register_kind,
        validate_spec,
    )

    document = {"format": POLICY_FORMAT, "schema_version": 1, "policy": {"kind": "cloud_copy", "params": {}},
                "scoring": {"source": None}, "provenance": {}}
    with pytest.raises(RouterLabError, match="cloud_copy"):
        validate_spec(document, "policy.json")
    register_kind("cloud_copy", {}, lambda p, inner, scorer: FixedPolicy(CLOUD, "cloud_copy", scorer))
    try:
        policy = build_policy(validate_spec(document, "policy.json")["policy"])
        assert policy.decide(Request(), Signals()).route == CLOUD
    finally:
        KINDS.unregister("cloud_copy")


def test_help_lists_every_registered_option_with_its_summary() -> None:
    from router_lab.cli import usage
    from router_lab.extensions import options_help

    top, full = usage(), options_help()
    for entry in POLICIES.entries():
        assert f"{entry.name}  " in top and entry.summary in top, entry.name
    for point in EXTENSION_POINTS:
        for line in point.help_lines():
            assert line in full, (point.registry, line)


def test_a_parameter_without_a_default_must_be_set() -> None:
    """make_policy fills defaults from the schema only; one it lacks is a one-line error, not a TypeError."""
    from dataclasses import dataclass

    from omegaconf import OmegaConf

    from router_lab.policies.base import Policy, PolicyContext
    from router_lab.policies.config import PolicyConfig
    from router_lab.policies.registry import make_policy, register_policy

    @dataclass
    class NeedsShare(PolicyConfig):
        name: str = "needs_share"
        share: float | None = None

    class Strict(Policy):
        def __init__(self, context, share, weight):  # noqa: ANN001 - a throw-away policy
            super().__init__(context)

    register_policy("needs_share", schema=NeedsShare, summary="throw-away")(Strict)
    try:
        with pytest.raises(RouterLabError, match="policy needs_share: missing parameter 'weight'"):
            make_policy(OmegaConf.create({"name": "needs_share"}), PolicyContext(None, np.random.default_rng(0)))
    finally:
        POLICIES.unregister("needs_share")
