"""The `router-lab` command: subcommands, Hydra overrides, one-line errors with exit status 2."""

from __future__ import annotations

import json
from pathlib import Path


def assert_one_line_error(result, *fragments: str) -> None:  # noqa: ANN001
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("router-lab: error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_help_lists_every_command(cli) -> None:  # noqa: ANN001
    result = cli("--help")
    assert result.returncode == 0
    for name in ("dataset build", "dataset check", "dataset import", "train", "evaluate",
                 "simulate", "export", "validate", "report"):
        assert name in result.stdout


def test_build_with_overrides_writes_dataset_and_run_folder(cli, tmp_path: Path) -> None:  # noqa: ANN001
    result = cli("dataset", "build", "synthetic", "dataset.n_rows=2000", "dataset.drift=0.5",
                 "hydra.run.dir=outputs/mine")
    assert result.returncode == 0, result.stderr
    assert "rows:             2,000" in result.stdout
    card = json.loads((tmp_path / "datasets" / "synthetic.card.json").read_text())
    assert card["n_rows"] == 2000 and card["params"]["drift"] == 0.5
    assert (tmp_path / "outputs" / "mine" / ".hydra" / "config.yaml").exists()

    check = cli("dataset", "check", "datasets/synthetic.parquet")
    assert check.returncode == 0, check.stderr
    assert card["content_hash"] in check.stdout


def test_check_of_bad_file_is_one_line_exit_2(cli, tmp_path: Path) -> None:  # noqa: ANN001
    (tmp_path / "bad.csv").write_text("request_id,x,device_correct,cloud_correct\n1,0.5,1,0\n2,inf,0,1\n")
    assert_one_line_error(cli("dataset", "check", "bad.csv"), "bad.csv", "column 'x', row 2")


def test_user_mistakes_in_the_command_line_are_one_line(cli, tmp_path: Path) -> None:  # noqa: ANN001
    assert_one_line_error(cli("dataset", "build", "nosuch"), "dataset=nosuch", "digits")
    assert_one_line_error(cli("dataset", "build", "synthetic", "dataset.n_rowz=5"), "n_rowz")
    assert_one_line_error(cli("dataset", "build", "synthetic", "dataset.n_rows=many"), "dataset.n_rows")
    assert_one_line_error(cli("dataset", "build", "synthetic", "dataset.sensitive_fraction=2"),
                          "dataset.sensitive_fraction")
    assert_one_line_error(cli("simulat"), "unknown command 'simulat'")
    assert_one_line_error(cli("dataset", "check"), "missing PATH")
    assert not (tmp_path / "datasets").exists() or not any((tmp_path / "datasets").glob("*.parquet"))
