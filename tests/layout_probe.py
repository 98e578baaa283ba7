"""Headless Chromium lays out a report page: the helpers of the layout tests (test_report_layout.py
for a 12-job sweep, test_demo.py for the demo's report).  Chromium comes from Debian's package
(`make test` installs it: the Makefile's chromium step); where it is missing the tests skip."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

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


def need_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install -y chromium, "
                    "as `make test` does) to run the layout test")


def assert_fits(measured: dict, width: int) -> None:
    """Nothing overflows the viewport; the table's box fits (the table scrolls inside it, its policy
    column frozen); every figure has loaded and fits."""
    assert measured["width"] == width
    assert measured["page"] <= width and measured["body"] <= width, measured
    assert measured["over"] == [], measured["over"]
    left, right = measured["box"]
    assert left >= 0 and right <= width
    assert measured["frozen"] == ["policy", "sticky", "0px"]
    assert len(measured["images"]) >= 3 and all(w > 0 and r <= width for w, r in measured["images"])
