"""Structured config of `router-lab search` (`search.*` on the command line)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SpaceRule:
    """Parameters searched only when every ``key=value`` of ``when`` holds for the trial.

    ``when`` is space-separated (``"policy=load_aware policy.inner.name=confidence"``); ``params``
    are written as Hydra sweeper params (``policy.min_confidence=interval(0.5,0.99)``)."""

    when: str = ""
    params: list[str] = field(default_factory=list)


@dataclass
class SearchSection:
    objective: str = "cost_per_1k_usd"  # a metric of metrics.json
    direction: str = "minimize"  # minimize | maximize
    # "metric<=bound" / "metric>=bound"; e.g. "latency_p99_ms<=${sim.slo_ms}", "accuracy>=0.95"
    constraints: list[str] = field(default_factory=list)
    # ci: a constraint holds only when its whole 95% CI does (upper bound <= max, lower >= min);
    # mean: on the point estimate (noise can then make a trial look feasible)
    feasibility: str = "ci"
    space: list[SpaceRule] = field(default_factory=list)  # conditional parameters
    routers: list[str] = field(default_factory=list)  # feature modes trained once for the search
    export_best: bool = False  # export the best feasible trial as a bundle, then load it back


SCHEMAS: list[tuple[str, str, type]] = []
