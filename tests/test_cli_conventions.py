"""The CLI keeps Hydra's conventions: completion, --hydra-help, --info, -m --cfg, hidden schema
options, quiet broken pipes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

ROUTER_LAB = Path(sys.executable).parent / "router-lab"


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("router-lab: error: "), result.stderr
    return lines[0]


@pytest.mark.skipif(not ROUTER_LAB.exists() or shutil.which("bash") is None,
                    reason="needs the installed router-lab script and bash")
def test_installed_bash_completion_completes_commands_and_options(tmp_path: Path) -> None:
    script = tmp_path / "complete.sh"
    script.write_text(
        'eval "$(router-lab -sc install=bash)"\n'
        'complete_line() { COMP_LINE="$1"; COMP_POINT=${#COMP_LINE}; words=($COMP_LINE);\n'
        '  COMP_CWORD=$(( ${#words[@]} - 1 )); [[ "$COMP_LINE" == *" " ]] && COMP_CWORD=${#words[@]};\n'
        '  hydra_bash_completion; echo "${COMPREPLY[*]}"; }\n'
        'complete_line "router-lab sim"\n'
        'complete_line "router-lab simulate policy=lea"\n'
        'complete_line "router-lab dataset "\n'
        'complete_line "router-lab train router=schema"\n')
    env = {**os.environ, "PATH": f"{ROUTER_LAB.parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "simulate"
    assert lines[1].split() == ["policy=learned", "policy=learned_cascade"]
    assert lines[2].split() == ["build", "check", "import"]
    assert lines[3] == ""  # internal schema options are never suggested
    assert "Traceback" not in result.stderr


def test_hydra_help_and_info_work_bare_and_after_a_command(tmp_path: Path) -> None:
    for args in (["--hydra-help"], ["simulate", "--hydra-help"]):
        result = run_cli(*args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "Hydra (" in result.stdout and "--shell-completion" in result.stdout
    for args in (["--info"], ["simulate", "--info"], ["train", "--info", "searchpath"]):
        result = run_cli(*args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "Config search path" in result.stdout
    assert not (tmp_path / "outputs").exists()


def test_multirun_with_cfg_hydra_prints_the_sweep_config(tmp_path: Path) -> None:
    result = run_cli("simulate", "-m", "--cfg", "hydra", "policy=random,always_local", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "mode: MULTIRUN" in result.stdout and "sweep:" in result.stdout
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists()


def test_schema_options_are_hidden_from_help_and_not_selectable(tmp_path: Path) -> None:
    result = run_cli("simulate", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "schema_" not in result.stdout
    policy_line = next(line for line in result.stdout.splitlines() if line.startswith("policy: "))
    assert policy_line.split(": ", 1)[1].split(", ")[0] == "always_cloud"
    for args in (["simulate", "policy=schema_learned"], ["train", "router=schema_gbdt"],
                 ["simulate", "-m", "policy=random,schema_random"]):
        line = one_line_error(run_cli(*args, cwd=tmp_path))
        assert "no such option" in line and "schema_" in line.split(":")[2]
        assert "schema_" not in line.split("expected one of:")[1]
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("args", [["--help"], ["simulate", "--help"]])
def test_help_into_a_closed_pipe_is_quiet(args: list[str]) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone (`router-lab --help | head -0`)
    try:
        result = subprocess.run([sys.executable, "-m", "router_lab", *args], cwd=REPO,
                                stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert result.returncode == 141
