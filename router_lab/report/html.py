"""One self-contained ``report.html`` rendered from ``templates/report.html.j2`` (jinja2, autoescaped):
figures embedded as base64 PNG, the scenario in words, the best policy per objective and the table;
opens from disk with no server and no network."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import pandas as pd
from markupsafe import Markup, escape

from router_lab import metric_catalogue as catalogue
from router_lab.report.figures import Drawn
from router_lab.report.formatting import (
    NONE,
    factor_label,
    format_column,
    format_number,
    policy_label,
)


@dataclass(frozen=True)
class Objective:
    """A column to optimise, which way, and how to print its value (before and after the number)."""

    title: str
    column: str
    maximise: bool
    prefix: str = ""
    unit: str = ""

    @classmethod
    def of(cls, metric: catalogue.Metric) -> Objective:
        """The objective a catalogue metric declares (its title, direction and unit)."""
        prefix, unit = metric.affixes
        return cls(metric.objective, metric.name, metric.better == "higher", prefix=prefix, unit=unit)


# The catalogue's metrics that have an objective title, in its order.
OBJECTIVES = tuple(Objective.of(m) for m in catalogue.CATALOGUE if m.objective)


SLO_MISS_BUDGET = 0.05


def png_base64(figure) -> str:  # noqa: ANN001 - a matplotlib Figure
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _value(objective: Objective, value: object) -> str:
    text = format_number(value)
    return text if text == NONE else f"{objective.prefix}{text}{objective.unit}"


def _label(row: pd.Series, label_columns: list[str]) -> str:
    return factor_label(row, label_columns) or str(row["job"])


def best_per_objective(frame: pd.DataFrame, label_columns: list[str],
                       excluded_policies: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """(objective, winning job's label, value) for every objective the table has.

    ``label_columns`` are the swept factors only: a setting that follows another's choice
    (``device.units`` follows ``device``) would repeat on every line and name nothing new."""
    candidates = frame[~frame["policy"].isin(excluded_policies)] if "policy" in frame else frame
    best = []
    for objective in OBJECTIVES:
        if objective.column not in candidates or candidates[objective.column].isna().all():
            continue
        values = candidates[objective.column].astype(float)
        row = candidates.loc[values.idxmax() if objective.maximise else values.idxmin()]
        best.append((objective.title, _label(row, label_columns), _value(objective, row[objective.column])))
    if {"accuracy", "slo_miss_rate"} <= set(candidates):
        meeting = candidates[candidates["slo_miss_rate"] <= SLO_MISS_BUDGET]
        title = f"highest accuracy with at most {SLO_MISS_BUDGET:.0%} SLO misses"
        if meeting.empty:
            best.append((title, "none of these jobs meets it", NONE))
        else:
            row = meeting.loc[meeting["accuracy"].astype(float).idxmax()]
            best.append((title, _label(row, label_columns),
                         _value(Objective.of(catalogue.metric("accuracy")), row["accuracy"])))
    return best


def breakable(name: str) -> Markup:
    """A column name that may wrap after ``_`` and ``.`` (narrow headers, no overflow)."""
    out = escape(name)
    for sep in ("_", "."):
        out = Markup(f"{sep}<wbr>").join(out.split(sep))
    return Markup(out)


@dataclass(frozen=True)
class Table:
    """The results table, formatted: headers, rows of strings, which columns are numbers."""

    headers: list[Markup]
    rows: list[list[str]]
    numeric: list[bool]


def results_table(frame: pd.DataFrame, columns: list[str], upper_bounds: tuple[str, ...]) -> Table:
    """The shown columns, each formatted as one (thousands separators, one number of decimals per
    column, ``–`` for none), upper-bound policies labelled; ``policy`` first (frozen on the page)."""
    shown = [c for c in columns if c in frame]
    if "policy" in shown:
        shown.remove("policy")
        shown.insert(0, "policy")
    cells, numeric = [], []
    for column in shown:
        values = frame[column].tolist()
        if column == "policy":
            cells.append([policy_label(v, upper_bounds) for v in values])
            numeric.append(False)
        else:
            cells.append(format_column(values))
            numeric.append(pd.api.types.is_numeric_dtype(frame[column]) and
                           not pd.api.types.is_bool_dtype(frame[column]))
    rows = [list(row) for row in zip(*cells, strict=True)] if cells else []
    return Table([breakable(c) for c in shown], rows, numeric)


def _environment():
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("router_lab.report", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True)


def render_report(title: str, scenario_lines: list[str], best: list[tuple[str, str, str]],
                  figures: list[Drawn], table: Table, left_out: list[tuple[str, str]],
                  notes: list[str], table_heading: str = "Results (one row per job; full table in summary.csv)",
                  scenario_heading: str = "Scenario") -> str:
    """The whole page as a string (UTF-8, no external references)."""
    shown = [{"title": d.title, "caption": d.caption,
              "png": png_base64(d.figure) if d.figure is not None else None} for d in figures]
    return _environment().get_template("report.html.j2").render(
        title=title, scenario_lines=scenario_lines, best=best, figures=shown, table=table,
        left_out=left_out, notes=notes, table_heading=table_heading, scenario_heading=scenario_heading)
