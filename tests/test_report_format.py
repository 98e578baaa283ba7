"""The report at any size, one test per defect seen on a 12-job sweep (issue 16): clipped
subtitles, `nan` for a null setting, 'best policy' lines repeating every device.* key, a
routing-curve figure of one unnamed scenario, mixed number formats, an SLO line near a policy's
colour, upper bounds without their label, and HTML built by string concatenation."""

from __future__ import annotations

import html
import importlib.resources
import re

import matplotlib.colors
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.backends.backend_agg import FigureCanvasAgg

from router_lab.report import figures
from router_lab.report.build import describe_scenario, markdown_table
from router_lab.report.formatting import (
    NONE,
    factor_label,
    format_column,
    format_number,
    format_setting,
    wrap_title,
)
from router_lab.report.html import best_per_objective, render_report, results_table
from router_lab.report.summary import swept_factors
from router_lab.report.timeline import scenario_groups

DEVICES = {  # name: (units, queue_limit, service_mean_ms) — what conf/device/*.yaml set
    "wearable": (1, 8.0, 600.0), "phone_npu": (1, np.nan, 150.0), "laptop_cpu": (4, 64.0, 300.0)}
POLICIES = ("always_local", "always_cloud", "confidence", "oracle")


def device_sweep_frame(policies: tuple[str, ...] = POLICIES, devices: dict = DEVICES,
                       seed: int = 0) -> pd.DataFrame:
    """A summary table shaped as summary_frame's for a device x policy sweep (made-up metrics)."""
    rng = np.random.default_rng(seed)
    rows = []
    for d, (device, (units, queue, service)) in enumerate(devices.items()):
        for p, policy in enumerate(policies):
            accuracy = float(rng.uniform(0.3, 0.99))
            rows.append({
                "job": f"{d * len(policies) + p}_device={device},policy={policy}", "policy": policy,
                "device": device, "device.units": units, "device.queue_limit": queue,
                "device.service_mean_ms": service, "seed": 0, "sim.slo_ms": 500.0, "dataset": "digits",
                "accuracy": accuracy, "accuracy_ci95_low": accuracy - 0.02,
                "accuracy_ci95_high": accuracy + 0.02, "cloud_fraction": float(rng.uniform(0, 1)),
                "cost_per_1k_usd": float(rng.uniform(0, 0.05)),
                "latency_p99_ms": float(rng.uniform(150, 60_000)), "slo_miss_rate": float(rng.uniform(0, 0.3)),
                "offdevice_bytes": int(rng.integers(0, 500_000)), "n_requests": 10_000,
                "upper_bound": policy == "oracle"})
    return pd.DataFrame(rows)


VARIED = ["policy", "device", "device.units", "device.queue_limit", "device.service_mean_ms"]


def _inside_figure(fig) -> list[str]:  # noqa: ANN001 - a Figure
    """Texts (titles, labels, legends) that reach outside the saved figure."""
    canvas = FigureCanvasAgg(fig)  # what savefig draws with
    canvas.draw()
    renderer = canvas.get_renderer()
    box = fig.bbox
    ticks = {id(t) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)  # placed by matplotlib; some
             for t in axis.get_ticklabels(which="both")}  # lie past the limits, undrawn
    out = []
    for artist in fig.findobj(lambda a: hasattr(a, "get_window_extent") and a.get_visible()):
        if isinstance(artist, matplotlib.text.Text) and (not artist.get_text() or id(artist) in ticks):
            continue
        if not isinstance(artist, matplotlib.text.Text | matplotlib.legend.Legend):
            continue
        extent = artist.get_window_extent(renderer)
        if extent.x0 < box.x0 - 1 or extent.x1 > box.x1 + 1 or extent.y0 < box.y0 - 1 or extent.y1 > box.y1 + 1:
            out.append(artist.get_text() if isinstance(artist, matplotlib.text.Text) else "legend")
    return out


# -- numbers ---------------------------------------------------------------------------------------

def test_numbers_have_thousands_separators_and_no_scientific_notation() -> None:
    # the three forms the issue saw in one table: 5.899e+04, 4,253 and 487922
    assert format_number(58_990.4) == "58,990"
    assert format_number(4253) == "4,253"
    assert format_number(np.int64(487_922)) == "487,922"
    assert format_number(0.000012345) == "0.000012"  # six decimals at most, never 1.2e-05
    assert format_number(0.98333) == "0.9833" and format_number(177.61) == "177.6"


@given(st.floats(min_value=-1e12, max_value=1e12, allow_nan=False))
def test_no_value_prints_in_scientific_notation(value: float) -> None:
    for text in (format_number(value), format_setting(value), *format_column([value, 1.5])):
        assert not re.search(r"\de[+-]?\d", text), text


