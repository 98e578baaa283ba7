"""Build a report: collect the jobs, write the summary table, the figures and ``report.html``.

``build_report(path, out_dir)`` is what `router-lab report PATH` calls; every file is written
atomically, and jobs left out are named with the reason in the result, the terminal and the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from router_lab import metric_catalogue as catalogue
from router_lab.constants import SUMMARY_CSV, SUMMARY_MD, SUMMARY_PARQUET
from router_lab.errors import RouterLabError
from router_lab.io import atomic_path, atomic_write_text
from router_lab.report import comparison, deployments, figures, timeline
from router_lab.report.formatting import (
    abbreviate_values,
    format_column,
    format_setting,
    policy_label,
)
from router_lab.report.html import best_per_objective, render_report, results_table
from router_lab.report.reference import reference_curves
from router_lab.report.summary import (
    GROUPS,
    Collection,
    collect,
    summary_csv,
    summary_frame,
    swept_factors,
    varied_columns,
)

# The metric columns of report.html's table and of summary.md, in the catalogue's display order.
METRIC_COLUMNS = catalogue.names(in_table=True)
MARKDOWN_METRICS = catalogue.names(in_markdown=True)


def markdown_table(frame: pd.DataFrame, columns: list[str], upper_bounds: tuple[str, ...] = ()) -> str:
    """A GitHub-markdown table of these columns, formatted as the page's table."""
    shown = [c for c in columns if c in frame]
    cells = [[policy_label(v, upper_bounds) for v in frame[c]] if c == "policy" else format_column(frame[c].tolist())
             for c in shown]
    lines = ["| " + " | ".join(shown) + " |", "|" + "|".join("---" for _ in shown) + "|"]
    lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |"
              for row in zip(*cells, strict=True)]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ReportResult:
    out_dir: Path
    summary_csv: Path
    summary_parquet: Path
    summary_md: Path
    html: Path
    figures: tuple[Path, ...]
    n_jobs: int
    left_out: tuple[tuple[str, str], ...]  # (job folder, reason)
    expected_jobs: int | None


def _config_candidates(collection: Collection) -> list[str]:
    """Config columns of the jobs (``<group>.name`` left out: it repeats the group's choice)."""
    names = {f"{g}.name" for g in GROUPS}
    columns = dict.fromkeys(c for job in collection.jobs for c in job.config)
    return [c for c in columns if c not in names]


def describe_scenario(frame: pd.DataFrame, varied: list[str],
                      follows: dict[str, list[str]] | None = None,
                      upper_bounds: tuple[str, ...] = ()) -> tuple[list[str], str]:
    """The scenario in words (lines for the page) and a one-line version for figure titles.

    ``varied`` are the swept factors; ``follows`` the settings each one sets (``device`` →
    ``device.units``, …), named once rather than listed as factors of their own."""
    first = frame.iloc[0]
    follows = follows or {}
    fixed_out = set(varied) | {c for columns in follows.values() for c in columns}

    def get(column: str) -> str | None:
        return None if column not in frame or column in fixed_out else format_setting(first[column])

    pieces = []
    if get("dataset"):
        pieces.append(f"dataset {get('dataset')}")
    if get("workload"):
        rate = get("workload.rate_per_s")
        pieces.append(f"{get('workload')} arrivals" + (f" at {rate} req/s" if rate else ""))
    for group in ("device", "network", "cloud"):
        if get(group):
            pieces.append(f"{group} {get(group)}")
    short = " · ".join(pieces) or "one scenario"
    lines = [short[0].upper() + short[1:] if pieces else short]
    if get("sim.n_requests"):
        reps = get("sim.replications")
        lines.append(f"{get('sim.n_requests')} requests per job"
                     + (f", {reps} replication(s) for the 95 % confidence intervals" if reps else ""))
    if get("sim.slo_ms"):
        lines.append(f"latency SLO {get('sim.slo_ms')} ms (end to end)")
    if get("seed"):
        lines.append(f"seed {get('seed')} (every job's random numbers derive from its config's seed)")
    for column in varied:
        values = list(dict.fromkeys(policy_label(v, upper_bounds) if column == "policy" else format_setting(v)
                                    for v in frame[column]))
        lines.append(f"varied: {column} ({len(values)} values: {abbreviate_values(values)})")
        if follows.get(column):
            names = [c[len(column) + 1:] for c in follows[column]]
            lines.append(f"set by each {column}: {abbreviate_values(names, 8)} (values in summary.csv)")
    return lines, short


def write_figures(drawn: list[figures.Drawn], out_dir: Path) -> list[Path]:
    written = []
    for item in drawn:
        if item.figure is None:
            continue
        path = out_dir / f"{item.name}.png"
        with atomic_path(path) as tmp:
            item.figure.savefig(tmp, format="png", metadata={"Software": None})
        written.append(path)
    return written


def draw_all(collection: Collection, frame: pd.DataFrame, factors: list[str], scenario: str,
             time_windows: int) -> list[figures.Drawn]:
    keys = figures.scenario_keys(factors)
    scenarios = timeline.scenario_groups(frame, factors)
    references = []
    for _, part in scenarios[:figures.MAX_PANELS]:
        job = next(j for j in collection.jobs if j.name == part["job"].iloc[0])
        references.append(reference_curves(job))
    return [
        figures.accuracy_cost_figure(frame, scenario, factors),
        figures.latency_rate_figure(frame, scenario, ["policy", *keys]),
        figures.routing_curve_figure(scenarios, scenario, references, keys),
        timeline.latency_cdf_figure(collection, frame, factors, scenario),
        timeline.over_time_figure(collection, frame, factors, scenario, time_windows),
    ]


