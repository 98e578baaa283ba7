"""The Python API: the README's example runs as it is written; results are the CLI's; user
mistakes raise RouterLabError instead of exiting."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import REPO

from router_lab import api
from router_lab.errors import RouterLabError
from router_lab.evaluate import Evaluation
from router_lab.runtime.bundle import Bundle


def readme_example() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- api-example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README.md has no <!-- api-example --> python block"
    return match.group(1)


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory, digits, datasets_dir: Path) -> tuple[dict, str, Path]:  # noqa: ANN001
    """The README's example, run in a fresh folder (the session's built digits copied in)."""
    work = tmp_path_factory.mktemp("api")
    shutil.copytree(datasets_dir, work / "datasets")
    namespace: dict = {}
    out = io.StringIO()
    old = Path.cwd()
    os.chdir(work)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(readme_example(), "README.md:api-example", "exec"), namespace)  # noqa: S102
    finally:
        os.chdir(old)
    return namespace, out.getvalue(), work


def test_readme_example_runs_and_returns_the_commands_objects(example) -> None:  # noqa: ANN001
    ns, printed, work = example
    assert isinstance(ns["evaluation"], Evaluation) and {"policy", "apgr"} <= set(ns["evaluation"].table)
    assert isinstance(ns["bundle"], Bundle) and ns["bundle"].kind == "budget"
    assert (work / "routers" / "input" / "router.json").exists()
    assert (work / "bundles" / "budget" / "bundle.manifest.json").exists()
    assert list(ns["table"]["policy"]) == ["always_local", "confidence", "random"]
    assert ns["table"].loc[0, "cost_per_1k_usd"] == 0  # always_local never pays the cloud
    assert len(ns["run"].requests) == ns["run"].metrics["n_requests_total"]
    # the error example printed the CLI's one-line message
    assert "policy=nosuch: no such option; expected one of:" in printed


def test_api_simulate_equals_the_cli_handler(example, datasets_dir: Path) -> None:  # noqa: ANN001
    from router_lab.sim.commands import simulate_config

    overrides = ["policy=random", "sim.n_requests=500", f"datasets_dir={datasets_dir}"]
    assert api.simulate(*overrides).metrics == simulate_config(api.config(*overrides))[1]
    ns, _, _ = example
    # the bundle simulated as shipped holds the budget it was exported with
    assert abs(ns["shipped"].metrics["cloud_fraction"] - 0.2) < 0.05


def test_api_errors_are_exceptions_not_exits(datasets_dir: Path) -> None:
    with pytest.raises(RouterLabError, match="sim.n_requests"):
        api.simulate("sim.n_requests=lots", f"datasets_dir={datasets_dir}")
    with pytest.raises(RouterLabError, match="oracle"):
        api.export("policy=oracle", out=datasets_dir / "never")
    assert not (datasets_dir / "never").exists()
    with pytest.raises(RouterLabError):
        api.dataset("no_such_file.csv")