def test_a_column_shares_one_number_of_decimals() -> None:
    assert format_column([0.38, 0.98333]) == ["0.3800", "0.9833"]
    assert format_column([0.38, 0.98333, 1.5]) == ["0.380", "0.983", "1.500"]  # 4 digits of the largest
    assert format_column([177.61, 6692.3, np.nan]) == ["178", "6,692", NONE]
    assert format_column([300, 10_000]) == ["300", "10,000"]


def test_none_and_null_settings_print_as_a_dash_not_nan() -> None:
    assert format_number(None) == NONE and format_number(float("nan")) == NONE
    assert format_setting(np.nan) == NONE and format_setting(600.0) == "600"
    assert format_column([8.0, np.nan, 64.0]) == ["8", NONE, "64"]  # device.queue_limit
    frame = device_sweep_frame()
    factors, follows = swept_factors(frame, VARIED)
    lines, _ = describe_scenario(frame, factors, follows, ("oracle",))
    table = results_table(frame, [*factors, "device.queue_limit", "latency_p99_ms"], ("oracle",))
    text = " ".join(lines) + " ".join(c for row in table.rows for c in row) + markdown_table(frame, list(frame))
    assert "nan" not in text.lower().replace("sensitive", "")


# -- labels ----------------------------------------------------------------------------------------

def test_settings_that_follow_the_device_are_not_factors() -> None:
    frame = device_sweep_frame()
    factors, follows = swept_factors(frame, VARIED)
    assert factors == ["policy", "device"]
    assert follows == {"device": ["device.units", "device.queue_limit", "device.service_mean_ms"]}
    # a setting swept on its own within a group stays a factor
    frame["policy.threshold"] = np.repeat([0.1, 0.2, 0.3], len(POLICIES))  # differs within a policy
    assert swept_factors(frame, [*VARIED, "policy.threshold"])[0] == ["policy", "device", "policy.threshold"]


def test_best_policy_lines_name_the_swept_factors_once() -> None:
    frame = device_sweep_frame()
    factors, _ = swept_factors(frame, VARIED)
    best = best_per_objective(frame, factors, ("oracle",))
    assert best, "no objective"
    for _, label, value in best:
        assert "device." not in label and label.count("device=") == 1, label
        assert "oracle" not in label  # an upper bound is a reference, not a choice
        assert "e+" not in value and "nan" not in value


def test_upper_bounds_are_labelled_in_the_table_the_markdown_and_the_legends() -> None:
    frame = device_sweep_frame()
    table = results_table(frame, ["device", "policy", "accuracy"], ("oracle",))
    assert table.headers[0] == "policy"  # first: the column the page freezes
    assert {row[0] for row in table.rows} == {"always_local", "always_cloud", "confidence",
                                              "oracle (upper bound)"}
    assert "| oracle (upper bound) |" in markdown_table(frame, ["policy", "accuracy"], ("oracle",))
    assert factor_label(frame.iloc[3], ["policy", "device"], ("oracle",)) == \
        "policy=oracle (upper bound), device=wearable"
    drawn = figures.accuracy_cost_figure(frame, "digits", ["policy", "device"])
    legend_texts = [t.get_text() for legend in drawn.figure.findobj(matplotlib.legend.Legend)
                    for t in legend.get_texts()]
    assert "oracle (upper bound)" in legend_texts and "oracle" not in legend_texts


# -- figures ---------------------------------------------------------------------------------------

def test_long_subtitles_wrap_within_the_width_and_are_abbreviated() -> None:
    long = " · ".join(f"device.setting_{i}={i * 1000.5}" for i in range(40))
    wrapped = wrap_title(long, width=90, max_lines=2)
    assert len(wrapped.splitlines()) == 2 and wrapped.endswith("…")
    assert all(len(line) <= 90 for line in wrapped.splitlines())
    assert wrap_title("short", 90) == "short"


@pytest.mark.parametrize("n_devices", [1, 3, 12])
def test_figure_texts_stay_inside_the_figure_at_any_sweep_size(n_devices: int) -> None:
    devices = {f"device_with_a_long_name_{i}": (1 + i % 4, np.nan if i % 3 else 8.0, 100.0 + i)
               for i in range(n_devices)}
    frame = device_sweep_frame(devices=devices)
    factors, _ = swept_factors(frame, VARIED)
    scenario = " · ".join(f"{c}={v}" for c, v in frame.iloc[0].items())  # far too long for one line
    scenarios = scenario_groups(frame, factors)
    for drawn in (figures.accuracy_cost_figure(frame, scenario, factors),
                  figures.routing_curve_figure(scenarios, scenario, None, ["device"])):
        assert _inside_figure(drawn.figure) == [], drawn.name


