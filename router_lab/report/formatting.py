"""How the report prints numbers and names: one place for the page, summary.md and the figures.

Numbers get thousands separators and a fixed number of significant digits, never scientific
notation; a column shares one number of decimals (so its values line up); a missing value
(None, NaN, a null queue limit) prints as ``–``; upper-bound policies carry "(upper bound)".
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

NONE = "–"
SIGNIFICANT_DIGITS = 4
MAX_DECIMALS = 6
UPPER_BOUND = " (upper bound)"


def is_missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or an array: not one missing value
        return False


def decimals_for(magnitude: float, digits: int = SIGNIFICANT_DIGITS) -> int:
    """Decimals that give ``digits`` significant digits to a number of this size (0 at or past
    10**(digits-1): 4,691 ms, not 4,691.2)."""
    if not math.isfinite(magnitude) or magnitude == 0:
        return 0
    return int(min(MAX_DECIMALS, max(0, digits - 1 - math.floor(math.log10(abs(magnitude))))))


def _is_integral(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def format_number(value: object, decimals: int | None = None, digits: int = SIGNIFICANT_DIGITS) -> str:
    """One value: ``–`` for none, ``4,691`` for counts and large numbers, ``0.3800`` for a fraction.

    ``decimals`` fixes the decimals (a column's); otherwise they follow the value's own size."""
    if is_missing(value):
        return NONE
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if _is_integral(value):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        number = float(value)
        if not math.isfinite(number):
            return "∞" if number > 0 else "−∞"
        places = decimals_for(number, digits) if decimals is None else decimals
        text = f"{number:,.{places}f}"
        return "0" if text.strip("-0.,") == "" and places == 0 else text
    return str(value)


def column_decimals(values: Iterable[object], digits: int = SIGNIFICANT_DIGITS) -> int | None:
    """One number of decimals for a column, from its largest magnitude; None when every value is
    whole (counts, ids, settings such as 8 or 600) so they print without decimals."""
    numbers = [float(v) for v in values if not is_missing(v) and isinstance(v, float | int | np.number)
               and not isinstance(v, bool | np.bool_)]
    numbers = [v for v in numbers if math.isfinite(v)]
    if not numbers or all(v == int(v) for v in numbers):
        return None
    largest = max(abs(v) for v in numbers)
    return decimals_for(largest, digits) if largest else 0


def format_column(values: Sequence[object], digits: int = SIGNIFICANT_DIGITS) -> list[str]:
    """The values of one table column, sharing one number of decimals."""
    places = column_decimals(values, digits)
    out = []
    for value in values:
        if places is None and isinstance(value, float | np.floating) and not is_missing(value) \
                and math.isfinite(float(value)):
            out.append(f"{int(round(float(value))):,}")  # whole numbers stored as floats (600.0, 8.0)
        else:
            out.append(format_number(value, places, digits))
    return out


def format_setting(value: object) -> str:
    """A config value in a label or a sentence: ``600`` not ``600.0``, ``–`` for null."""
    if isinstance(value, float | np.floating) and not is_missing(value) and math.isfinite(float(value)) \
            and float(value) == int(value):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating) and not is_missing(value) and math.isfinite(float(value)):
        text = format_number(value, digits=6)  # 0.005, 1.25, 12,345.7: no trailing zeros
        return text.rstrip("0").rstrip(".") if "." in text else text
    return format_number(value)


def policy_label(policy: object, upper_bounds: Iterable[str]) -> str:
    """The policy's name, with "(upper bound)" for a policy that sees the answers."""
    name = str(policy)
    return name + UPPER_BOUND if name in set(upper_bounds) else name


def factor_label(row: pd.Series | dict, factors: Sequence[str], upper_bounds: Iterable[str] = (),
                 short: bool = False) -> str:
    """``policy=oracle (upper bound), device=wearable``: the swept factors of one job.

    ``short`` drops the group prefix of a dotted key (``threshold=0.3`` for policy.threshold)."""
    parts = []
    for column in factors:
        if column not in row:
            continue
        value = row[column]
        text = policy_label(value, upper_bounds) if column == "policy" else format_setting(value)
        key = column.rsplit(".", 1)[-1] if short and "." in column else column
        parts.append(f"{key}={text}")
    return ", ".join(parts)


def wrap_title(text: str, width: int = 90, max_lines: int = 2) -> str:
    """Wrap a figure subtitle at ``width`` characters; past ``max_lines`` end with "…" (the page's
    scenario list has the whole text)."""
    lines = textwrap.wrap(text, width=width, break_on_hyphens=False) or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = textwrap.shorten(lines[-1] + " …", width=width - 2, placeholder=" …")
        if not lines[-1].endswith("…"):
            lines[-1] += " …"
    return "\n".join(lines)


def abbreviate_values(values: Sequence[str], limit: int = 12) -> str:
    """``a, b, c, …`` for a list that may be long (the first ``limit`` values, then how many more)."""
    shown = ", ".join(values[:limit])
    return shown + (f", … ({len(values) - limit} more)" if len(values) > limit else "")
