"""The simulator's metrics, each declared once: name, unit, which way is better, format, interval,
where it is shown.  The summary's CI keys, the report's columns and objectives, the search's checks
and the README's key list are derived from ``CATALOGUE``; a metric is an entry here plus its
computation in ``router_lab/sim/metrics.py`` (``tests/test_metric_catalogue.py`` holds the two equal).

Imports nothing heavy (no numpy, pandas or scipy): the simulator, the report and the search import it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

BETTER = ("higher", "lower", None)


@dataclass(frozen=True)
class Metric:
    """One key of ``metrics.json`` that measures the run.

    ``fmt`` is the format spec of the value in running text (the `simulate` printout); report
    tables format a column as a whole instead (one number of decimals per column).  ``interval``:
    the summary has its 95 % CI (``ci95``); ``fraction``: a proportion in [0, 1], its CI clipped to
    it.  ``in_table``: a column of report.html's table, ``in_markdown`` also of summary.md;
    ``objective``: the title of its line in report.html's "best per objective" list."""

    name: str
    unit: str  # "" for a dimensionless number (a fraction)
    better: str | None  # "higher", "lower" or None (neither: a consequence, not a goal)
    fmt: str
    interval: bool
    in_table: bool
    fraction: bool
    description: str
    in_markdown: bool = False
    objective: str = ""
    scalar: bool = True  # False: a dict of numbers (``outcomes``), no objective or constraint
    tiered: bool = False  # only in a tiered scenario's metrics.json (``tiers`` configured)

    def __post_init__(self) -> None:
        if self.better not in BETTER:
            raise ValueError(f"metric {self.name}: better={self.better!r}; expected one of {BETTER}")
        if self.in_markdown and not self.in_table:
            raise ValueError(f"metric {self.name}: in summary.md but not in the table")
        if self.objective and self.better is None:
            raise ValueError(f"metric {self.name}: an objective needs a direction (better)")
        if not self.scalar and (self.interval or self.in_table or self.objective):
            raise ValueError(f"metric {self.name}: a dict of numbers has no interval, column or objective")
        if self.fraction and self.unit:
            raise ValueError(f"metric {self.name}: a fraction has no unit (got {self.unit!r})")
        try:
            format(0.5, self.fmt)  # a bad format spec fails at import, not in a printout
        except ValueError as exc:
            raise ValueError(f"metric {self.name}: fmt {self.fmt!r} is not a format spec ({exc})") from None

    def text(self, value: object) -> str:
        """The value in running text (``n/a`` for none: a percentile with no answered request)."""
        return "n/a" if value is None else format(value, self.fmt)

    @property
    def affixes(self) -> tuple[str, str]:
        """What goes before and after a formatted value: ``("$", "")``, ``("", " ms")``, ``("", "")``."""
        if self.unit == "USD":
            return "$", ""
        return "", f" {self.unit}" if self.unit else ""

    def with_unit(self, number: str) -> str:
        """A formatted number with its unit: ``$0.0123``, ``512 ms``, ``0.9731``."""
        prefix, suffix = self.affixes
        return f"{prefix}{number}{suffix}"


def _m(name: str, unit: str, better: str | None, fmt: str, description: str, *, interval: bool = False,
       table: str = "", fraction: bool = False, objective: str = "", scalar: bool = True,
       tiered: bool = False) -> Metric:
    """``table``: "" (not shown), "page" (report.html) or "markdown" (report.html and summary.md)."""
    return Metric(name, unit, better, fmt, interval, bool(table), fraction, description,
                  in_markdown=table == "markdown", objective=objective, scalar=scalar, tiered=tiered)