def build_comparison_report(root: Path, out_dir: str | Path | None, title: str | None) -> ReportResult:
    """The report of a sim-vs-live run folder: its table, and each scenario's latency CDF embedded."""
    table, drawn = comparison.load_comparison(root)
    out = Path(out_dir) if out_dir else root / "report"
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / SUMMARY_PARQUET) as tmp:
        table.to_parquet(tmp, index=False)
    atomic_write_text(out / SUMMARY_CSV, table.to_csv(index=False, float_format="%.10g"))
    columns = list(table.columns)
    atomic_write_text(out / SUMMARY_MD, markdown_table(table, columns))
    figure_paths = write_figures(drawn, out)
    scenarios = list(dict.fromkeys(table["scenario"].astype(str)))
    lines = [f"{len(scenarios)} scenario(s), each simulated and run live on the testbed with the same seeds: "
             + ", ".join(scenarios),
             "rel_error = (live − sim) / sim; live_ci_low / live_ci_high: a 95 % t interval over the live "
             "replications"]
    page = render_report(title or f"router_lab sim vs live: {root}", lines, [], drawn,
                         results_table(table, columns, ()), [], [],
                         table_heading=f"Sim vs live (one row per scenario and metric; {comparison.TABLE_FILE})",
                         scenario_heading="Comparison")
    html_path = atomic_write_text(out / "report.html", page)
    for item in drawn:
        if item.figure is not None:
            item.figure.clear()
    return ReportResult(out, out / SUMMARY_CSV, out / SUMMARY_PARQUET, out / SUMMARY_MD, html_path,
                        tuple(figure_paths), 0, (), None)


def build_report(path: str | Path, out_dir: str | Path | None = None, title: str | None = None,
                 time_windows: int = 40) -> ReportResult:
    if comparison.is_comparison(Path(path)):
        return build_comparison_report(Path(path), out_dir, title)
    collection = collect(path)
    left_out = tuple((str(c.path.relative_to(collection.root)) if c.path != collection.root else ".",
                      c.reason) for c in collection.left_out)
    if not collection.jobs:
        reasons = "; ".join(f"{job}: {reason}" for job, reason in left_out[:3]) or "no job folders found"
        raise RouterLabError(f"report: no complete job under {collection.root} ({reasons}); expected "
                             "the folder of a `router-lab simulate` run or multirun")
    out = Path(out_dir) if out_dir else collection.root / "report"
    out.mkdir(parents=True, exist_ok=True)
    frame = deployments.annotate(summary_frame(collection))  # + deployment columns if several
    with atomic_path(out / SUMMARY_PARQUET) as tmp:
        frame.to_parquet(tmp, index=False)
    atomic_write_text(out / SUMMARY_CSV, summary_csv(frame))

    varied = varied_columns(frame, _config_candidates(collection))
    factors, follows = swept_factors(frame, varied)
    if "deployment" in frame:  # the deployment names the tiers: their config columns follow it
        factors = ["deployment", *[f for f in factors if not f.startswith("tiers.")]]
    upper_bounds = figures.upper_bound_policies(frame)
    scenario_lines, scenario = describe_scenario(frame, factors, follows, upper_bounds)
    drawn = draw_all(collection, frame, factors, scenario, time_windows)
    if "deployment" in frame:
        drawn.append(deployments.pareto_figure(frame, scenario))
        atomic_write_text(out / f"{deployments.FIGURE}.md", deployments.pareto_table(frame, factors or ["policy"]))
    figure_paths = write_figures(drawn, out)

    notes = []
    if collection.expected_jobs is not None and len(collection.jobs) < collection.expected_jobs:
        notes.append(f"{len(collection.jobs)} of the sweep's {collection.expected_jobs} jobs are "
                     "complete; re-run the sweep with +resume=true to finish the rest.")
    if upper_bounds:
        notes.append(f"{', '.join(policy_label(p, upper_bounds) for p in upper_bounds)} sees each "
                     "request's answers before routing: a reference, left out of the 'best policy' list.")
    label_columns = factors or ["policy"]
    best = best_per_objective(frame, label_columns, upper_bounds)
    table_columns = [*(factors or ["policy"]), *[c for c in METRIC_COLUMNS if c in frame], "job"]
    md_columns = [*(factors or ["job"]), *[c for c in MARKDOWN_METRICS if c in frame]]
    atomic_write_text(out / SUMMARY_MD, markdown_table(frame, md_columns, upper_bounds))
    table = results_table(frame, table_columns, upper_bounds)
    page = render_report(title or f"router_lab report: {collection.root}", scenario_lines, best, drawn,
                         table, list(left_out), notes)
    html_path = atomic_write_text(out / "report.html", page)
    for item in drawn:
        if item.figure is not None:
            item.figure.clear()
    return ReportResult(out, out / SUMMARY_CSV, out / SUMMARY_PARQUET, out / SUMMARY_MD, html_path,
                        tuple(figure_paths), len(collection.jobs), left_out, collection.expected_jobs)
