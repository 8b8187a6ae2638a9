"""Which runs of the per-run frame (:func:`harness.reports.load.runs_frame`) count where.

* **Compared runs** (:func:`comparison_rows`): per (variant, dataset) its ``seeds``-phase
  runs -- the best search configuration re-run on fresh seeds --, or every run of a pair
  without any.
* **Provenance** (:func:`comparison_conflicts`): the datasets whose compared runs were not
  measured the same way.
* **Failed runs** (:func:`failed_mask`): failed or stopped by the status tag, or FAILED /
  KILLED by MLflow; they count in ``n``, never in a mean.
* **Unended runs** (:func:`unended_mask`): still RUNNING (or SCHEDULED) in MLflow -- a study
  in flight, or a process that died without ending its run. What they logged so far is not
  their result: they count in ``n``, never in a mean, a test or a picture.
* **Measured runs** (:func:`measured_mask`): neither failed nor unended; every mean, interval,
  test and verdict is over these.
* **Stopped runs** (:func:`stopped_mask`): ended by the harness before their budget.
* **The median run** (:func:`median_run`) whose final samples a variant is shown by.
* **Searched params** (:func:`searched_param_cols`) and how a param's values read
  (:func:`param_value_text`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness import names
from harness.reports import display, provenance, tables
from harness.reports.load import RUN_ID, RUN_STATUS

FAILED_STATUSES = (names.STATUS_FAILED, names.STATUS_STOPPED)
FAILED_RUN_STATUSES = ("FAILED", "KILLED")
#: MLflow statuses of a run that has not ended: its values are not yet its results
UNENDED_RUN_STATUSES = ("RUNNING", "SCHEDULED")
#: statuses a trial ends with when the harness stopped it before its budget: the
#: ``diagnostics.stop_early`` reasons, divergence, and the search pruner
STOP_STATUSES = (*names.EARLY_STOP_REASONS, names.STATUS_DIVERGED, names.STATUS_PRUNED)
#: the metric whose lower-median run shows a variant's final samples: the first one logged
MEDIAN_BY = (names.MODES_COVERED, names.TRANSLATION_ACCURACY, names.FID,
             names.XY_FINAL_DISTANCE)
#: training settings that a search usually varies; plus every ``model.*`` / ``loss.*`` param
KEY_PARAMS = ("lr_d", "lr_g", "beta1", "beta2", "d_steps", "batch_size")
SEARCHED_PREFIXES = ("model.", "loss.")


def _labels(rows: pd.DataFrame, col: str) -> pd.Series:
    """A status column, or none set where ``rows`` lacks it (a hand-made frame)."""
    return rows[col] if col in rows else pd.Series(None, index=rows.index, dtype=object)


def failed_mask(rows: pd.DataFrame) -> pd.Series:
    """Runs that failed or were stopped: by the status tag or by MLflow's run status."""
    return (_labels(rows, names.TAG_STATUS).isin(FAILED_STATUSES)
            | _labels(rows, RUN_STATUS).isin(FAILED_RUN_STATUSES))


def unended_mask(rows: pd.DataFrame) -> pd.Series:
    """Runs MLflow still counts as not ended (:data:`UNENDED_RUN_STATUSES`)."""
    return _labels(rows, RUN_STATUS).isin(UNENDED_RUN_STATUSES)


def pruned_mask(rows: pd.DataFrame) -> pd.Series:
    """Search trials the study's pruner stopped (status tag ``pruned``)."""
    return _labels(rows, names.TAG_STATUS) == names.STATUS_PRUNED


def measured_mask(rows: pd.DataFrame) -> pd.Series:
    """Runs whose values are results: neither failed (:func:`failed_mask`) nor unended
    (:func:`unended_mask`)."""
    return ~failed_mask(rows) & ~unended_mask(rows)


