"""The bad-input corpus: every case in tests/bad_input_cases/*.py is a user mistake that must end in
exit status 2 and one line on stderr, with no traceback and no new artifact.

Each module there defines ``CASES: list[dict]`` with keys

* ``id`` — unique over the corpus;
* ``args`` — the router-lab arguments; ``{tmp}`` becomes the case's own temp folder, also its cwd;
* ``setup`` (optional) — the name of a module-level function ``fn(tmp: Path)`` making the bad files;
* ``env`` (optional) — extra environment variables (such a case runs in a fresh interpreter);
* ``expect`` — substrings the single stderr line must contain.

Before the case runs, ``{tmp}/datasets/`` holds the built default ``digits`` dataset (so commands do
not build it) and ``setup`` has run.  "No new artifact" means: comparing the tree under ``{tmp}``
before and after, no file changed or vanished, and every new path is one of

* ``_failed.json`` (the run folder's failure marker), and beside it ``config.yaml`` (what the failed
  job was asked to do, written by router_lab/report/jobs.py before the command runs);
* Hydra's own records: ``.hydra/config.yaml``, ``.hydra/hydra.yaml``, ``.hydra/overrides.yaml``,
  the job log ``<command>.log`` beside a ``.hydra/`` folder, and a sweep folder's ``multirun.yaml``
  and ``sweep.json``;
* a folder holding only such files.

Cases run as ``python -m router_lab`` would, in forked children of one server process that imported
the CLI once (tests/corpus_server.py), two at a time; cases with ``env`` run in a new interpreter.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import tests.bad_input_cases as cases_package
from tests.conftest import REPO, run_cli

REQUIRED_KEYS = {"id", "args", "expect"}
OPTIONAL_KEYS = {"setup", "env"}
HYDRA_RECORDS = {"config.yaml", "hydra.yaml", "overrides.yaml"}
SERVER_WORKERS = 2


def load_cases() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for info in sorted(pkgutil.iter_modules(cases_package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{cases_package.__name__}.{info.name}")
        for case in getattr(module, "CASES", []):
            found.append((info.name, case))
    return found


CASES = load_cases()


def test_corpus_cases_are_well_formed() -> None:
    ids = [case["id"] for _, case in CASES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for module_name, case in CASES:
        keys = set(case)
        assert REQUIRED_KEYS <= keys <= REQUIRED_KEYS | OPTIONAL_KEYS, (case["id"], keys)
        assert isinstance(case["args"], list) and all(isinstance(a, str) for a in case["args"])
        assert case["expect"] and all(isinstance(e, str) and e for e in case["expect"]), case["id"]
        if "setup" in case:
            module = importlib.import_module(f"{cases_package.__name__}.{module_name}")
            assert callable(getattr(module, case["setup"], None)), case["id"]


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 (files) or "dir"."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def allowed_new_path(rel: str, after: dict[str, str]) -> bool:
    """Is this new path a failure marker or one of Hydra's records (see the module docstring)?"""
    parts = rel.split("/")
    name, parent = parts[-1], "/".join(parts[:-1])

    def sibling(n: str) -> str:
        return f"{parent}/{n}" if parent else n

    if after.get(rel) == "dir":
        prefix = rel + "/"
        return any(p.startswith(prefix) and after[p] != "dir" for p in after) and all(
            allowed_new_path(p, after) for p in after if p.startswith(prefix) and after[p] != "dir")
    if name == "_failed.json":
        return True
    if name == "config.yaml" and sibling("_failed.json") in after:
        return True
    if len(parts) >= 2 and parts[-2] == ".hydra" and name in HYDRA_RECORDS:
        return True
    if name.endswith(".log") and sibling(".hydra") in after:
        return True
    return name in ("multirun.yaml", "sweep.json") and sibling("multirun.yaml") in after


@pytest.fixture(scope="module")
def corpus_results(tmp_path_factory: pytest.TempPathFactory, digits) -> dict[str, dict[str, Any]]:  # noqa: ANN001
    """Run every case once (in parallel); the tests below check one result each."""
    source_dir = Path(digits.source).parent
    root = tmp_path_factory.mktemp("corpus")
    prepared: dict[str, dict[str, Any]] = {}
    requests = []
    for module_name, case in CASES:
        key = case["id"]
        tmp = root / key / "work"
        (tmp / "datasets").mkdir(parents=True)
        for path in source_dir.glob("digits*"):
            shutil.copy2(path, tmp / "datasets" / path.name)
        if "setup" in case:
            module = importlib.import_module(f"{cases_package.__name__}.{module_name}")
            getattr(module, case["setup"])(tmp)
        args = [a.replace("{tmp}", str(tmp)) for a in case["args"]]
        prepared[key] = {"tmp": tmp, "before": snapshot(tmp), "args": args,
                         "stdout": root / key / "stdout.txt", "stderr": root / key / "stderr.txt"}
        if "env" in case:
            result = run_cli(*args, cwd=tmp, env=case["env"], timeout=300)
            prepared[key].update(rc=result.returncode, stderr_text=result.stderr)
        else:
            requests.append({"key": key, "args": args, "cwd": str(tmp),
                             "stdout": str(prepared[key]["stdout"]), "stderr": str(prepared[key]["stderr"])})
    if requests:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        server = subprocess.run([sys.executable, str(REPO / "tests" / "corpus_server.py"), str(SERVER_WORKERS)],
                                input="".join(json.dumps(r) + "\n" for r in requests), env=env,
                                capture_output=True, text=True, timeout=900)
        assert server.returncode == 0, server.stderr
        for line in server.stdout.splitlines():
            reply = json.loads(line)
            item = prepared[reply["key"]]
            item.update(rc=reply["rc"], seconds=reply["seconds"], stderr_text=Path(item["stderr"]).read_text(errors="replace"))
    for item in prepared.values():
        item["after"] = snapshot(item["tmp"])
    slowest = sorted(prepared.items(), key=lambda kv: -kv[1].get("seconds", 0))[:5]
    print("slowest corpus cases:", ", ".join(f"{k} {v.get('seconds')} s" for k, v in slowest))
    return prepared


@pytest.mark.parametrize("case", [case for _, case in CASES], ids=[f"{m}:{c['id']}" for m, c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case: dict[str, Any], corpus_results) -> None:  # noqa: ANN001
    item = corpus_results[case["id"]]
    stderr = item["stderr_text"]
    assert "rc" in item, f"{case['id']}: the case did not run"
    assert "Traceback" not in stderr, stderr
    assert item["rc"] == 2, f"exit {item['rc']}; stderr: {stderr}"
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("router-lab: error: "), stderr
    for fragment in case["expect"]:
        assert fragment.replace("{tmp}", str(item["tmp"])) in lines[0], (fragment, lines[0])
    before, after = item["before"], item["after"]
    changed = [p for p, digest in before.items() if after.get(p) != digest]
    assert not changed, f"changed or removed: {changed}"
    new = [p for p in after if p not in before and not allowed_new_path(p, after)]
    assert not new, f"new artifacts: {new}"
