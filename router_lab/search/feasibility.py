"""Constraints on a trial's metrics, decided on its 95% confidence intervals.

A constraint ``metric<=bound`` holds only when the CI's upper bound is at or below ``bound``;
``metric>=bound`` only when the CI's lower bound is at or above it (``search.feasibility=ci``, the
default).  A trial whose point estimate meets a constraint while its interval crosses the bound
meets it only by noise and is not feasible.  A metric without an interval (fewer than two
replications or batches) is not shown to hold.  ``search.feasibility=mean`` decides on the point
estimates instead.  Optuna sees the objective of a feasible trial as it is and an infeasible one
as ``PENALTY`` plus its relative violation, worse than every feasible trial.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from router_lab import metric_catalogue as catalogue
from router_lab.errors import RouterLabError

PENALTY = 1e9  # worse than any feasible objective; Optuna's TPE ranks trials, so the size is moot
RULES = ("ci", "mean")
DIRECTIONS = ("minimize", "maximize")
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=)\s*(\S+)\s*$")


@dataclass(frozen=True)
class Constraint:
    metric: str
    op: str  # "<=" or ">="
    bound: float

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.bound:g}"


@dataclass(frozen=True)
class Verdict:
    """How a trial stands: its objective, whether it is feasible, and by how much it is not."""

    objective: float | None
    feasible: bool
    violation: float  # sum of relative shortfalls of the decisive bounds; 0 when feasible
    checks: tuple[dict[str, Any], ...]  # one per constraint: metric, op, bound, decisive, holds

    def optuna_value(self, direction: str) -> float:
        if self.feasible and self.objective is not None:
            return float(self.objective)
        worse = PENALTY + self.violation
        return worse if direction == "minimize" else -worse

    def to_dict(self) -> dict[str, Any]:
        return {"objective": self.objective, "feasible": self.feasible, "violation": self.violation,
                "checks": list(self.checks)}


def parse_constraint(text: str) -> Constraint:
    match = _CONSTRAINT.match(str(text))
    if match is None:
        raise RouterLabError(f"search.constraints: got {text!r}; expected 'metric<=number' or "
                             "'metric>=number', e.g. 'latency_p99_ms<=500'")
    metric, op, bound = match.groups()
    try:
        value = float(bound)
    except ValueError:
        raise RouterLabError(f"search.constraints: {text!r}: bound {bound!r} is not a number") from None
    return Constraint(metric, op, value)


def check_section(section: Any) -> list[Constraint]:
    """Validate ``search.*`` once, before any trial runs; return the parsed constraints.

    The objective and every constrained metric must be a (single-number) metric of the catalogue;
    under the ``ci`` rule a constrained metric needs an interval, or it could never hold."""
    if section.direction not in DIRECTIONS:
        raise RouterLabError(f"search.direction: got {section.direction!r}; expected one of {', '.join(DIRECTIONS)}")
    if section.feasibility not in RULES:
        raise RouterLabError(f"search.feasibility: got {section.feasibility!r}; expected one of {', '.join(RULES)}")
    known = catalogue.names(scalar=True)
    if section.objective not in known:
        raise RouterLabError(f"search.objective: got {section.objective!r}; expected a metric of metrics.json: "
                             f"{', '.join(known)}")
    constraints = [parse_constraint(c) for c in section.constraints]
    for c in constraints:
        if c.metric not in known:
            raise RouterLabError(f"search.constraints: {str(c)!r}: {c.metric!r} is not a metric of metrics.json; "
                                 f"expected one of {', '.join(known)}")
        if section.feasibility == "ci" and not catalogue.metric(c.metric).interval:
            raise RouterLabError(f"search.constraints: {str(c)!r}: {c.metric} has no 95% CI, so under "
                                 "search.feasibility=ci it can never be shown to hold; constrain one of "
                                 f"{', '.join(catalogue.names(interval=True))} or set search.feasibility=mean")
    return constraints


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def judge(metrics: dict[str, Any], objective: str, constraints: list[Constraint], rule: str = "ci") -> Verdict:
    """The verdict on one trial's ``metrics.json`` (see the module docstring for the rule)."""
    if objective not in metrics:
        raise RouterLabError(f"search.objective: got {objective!r}; expected a metric of metrics.json, "
                             f"e.g. {', '.join(k for k in ('cost_per_1k_usd', 'latency_p99_ms', 'accuracy'))}")
    intervals = metrics.get("ci95") or {}
    checks, violation = [], 0.0
    for c in constraints:
        if c.metric not in metrics:
            raise RouterLabError(f"search.constraints: {c}: {c.metric!r} is not a metric of metrics.json")
        if rule == "ci":
            low, high = (list(intervals.get(c.metric) or []) + [None, None])[:2]
            decisive = _number(high if c.op == "<=" else low)
        else:
            decisive = _number(metrics[c.metric])
        if decisive is None:
            holds, short = False, 1.0  # not shown to hold
        else:
            gap = decisive - c.bound if c.op == "<=" else c.bound - decisive
            holds = gap <= 0
            short = max(0.0, gap) / max(abs(c.bound), 1e-12)
        violation += short
        checks.append({"constraint": str(c), "metric": c.metric, "op": c.op, "bound": c.bound,
                       "estimate": _number(metrics[c.metric]), "decisive": decisive, "holds": holds})
    value = _number(metrics[objective])
    feasible = all(ch["holds"] for ch in checks) and value is not None
    return Verdict(value, feasible, 0.0 if feasible else violation, tuple(checks))
