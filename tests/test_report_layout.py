"""The report's page in a real browser: headless Chromium lays out the report of a 12-job sweep
(device x policy) and of the demo's policy comparison, at 1,400 px and at a phone's width, and the
DOM's scroll widths show that nothing overflows the viewport (the table scrolls in its own box,
its policy column frozen).

Chromium comes from Debian's package (`make test` installs it: see the Makefile's chromium step);
where it is missing the test skips and says so."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import run_cli

from router_lab.data.contract import Dataset
from router_lab.report.build import build_report

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=5000", "--dump-dom"]
WIDTHS = (1400, 500)  # a desktop window, and a phone's (headless Chromium's narrowest window)

# Runs after every image has loaded; writes its measurements into the page, which --dump-dom prints.
PROBE = """<script>
window.addEventListener("load", function () {
  var width = window.innerWidth, over = [];
  document.querySelectorAll("body *").forEach(function (el) {
    if (el.closest(".table-box") && !el.classList.contains("table-box")) return;  // scrolls inside
    var r = el.getBoundingClientRect();
    if (r.right > width + 0.5 || r.left < -0.5) over.push(el.tagName + " " + el.textContent.slice(0, 60));
  });
  var box = document.querySelector(".table-box");
  var cell = document.querySelector("table.summary tbody td");
  var header = document.querySelector("table.summary th");
  var result = {width: width, page: document.documentElement.scrollWidth,
    body: document.body.scrollWidth, over: over,
    box: [box.getBoundingClientRect().left, box.getBoundingClientRect().right],
    box_client: box.clientWidth, box_scroll: box.scrollWidth,
    frozen: [header.textContent, getComputedStyle(cell).position, getComputedStyle(cell).left],
    images: Array.from(document.images).map(function (i) { return [i.naturalWidth, i.getBoundingClientRect().right]; })};
  var pre = document.createElement("pre"); pre.id = "layout-probe";
  pre.textContent = JSON.stringify(result); document.body.appendChild(pre);
});
</script>"""


def layout(page: Path, width: int, tmp_path: Path) -> dict:
    """Open ``page`` (with the probe added) in headless Chromium at ``width`` px; the measurements."""
    probed = tmp_path / f"probe_{width}_{page.parent.parent.name}.html"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    profile = tmp_path / f"profile_{width}_{page.parent.parent.name}"
    profile.mkdir()
    result = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},900",
                             probed.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="layout-probe">([^<]*)</pre>', result.stdout)
    assert found, f"chromium exited {result.returncode}: {result.stderr[-800:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory, digits: Dataset, datasets_dir: Path) -> dict[str, Path]:
    """report.html of a 12-job device x policy sweep and of the demo's nine-policy comparison."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install -y chromium, "
                    "as `make test` does) to run the layout test")
    work = tmp_path_factory.mktemp("layout")
    sweeps = {
        # +experiment=device_sweep's devices; policies that need no training (and an upper bound)
        "device_sweep": ["device=wearable,phone_npu,laptop_cpu",
                         "policy=always_local,always_cloud,confidence,oracle"],
        "compare_policies": ["+experiment=compare_policies"],
    }
    pages = {}
    for name, args in sweeps.items():
        sweep_dir = work / name
        result = run_cli("simulate", "-m", *args, "sim.n_requests=200", f"hydra.sweep.dir={sweep_dir}",
                         f"datasets_dir={datasets_dir}", cwd=work)
        assert result.returncode == 0, result.stderr[-2000:]
        pages[name] = build_report(sweep_dir).html
    return pages


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", ["device_sweep", "compare_policies"])
def test_nothing_overflows_the_viewport(reports: dict[str, Path], name: str, width: int,
                                        tmp_path: Path) -> None:
    measured = layout(reports[name], width, tmp_path)
    assert measured["width"] == width
    assert measured["page"] <= width and measured["body"] <= width, measured
    assert measured["over"] == [], measured["over"]
    left, right = measured["box"]
    assert left >= 0 and right <= width  # the table's box fits; the table scrolls inside it
    assert measured["frozen"] == ["policy", "sticky", "0px"]
    assert len(measured["images"]) >= 3 and all(w > 0 and r <= width for w, r in measured["images"])


def test_the_12_job_table_scrolls_inside_its_box_at_a_narrow_width(reports: dict[str, Path],
                                                                   tmp_path: Path) -> None:
    page = reports["device_sweep"].read_text(encoding="utf-8")
    assert page.count("<tr>") == 1 + 12
    measured = layout(reports["device_sweep"], 500, tmp_path)
    assert measured["box_scroll"] > measured["box_client"]  # wider than the box: it scrolls there
