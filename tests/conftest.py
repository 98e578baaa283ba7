"""Shared fixtures: built datasets (session-scoped, built once into a temp folder) and the CLI."""

from __future__ import annotations

import os

# One OpenMP/BLAS thread per test process (and the CLI subprocesses, which inherit it), set before
# scikit-learn loads its OpenMP runtime.  With the default (one thread per core) on this 2-core
# machine shared by several busy processes, OpenMP threads wait for each other at every barrier:
# a small HistGradientBoosting fit took 13.3 s instead of 0.49 s at a load average of 7.7.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from router_lab.data.builders import build_dataset  # noqa: E402
from router_lab.data.config import DigitsConfig, SyntheticConfig  # noqa: E402
from router_lab.data.contract import Dataset  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def datasets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("datasets")


@pytest.fixture(scope="session")
def digits(datasets_dir: Path) -> Dataset:
    """The default `digits` dataset, built with its default config (seed 0)."""
    return build_dataset(DigitsConfig(), datasets_dir)


@pytest.fixture(scope="session")
def synthetic_small(datasets_dir: Path) -> Dataset:
    """5,000 synthetic requests with the default config (seed 0)."""
    return build_dataset(SyntheticConfig(name="synthetic_small", n_rows=5_000), datasets_dir)


@pytest.fixture(scope="session")
def gsm8k_csv() -> Path:
    """RouteLLM's GSM8K responses from ../shared/data (tests skip only where it is absent)."""
    path = SHARED_DATA / "routellm_gsm8k.csv"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `router-lab ARGS` in a subprocess (as a user would) and capture its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "router_lab", *args], cwd=cwd or REPO,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli(tmp_path: Path):
    """`cli(*args)` runs router-lab in a fresh folder (outputs/ and datasets/ land there)."""

    def run(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
        kwargs.setdefault("cwd", tmp_path)
        return run_cli(*args, **kwargs)

    return run


@pytest.fixture(scope="session")
def searched(tmp_path_factory: pytest.TempPathFactory, digits: Dataset, datasets_dir: Path):  # noqa: ANN201
    """The small search (tests/search_case.py) through the serial launcher, exporting its best:
    (work folder, sweep folder, its arguments, what it printed). Session-wide: tests/test_search.py
    checks its answer and tests/test_sweep.py compares the same search through Ray with it."""
    from search_case import search_args

    work = tmp_path_factory.mktemp("search")
    sweep_dir = work / "sweep"
    args = [*search_args(work, sweep_dir, datasets_dir), "hydra/launcher=basic", "+export_best=true"]
    result = run_cli(*args, cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    return work, sweep_dir, args, result