def comparison_rows(df: pd.DataFrame) -> dict[tuple[str, str], tuple[str, pd.DataFrame]]:
    """(variant, dataset) -> ("seeds" | "all", its seeds-phase rows, or all its rows);
    a missing variant or dataset name is ``?``."""
    out = {}
    keyed = df.assign(
        **{names.TAG_VARIANT: df[names.TAG_VARIANT].fillna("?"),
           names.TAG_DATASET: df[names.TAG_DATASET].fillna("?")})
    for (variant, dataset), group in keyed.groupby([names.TAG_VARIANT, names.TAG_DATASET],
                                                   sort=True, dropna=False):
        seeds = group[group[names.TAG_PHASE] == names.PHASE_SEEDS]
        out[(variant, dataset)] = (names.PHASE_SEEDS, seeds) if len(seeds) else ("all", group)
    return out


def comparison_conflicts(df: pd.DataFrame) -> dict[str, dict[str, dict[str, list[str]]]]:
    """dataset -> :func:`harness.reports.provenance.provenance_conflicts` of its compared runs
    (measured ones only); only datasets with a conflict."""
    out = {}
    pairs = comparison_rows(df)
    for dataset in sorted({d for _, d in pairs}):
        rows = pd.concat([r for (_, d), (_, r) in pairs.items() if d == dataset])
        conflicts = provenance.provenance_conflicts(rows[measured_mask(rows)])
        if conflicts:
            out[dataset] = conflicts
    return out


def column(df: pd.DataFrame, *candidates: str) -> pd.Series:
    """The first of ``candidates`` that is a column of ``df``, as floats (NaN when none is)."""
    for col in candidates:
        if col in df:
            return pd.to_numeric(df[col], errors="coerce").astype(float)
    return pd.Series(np.nan, index=df.index, dtype=float)


def steps_budget(df: pd.DataFrame) -> pd.Series:
    """Each run's ``steps_budget`` metric, or its ``steps`` param where it has none."""
    return column(df, names.STEPS_BUDGET).fillna(column(df, "steps", "param.steps"))


def stopped_mask(df: pd.DataFrame) -> pd.Series:
    """Runs the harness stopped before their budget: status in :data:`STOP_STATUSES` and
    ``steps_done`` < ``steps_budget`` (the ``steps`` param for runs without that metric)."""
    done = column(df, names.STEPS_DONE)
    return df[names.TAG_STATUS].isin(STOP_STATUSES) & (done < steps_budget(df))


def median_metric(rows: pd.DataFrame) -> str:
    """The first metric of :data:`MEDIAN_BY` some run of ``rows`` reported (modes_covered
    when none did)."""
    for metric in MEDIAN_BY:
        if metric in rows and rows[metric].notna().any():
            return metric
    return names.MODES_COVERED


def median_run(rows: pd.DataFrame, metric: str = names.MODES_COVERED) -> pd.Series | None:
    """The lower-median measured run (:func:`measured_mask`) by ``metric`` in its better-last
    order (ties by seed): the run at or just below the median score; None if no measured run
    reported it."""
    if metric not in rows:
        return None
    valid = rows[rows[metric].notna() & measured_mask(rows)]
    if valid.empty:
        return None
    valid = valid.sort_values([metric, names.TAG_SEED, RUN_ID], kind="stable",
                              ascending=[display.higher_is_better(metric), True, True])
    return valid.iloc[(len(valid) - 1) // 2]


def run_label(row: pd.Series) -> str:
    """How a figure's legend or a sentence names one run: ``seed 3``, ``seed 7 (search)``."""
    seed = row[names.TAG_SEED]
    label = f"seed {seed}" if not tables.isnan(seed) else str(row[RUN_ID])[:8]
    if row[names.TAG_PHASE] != names.PHASE_SEEDS:
        label += f" ({row[names.TAG_PHASE]})"
    return label


def searched_param_cols(df: pd.DataFrame) -> list[str]:
    """The ``model.*`` / ``loss.*`` param columns of ``df``, sorted."""
    return sorted(c for c in df.columns if str(c).startswith(SEARCHED_PREFIXES))


def param_value_text(values: pd.Series, significant: int | None = None) -> str:
    """The distinct values of a param column, ``/``-separated (floats to ``significant``
    significant digits when given); a dash when there is none."""
    uniq = []
    for v in values:
        if tables.isnan(v):
            continue
        text = (f"{v:.{significant}g}" if significant is not None
                and isinstance(v, (float, np.floating)) else tables.fmt_num(v))
        if text not in uniq:
            uniq.append(text)
    return " / ".join(uniq) if uniq else tables.DASH