# In display order: the report's columns follow it.  (metrics.json keeps its computation's order.)
CATALOGUE: tuple[Metric, ...] = (
    _m("accuracy", "", "higher", ".4f", "mean answer quality over measured requests (0 without an answer)",
       interval=True, table="markdown", fraction=True, objective="highest accuracy"),
    _m("cloud_fraction", "", None, ".4f", "share of measured requests uploaded to the cloud (one attempt or more)",
       interval=True, table="markdown", fraction=True),
    _m("cost_per_1k_usd", "USD", "lower", ".4f", "cloud cost per 1,000 measured requests",
       interval=True, table="markdown", objective="lowest cloud cost per 1,000 requests"),
    _m("latency_p50_ms", "ms", "lower", ".1f", "median end-to-end latency of answered requests",
       interval=True, table="markdown"),
    _m("latency_p99_ms", "ms", "lower", ".1f", "99th-percentile end-to-end latency of answered requests",
       interval=True, table="markdown", objective="lowest p99 latency"),
    _m("slo_miss_rate", "", "lower", ".4f", "share of requests unanswered or answered later than `slo_ms`",
       interval=True, table="markdown", fraction=True, objective="fewest SLO misses"),
    _m("energy_per_request_j", "J", "lower", ".4f", "device energy per request: inference plus idle power over "
       "the measured window", interval=True, table="markdown", objective="least energy per request"),
    _m("device_utilization", "", None, ".3f", "busy time of the device's units over the measured window",
       interval=True, table="page", fraction=True),
    _m("offdevice_bytes", "bytes", "lower", ",", "bytes uploaded, every attempt begun counted",
       table="page", objective="least data sent off the device"),
    _m("sensitive_offloaded", "requests", "lower", ",", "sensitive requests sent off the device (always 0)",
       table="page"),
    _m("n_requests", "requests", None, ",", "measured requests (those arriving after the warm-up), all "
       "replications", table="page"),
    _m("latency_mean_ms", "ms", "lower", ".1f", "mean end-to-end latency of answered requests", interval=True),
    _m("latency_p90_ms", "ms", "lower", ".1f", "90th-percentile end-to-end latency of answered requests"),
    _m("latency_p95_ms", "ms", "lower", ".1f", "95th-percentile end-to-end latency of answered requests",
       interval=True),
    _m("answered_by_cloud_fraction", "", None, ".4f", "share of requests the cloud answered (cloud or cascade)",
       fraction=True),
    _m("cloud_utilization", "", None, ".3f", "busy time of the cloud's units over the measured window",
       interval=True, fraction=True),
    _m("throughput_per_s", "requests/s", None, ".2f", "measured requests per second of the measured window"),
    _m("fallbacks", "requests", "lower", ",", "a cloud attempt failed and the device answered"),
    _m("rejections", "requests", "lower", ",", "the device queue was full: no answer"),
    _m("failures", "requests", "lower", ",", "no answer (cloud failure with `sim.on_cloud_failure=fail`, "
       "or an empty battery)"),
    _m("outcomes", "requests", None, ",", "requests per outcome: `{local, cloud, cascade, fallback, rejected, "
       "failed}`", scalar=False),
    _m("tier_shares", "", None, ".4f", "tiered scenarios only: share of measured requests each model answered, "
       "`{model: share}` in tier order (the device's: local answers and fallbacks; unanswered requests in "
       "none)", scalar=False, tiered=True),
    _m("tier_cost_per_1k_usd", "USD", None, ".4f", "tiered scenarios only: `{remote model: cost per 1,000 "
       "measured requests}` billed by each remote tier (a request that tried several tiers is billed "
       "by each tier that ran it, a failed attempt's bill to the tier that failed)", scalar=False, tiered=True),
    _m("n_requests_total", "requests", None, ",", "every simulated request, warm-up included"),
    _m("sensitive_blocked", "requests", None, ",", "sensitive requests a policy tried to send off the device "
       "(kept on it)"),
    _m("accounting_violations", "requests", "lower", ",", "requests breaking an accounting check "
       "(`sim/audit.py`), summed over the checks: 0; it replaced `littles_law_residual`; `null` for a "
       "testbed run, whose measured times are not the model's draws"),
)
BY_NAME: dict[str, Metric] = {m.name: m for m in CATALOGUE}
if len(BY_NAME) != len(CATALOGUE):
    raise ValueError("metric_catalogue: a metric is declared twice")

