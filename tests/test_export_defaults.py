"""export/validate measure parity on the router's own dataset by default, and time scikit-learn
with one thread and few calls (or not at all)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def test_export_defaults_to_the_routers_dataset_and_times_sklearn_briefly(cli, tmp_path: Path) -> None:  # noqa: ANN001
    synthetic = ["dataset=synthetic", "dataset.n_rows=2000"]
    done = cli("train", *synthetic, "hydra.run.dir=outputs/train/run")
    assert done.returncode == 0, done.stderr
    card = json.loads((tmp_path / "datasets" / "synthetic.card.json").read_text())
    quick = ["export.latency_calls=50", "export.batch_calls=2"]

    done = cli("export", "run_dir=outputs/train/run", "hydra.run.dir=outputs/export/a", *quick)
    assert done.returncode == 0, done.stderr  # the default dataset (digits) has other features
    report = json.loads((tmp_path / "outputs" / "export" / "a" / "validation.json").read_text())
    assert report["dataset"] == "synthetic" and report["dataset_hash"] == card["content_hash"]
    assert report["sklearn_n_calls"] == 200 and report["onnx_n_calls"] == 50

    done = cli("validate", "outputs/export/a/router.onnx", "hydra.run.dir=outputs/validate/a",
               "export.sklearn_latency_calls=0", *quick)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "outputs" / "validate" / "a" / "validation.json").read_text())
    assert report["dataset_hash"] == card["content_hash"] and report["passed"] is True
    assert not any(key.startswith("sklearn_") for key in report)

    # A router folder without its run's config, away from the datasets cache: nothing to resolve.
    lonely = tmp_path / "lonely"
    shutil.copytree(tmp_path / "outputs" / "train" / "run", lonely,
                    ignore=shutil.ignore_patterns("config.yaml", ".hydra"))
    (tmp_path / "empty").mkdir()
    done = cli("export", f"run_dir={lonely}", "datasets_dir=empty", *quick)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("router-lab: error: ") and "'synthetic'" in line
    assert "cannot find the dataset the router was trained on" in line and "dataset=" in line
