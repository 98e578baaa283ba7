"""Figures and file names used in more than one module are named once, in router_lab/constants.py."""

from __future__ import annotations

import re
from pathlib import Path

from router_lab import constants

PACKAGE = Path(__file__).resolve().parents[1] / "router_lab"


def test_each_named_figure_is_written_out_only_in_constants() -> None:
    literals = {
        "SEED_BOUND": r"2\s*\*\*\s*31\s*-\s*1",
        "SPLIT_FRACTIONS": r"[\[(]0\.6,\s*0\.2,\s*0\.2[\])]",
        **{name: re.escape(repr(getattr(constants, name)).replace("'", '"'))
           for name in ("CONFIG_FILE", "METRICS_FILE", "REQUESTS_FILE", "SUMMARY_CSV", "SUMMARY_PARQUET",
                        "SUMMARY_MD", "MULTIRUN_FILE", "ROUTER_META_FILE")},
    }
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "constants.py" or "node_modules" in path.parts:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            found += [f"{path.relative_to(PACKAGE.parent)}:{number}: {name}" for name, pattern in literals.items()
                      if re.search(pattern, code)]
    assert found == [], "written out again instead of imported from router_lab/constants.py: " + "; ".join(found)


def test_the_constants_module_imports_only_the_standard_library() -> None:
    source = (PACKAGE / "constants.py").read_text(encoding="utf-8")
    assert re.findall(r"^(?:from|import) (\S+)", source, flags=re.M) == ["__future__"]