def test_a_200_job_load_sweep_keeps_its_legend_inside_the_figure() -> None:
    devices = {f"device_{i}": (1, 8.0, 100.0 + i) for i in range(10)}
    frame = pd.concat([device_sweep_frame(devices=devices, seed=s).assign(**{"workload.rate_per_s": r})
                       for s, r in enumerate((1.0, 2.0, 4.0, 8.0, 12.0))], ignore_index=True)
    assert len(frame) == 200
    drawn = figures.latency_rate_figure(frame, "digits", ["policy", "device"])
    (legend,) = drawn.figure.axes[0].findobj(matplotlib.legend.Legend)
    assert len(legend.get_texts()) == 40 + 1  # policy x device, and the SLO line
    assert _inside_figure(drawn.figure) == []


def test_routing_curve_has_one_named_panel_per_scenario() -> None:
    frame = device_sweep_frame()
    scenarios = scenario_groups(frame, ["policy", "device"])
    assert [label for label, _ in scenarios] == ["device=wearable", "device=phone_npu", "device=laptop_cpu"]
    drawn = figures.routing_curve_figure(scenarios, "digits", None, ["device"])
    panels = [ax for ax in drawn.figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["device=wearable", "device=phone_npu", "device=laptop_cpu"]
    for ax, (_, part) in zip(panels, scenarios, strict=True):  # each panel plots its own jobs
        points = sorted(float(y) for bars in ax.containers for y in bars.lines[0].get_ydata())
        assert points == sorted(part["accuracy"].astype(float).tolist())
    assert drawn.caption.startswith("One panel per scenario (device); each point is one job of that")
    many = scenario_groups(device_sweep_frame(devices={f"d{i}": (1, 8.0, 100.0) for i in range(12)}),
                           ["policy", "device"])
    drawn = figures.routing_curve_figure(many, "digits", None, ["device"])
    assert sum(ax.get_visible() for ax in drawn.figure.axes) == figures.MAX_PANELS
    assert f"the first {figures.MAX_PANELS} of 12 scenarios" in drawn.caption


def _distance(a: str, b: str) -> float:
    return float(np.linalg.norm(np.subtract(matplotlib.colors.to_rgb(a), matplotlib.colors.to_rgb(b))))


def test_palette_is_okabe_ito_and_the_slo_line_is_distinct_from_every_policy_colour() -> None:
    assert figures.PALETTE[:7] == ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9",
                                   "#F0E442")
    assert min(_distance(figures.SLO_COLOR, c) for c in figures.PALETTE) > 0.5
    # the old pair, crimson beside tab10's red (the `confidence` policy's colour), fails this check
    assert min(_distance("crimson", c) for c in matplotlib.colormaps["tab10"].colors) < 0.5
    frame = device_sweep_frame()
    frame["workload.rate_per_s"] = np.tile([2.0, 4.0, 6.0], 4)
    drawn = figures.latency_rate_figure(frame, "digits", ["policy"])
    (slo,) = [line for line in drawn.figure.axes[0].lines if line.get_label().startswith("SLO")]
    assert slo.get_label() == "SLO 500 ms" and matplotlib.colors.to_hex(slo.get_color()) == "#000000"
    others = {matplotlib.colors.to_hex(line.get_color()) for line in drawn.figure.axes[0].lines
              if line is not slo}
    assert "#000000" not in others


def test_latency_axis_ticks_have_no_scientific_notation() -> None:
    frame = device_sweep_frame()
    frame["workload.rate_per_s"] = np.tile([2.0, 4.0, 6.0], 4)
    drawn = figures.latency_rate_figure(frame, "digits", ["policy"])
    ax = drawn.figure.axes[0]
    FigureCanvasAgg(drawn.figure).draw()
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert labels and not any(re.search(r"\de|\^|\$", t) for t in labels), labels


# -- the page --------------------------------------------------------------------------------------

def test_page_comes_from_the_packaged_template_and_escapes_what_it_shows() -> None:
    template = importlib.resources.files("router_lab.report") / "templates" / "report.html.j2"
    assert template.is_file()
    frame = device_sweep_frame()
    table = results_table(frame, ["policy", "device", "latency_p99_ms"], ("oracle",))
    page = render_report("<script>alert(1)</script>", ["a & b"], [("objective", "x<y", "1")],
                         [figures.Drawn("f", "missing", None, "not drawn: <because>")], table, [], [])
    assert "<script>alert" not in page and "&lt;script&gt;" in page and "a &amp; b" in page
    assert "not drawn: &lt;because&gt;" in page
    assert '<div class="table-box">' in page and "position: sticky" in page
    assert "latency_<wbr>p99_<wbr>ms" in page  # headers may wrap
    assert "oracle (upper bound)" in html.unescape(page)
