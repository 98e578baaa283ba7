"""`make demo`'s flow end to end (small runs): build, train, export + validate, ONNX sweep, report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from layout_probe import WIDTHS, assert_fits, layout, need_chromium
from omegaconf import OmegaConf

from router_lab.policies.registry import two_model_policies

POLICIES = two_model_policies()  # the comparison sweeps every registered two-model policy, in name order


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`python -m router_lab.demo 300` (the demo with 300 requests per policy) in a fresh folder."""
    tmp_path = tmp_path_factory.mktemp("demo")
    result = subprocess.run([sys.executable, "-m", "router_lab.demo", "300"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return tmp_path, result


def test_demo_runs_every_step_and_the_sweep_scores_with_the_exported_onnx(demo) -> None:  # noqa: ANN001
    tmp_path, result = demo
    (root,) = (tmp_path / "outputs" / "demo").iterdir()
    assert f"everything is in outputs/demo/{root.name}/" in result.stdout
    onnx = {name: root / f"export_{name}" / "router.onnx" for name in ("router", "cascade")}
    assert all(path.is_file() for path in onnx.values())
    sweep = root / "compare_policies"
    frame = pd.read_csv(sweep / "report" / "summary.csv")
    assert frame["policy"].tolist() == POLICIES and frame["n_requests"].eq(300).all()
    for job in sorted(p for p in sweep.iterdir() if p.is_dir() and p.name[0].isdigit()):
        policy = OmegaConf.load(job / "config.yaml").policy
        scorer = policy.inner if policy.name == "load_aware" else policy
        if policy.name in ("learned", "learned_cascade", "budget", "load_aware"):
            exported = onnx["cascade" if policy.name == "learned_cascade" else "router"]
            assert (scorer.backend, scorer.onnx_path) == ("onnx", str(exported.relative_to(tmp_path))), job.name
    assert (sweep / "report" / "report.html").stat().st_size > 50_000


@pytest.mark.parametrize("width", WIDTHS)
def test_the_demos_report_fits_the_viewport_in_chromium(demo, width: int, tmp_path: Path) -> None:  # noqa: ANN001
    need_chromium()
    (page,) = (demo[0] / "outputs" / "demo").glob("*/compare_policies/report/report.html")
    assert_fits(layout(page, width, tmp_path), width)
