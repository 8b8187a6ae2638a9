"""Per-variant summaries of the compared runs (:func:`summarize`) and of the runs the harness
stopped early (:func:`early_stopping`).

Choices:

* Comparisons use the **seeds** phase (the best configuration re-run on fresh seeds); a
  (variant, dataset) pair without seeds-phase runs falls back to all its runs, and the
  summary's ``phase`` column says ``all`` for it (:func:`harness.reports.runs.comparison_rows`).
* Means and standard deviations (ddof=1; NaN for one value) are over the measured runs
  (:func:`harness.reports.runs.measured_mask`: not failed, not still running) that reported
  the metric; ``n`` counts every run of the pair, failed and running ones included, and the
  status counts say how many failed.
* Each mean also gets a percentile-bootstrap 95% interval (:mod:`harness.reports.stats`).
  With few seeds these intervals are wide and under-cover.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness import names
from harness.reports import display, headline, stats
from harness.reports.runs import (
    STOP_STATUSES,
    column,
    comparison_rows,
    measured_mask,
    steps_budget,
    stopped_mask,
)

#: the metrics every summary has as mean ± sd with an interval, in column order
SUMMARY_METRICS = (names.MODES_COVERED, names.HQ_FRACTION, names.MODE_KL,
                   names.STABILITY_SCORE)
#: the variant and dataset of :func:`early_stopping`'s last row, the sum over every run
TOTAL = "(all)"


def finite(values: pd.Series) -> pd.Series:
    """``values`` without NaN and ±inf."""
    return values.replace([np.inf, -np.inf], np.nan).dropna()


def summarize(df: pd.DataFrame, n_resamples: int = 2000, seed: int = 0, *,
              metric: str | None = None, mode: str | None = None) -> pd.DataFrame:
    """Per (variant, dataset): the seeds-phase runs (all runs where a pair has none) summarised.

    Columns: ``variant``, ``dataset``, ``phase`` ("seeds" or "all"), ``n`` (runs), for each of
    :data:`SUMMARY_METRICS`: ``<m>_mean``, ``<m>_std`` (ddof=1, NaN for one value), ``<m>_n``
    (runs that reported it) and ``<m>_ci_low`` / ``<m>_ci_high`` (percentile bootstrap 95%
    interval of the mean over the same values, :func:`harness.reports.stats.bootstrap_ci` with
    ``n_resamples`` and ``seed``; NaN for fewer than 2 values); ``n_modes``; one count column
    per status in :data:`harness.names.STATUSES`; ``steps_to_full_coverage_mean`` (over the
    runs that reached full coverage), ``full_coverage_k`` and ``full_coverage`` ("k/n"); then
    the headline columns (:mod:`harness.reports.headline`): the same five columns for every
    other search objective and ``fid_floor`` some run reported, ``<value>_chance`` /
    ``<value>_chance_bound`` (the chance mean and bound the runs logged) and ``chance``
    ("at", "above", "unknown" or None: :func:`harness.reports.headline.chance_state`).

    Sorted by dataset, then the mean of the study's metric ``metric`` best first (in the
    direction ``mode``, else the metric's own; modes covered where ``metric`` is None or no
    row reports it), ties by the other :data:`SUMMARY_METRICS`, each best first.

    Runs that failed or were stopped (status tag, or MLflow FAILED/KILLED) count in ``n`` and
    in the status counts but not in the means: what they logged before dying is partial. So
    do runs MLflow still counts as RUNNING (:func:`harness.reports.runs.unended_mask`; a
    study in flight): their latest values are not their results.
    (A ``diverged`` run is a result, not a failure: it counts. So do runs the harness
    stopped early -- ``diagnostics.stop_early`` or the search pruner, status ``pruned`` --
    with the values of their last evaluation: :func:`early_stopping`.)
    """
    records = []
    ds_modes = (df.groupby(names.TAG_DATASET)[names.N_MODES].max()
                if len(df) else pd.Series(dtype=float))
    for (variant, dataset), (phase, rows) in comparison_rows(df).items():
        n = len(rows)
        done = rows[measured_mask(rows)]
        rec: dict[str, Any] = {names.TAG_VARIANT: variant, names.TAG_DATASET: dataset,
                               names.TAG_PHASE: phase, "n": n}
        for m in SUMMARY_METRICS:
            vals = finite(done[m]) if m in done else pd.Series(dtype=float)
            rec[f"{m}_mean"] = float(vals.mean()) if len(vals) else np.nan
            rec[f"{m}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else np.nan
            rec[f"{m}_n"] = len(vals)
            low, high = stats.bootstrap_ci(vals.to_numpy(dtype=float), n_resamples=n_resamples,
                                           seed=seed)
            rec[f"{m}_ci_low"], rec[f"{m}_ci_high"] = low, high
        modes = finite(rows[names.N_MODES])
        rec[names.N_MODES] = (float(modes.max()) if len(modes)
                              else float(ds_modes.get(dataset, np.nan)))
        for status in names.STATUSES:
            rec[status] = int((rows[names.TAG_STATUS] == status).sum())
        reached = finite(done[names.STEPS_TO_FULL_COVERAGE])
        rec[f"{names.STEPS_TO_FULL_COVERAGE}_mean"] = (float(reached.mean()) if len(reached)
                                                       else np.nan)
        rec["full_coverage_k"] = len(reached)
        rec["full_coverage"] = f"{len(reached)}/{n}"
        rec.update(headline.pair_record(df, rows, done, SUMMARY_METRICS, n_resamples, seed))
        records.append(rec)
    columns = [names.TAG_VARIANT, names.TAG_DATASET, names.TAG_PHASE, "n"]
    for m in SUMMARY_METRICS:
        columns += [f"{m}_mean", f"{m}_std", f"{m}_n", f"{m}_ci_low", f"{m}_ci_high"]
    columns += [names.N_MODES, *names.STATUSES, f"{names.STEPS_TO_FULL_COVERAGE}_mean",
                "full_coverage_k", "full_coverage",
                *headline.summary_columns(df, SUMMARY_METRICS)]
    out = pd.DataFrame(records, columns=columns)
    if out.empty:
        return out
    return _ranked(out, metric, mode)


def _ranked(summary: pd.DataFrame, metric: str | None, mode: str | None) -> pd.DataFrame:
    """``summary`` in :func:`summarize`'s order; the rows of a pair otherwise equal keep
    their (variant-sorted) order."""
    lead = metric if metric is not None and f"{metric}_mean" in summary else names.MODES_COVERED
    keys = [lead, *(m for m in SUMMARY_METRICS if m != lead)]
    ascending = [not display.higher_is_better(m, mode if m == metric else None) for m in keys]
    out = summary.sort_values([names.TAG_DATASET, *(f"{m}_mean" for m in keys)],
                              ascending=[True, *ascending], na_position="last", kind="stable")
    return out.reset_index(drop=True)


def early_stopping(df: pd.DataFrame) -> pd.DataFrame:
    """Per (variant, dataset), over both phases, and a last row :data:`TOTAL`: the runs the
    harness stopped early (:func:`harness.reports.runs.stopped_mask`) and the compute that saved.

    Columns: ``variant``, ``dataset``, ``n`` (every run), ``stopped``, one count per status of
    :data:`harness.reports.runs.STOP_STATUSES`, ``steps_budget`` (sum of every run's budget),
    ``steps_saved`` (sum over the stopped runs of budget - ``steps_done``; runs that were not
    stopped save nothing) and ``saved_fraction`` (steps_saved / steps_budget). Stopped runs
    stay in every other table: this only counts them.
    """
    columns = [names.TAG_VARIANT, names.TAG_DATASET, "n", "stopped", *STOP_STATUSES,
               "steps_budget", "steps_saved", "saved_fraction"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    budget = steps_budget(df)
    stopped = stopped_mask(df)
    frame = pd.DataFrame({
        names.TAG_VARIANT: df[names.TAG_VARIANT].fillna("?"),
        names.TAG_DATASET: df[names.TAG_DATASET].fillna("?"),
        "budget": budget,
        "stopped": stopped,
        "saved": (budget - column(df, names.STEPS_DONE)).where(stopped, 0.0),
        "status": df[names.TAG_STATUS],
    })

    def record(variant: str, dataset: str, rows: pd.DataFrame) -> dict[str, Any]:
        rec: dict[str, Any] = {names.TAG_VARIANT: variant, names.TAG_DATASET: dataset,
                               "n": len(rows), "stopped": int(rows["stopped"].sum())}
        for status in STOP_STATUSES:
            rec[status] = int((rows["stopped"] & (rows["status"] == status)).sum())
        total = float(rows["budget"].sum(min_count=1))
        rec["steps_budget"] = total
        rec["steps_saved"] = float(rows["saved"].sum())
        rec["saved_fraction"] = rec["steps_saved"] / total if total > 0 else np.nan
        return rec

    records = [record(variant, dataset, rows) for (dataset, variant), rows
               in frame.groupby([names.TAG_DATASET, names.TAG_VARIANT], sort=True)]
    records.append(record(TOTAL, TOTAL, frame))
    return pd.DataFrame(records, columns=columns)
