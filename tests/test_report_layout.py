"""The report's page in a real browser: headless Chromium lays out the report of a 12-job sweep
(device x policy) at 1,400 px and at a phone's width, and the DOM's scroll widths show that nothing
overflows the viewport (the table scrolls in its own box, its policy column frozen).  The demo's
report gets the same check in test_demo.py, on the demo's own output.

Chromium comes from Debian's package (`make test` installs it: see the Makefile's chromium step);
where it is missing the test skips and says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli
from layout_probe import WIDTHS, assert_fits, layout, need_chromium

from router_lab.data.contract import Dataset
from router_lab.report.build import build_report


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory, digits: Dataset, datasets_dir: Path) -> dict[str, Path]:
    """report.html of a 12-job device x policy sweep."""
    need_chromium()
    work = tmp_path_factory.mktemp("layout")
    sweeps = {
        # +experiment=device_sweep's devices; policies that need no training (and an upper bound)
        "device_sweep": ["device=wearable,phone_npu,laptop_cpu",
                         "policy=always_local,always_cloud,confidence,oracle"],
    }
    pages = {}
    for name, args in sweeps.items():
        sweep_dir = work / name
        result = run_cli("simulate", "-m", *args, "sim.n_requests=200", f"hydra.sweep.dir={sweep_dir}",
                         f"datasets_dir={datasets_dir}", cwd=work)
        assert result.returncode == 0, result.stderr[-2000:]
        pages[name] = build_report(sweep_dir).html
    return pages


@pytest.fixture(scope="module")
def layouts(reports: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict]:
    """The 12-job report laid out at each width (one Chromium run per width)."""
    work = tmp_path_factory.mktemp("layouts")
    return {width: layout(reports["device_sweep"], width, work) for width in WIDTHS}


@pytest.mark.parametrize("width", WIDTHS)
def test_nothing_overflows_the_viewport(layouts: dict[int, dict], width: int) -> None:
    assert_fits(layouts[width], width)


def test_the_12_job_table_scrolls_inside_its_box_at_a_narrow_width(reports: dict[str, Path],
                                                                   layouts: dict[int, dict]) -> None:
    page = reports["device_sweep"].read_text(encoding="utf-8")
    assert page.count("<tr>") == 1 + 12
    measured = layouts[min(WIDTHS)]
    assert measured["box_scroll"] > measured["box_client"]  # wider than the box: it scrolls there
