"""Optional MLflow tracking: a 3-job sweep with tracking=mlflow gives 3 MLflow runs in a local file
store whose metrics equal the report's summary.csv; off by default."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli

from router_lab.report.build import build_report
from router_lab.tracking import import_mlflow

SWEEP = ["simulate", "-m", "policy=always_local,random,confidence", "sim.n_requests=300", "seed=3"]


@pytest.fixture(scope="module")
def mlflow():  # noqa: ANN201
    pytest.importorskip("mlflow", reason="mlflow is not installed: pip install -e '.[mlflow]' (in the test extras)")
    return import_mlflow()


def test_three_job_sweep_gives_three_mlflow_runs_equal_to_summary(mlflow, tmp_path: Path, digits,  # noqa: ANN001
                                                                 datasets_dir: Path) -> None:
    store = tmp_path / "mlruns"
    sweep_dir = tmp_path / "sweep"
    result = run_cli(*SWEEP, "tracking=mlflow", f"tracking.uri={store}", f"hydra.sweep.dir={sweep_dir}",
                     f"datasets_dir={datasets_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = build_report(sweep_dir)
    summary = pd.read_csv(report.summary_csv).set_index("job")
    exact = pd.read_parquet(report.summary_parquet).set_index("job")  # the same table, full precision
    mlflow.set_tracking_uri(f"file:{store}")
    runs = mlflow.search_runs(experiment_names=["router_lab/simulate"], output_format="list")
    assert sorted(r.info.run_name for r in runs) == sorted(summary.index)
    for run in runs:
        row = summary.loc[run.info.run_name]
        assert run.info.status == "FINISHED" and run.data.tags["router_lab.status"] == "complete"
        assert run.data.params["policy"] == row["policy"]
        compared = 0
        for column, value in row.items():
            if column in run.data.metrics:
                assert run.data.metrics[column] == float(exact.loc[run.info.run_name, column]), column
                assert math.isclose(run.data.metrics[column], float(value), rel_tol=1e-9), column  # csv: 10 digits
                compared += 1
        assert compared >= 20  # accuracy, latencies, cost, their CIs …
        artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
        assert {"config.yaml", "metrics.json", "requests.parquet", "_complete.json"} <= artifacts
    assert not (tmp_path / "outputs" / "mlruns").exists()  # only where tracking.uri said


def test_tracking_is_off_by_default_and_refuses_remote_stores(tmp_path: Path, digits, datasets_dir: Path) -> None:  # noqa: ANN001
    result = run_cli("simulate", "policy=always_local", "sim.n_requests=200", f"datasets_dir={datasets_dir}",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not (tmp_path / "outputs" / "mlruns").exists()
    refused = run_cli("simulate", "policy=always_local", "sim.n_requests=200", "tracking=mlflow",
                      "tracking.uri=http://example.invalid:5000", f"datasets_dir={datasets_dir}", cwd=tmp_path)
    assert refused.returncode == 2
    assert "router-lab: error: tracking.uri: got 'http://example.invalid:5000'" in refused.stderr
