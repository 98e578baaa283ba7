"""`router-lab report PATH`: aggregate a run or a multirun folder into tables, figures, report.html."""

from __future__ import annotations

import sys
from pathlib import Path

from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from router_lab.errors import RouterLabError
from router_lab.report.build import ReportResult, build_report
from router_lab.report.targets import write_target_matrix


def report(cfg: DictConfig) -> ReportResult | Path:
    if not cfg.path:
        raise RouterLabError("report: missing PATH; expected 'router-lab report outputs/multirun/"
                             "simulate/<time>' (a run or multirun folder)")
    section = cfg.report
    out_dir = to_absolute_path(section.out_dir) if section.out_dir else None
    matrix = write_target_matrix(to_absolute_path(cfg.path), out_dir)  # exports with device targets
    if matrix:
        print(f"device targets (router x target):\n{matrix[1]}  matrix:  {matrix[0]}  (and target_matrix.csv)")
    try:
        result = build_report(to_absolute_path(cfg.path), out_dir, section.title, section.time_windows)
    except RouterLabError:
        if matrix:  # a folder of exports, no simulations: the matrix is the report
            return matrix[0]
        raise
    for job, reason in result.left_out:
        print(f"router-lab: report: left out {job}: {reason}", file=sys.stderr)
    expected = f" of {result.expected_jobs} expected" if result.expected_jobs is not None else ""
    print(f"report: {result.n_jobs} job(s){expected}, {len(result.left_out)} left out")
    print(f"  table:   {result.summary_csv}  (and summary.parquet, summary.md)")
    for path in result.figures:
        print(f"  figure:  {path}")
    print(f"  page:    {result.html}")
    return result
