"""What the summary tables lead with: the study's own metric, the metrics that judge a
dataset, and every coverage value beside its chance level.

Used by :func:`harness.reports.summary.summarize` (extra summary columns, per variant ×
dataset), by the terminal table (:func:`harness.reports.terminal.summary_table`) and by the
report's summary section. Pure functions over DataFrames; nothing here reads MLflow or
imports torch.

* **The study's metric** (``search.metric``, the parent run's ``metric`` param) gets a
  column whatever it is: every value a study may search
  (:func:`harness.reports.display.objectives`) gets summary columns, with the label and
  decimals :mod:`harness.reports.display` gives it, so a study's metric is never silently
  left out.
* **Judges** (:data:`JUDGES`): where a dataset's runs report them, FID (with its real-data
  floor, ``fid_floor``), ``cond_accuracy`` / ``code_accuracy``, CycleGAN's translation
  accuracy, cycle error and FIDs, and the xy game's final distance are shown beside the mode
  counts -- the table never shows mode counts alone where more is known.
* **Chance** (:func:`chance_state`): each trial logs ``chance.<value>`` (the mean score of a
  generator that ignores the data, same sample count) and, for the values that decide,
  ``chance_bound.<value>`` (:class:`harness.metrics.Chance`). A variant × dataset is *at
  chance* when the mean of a deciding value over its finished compared runs does not beat
  the bound (higher-is-better: mean > bound; lower-is-better: mean < bound), *above* when it
  beats every bound, *unknown* when it reports a coverage value but no bound was logged
  (never 0), and has no state (``None``) when it reports nothing a chance level applies to.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from harness import chance_rule, names
from harness.reports import display, stats, tables

FID_FLOOR = names.FID_FLOOR

#: the coverage values, shown beside their chance mean
COVERAGE = (names.MODES_COVERED, names.HQ_FRACTION, names.MODE_KL)
#: the metrics that judge a dataset where its runs report them (FID with its floor)
JUDGES = (names.FID, names.COND_ACCURACY, names.CODE_ACCURACY, names.TRANSLATION_ACCURACY,
          names.CYCLE_ERROR, names.FID_AB, names.FID_BA, names.XY_FINAL_DISTANCE)

#: summary column: the chance state of a variant × dataset (:func:`chance_state`)
CHANCE = "chance"
AT, ABOVE, UNKNOWN = "at", "above", "unknown"
DASH = tables.DASH


def chance_col(value: str) -> str:
    """Summary column of ``value``'s chance mean (mean of the runs' ``chance.<value>``)."""
    return f"{value}_chance"


def bound_col(value: str) -> str:
    """Summary column of ``value``'s chance bound (mean of the runs' ``chance_bound.<value>``)."""
    return f"{value}_chance_bound"


def beats(value_name: str, value: float, bound: float) -> bool | None:
    """Whether ``value`` is clearly above chance given ``bound``
    (:func:`harness.chance_rule.beats`, as :func:`harness.metrics.above_chance` applies it);
    None when either is not a number."""
    if not (_finite(value) and _finite(bound)):
        return None
    return chance_rule.beats(value_name, float(value), float(bound))


def _finite(x: Any) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _values(rows: pd.DataFrame, col: str) -> np.ndarray:
    if col not in rows:
        return np.array([], dtype=float)
    arr = pd.to_numeric(rows[col], errors="coerce").to_numpy(dtype=float)
    return arr[np.isfinite(arr)]


def _present(df: pd.DataFrame, col: str) -> bool:
    return bool(len(_values(df, col)))


# --- summary columns ---------------------------------------------------------------------


def chance_values(df: pd.DataFrame) -> tuple[list[str], list[str]]:
    """``(values with a chance mean, values with a chance bound)`` some run of ``df`` logged,
    in the order of their columns."""
    means = [c[len(names.CHANCE_PREFIX):] for c in df.columns
             if str(c).startswith(names.CHANCE_PREFIX)]
    bounds = [c[len(names.CHANCE_BOUND_PREFIX):] for c in df.columns
              if str(c).startswith(names.CHANCE_BOUND_PREFIX)]
    return means, bounds


def extra_metrics(df: pd.DataFrame, base: Iterable[str]) -> list[str]:
    """The headline metrics beyond ``base`` (the summary's own) that some run of ``df``
    reported: the search objectives (:func:`harness.reports.display.objectives`) and FID's
    floor, in that order."""
    base = set(base)
    return [m for m in (*display.objectives(), FID_FLOOR)
            if m not in base and _present(df, m)]


def summary_columns(df: pd.DataFrame, base: Iterable[str]) -> list[str]:
    """The columns :func:`pair_record` adds to a summary of ``df``."""
    cols: list[str] = []
    for m in extra_metrics(df, base):
        cols += [f"{m}_mean", f"{m}_std", f"{m}_n", f"{m}_ci_low", f"{m}_ci_high"]
    means, bounds = chance_values(df)
    cols += [chance_col(v) for v in means] + [bound_col(v) for v in bounds]
    return cols + [CHANCE]


def pair_record(df: pd.DataFrame, rows: pd.DataFrame, done: pd.DataFrame, base: Iterable[str],
                n_resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """The headline columns of one variant × dataset: ``rows`` its compared runs, ``done``
    those that did not fail; ``df`` every run (it decides which columns exist), ``base`` the
    metrics the summary has already. Means are over ``done``; chance levels over ``rows``
    (a trial logs them when it starts)."""
    rec: dict[str, Any] = {}
    for m in extra_metrics(df, base):
        vals = _values(done, m)
        rec[f"{m}_mean"] = float(vals.mean()) if len(vals) else np.nan
        rec[f"{m}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else np.nan
        rec[f"{m}_n"] = len(vals)
        rec[f"{m}_ci_low"], rec[f"{m}_ci_high"] = stats.bootstrap_ci(
            vals, n_resamples=n_resamples, seed=seed)
    means, bounds = chance_values(df)
    for v in means:
        vals = _values(rows, names.CHANCE_PREFIX + v)
        rec[chance_col(v)] = float(vals.mean()) if len(vals) else np.nan
    for v in bounds:
        vals = _values(rows, names.CHANCE_BOUND_PREFIX + v)
        rec[bound_col(v)] = float(vals.mean()) if len(vals) else np.nan
    rec[CHANCE] = chance_state(done, rec, bounds, means)
    return rec


def chance_state(done: pd.DataFrame, rec: dict[str, Any], bounds: Iterable[str],
                 means: Iterable[str] = ()) -> str | None:
    """:data:`AT`, :data:`ABOVE`, :data:`UNKNOWN` or None for one variant × dataset
    (module docstring): ``done`` its finished compared runs, ``rec`` its chance columns."""
    verdicts = []
    for v in bounds:
        bound = rec.get(bound_col(v), np.nan)
        if not _finite(bound):
            continue
        vals = _values(done, v)
        verdicts.append(beats(v, float(vals.mean()), bound) if len(vals) else None)
    if any(r is False for r in verdicts):
        return AT
    if verdicts and all(r is True for r in verdicts):
        return ABOVE
    if verdicts or any(_present(done, v) for v in (*COVERAGE, *means)):
        return UNKNOWN
    return None


# --- cells -----------------------------------------------------------------------------------


def short_number(x: float, significant: int = 2) -> str:
    """``x`` with about ``significant`` significant digits and no exponent: 6.6, 23, 0.0046."""
    if not _finite(x):
        return DASH
    x = float(x)
    if x == 0:
        return "0"
    decimals = max(0, significant - 1 - math.floor(math.log10(abs(x))))
    text = f"{x:.{min(decimals, 6)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _get(row: pd.Series, col: str) -> Any:
    return row[col] if col in row.index else np.nan


def value_text(row: pd.Series, metric: str, digits: int | None = None,
               with_modes: bool = True) -> str:
    """A summary row's ``mean ± sd`` of ``metric`` (``/ n_modes`` after modes covered), with
    its chance mean ("(noise 6.6)") where known and, for FID, its real-data floor
    ("(floor 25.00)"); a dash when no run reported it."""
    digits = display.decimals(metric) if digits is None else digits
    mean, std = _get(row, f"{metric}_mean"), _get(row, f"{metric}_std")
    if not _finite(mean):
        return DASH
    text = f"{float(mean):.{digits}f}"
    if _finite(std):
        text += f" ± {float(std):.{digits}f}"
    n_modes = _get(row, names.N_MODES)
    if metric == names.MODES_COVERED and with_modes and _finite(n_modes):
        text += f" / {int(n_modes) if float(n_modes).is_integer() else n_modes}"
    noise = _get(row, chance_col(metric))
    if _finite(noise):
        text += f" (noise {short_number(noise)})"
    floor = _get(row, f"{FID_FLOOR}_mean")
    if metric == names.FID and _finite(floor):
        text += f" (floor {float(floor):.{digits}f})"
    return text


def chance_text(row: pd.Series, markdown: bool = False) -> str:
    """The chance column: "at chance" (bold in Markdown), "above chance", "chance unknown",
    or a dash where no chance level applies."""
    state = _get(row, CHANCE)
    if state == AT:
        return "**at chance**" if markdown else "AT CHANCE"
    if state == ABOVE:
        return "above chance"
    if state == UNKNOWN:
        return "chance unknown"
    return DASH


def columns(summary: pd.DataFrame, metric: str | None) -> tuple[str | None, list[str]]:
    """``(lead, judges)``: the study's metric where it is not one of the coverage columns
    (it then leads the table), and the judging metrics (:data:`JUDGES`) some row reports,
    the lead left out."""
    coverage = (*COVERAGE, names.STABILITY_SCORE)
    lead = metric if metric is not None and metric not in coverage else None
    judges = [m for m in JUDGES if m != lead and _present(summary, f"{m}_mean")]
    return lead, judges


def search_header(metric: str, text: str) -> str:
    """A column header marked as the study's own metric."""
    return f"{text} (study metric)"
