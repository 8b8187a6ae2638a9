"""Table cells: how numbers, intervals, p-values and status counts read in the report.

Pure functions from values (or a summary row) to text; a missing value is always
:data:`DASH`, never 0 or "nan". :func:`text_table` lays rows out for the terminal.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from harness import names
from harness.reports import display

#: what a missing value reads as, in every table
DASH = "—"


def isnan(value: Any) -> bool:
    """Whether a cell holds no value: None, ``pd.NA`` or a float NaN."""
    try:
        return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
    except TypeError:
        return False


def fmt_num(value: Any, digits: int | None = None) -> str:
    """A number with ``digits`` decimals; without, an integer as one and a float to 6
    significant digits. Text and booleans as they are."""
    if isnan(value):
        return DASH
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if digits is not None:
            return f"{value:.{digits}f}"
        if float(value).is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.6g}"
    return str(value)


def fmt_pm(mean: Any, std: Any, digits: int) -> str:
    """``mean ± std``; no ± for a single value (NaN sd)."""
    if isnan(mean):
        return DASH
    text = f"{mean:.{digits}f}"
    if not isnan(std):
        text += f" ± {std:.{digits}f}"
    return text


def fmt_p(p: Any) -> str:
    if isnan(p):
        return DASH
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def status_cell(row: pd.Series) -> str:
    """A summary row's status counts: ``ok 3, collapsed 1`` (and runs with no status)."""
    parts = [f"{s} {int(row[s])}" for s in names.STATUSES if s in row and int(row[s])]
    unknown = int(row["n"]) - sum(int(row[s]) for s in names.STATUSES if s in row)
    if unknown > 0:
        parts.append(f"no status {unknown}")
    return ", ".join(parts) or DASH


def full_coverage_cell(row: pd.Series) -> str:
    """Mean steps to full coverage over the runs that got there, and how many did (k/n)."""
    mean = row[f"{names.STEPS_TO_FULL_COVERAGE}_mean"]
    return f"{fmt_num(mean, 0) if not isnan(mean) else DASH} ({row['full_coverage']})"


def ci_cell(row: pd.Series, metric: str = names.MODES_COVERED,
            digits: int | None = None) -> str:
    """``[low, high]`` of a summary row's bootstrap interval; a dash when there is none."""
    digits = display.decimals(metric) if digits is None else digits
    low, high = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    if isnan(low) or isnan(high):
        return DASH
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns two spaces apart, a dashed rule under the headers."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(out)
