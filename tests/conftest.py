"""Shared fixtures: built datasets (session-scoped, built once into a temp folder) and the CLI."""

from __future__ import annotations

import os

# One OpenMP/BLAS thread per test process (and the CLI subprocesses, which inherit it), set before
# scikit-learn loads its OpenMP runtime.  With the default (one thread per core) on this 2-core
# machine shared by several busy processes, OpenMP threads wait for each other at every barrier:
# a small HistGradientBoosting fit took 13.3 s instead of 0.49 s at a load average of 7.7.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import atexit  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402

from router_lab.data.builders import build_dataset  # noqa: E402
from router_lab.data.config import DigitsConfig, SyntheticConfig  # noqa: E402
from router_lab.data.contract import Dataset  # noqa: E402

# Property tests draw their examples from a fixed seed (each test's own name): the same examples
# every run, so a failure reproduces and a pass is not luck of the day.  A test's own
# ``@settings(...)`` keeps this (unset fields come from the loaded profile).
hypothesis_settings.register_profile("router_lab", derandomize=True, print_blob=True)
hypothesis_settings.load_profile("router_lab")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


# The longest files first, so that neither of the two workers (pyproject's `-n 2 --dist loadfile`)
# starts one of them last while the other sits idle; the rest keep their collection order.
SLOW_FIRST = ("test_demo.py", "test_bad_input_corpus.py", "test_report_layout.py", "test_sweep.py",
              "test_wheel_install.py", "test_text_router.py", "test_export_targets.py", "test_export.py",
              "test_sweep_shutdown.py", "test_testbed.py", "test_no_code_execution.py", "test_search.py")


# Files that share an expensive session fixture run on the same worker (`searched`: the small
# search, which test_sweep.py's Ray test compares with): file -> the file it goes with.
SAME_WORKER = {"tests/test_search.py": "tests/test_sweep.py"}


def pytest_xdist_make_scheduler(config: pytest.Config, log):  # noqa: ANN001, ANN201 - xdist's hook
    from xdist.scheduler import LoadFileScheduling

    class FilesTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return SAME_WORKER.get(scope, scope)

    return FilesTogether(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FIRST)))  # stable: order kept within


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


class CliServer:
    """tests/corpus_server.py --serve: runs each `router-lab ARGS` in a forked child of one process
    that imported the CLI once (a fresh interpreter spends 1–3 s of CPU on imports alone)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[str] | None = None
        self.files = Path(tempfile.mkdtemp(prefix="router_lab_cli_"))
        self.count = 0
        atexit.register(self.close)

    def _start(self) -> subprocess.Popen[str]:
        if self.proc is None or self.proc.poll() is not None:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
            self.proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "corpus_server.py"), "--serve"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        return self.proc

    def run(self, args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
        with self.lock:
            self.count += 1
            out, err = self.files / f"{self.count}.out", self.files / f"{self.count}.err"
            request = {"key": str(self.count), "args": args, "cwd": str(cwd), "stdout": str(out),
                       "stderr": str(err), "timeout": timeout, "env": dict(os.environ)}
            proc = self._start()
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("tests/corpus_server.py --serve died")
            reply = json.loads(line)
            stdout, stderr = (p.read_text(errors="replace") if p.exists() else "" for p in (out, err))
            for p in (out, err):
                p.unlink(missing_ok=True)
        command = [sys.executable, "-m", "router_lab", *args]
        if reply["rc"] is None:
            raise subprocess.TimeoutExpired(command, timeout, output=stdout, stderr=stderr)
        return subprocess.CompletedProcess(command, reply["rc"], stdout, stderr)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.files, ignore_errors=True)


_SERVER = CliServer()


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `router-lab ARGS` as a user would, in its own process, and capture its output.

    The process is a forked child of the CLI server (same code path as ``python -m router_lab``,
    the environment of this call, a fresh Hydra); with ``env`` given (variables an interpreter may
    read as it starts) it is a new interpreter instead."""
    if env is None and os.environ.get("ROUTER_LAB_TEST_FORK", "1") != "0":
        return _SERVER.run(list(args), Path(cwd or REPO), timeout)
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
    args = [*search_args(work, sweep_dir, datasets_dir), "hydra/launcher=basic", "search.export_best=true"]
    result = run_cli(*args, cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    return work, sweep_dir, args, result