# The other keys of metrics.json: how the summary was made, not what it measured.
SUMMARY_FIELDS: dict[str, str] = {
    "ci95": "`{metric: [low, high]}` for every metric with a CI above",
    "ci_method": "`replications` (a t interval over the spawned-seed replications) or `batch_means` "
                 "(one run: over consecutive batches of requests)",
    "replications": "how many replications were pooled",
    "engine": "the engine that ran: `simpy`, `fast`, or `testbed` for a live run",
    "slo_ms": "the latency SLO `slo_miss_rate` counts against (`sim.slo_ms`)",
}
# Keys `simulate` adds to the summary (router_lab/sim/commands.py).
RUN_FIELDS: dict[str, str] = {
    "upper_bound": "true for a policy that needs the answers, such as the oracle: the report shows it but "
                   "never recommends it",
    "bundle_sha256": "the bundle's hash, when the policy ran from an exported bundle",
    "shipped_policy": "the `policy.json` node the (first replication's) policy ran — kind and params: the λ or "
                      "threshold chosen on val, the cascade flag — what `router-lab export` ships for the same "
                      "config; null for a policy that does not ship (the oracle)",
}


def metric(name: str) -> Metric:
    return BY_NAME[name]


def names(*, interval: bool | None = None, fraction: bool | None = None, in_table: bool | None = None,
          in_markdown: bool | None = None, scalar: bool | None = None,
          tiered: bool | None = None) -> tuple[str, ...]:
    """The metrics' names in display order, those with the given flags only."""
    wanted = {"interval": interval, "fraction": fraction, "in_table": in_table, "in_markdown": in_markdown,
              "scalar": scalar, "tiered": tiered}
    return tuple(m.name for m in CATALOGUE
                 if all(value is None or getattr(m, flag) == value for flag, value in wanted.items()))


README_BEGIN = "<!-- metric catalogue: generated from router_lab/metric_catalogue.py by " \
               "`python -m router_lab.metric_catalogue README.md`; a test checks it -->"
README_END = "<!-- end of the metric catalogue -->"


def readme_block() -> str:
    """The README's table of ``metrics.json`` keys (between the two markers, markers included)."""
    def shown(m: Metric) -> str:
        return "summary.md, report.html" if m.in_markdown else "report.html" if m.in_table else ""

    lines = [README_BEGIN, "| `metrics.json` key | unit | better | 95 % CI | report table | meaning |",
             "|---|---|---|---|---|---|"]
    lines += [f"| `{m.name}` | {m.unit or ('fraction' if m.fraction else '')} | {m.better or ''} | "
              f"{'yes' if m.interval else ''} | {shown(m)} | {m.description} |" for m in CATALOGUE]
    lines += [f"| `{key}` | | | | | {text} |" for key, text in {**SUMMARY_FIELDS, **RUN_FIELDS}.items()]
    return "\n".join([*lines, README_END])


def with_readme_block(text: str) -> str:
    """``text`` (the README) with its catalogue block replaced by the current one."""
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise ValueError(f"the README has no metric catalogue block ({README_BEGIN!r} … {README_END!r})")
    return text[:begin] + readme_block() + text[end + len(README_END):]


def main(argv: list[str]) -> int:
    """``python -m router_lab.metric_catalogue README.md``: rewrite the README's block in place."""
    from router_lab.io import atomic_write_text

    if len(argv) != 1:
        print("usage: python -m router_lab.metric_catalogue README.md", file=sys.stderr)
        return 2
    path = Path(argv[0])
    atomic_write_text(path, with_readme_block(path.read_text(encoding="utf-8")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
