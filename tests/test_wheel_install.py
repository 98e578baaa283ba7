"""A built wheel, installed into a fresh virtual environment, runs the main commands from a folder
that is not the checkout: the configs ship inside the package.

The wheel is built from a copy of the source tree (``pip wheel --no-deps``) and installed with pip
into a new venv (``--no-deps``).  Its dependencies are not downloaded again: the new venv sees the
test environment's site-packages through a ``.pth`` line (which does not run that environment's
editable-install hook, so ``router_lab`` can only come from the wheel), and ``pip check`` shows
every requirement of the wheel is met.  A full ``pip install`` of the wheel with its dependencies
takes minutes on this machine (the README gives the measured time); set
``ROUTER_LAB_WHEEL_FULL_INSTALL=1`` to run this test that way.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO

COMMANDS = [
    ["dataset", "build", "digits"],
    ["train", "hydra.run.dir=outputs/train/run"],
    ["evaluate", "hydra.run.dir=outputs/evaluate/run"],
    ["simulate", "sim.n_requests=2000", "hydra.run.dir=outputs/simulate/run"],
    ["simulate", "policy=cost_aware", "deployment=three_tier", "sim.n_requests=1000",  # the tier/deployment groups
     "hydra.run.dir=outputs/simulate/tiers"],
    ["export", "run_dir=outputs/train/run", "hydra.run.dir=outputs/export/run"],
    ["report", "outputs/simulate/run"],
]


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _copy_source(dest: Path) -> None:
    """The files git tracks (as they are in the work tree), else the tree without local state."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True)
    if listed.returncode == 0 and listed.stdout:
        for rel in listed.stdout.decode().split("\0"):
            if rel and (REPO / rel).is_file():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / rel, dest / rel)
        return
    shutil.copytree(REPO, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
        ".venv", ".git", "outputs", "datasets", "build", "*.egg-info", "__pycache__"))


def test_wheel_in_a_fresh_venv_runs_the_main_commands_elsewhere(tmp_path: Path) -> None:
    timings: dict[str, float] = {}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    start = time.monotonic()
    src, dist, venv, elsewhere = (tmp_path / n for n in ("src", "dist", "venv", "elsewhere"))
    src.mkdir()
    elsewhere.mkdir()
    _copy_source(src)
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)],
                 tmp_path, env)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = dist.glob("router_lab-*.whl")
    timings["build wheel"] = time.monotonic() - start

    start = time.monotonic()
    full = os.environ.get("ROUTER_LAB_WHEEL_FULL_INSTALL") == "1"
    made = _run([sys.executable, "-m", "venv", *([] if full else ["--without-pip"]), str(venv)], tmp_path, env)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    if full:
        installed = _run([str(python), "-m", "pip", "install", "-q", str(wheel)], tmp_path, env, timeout=1800)
    else:
        purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       tmp_path, env).stdout.strip()
        # The test environment's packages, after the venv's own (router_lab comes from the wheel).
        Path(purelib, "zz_test_environment.pth").write_text("\n".join(site.getsitepackages()) + "\n")
        installed = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                          "--no-deps", "--no-index", str(wheel)], tmp_path, env)
    assert installed.returncode == 0, installed.stderr[-3000:]
    checked = _run([sys.executable, "-m", "pip", "--python", str(python), "check"], tmp_path, env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    timings["venv + install"] = time.monotonic() - start

    where = _run([str(python), "-c", "import router_lab, router_lab.config as c; "
                  "print(router_lab.__file__); print(c.CONF_DIR)"], elsewhere, env)
    assert where.returncode == 0, where.stderr
    module_file, conf_dir = (Path(line) for line in where.stdout.split())
    assert venv in module_file.parents and venv in conf_dir.parents
    assert (conf_dir / "config.yaml").is_file() and (conf_dir / "policy" / "learned.yaml").is_file()

    router_lab = venv / "bin" / "router-lab"
    for args in COMMANDS:
        start = time.monotonic()
        done = _run([str(router_lab), *args], elsewhere, env)
        assert done.returncode == 0, f"router-lab {' '.join(args)}: {done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr
        timings[" ".join(args[:2])] = time.monotonic() - start
    assert (elsewhere / "datasets" / "digits.parquet").is_file()
    assert (elsewhere / "outputs" / "train" / "run" / "router.json").is_file()
    assert (elsewhere / "outputs" / "evaluate" / "run" / "evaluation.csv").is_file()
    assert (elsewhere / "outputs" / "simulate" / "run" / "metrics.json").is_file()
    assert (elsewhere / "outputs" / "export" / "run" / "router.onnx").is_file()
    assert (elsewhere / "outputs" / "simulate" / "run" / "report" / "report.html").is_file()
    # nothing was written into the checkout the wheel was built from
    assert not (REPO / "build").exists() or (REPO / "build").stat().st_mtime < tmp_path.stat().st_mtime
    print("wheel test timings (s):", ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
