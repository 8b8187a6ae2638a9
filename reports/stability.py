"""The stability report: which variant trains stably and covers all the modes, over seeds.

Reads one study invocation (an MLflow parent run and its child runs, one per trial) and
writes, into an output folder:

* ``report.csv`` -- one row per child run (:func:`load_runs`): tags, MLflow status, the
  final value of every metric and every param. Failed runs are kept, with NaN metrics.
* ``report.md`` and ``report.html`` -- the same content: first the verdict
  (:mod:`reports.verdict`), then the per-variant summary over the seeds phase
  (:func:`summarize`; the study's metric, the judging metrics and the chance levels:
  :mod:`reports.headline`), definitions, the image metrics of image datasets (FID, IS, KID,
  precision/recall, cond/code accuracy: :func:`summarize_images`), per-dataset figures
  (coverage over steps, losses, D(x) / D(G(z)) before and after the generator step, image
  metrics over steps), the final samples (and sample grids) of each variant's median seed,
  the best hyperparameters, every search trial, the trials stopped early with the steps that
  saved (:func:`early_stopping`), and every failure.
  The HTML page is self-contained: images are inline ``data:`` URIs, the CSS is inline.
* ``coverage_<dataset>.png``, ``losses_<dataset>.png``, ``d_outputs_<dataset>.png``,
  ``image_metrics_<dataset>.png`` (FID / IS / modes covered over steps, when logged),
  ``budget_<dataset>.png`` (score vs budget: the expected best modes covered of k search
  trials, :func:`reports.stats.best_of_k`) and ``samples_<dataset>_<variant>.png`` /
  ``samples_<dataset>_<variant>_<grid>.png`` (conditional / InfoGAN sample grids).
* For runs of the xy game, an orbit section and ``orbits_<dataset>.png``
  (:mod:`reports.orbits`).

:func:`build_report` also attaches the folder to the parent run under ``report/``.

Choices:

* Comparisons use the **seeds** phase (the best configuration re-run on fresh seeds); a
  (variant, dataset) pair without seeds-phase runs falls back to all its runs, and the
  summary's ``phase`` column says ``all`` for it.
* Means and standard deviations (ddof=1; NaN for one value) are over the runs that reported
  the metric; ``n`` counts every run of the pair, failed ones included, and the status counts
  say how many failed.
* The "median seed" whose final samples are shown is the lower (worse) median by
  ``modes_covered``, or by the first of translation accuracy, FID and the xy game's final
  distance that the runs report when they do not count modes.
* Each summary mean also gets a percentile-bootstrap 95% interval (:mod:`reports.stats`), and
  the variants of a dataset are compared pairwise on the study's metric (bootstrap interval
  of the difference, Mann–Whitney p, Holm-adjusted over the pairs) over the finished
  seeds-phase runs, as the verdict compares them. With few seeds these intervals are wide
  and under-cover (with 3 per variant no pair can reach p < 0.1).
* Image metrics are only ranked between runs with the same provenance tags (extractor,
  reference images, sample counts, classifier, data split: :mod:`reports.provenance`).
  Where a dataset's compared runs differ, the report says which tags differ and which variants
  have which values, shows the numbers per provenance group, and names no best variant; the
  pairwise comparisons are then made within each group only.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import names
from harness.errors import ConfigError
from harness.plots import plt
from harness.tracking import child_runs, retry, search_all
from reports import headline, orbits, provenance, sensitivity, stats, timeline

# --- columns -------------------------------------------------------------------------

RUN_ID = "run_id"
RUN_STATUS = "run_status"
RUN_NAME = "run_name"
START_TIME = "start_time"

# Tag-derived columns, in this order, first in the per-run frame.
_TAG_COLUMNS = (
    names.TAG_VARIANT,
    names.TAG_DATASET,
    names.TAG_PHASE,
    names.TAG_SEED,
    names.TAG_STATUS,
    names.TAG_ERROR,
    names.TAG_MODEL,
    names.TAG_LOSS,
    names.TAG_TRICKS,
    names.TAG_TRIAL_ID,
    names.TAG_ORBIT,
)
# Metrics that always get a column (NaN when no run logged them), so summaries never KeyError.
_CORE_METRICS = (
    names.MODES_COVERED,
    names.HQ_FRACTION,
    names.MODE_KL,
    names.STABILITY_SCORE,
    names.N_MODES,
    names.STEPS_TO_FULL_COVERAGE,
    names.MODE_HOPS,
)
# Metrics summarised as mean ± sd, with the decimals the report shows (the terminal table
# shows modes covered with one decimal).
SUMMARY_METRICS = {
    names.MODES_COVERED: 2,
    names.HQ_FRACTION: 2,
    names.MODE_KL: 3,
    names.STABILITY_SCORE: 2,
}
_LABELS = {
    names.MODES_COVERED: "modes covered",
    names.HQ_FRACTION: "hq fraction",
    names.MODE_KL: "mode KL",
    names.STABILITY_SCORE: "stability score",
    names.LOSS_D: "loss_d (discriminator)",
    names.LOSS_G: "loss_g (generator)",
    names.D_REAL: "D(x)",
    names.D_FAKE: "D(G(z)) before G step",
    names.D_FAKE_AFTER: "D(G(z)) after G step",
    names.LOSS_Q: "loss_q (InfoGAN mutual information)",
    names.FID: "FID",
    names.IS_MEAN: "IS",
    names.KID_MEAN: "KID",
    names.PRECISION: "precision",
    names.RECALL: "recall",
    names.COND_ACCURACY: "cond accuracy",
    names.CODE_ACCURACY: "code accuracy",
    names.TRANSLATION_ACCURACY: "translation accuracy",
    names.CYCLE_ERROR: "cycle error",
    names.FID_AB: "FID A→B",
    names.FID_BA: "FID B→A",
    names.LOSS_CYCLE: "loss_cycle (CycleGAN round trips)",
    names.XY_FINAL_DISTANCE: "final distance to (0, 0)",
}
# Image metrics (image datasets: the ``fidelity``, ``cond_accuracy`` and ``code_accuracy``
# metrics), in table order, with the decimals the report shows. Which direction is better
# comes from :data:`harness.names.OBJECTIVES`. IS and KID are shown by their per-run means.
IMAGE_METRICS = {
    names.FID: 2,
    names.IS_MEAN: 2,
    names.KID_MEAN: 4,
    names.PRECISION: 3,
    names.RECALL: 3,
    names.COND_ACCURACY: 3,
    names.CODE_ACCURACY: 3,
    # two-way translators (CycleGAN)
    names.TRANSLATION_ACCURACY: 3,
    names.CYCLE_ERROR: 3,
    names.FID_AB: 2,
    names.FID_BA: 2,
}
# The metrics whose bootstrap interval the image table shows.
IMAGE_CI_METRICS = (names.FID, names.TRANSLATION_ACCURACY)
# Summary columns of FID's real-data floor (the ``fidelity`` metric's ``fid_floor``): its mean
# over the runs, and how many runs scored a FID below their own floor.
FLOOR_MEAN = f"{names.FID_FLOOR}_mean"
BELOW_FLOOR = f"{names.FID}_below_floor"
# Histories of the image-metric curves (drawn only when one of the first four was logged
# over steps).
_IMAGE_CURVES = (names.FID, names.IS_MEAN, names.TRANSLATION_ACCURACY, names.CYCLE_ERROR,
                 names.MODES_COVERED)
# The metric whose lower-median run shows a variant's final samples: the first one logged.
_MEDIAN_BY = (names.MODES_COVERED, names.TRANSLATION_ACCURACY, names.FID,
              names.XY_FINAL_DISTANCE)
# Training settings that a search usually varies; plus every ``model.*`` / ``loss.*`` param.
KEY_PARAMS = ("lr_d", "lr_g", "beta1", "beta2", "d_steps", "batch_size")
_SEARCHED_PREFIXES = ("model.", "loss.")

FAILED_STATUSES = (names.STATUS_FAILED, names.STATUS_STOPPED)
FAILED_RUN_STATUSES = ("FAILED", "KILLED")

_HEX_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_PLOT_HISTORIES = (
    names.MODES_COVERED,
    names.LOSS_D,
    names.LOSS_G,
    names.D_REAL,
    names.D_FAKE,
    names.D_FAKE_AFTER,
    names.LOSS_Q,
    names.FID,
    names.IS_MEAN,
    names.TRANSLATION_ACCURACY,
    names.CYCLE_ERROR,
)
_DASH = "—"


# --- reading MLflow ------------------------------------------------------------------------


def _to_int(value: Any) -> Any:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return pd.NA


def _numeric_if_possible(col: pd.Series) -> pd.Series:
    try:
        return pd.to_numeric(col)
    except (TypeError, ValueError):
        return col


def runs_frame(runs: list) -> pd.DataFrame:
    rows = []
    param_keys: set[str] = set()
    metric_keys: set[str] = set(_CORE_METRICS)
    prov_keys: set[str] = set()
    for run in runs:
        metric_keys.update(run.data.metrics)
        param_keys.update(run.data.params)
        prov_keys.update(t for t in run.data.tags if provenance.is_provenance_tag(t))
    prov_keys -= set(_TAG_COLUMNS) | metric_keys
    base_cols = [RUN_ID, RUN_STATUS, *_TAG_COLUMNS, RUN_NAME, START_TIME, *sorted(prov_keys)]
    taken = set(base_cols) | metric_keys
    param_col = {k: (f"param.{k}" if k in taken else k) for k in param_keys}
    for run in runs:
        tags, params = run.data.tags, run.data.params
        row: dict[str, Any] = {
            RUN_ID: run.info.run_id,
            RUN_STATUS: run.info.status,
            RUN_NAME: tags.get(names.TAG_RUN_NAME, getattr(run.info, "run_name", None)),
            START_TIME: (pd.Timestamp(run.info.start_time, unit="ms", tz="UTC")
                         if run.info.start_time else pd.NaT),
        }
        for tag in (*_TAG_COLUMNS, *prov_keys):
            row[tag] = tags.get(tag)
        seed = tags.get(names.TAG_SEED, params.get(names.TAG_SEED))
        row[names.TAG_SEED] = _to_int(seed) if seed is not None else pd.NA
        for key in metric_keys:
            row[key] = run.data.metrics.get(key, np.nan)
        for key, value in params.items():
            row[param_col[key]] = value
        rows.append(row)
    columns = base_cols + sorted(metric_keys) + sorted(param_col[k] for k in param_keys)
    df = pd.DataFrame(rows, columns=columns)
    df[names.TAG_SEED] = df[names.TAG_SEED].astype("Int64")
    for key in metric_keys:
        df[key] = df[key].astype(float)
    for key in param_keys:
        df[param_col[key]] = _numeric_if_possible(df[param_col[key]])
    sort_cols = [names.TAG_DATASET, names.TAG_VARIANT, names.TAG_PHASE, names.TAG_SEED]
    return df.sort_values(sort_cols, na_position="last", kind="stable").reset_index(drop=True)


def load_runs(client, experiment_id: str, parent_run_id: str) -> pd.DataFrame:
    """One row per child run of ``parent_run_id``: tags, MLflow status, final metrics, params.

    Columns: ``run_id``, ``run_status`` (MLflow: FINISHED/FAILED/KILLED/RUNNING), ``variant``,
    ``dataset``, ``phase``, ``seed`` (nullable int), ``status``, ``error``, ``model``, ``loss``,
    ``tricks``, ``trial_id``, ``run_name``, ``start_time``, one column per provenance tag any run
    has (``fidelity.*``, ``classifier.*``, ``class_modes.*``, ``dataset.split``:
    :mod:`reports.provenance`; None where a run lacks it), then the final value of every metric
    any run logged (NaN where a run has none -- failed runs are kept), then every param
    (numeric where every value parses as a number; a param whose name clashes with a column
    above is prefixed ``param.``).
    """
    return runs_frame(child_runs(client, experiment_id, parent_run_id))


# --- summary -----------------------------------------------------------------------------


def _finite(values: pd.Series) -> pd.Series:
    return values.replace([np.inf, -np.inf], np.nan).dropna()


def _failed_mask(rows: pd.DataFrame) -> pd.Series:
    """Runs that failed or were stopped: by the status tag or by MLflow's run status."""
    return rows[names.TAG_STATUS].isin(FAILED_STATUSES) | rows[RUN_STATUS].isin(FAILED_RUN_STATUSES)


def _comparison_rows(df: pd.DataFrame) -> dict[tuple[str, str], tuple[str, pd.DataFrame]]:
    """(variant, dataset) -> ("seeds" | "all", its seeds-phase rows, or all its rows)."""
    out = {}
    keyed = df.assign(
        **{names.TAG_VARIANT: df[names.TAG_VARIANT].fillna("?"),
           names.TAG_DATASET: df[names.TAG_DATASET].fillna("?")})
    for (variant, dataset), group in keyed.groupby([names.TAG_VARIANT, names.TAG_DATASET],
                                                   sort=True, dropna=False):
        seeds = group[group[names.TAG_PHASE] == names.PHASE_SEEDS]
        out[(variant, dataset)] = (names.PHASE_SEEDS, seeds) if len(seeds) else ("all", group)
    return out


def summarize(df: pd.DataFrame, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per (variant, dataset): the seeds-phase runs (all runs where a pair has none) summarised.

    Columns: ``variant``, ``dataset``, ``phase`` ("seeds" or "all"), ``n`` (runs), for each of
    modes_covered, hq_fraction, mode_kl, stability_score: ``<m>_mean``, ``<m>_std`` (ddof=1,
    NaN for one value), ``<m>_n`` (runs that reported it) and ``<m>_ci_low`` / ``<m>_ci_high``
    (percentile bootstrap 95% interval of the mean over the same values,
    :func:`reports.stats.bootstrap_ci` with ``n_resamples`` and ``seed``; NaN for fewer than
    2 values); ``n_modes``; one count column per
    status in :data:`harness.names.STATUSES`; ``steps_to_full_coverage_mean`` (over the runs
    that reached full coverage), ``full_coverage_k`` and ``full_coverage`` ("k/n"); then
    the headline columns (:mod:`reports.headline`): the same five columns for every other
    search objective and ``fid_floor`` some run reported, ``<value>_chance`` /
    ``<value>_chance_bound`` (the chance mean and bound the runs logged) and ``chance``
    ("at", "above", "unknown" or None: :func:`reports.headline.chance_state`).
    Sorted by dataset, then mean modes covered (descending).

    Runs that failed or were stopped (status tag, or MLflow FAILED/KILLED) count in ``n`` and
    in the status counts but not in the means: what they logged before dying is partial.
    (A ``diverged`` run is a result, not a failure: it counts. So do runs the harness
    stopped early -- ``diagnostics.stop_early`` or the search pruner, status ``pruned`` --
    with the values of their last evaluation: :func:`early_stopping`.)
    """
    records = []
    ds_modes = (df.groupby(names.TAG_DATASET)[names.N_MODES].max()
                if len(df) else pd.Series(dtype=float))
    for (variant, dataset), (phase, rows) in _comparison_rows(df).items():
        n = len(rows)
        done = rows[~_failed_mask(rows)]
        rec: dict[str, Any] = {names.TAG_VARIANT: variant, names.TAG_DATASET: dataset,
                               names.TAG_PHASE: phase, "n": n}
        for metric in SUMMARY_METRICS:
            vals = _finite(done[metric]) if metric in done else pd.Series(dtype=float)
            rec[f"{metric}_mean"] = float(vals.mean()) if len(vals) else np.nan
            rec[f"{metric}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else np.nan
            rec[f"{metric}_n"] = len(vals)
            low, high = stats.bootstrap_ci(vals.to_numpy(dtype=float), n_resamples=n_resamples,
                                           seed=seed)
            rec[f"{metric}_ci_low"], rec[f"{metric}_ci_high"] = low, high
        modes = _finite(rows[names.N_MODES])
        rec[names.N_MODES] = (float(modes.max()) if len(modes)
                              else float(ds_modes.get(dataset, np.nan)))
        for status in names.STATUSES:
            rec[status] = int((rows[names.TAG_STATUS] == status).sum())
        reached = _finite(done[names.STEPS_TO_FULL_COVERAGE])
        rec[f"{names.STEPS_TO_FULL_COVERAGE}_mean"] = float(reached.mean()) if len(reached) else np.nan
        rec["full_coverage_k"] = len(reached)
        rec["full_coverage"] = f"{len(reached)}/{n}"
        rec.update(headline.pair_record(df, rows, done, SUMMARY_METRICS, n_resamples, seed))
        records.append(rec)
    columns = [names.TAG_VARIANT, names.TAG_DATASET, names.TAG_PHASE, "n"]
    for metric in SUMMARY_METRICS:
        columns += [f"{metric}_mean", f"{metric}_std", f"{metric}_n",
                    f"{metric}_ci_low", f"{metric}_ci_high"]
    columns += [names.N_MODES, *names.STATUSES, f"{names.STEPS_TO_FULL_COVERAGE}_mean",
                "full_coverage_k", "full_coverage",
                *headline.summary_columns(df, SUMMARY_METRICS)]
    out = pd.DataFrame(records, columns=columns)
    if out.empty:
        return out
    out = out.sort_values([names.TAG_DATASET, f"{names.MODES_COVERED}_mean"],
                          ascending=[True, False], na_position="last", kind="stable")
    return out.reset_index(drop=True)


#: statuses a trial ends with when the harness stopped it before its budget: the
#: ``diagnostics.stop_early`` reasons, divergence, and the search pruner
STOP_STATUSES = (*names.EARLY_STOP_REASONS, names.STATUS_DIVERGED, names.STATUS_PRUNED)
TOTAL = "(all)"


def _column(df: pd.DataFrame, *candidates: str) -> pd.Series:
    """The first of ``candidates`` that is a column of ``df``, as floats (NaN when none is)."""
    for col in candidates:
        if col in df:
            return pd.to_numeric(df[col], errors="coerce").astype(float)
    return pd.Series(np.nan, index=df.index, dtype=float)


def stopped_mask(df: pd.DataFrame) -> pd.Series:
    """Runs the harness stopped before their budget: status in :data:`STOP_STATUSES` and
    ``steps_done`` < ``steps_budget`` (the ``steps`` param for runs without that metric)."""
    budget = _column(df, names.STEPS_BUDGET).fillna(_column(df, "steps", "param.steps"))
    done = _column(df, names.STEPS_DONE)
    return df[names.TAG_STATUS].isin(STOP_STATUSES) & (done < budget)


def early_stopping(df: pd.DataFrame) -> pd.DataFrame:
    """Per (variant, dataset), over both phases, and a last row ``(all)``: the runs the harness
    stopped early (:func:`stopped_mask`) and the compute that saved.

    Columns: ``variant``, ``dataset``, ``n`` (every run), ``stopped``, one count per status of
    :data:`STOP_STATUSES`, ``steps_budget`` (sum of every run's budget), ``steps_saved`` (sum
    over the stopped runs of budget - ``steps_done``; runs that were not stopped save nothing)
    and ``saved_fraction`` (steps_saved / steps_budget). Stopped runs stay in every other
    table: this only counts them.
    """
    columns = [names.TAG_VARIANT, names.TAG_DATASET, "n", "stopped", *STOP_STATUSES,
               "steps_budget", "steps_saved", "saved_fraction"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    budget = _column(df, names.STEPS_BUDGET).fillna(_column(df, "steps", "param.steps"))
    stopped = stopped_mask(df)
    frame = pd.DataFrame({
        names.TAG_VARIANT: df[names.TAG_VARIANT].fillna("?"),
        names.TAG_DATASET: df[names.TAG_DATASET].fillna("?"),
        "budget": budget,
        "stopped": stopped,
        "saved": (budget - _column(df, names.STEPS_DONE)).where(stopped, 0.0),
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


def _higher_is_better(metric: str) -> bool:
    return names.OBJECTIVES.get(metric, "max") == "max"


def image_metrics_present(df: pd.DataFrame) -> list[str]:
    """The image metrics (:data:`IMAGE_METRICS`) some run of ``df`` logged, in table order."""
    return [m for m in IMAGE_METRICS if m in df and _finite(df[m]).size]


def _image_rows(df: pd.DataFrame) -> dict[str, list[tuple[str, str, int, pd.DataFrame]]]:
    """dataset -> [(variant, phase, n, runs)]: per compared pair (:func:`_comparison_rows`),
    its runs that did not fail and reported at least one image metric, with the pair's phase
    and run count (failed runs included); only pairs and datasets that have such runs."""
    metrics = image_metrics_present(df)
    out: dict[str, list] = {}
    if not metrics:
        return out
    for (variant, dataset), (phase, rows) in _comparison_rows(df).items():
        done = rows[~_failed_mask(rows)]
        scored = done[metrics].replace([np.inf, -np.inf], np.nan).notna().any(axis=1)
        if scored.any():
            out.setdefault(dataset, []).append((variant, phase, len(rows), done[scored]))
    return {d: sorted(v, key=lambda t: t[0]) for d, v in sorted(out.items())}


def _image_groups(pairs: list[tuple[str, str, int, pd.DataFrame]]
                  ) -> list[provenance.ProvenanceGroup]:
    """The provenance groups of one dataset's image-metric runs (variants in sorted order)."""
    return provenance.provenance_groups(pd.concat([rows for *_, rows in pairs]))


def summarize_images(df: pd.DataFrame, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per dataset, provenance group and variant: the image metrics of the compared runs.

    The runs are the ones :func:`summarize` compares (the seeds phase, or every run of a pair
    without one) that did not fail and reported at least one image metric. Per dataset they
    are split by their provenance tags (:func:`reports.provenance.provenance_groups`), the
    groups numbered 1, 2, ... in the order of their first run (variants sorted): numbers of
    different groups were not made the same way and must not be ranked against each other.

    Columns: ``variant``, ``dataset``, ``phase``, ``provenance_group``, ``n`` (every run of the
    pair, failed ones included), ``n_group`` (the runs this row summarises), then for each image
    metric any run logged (:data:`IMAGE_METRICS`, in that order) ``<m>_mean``, ``<m>_std``
    (ddof=1, NaN for one value) and ``<m>_n`` (runs that reported it), and for FID also
    ``<m>_ci_low`` / ``<m>_ci_high`` (percentile bootstrap 95% interval of the mean,
    :func:`reports.stats.bootstrap_ci` with ``n_resamples`` and ``seed``; NaN for fewer than
    2 values). Where runs logged FID's real-data floor (``fid_floor``) also
    :data:`FLOOR_MEAN` (its mean) and :data:`BELOW_FLOOR` (the runs whose final FID is below
    their own floor: possible memorisation). Sorted by dataset, provenance group, variant.
    Empty when no run logged an image metric.
    """
    metrics = image_metrics_present(df)
    floors = bool(names.FID in metrics and names.FID_FLOOR in df
                  and _finite(df[names.FID_FLOOR]).size)
    columns = [names.TAG_VARIANT, names.TAG_DATASET, names.TAG_PHASE, "provenance_group", "n",
               "n_group"]
    for metric in metrics:
        columns += [f"{metric}_mean", f"{metric}_std", f"{metric}_n"]
        if metric in IMAGE_CI_METRICS:
            columns += [f"{metric}_ci_low", f"{metric}_ci_high"]
        if metric == names.FID and floors:
            columns += [FLOOR_MEAN, BELOW_FLOOR]
    records = []
    for dataset, pairs in _image_rows(df).items():
        info = {variant: (phase, n) for variant, phase, n, _ in pairs}
        for k, group in enumerate(_image_groups(pairs), start=1):
            rows = group.rows
            for variant, vrows in rows.groupby(rows[names.TAG_VARIANT].fillna("?"), sort=True):
                phase, n = info[variant]
                rec: dict[str, Any] = {names.TAG_VARIANT: variant, names.TAG_DATASET: dataset,
                                       names.TAG_PHASE: phase, "provenance_group": k, "n": n,
                                       "n_group": len(vrows)}
                for metric in metrics:
                    vals = _finite(vrows[metric])
                    rec[f"{metric}_mean"] = float(vals.mean()) if len(vals) else np.nan
                    rec[f"{metric}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else np.nan
                    rec[f"{metric}_n"] = len(vals)
                    if metric in IMAGE_CI_METRICS:
                        low, high = stats.bootstrap_ci(vals.to_numpy(dtype=float),
                                                       n_resamples=n_resamples, seed=seed)
                        rec[f"{metric}_ci_low"], rec[f"{metric}_ci_high"] = low, high
                    if metric == names.FID and floors:
                        floor = _finite(vrows[names.FID_FLOOR])
                        rec[FLOOR_MEAN] = float(floor.mean()) if len(floor) else np.nan
                        rec[BELOW_FLOOR] = int((vrows[names.FID] < vrows[names.FID_FLOOR]).sum())
                records.append(rec)
    return pd.DataFrame(records, columns=columns)


def best_variants(summary: pd.DataFrame, metric: str) -> list[str]:
    """The variants of ``summary`` (rows of one provenance group of :func:`summarize_images`)
    with the best mean of ``metric`` -- lowest or highest by :data:`harness.names.OBJECTIVES`;
    every tied one. Empty when fewer than 2 variants reported it: nothing to rank."""
    col = f"{metric}_mean"
    if col not in summary:
        return []
    rows = summary[summary[col].notna()]
    if rows[names.TAG_VARIANT].nunique() < 2:
        return []
    best = rows[col].max() if _higher_is_better(metric) else rows[col].min()
    return sorted(str(v) for v in rows.loc[np.isclose(rows[col], best, rtol=0, atol=1e-12),
                                           names.TAG_VARIANT])


def comparison_conflicts(df: pd.DataFrame) -> dict[str, dict[str, dict[str, list[str]]]]:
    """dataset -> :func:`reports.provenance.provenance_conflicts` of its compared runs (the
    ones :func:`summarize` compares, failed ones left out); only datasets with a conflict."""
    out = {}
    pairs = _comparison_rows(df)
    for dataset in sorted({d for _, d in pairs}):
        rows = pd.concat([r for (_, d), (_, r) in pairs.items() if d == dataset])
        conflicts = provenance.provenance_conflicts(rows[~_failed_mask(rows)])
        if conflicts:
            out[dataset] = conflicts
    return out


# --- formatting helpers -----------------------------------------------------------------------


def _isnan(value: Any) -> bool:
    try:
        return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
    except TypeError:
        return False


def _fmt_num(value: Any, digits: int | None = None) -> str:
    if _isnan(value):
        return _DASH
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


def _fmt_pm(mean: Any, std: Any, digits: int) -> str:
    if _isnan(mean):
        return _DASH
    text = f"{mean:.{digits}f}"
    if not _isnan(std):
        text += f" ± {std:.{digits}f}"
    return text


def _modes_cell(row: pd.Series, digits: int = SUMMARY_METRICS[names.MODES_COVERED]) -> str:
    text = _fmt_pm(row[f"{names.MODES_COVERED}_mean"], row[f"{names.MODES_COVERED}_std"], digits)
    if not _isnan(row[names.N_MODES]):
        text += f" / {_fmt_num(row[names.N_MODES])}"
    return text


def _status_cell(row: pd.Series) -> str:
    parts = [f"{s} {int(row[s])}" for s in names.STATUSES if s in row and int(row[s])]
    unknown = int(row["n"]) - sum(int(row[s]) for s in names.STATUSES if s in row)
    if unknown > 0:
        parts.append(f"no status {unknown}")
    return ", ".join(parts) or _DASH


def _full_coverage_cell(row: pd.Series) -> str:
    mean = row[f"{names.STEPS_TO_FULL_COVERAGE}_mean"]
    return f"{_fmt_num(mean, 0) if not _isnan(mean) else _DASH} ({row['full_coverage']})"


def _ci_cell(row: pd.Series, metric: str = names.MODES_COVERED,
             digits: int | None = None) -> str:
    """``[low, high]`` of a summary row's bootstrap interval; a dash when there is none."""
    digits = SUMMARY_METRICS[metric] if digits is None else digits
    low, high = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    if _isnan(low) or _isnan(high):
        return _DASH
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def _fmt_p(p: Any) -> str:
    if _isnan(p):
        return _DASH
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(out)


def summary_table(summary_df: pd.DataFrame, metric: str | None = None) -> str:
    """A short plain-text table for the terminal: variant, dataset, n, the study's metric
    ``metric`` (``search.metric``; its own column unless it is a coverage one, which is then
    marked), modes covered ("7.7 ± 0.6 / 8 (noise 6.6)") and hq fraction beside their chance
    means, whether the result is at chance, the metrics that judge the dataset where runs
    report them (FID with its real-data floor, cond/code accuracy, translation metrics:
    :mod:`reports.headline`), stability score and status counts ("ok 3, collapsed 1")."""
    if summary_df is None or summary_df.empty:
        return "(no runs)"
    lead, judges = headline.columns(summary_df, metric)
    shown = [m for m in (names.MODES_COVERED, names.HQ_FRACTION) if m == metric
             or (f"{m}_mean" in summary_df and summary_df[f"{m}_mean"].notna().any())]
    if metric == names.MODE_KL:
        shown.append(metric)
    stability = metric == names.STABILITY_SCORE or summary_df[
        f"{names.STABILITY_SCORE}_mean"].notna().any()
    digits = {names.MODES_COVERED: 1}

    def head(m: str) -> str:
        text = headline.label(m)
        return headline.search_header(m, text) if m == metric else text

    headers = ["variant", "dataset", "n", *([head(lead)] if lead else []),
               *(head(m) for m in shown), "chance", *(head(m) for m in judges),
               *([head(names.STABILITY_SCORE)] if stability else []), "status"]
    rows = []
    for _, row in summary_df.iterrows():
        rows.append([
            str(row[names.TAG_VARIANT]), str(row[names.TAG_DATASET]), str(int(row["n"])),
            *([headline.value_text(row, lead)] if lead else []),
            *(headline.value_text(row, m, digits.get(m)) for m in shown),
            headline.chance_text(row),
            *(headline.value_text(row, m) for m in judges),
            *([headline.value_text(row, names.STABILITY_SCORE)] if stability else []),
            _status_cell(row),
        ])
    return _text_table(headers, rows)


# --- a tiny document model rendered to Markdown and HTML ---------------------------------------


class _Doc:
    """Blocks: ("h", level, text), ("p", text), ("ul", [items]), ("table", headers, rows),
    ("img", file name, alt). Text may use `code` and **bold**; everything else is literal."""

    def __init__(self) -> None:
        self.blocks: list[tuple] = []

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def ul(self, items: list[str]) -> None:
        self.blocks.append(("ul", items))

    def table(self, headers: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(("table", headers, rows))

    def img(self, name: str, alt: str) -> None:
        self.blocks.append(("img", name, alt))


def _md_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|") or " "


def _to_markdown(doc: _Doc) -> str:
    out: list[str] = []
    for block in doc.blocks:
        kind = block[0]
        if kind == "h":
            out.append(f"{'#' * block[1]} {block[2]}")
        elif kind == "p":
            out.append(block[1])
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in block[1]))
        elif kind == "table":
            headers, rows = block[1], block[2]
            lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |",
                     "|" + "|".join("---" for _ in headers) + "|"]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            out.append("\n".join(lines))
        elif kind == "img":
            out.append(f"![{block[2]}]({block[1]})")
    return "\n\n".join(out) + "\n"


def _inline_html(text: str) -> str:
    """`code`, **bold** and *italic* to HTML; a ``*`` inside a code span is literal."""
    parts = re.split(r"(`[^`]+`)", html.escape(str(text), quote=True))
    codes = [f"<code>{p[1:-1]}</code>" for p in parts[1::2]]
    # placeholders (no * or word boundary issue) keep code spans out of the emphasis rules
    text = "".join(p if i % 2 == 0 else f"\x00{i // 2}\x00" for i, p in enumerate(parts))
    text = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"(?<![*\w])\*([^*\s][^*]*)\*(?![*\w])", r"<em>\1</em>", text)
    return re.sub("\x00(\\d+)\x00", lambda m: codes[int(m.group(1))], text)


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #eee; padding-bottom: .15em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .8em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr:nth-child(even) td { background: #fafafa; }
code { background: #f2f2f2; padding: 0 3px; border-radius: 3px; font-size: 90%; }
img { max-width: 100%; border: 1px solid #eee; margin: .4em 0; }
""".strip()


def _to_html(doc: _Doc, title: str, out_dir: Path) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{html.escape(title)}</title>", f"<style>\n{_CSS}\n</style>", "</head>",
             "<body>"]
    for block in doc.blocks:
        kind = block[0]
        if kind == "h":
            parts.append(f"<h{block[1]}>{_inline_html(block[2])}</h{block[1]}>")
        elif kind == "p":
            parts.append(f"<p>{_inline_html(block[1])}</p>")
        elif kind == "ul":
            parts.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in block[1])
                         + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{_inline_html(h)}</th>" for h in block[1])
            body = "".join("<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row)
                           + "</tr>" for row in block[2])
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "img":
            data = base64.b64encode((out_dir / block[1]).read_bytes()).decode("ascii")
            parts.append(f'<p><img alt="{html.escape(block[2], quote=True)}" '
                         f'src="data:image/png;base64,{data}"></p>')
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


# --- histories and figures ----------------------------------------------------------------


def _history(client, run_id: str, key: str) -> pd.Series:
    """A metric's history as a step-indexed Series (the last value logged at each step)."""
    hist = retry(client.get_metric_history, run_id, key)
    if not hist:
        return pd.Series(dtype=float)
    hist = sorted(hist, key=lambda m: (m.step, m.timestamp))
    values = {m.step: float(m.value) for m in hist}
    return pd.Series(values, dtype=float).sort_index()


def _fetch_histories(client, runs: pd.DataFrame, keys: Iterable[str]) -> dict:
    """{(run_id, key): Series} for the runs' logged metrics among ``keys`` (threads: I/O bound)."""
    jobs = []
    for _, row in runs.iterrows():
        for key in keys:
            if key in row and not _isnan(row[key]):
                jobs.append((row[RUN_ID], key))
    if not jobs:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(jobs))) as pool:
        series = list(pool.map(lambda job: _history(client, *job), jobs))
    return dict(zip(jobs, series))


def _variant_colours(variants: Iterable[str]) -> dict[str, Any]:
    cmap = plt.get_cmap("tab10")
    return {v: cmap(i % 10) for i, v in enumerate(sorted(set(variants)))}


_SEED_STYLES = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ("-", "v"), ("--", "P"),
                (":", "X"), ("-.", "*")]


def _seed_style(i: int) -> dict[str, Any]:
    ls, marker = _SEED_STYLES[i % len(_SEED_STYLES)]
    return {"linestyle": ls, "marker": marker, "markersize": 3, "linewidth": 1.2,
            "alpha": 0.9 if i < len(_SEED_STYLES) else 0.6}


def _run_label(row: pd.Series) -> str:
    seed = row[names.TAG_SEED]
    label = f"seed {seed}" if not _isnan(seed) else str(row[RUN_ID])[:8]
    if row[names.TAG_PHASE] != names.PHASE_SEEDS:
        label += f" ({row[names.TAG_PHASE]})"
    return label


_PANEL_W, _PANEL_H = 3.4, 2.3  # inches of plotting area per panel
_MARGIN_L, _MARGIN_R, _MARGIN_B, _MARGIN_T = 0.8, 0.15, 0.5, 0.75  # figure margins (inches)
_GAP_W, _GAP_H = 0.9, 0.75  # between panels (tick labels, axis label, panel title)


def _panels(nrows: int, ncols: int, title: str, **kwargs):
    """A grid of panels laid out with fixed margins in inches.

    ``tight_layout`` / ``bbox_inches="tight"`` cost more than all the drawing, so the layout
    is computed here once: every panel gets the same plotting area whatever the grid.
    """
    width = _MARGIN_L + _MARGIN_R + ncols * _PANEL_W + (ncols - 1) * _GAP_W
    height = _MARGIN_B + _MARGIN_T + nrows * _PANEL_H + (nrows - 1) * _GAP_H
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), dpi=85, squeeze=False,
                             **kwargs)
    fig.subplots_adjust(left=_MARGIN_L / width, right=1 - _MARGIN_R / width,
                        bottom=_MARGIN_B / height, top=1 - _MARGIN_T / height,
                        wspace=_GAP_W / _PANEL_W, hspace=_GAP_H / _PANEL_H)
    fig.suptitle(title, fontsize=10, y=1 - 0.12 / height, va="top")
    return fig, axes


def _png(fig) -> bytes:
    """PNG bytes of a figure laid out by :func:`_panels` (no tight-bbox pass), then closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _thin(s: pd.Series, most: int = 400) -> pd.Series:
    """At most ``most`` points per plotted line (every k-th, the last always kept)."""
    if len(s) <= most:
        return s
    k = math.ceil(len(s) / most)
    return pd.concat([s.iloc[::k], s.iloc[-1:]]).groupby(level=0).last()


def _step_axes(ax, ylabel: str, legend_loc: str) -> None:
    """The common dressing of a panel plotted against generator steps."""
    ax.set_xlabel("generator step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc=legend_loc)


def _grid(n: int, max_cols: int = 4) -> tuple[int, int]:
    cols = min(max_cols, max(1, n))
    return math.ceil(n / cols), cols


def _coverage_figure(dataset: str, pairs: list[tuple[str, pd.DataFrame]], hist: dict,
                     colours: dict, n_modes: dict) -> bytes | None:
    if not any((rid, names.MODES_COVERED) in hist for _, rows in pairs for rid in rows[RUN_ID]):
        return None
    nrows, ncols = _grid(len(pairs))
    fig, axes = _panels(nrows, ncols, f"Mode coverage over training -- {dataset}")
    for ax in axes.flat[len(pairs):]:
        ax.set_visible(False)
    for ax, (variant, rows) in zip(axes.flat, pairs):
        drawn = []
        for i, (_, row) in enumerate(rows.iterrows()):
            s = hist.get((row[RUN_ID], names.MODES_COVERED))
            if s is None or s.empty:
                continue
            drawn.append(s)
            ax.plot(s.index, s.values, color=colours[variant], label=_run_label(row),
                    **_seed_style(i))
        if len(drawn) > 1:  # behind the runs: their median and inter-quartile band
            median, low, high = _median_band(drawn)
            ax.fill_between(median.index, low, high, color=colours[variant], alpha=0.12,
                            linewidth=0, zorder=0)
            ax.plot(median.index, median.values, color=colours[variant], linewidth=4,
                    alpha=0.3, zorder=0, label=f"median of {len(drawn)}")
        total = n_modes.get(variant)
        if total is not None and not _isnan(total):
            ax.axhline(total, color="0.5", linestyle=":", linewidth=1, label=f"all {total:g} modes")
            ax.set_ylim(-0.03 * total, 1.08 * total)
        ax.set_title(variant, fontsize=10, color=colours[variant])
        _step_axes(ax, "modes covered", "lower right")
    return _png(fig)


def _losses_figure(dataset: str, pairs: list[tuple[str, pd.DataFrame]], hist: dict,
                   colours: dict) -> bytes | None:
    keys = (names.LOSS_D, names.LOSS_G)
    if not any((rid, k) in hist for _, rows in pairs for rid in rows[RUN_ID] for k in keys):
        return None
    if any((rid, names.LOSS_Q) in hist for _, rows in pairs for rid in rows[RUN_ID]):
        keys += (names.LOSS_Q,)  # InfoGAN: a third column (hidden for the other variants)
    fig, axes = _panels(len(pairs), len(keys), f"Losses -- {dataset}")
    for r, (variant, rows) in enumerate(pairs):
        for c, key in enumerate(keys):
            ax = axes[r][c]
            for i, (_, row) in enumerate(rows.iterrows()):
                s = hist.get((row[RUN_ID], key))
                if s is None or s.empty:
                    continue
                style = _seed_style(i)
                style["marker"] = None
                s = _thin(s)
                ax.plot(s.index, s.values, color=colours[variant], label=_run_label(row), **style)
            if key == names.LOSS_Q and not ax.lines:
                ax.set_visible(False)
                continue
            if ax.lines and max(np.nanmax(np.abs(np.asarray(line.get_ydata(), float)),
                                          initial=0.0) for line in ax.lines) > 1e4:
                ax.set_yscale("symlog")  # a diverging run would flatten every other line
            ax.set_title(f"{variant}: {_LABELS[key]}", fontsize=9, color=colours[variant])
            _step_axes(ax, key, "upper right")
    return _png(fig)


def _median_band(series: list[pd.Series]) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(median, 25th, 75th percentile) over runs at each step, at most ~400 steps drawn.
    A run without a value at a step does not count there (its history is shorter)."""
    frame = pd.concat(series, axis=1).sort_index()
    frame = frame.iloc[::max(1, math.ceil(len(frame) / 400))]
    return frame.median(axis=1), frame.quantile(0.25, axis=1), frame.quantile(0.75, axis=1)


#: the caption words of every median-and-band figure
BAND_TEXT = "line: median over runs, band: inter-quartile range"


def _d_figure(dataset: str, pairs: list[tuple[str, pd.DataFrame]], hist: dict,
              colours: dict) -> bytes | None:
    keys = (names.D_REAL, names.D_FAKE, names.D_FAKE_AFTER)
    styles = {names.D_REAL: "-", names.D_FAKE: "--", names.D_FAKE_AFTER: ":"}
    if not any((rid, k) in hist for _, rows in pairs for rid in rows[RUN_ID] for k in keys):
        return None
    nrows, ncols = _grid(len(pairs))
    fig, axes = _panels(nrows, ncols, f"D(x) and D(G(z)) before/after the generator step -- "
                        f"{dataset}\n({BAND_TEXT})")
    for ax in axes.flat[len(pairs):]:
        ax.set_visible(False)
    for ax, (variant, rows) in zip(axes.flat, pairs):
        for key in keys:
            series = [hist[(rid, key)] for rid in rows[RUN_ID] if (rid, key) in hist]
            series = [s for s in series if not s.empty]
            if not series:
                continue
            median, low, high = _median_band(series)
            ax.plot(median.index, median.values, color=colours[variant], linestyle=styles[key],
                    linewidth=1.5, label=f"{_LABELS[key]} (median of {len(series)})")
            if len(series) > 1:
                ax.fill_between(median.index, low, high, color=colours[variant], alpha=0.12,
                                linewidth=0)
        ax.set_title(variant, fontsize=10, color=colours[variant])
        _step_axes(ax, "discriminator output", "lower left")
    return _png(fig)


def _image_curves_figure(dataset: str, pairs: list[tuple[str, pd.DataFrame]], hist: dict,
                         colours: dict, n_modes: dict) -> bytes | None:
    """The :data:`_IMAGE_CURVES` over generator steps: one panel per metric that has a
    history, one line per variant (median over its runs, inter-quartile band). None unless some run
    logged FID, IS, translation accuracy or cycle error over steps."""
    def series_of(rows: pd.DataFrame, key: str) -> list[pd.Series]:
        found = [hist.get((rid, key)) for rid in rows[RUN_ID]]
        return [s for s in found if s is not None and not s.empty]

    keys = [k for k in _IMAGE_CURVES if any(series_of(rows, k) for _, rows in pairs)]
    if not any(k in keys for k in _IMAGE_CURVES[:4]):
        return None
    fig, axes = _panels(1, len(keys), f"Image metrics over training -- {dataset}\n"
                        f"({BAND_TEXT})")
    for ax, key in zip(axes[0], keys):
        for variant, rows in pairs:
            series = series_of(rows, key)
            if not series:
                continue
            median, low, high = _median_band(series)
            ax.plot(median.index, median.values, color=colours[variant], marker="o",
                    markersize=3, linewidth=1.5, label=f"{variant} (median of {len(series)})")
            if len(series) > 1:
                ax.fill_between(median.index, low, high, color=colours[variant], alpha=0.12,
                                linewidth=0)
        if key == names.MODES_COVERED:
            totals = [t for t in n_modes.values() if t is not None and not _isnan(t)]
            if totals:
                ax.axhline(max(totals), color="0.5", linestyle=":", linewidth=1,
                           label=f"all {max(totals):g} modes")
        better = "higher" if _higher_is_better(key) else "lower"
        ax.set_title(f"{_LABELS[key]} ({better} is better)", fontsize=10)
        _step_axes(ax, key, "best")
    return _png(fig)


def _figure_block(doc: _Doc, out_dir: Path, written: list[Path], stem: str, dataset: str,
                  caption: str, png: bytes | None, missing: str = "no histories logged") -> None:
    """Write ``png`` as ``<stem>_<dataset>.png`` under ``out_dir`` (appended to ``written``)
    with its caption; or, when there is no figure, the caption and ``missing``."""
    if png is None:
        doc.p(f"*{caption}*: {missing}.")
        return
    name = f"{stem}_{_slug(dataset)}.png"
    (out_dir / name).write_bytes(png)
    written.append(out_dir / name)
    doc.p(caption + ".")
    doc.img(name, f"{stem} {dataset}")


@contextlib.contextmanager
def _no_progress_bars():
    """MLflow draws a progress bar per downloaded artifact unless this variable says no."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(key)
    if before is None:
        os.environ[key] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "x"


def _final_sample_paths(client, run_id: str) -> list[str]:
    """The run's final-sample pictures at the artifact root: ``final_samples.png`` (models
    without grids) and every ``final_samples_<grid>.png`` (conditional / InfoGAN grids), the
    plain one first, then by name. Empty when there are none, or the listing fails."""
    stem = names.ARTIFACT_FINAL_SAMPLES.removesuffix(".png")
    try:
        listed = retry(client.list_artifacts, run_id)
    except Exception:  # noqa: BLE001 -- an unreadable artifact store only skips the images
        return []
    found = [a.path for a in listed if not a.is_dir
             and a.path.rsplit("/", 1)[-1].startswith(stem) and a.path.endswith(".png")]
    return sorted(found, key=lambda p: (p != names.ARTIFACT_FINAL_SAMPLES, p))


def _grid_name(path: str) -> str | None:
    """``final_samples_<grid>.png`` -> ``<grid>``; None for the plain ``final_samples.png``."""
    stem = names.ARTIFACT_FINAL_SAMPLES.removesuffix(".png")
    name = path.rsplit("/", 1)[-1].removesuffix(".png")
    return name[len(stem):].lstrip("_") or None


def _grid_caption(grid: str) -> str:
    """What a model's sample grid shows (the grids of :meth:`harness.models.Model.grids`)."""
    known = {"classes": "rows: fixed noise vectors, columns: the class each is conditioned on",
             "ab": "held-out A images (top row), their translations G(a) and the round "
                   "trips F(G(a))",
             "ba": "held-out B images (top row), their translations F(b) and the round "
                   "trips G(F(b))",
             "code_grid": "rows: fixed noise vectors, columns: the values of the first "
                          "categorical code"}
    m = re.fullmatch(r"continuous_(\d+)", grid)
    if m:
        return (f"continuous code {m.group(1)} traversed from -2 to 2 (columns); rows: the "
                "values of the first categorical code (noise vectors when there is none)")
    return known.get(grid, "a grid of the model's samples")


def _median_metric(rows: pd.DataFrame) -> str:
    """The first metric of :data:`_MEDIAN_BY` some run of ``rows`` reported (modes_covered
    when none did)."""
    for metric in _MEDIAN_BY:
        if metric in rows and rows[metric].notna().any():
            return metric
    return names.MODES_COVERED


def _median_run(rows: pd.DataFrame, metric: str = names.MODES_COVERED) -> pd.Series | None:
    """The lower-median finished run by ``metric`` in its better-last order (ties by seed):
    the run at or just below the median score; None if no finished run reported it."""
    if metric not in rows:
        return None
    valid = rows[rows[metric].notna() & ~_failed_mask(rows)]
    if valid.empty:
        return None
    valid = valid.sort_values([metric, names.TAG_SEED, RUN_ID], kind="stable",
                              ascending=[_higher_is_better(metric), True, True])
    return valid.iloc[(len(valid) - 1) // 2]


# --- parameter tables -------------------------------------------------------------------------


def _searched_param_cols(df: pd.DataFrame) -> list[str]:
    return sorted(c for c in df.columns if str(c).startswith(_SEARCHED_PREFIXES))


def _param_value_text(values: pd.Series, significant: int | None = None) -> str:
    """The distinct values of a param column, ``/``-separated (floats to ``significant``
    significant digits when given); a dash when there is none."""
    uniq = []
    for v in values:
        if _isnan(v):
            continue
        text = (f"{v:.{significant}g}" if significant is not None
                and isinstance(v, (float, np.floating)) else _fmt_num(v))
        if text not in uniq:
            uniq.append(text)
    return " / ".join(uniq) if uniq else _DASH


# --- the report -----------------------------------------------------------------------------


def _how_to_read(n_resamples: int = 2000, seed: int = 0, images: bool = False) -> list[str]:
    comparisons = (
        f"**Comparisons** use the `{names.PHASE_SEEDS}` phase: each variant's best search "
        "configuration re-run on fresh seeds (a pair without seeds-phase runs falls back to all "
        "its runs; its phase column says `all`). Values are mean ± standard deviation over the "
        "runs that finished and reported the metric (ddof=1; no ± for a single value); `n` counts "
        "every run: failed or interrupted ones are in `n` and the status counts, not in the "
        "means. Runs stopped early (collapsed, D overpowers, diverged, pruned) count in the "
        "means too, with the values of their last evaluation."
    )
    status = (
        f"`{names.TAG_STATUS}` is the first that applies, in this order: "
        f"`{names.STATUS_DIVERGED}` -- a logged loss was NaN/inf or its magnitude exceeded the "
        "divergence limit (training stops there); "
        f"`{names.STATUS_D_OVERPOWERS}` -- over the tail of the history mean D(x) >= 1 - m, mean "
        "D(G(z)) <= m and the generator's gradient norm has vanished: the discriminator wins; "
        f"`{names.STATUS_COLLAPSED}` -- each of the last few evaluations covered at most "
        "max(1, floor(collapse_fraction × n_modes)) modes; "
        f"`{names.STATUS_OK}` otherwise. `{names.STATUS_FAILED}` means the trial raised an "
        f"error, `{names.STATUS_STOPPED}` that it was interrupted, `{names.STATUS_PRUNED}` "
        "that the study's search pruner stopped it (search phase only). A trial stopped "
        "early for a status listed in `diagnostics.stop_early` has that status (see "
        "*Early stopping*)."
    )
    stability = (
        f"`{names.STABILITY_SCORE}` -- the fraction of all modes that stayed covered at *every* "
        "evaluation in the second half of training: 1.0 means all modes were found and held, "
        "0.0 means none was held throughout (or the trial diverged)."
    )
    hops = (
        f"`{names.MODE_HOPS}` (in report.csv) -- how many times the set of covered modes changed "
        "between consecutive evaluations (a generator hopping from mode to mode has many)."
    )
    full = (
        f"`{names.STEPS_TO_FULL_COVERAGE}` -- the first evaluation step at which every mode was "
        "covered; the table shows its mean over the runs that got there and how many did (k/n)."
    )
    coverage = (
        f"`{names.MODES_COVERED}` -- modes with high-quality samples (within 3 standard "
        f"deviations of a centre); `{names.HQ_FRACTION}` -- the fraction of high-quality "
        f"samples; `{names.MODE_KL}` -- KL divergence of the mode histogram to uniform (lower "
        "is better)."
    )
    intervals = (
        "**95% CI (modes covered)** -- a percentile bootstrap interval of the mean: the values "
        f"are resampled with replacement {n_resamples} times (numpy generator seeded with "
        f"{seed}, so the report is reproducible) and the 2.5% and 97.5% quantiles of the "
        "resampled means are shown (a dash for fewer than 2 values). With few seeds such "
        "intervals are wide *and* under-cover: a resample of 3 values can only take a few "
        "distinct means, so the interval is narrower than the real uncertainty and covers the "
        "true mean less often than 95% of the time. Treat it as a description of the spread."
    )
    pairwise = (
        f"**Pairwise comparisons** -- per dataset, every pair of variants on the study's "
        f"metric (where the runs do not report it, `{names.MODES_COVERED}`, else the first of "
        f"{', '.join(f'`{m}`' for m in _MEDIAN_BY[1:])} they report) over the seeds-phase "
        "runs that did not fail: the difference of "
        "means with its bootstrap 95% interval (each variant resampled independently), the "
        "two-sided Mann–Whitney U p-value (exact for small groups, with ties too, by "
        "enumerating the splits; normal approximation for large ones), and that p "
        "Holm-adjusted over all pairs of the dataset. A pair is "
        "*distinguishable* when the adjusted p is below 0.05. Groups of n_a and n_b runs "
        "cannot give a p below 2/C(n_a + n_b, n_a): 0.1 for 3 seeds against 3."
    )
    chance = (
        "**Chance** -- beside each coverage value, \"(noise x)\" is what a generator that "
        "ignores the data scores with the same number of samples (the mean of the runs' "
        f"`{names.CHANCE_PREFIX}<value>` metrics). A variant is **at chance** on a dataset "
        "when the mean of a deciding value (e.g. hq fraction) over its finished runs does "
        f"not beat the bound its runs logged (`{names.CHANCE_BOUND_PREFIX}<value>`: beyond "
        "every data-ignoring draw and 10× their mean); its mode count then says nothing "
        "about learning the data. *chance unknown* where no chance level was logged -- "
        "never read as 0. The **Verdict** at the top is computed from these tables: the best "
        "variant on the study's metric, the pairs that are distinguishable (as in *Pairwise "
        "comparisons*, on that metric), which results are at chance, failures, and what more "
        "seeds would buy (docs/verdict.md, docs/chance.md)."
    )
    items = [comparisons, intervals, pairwise, chance, status, stability, hops, full, coverage]
    if images:
        items.append(
            f"**Image metrics** -- `{names.FID}` (Fréchet distance between the feature "
            "statistics of generated and real images; lower is better), "
            f"`{names.IS_MEAN}` (Inception score; higher is better) and `{names.KID_MEAN}` "
            "(kernel Inception distance; lower is better), all three on the features of the "
            f"extractor the `{names.TAG_FIDELITY_EXTRACTOR}` tag names; `{names.PRECISION}` / "
            f"`{names.RECALL}` (the fraction of generated samples on the real manifold / of "
            "real samples on the generated one; higher is better); "
            f"`{names.COND_ACCURACY}` (conditional GAN: how often the harness classifier "
            f"sees the class the sample was generated for) and `{names.CODE_ACCURACY}` "
            "(InfoGAN: the categorical code as class labels under the best one-to-one "
            "matching of code values to classes); on image datasets the modes are the "
            "classes the harness classifier recognises.")
        items.append(
            f"**Real-data floor** -- `{names.FID_FLOOR}`: the FID that real images neither the "
            "feature extractor (the harness classifier) nor the reference contains score "
            "against the same reference, at the run's sample count -- what a generator "
            "indistinguishable from the data scores. The default reference of the `mnist` "
            "datasets is disjoint from the classifier's training images but part of the "
            "GAN's, so a generator that reproduces its training images can score below the "
            "floor: such runs are flagged *possible memorisation*. The floor is itself an "
            "estimate from a few "
            "thousand real images (about ±0.5–1 FID on MNIST), so a FID just below it reads "
            "as *at the floor*; see docs/fidelity.md.")
        items.append(
            "**Provenance** -- image metrics depend on how they were made: the feature "
            "extractor and its weights, the real reference images, the sample counts, the "
            "classifier and the data split, which each run records in its tags "
            f"({_provenance_patterns()}). Where the compared runs of a dataset differ in any "
            "of them, the report refuses to rank them: it names the differing tags and which "
            "variants have which values, shows the numbers per provenance group and marks no "
            "winner.")
    return items


def _provenance_patterns() -> str:
    """The provenance tags as the report names them: `fidelity.*`, ..., `dataset.split`."""
    return ", ".join([*(f"`{p}*`" for p in provenance.PROVENANCE_PREFIXES),
                      *(f"`{t}`" for t in provenance.PROVENANCE_TAGS)])


def _provenance_warning(doc: _Doc, dataset: str, conflicts: dict, consequence: str) -> None:
    """A warning paragraph: the runs of ``dataset`` differ in provenance (the tags, their
    values and which variants have which), and what the report does about it."""
    doc.p(f"**Warning -- provenance differs, not ranked.** The runs of `{dataset}` compared "
          "here were not measured the same way (extractor, reference images, sample counts, "
          "classifier or data split), so their numbers are not comparable across groups. "
          f"{consequence} Differing tags: {provenance.describe_conflicts(conflicts)}")


def _group_heading(k: int, group: provenance.ProvenanceGroup, tags: Iterable[str]) -> str:
    values = ", ".join(f"`{t}` = `{group.tags.get(t) or provenance.NOT_SET}`" for t in tags)
    return (f"**Provenance group {k}** ({', '.join(group.variants)}; {len(group.rows)} runs): "
            + (values or "no provenance tags") + ".")


def _image_digits(metric: str, summary: pd.DataFrame) -> int:
    """The decimals of :data:`IMAGE_METRICS`, but at most 2 where the means reach 1 or more
    (KID on classifier features is in the thousands, not a fraction)."""
    digits = IMAGE_METRICS[metric]
    means = _finite(summary[f"{metric}_mean"]) if f"{metric}_mean" in summary else []
    return min(digits, 2) if len(means) and float(np.abs(means).max()) >= 1 else digits


def _image_table(doc: _Doc, summary: pd.DataFrame, metrics: list[str]) -> None:
    headers = ["variant", "phase", "runs (used / all)"]
    floors = FLOOR_MEAN in summary
    for metric in metrics:
        headers.append(f"{_LABELS[metric]} {'↑' if _higher_is_better(metric) else '↓'}")
        if metric in IMAGE_CI_METRICS:
            headers.append(f"95% CI ({_LABELS[metric]})")
        if metric == names.FID and floors:
            headers.append("real-data floor (FID)")
    rows = []
    for _, row in summary.iterrows():
        cells = [str(row[names.TAG_VARIANT]), str(row[names.TAG_PHASE]),
                 f"{int(row['n_group'])} / {int(row['n'])}"]
        for metric in metrics:
            digits = _image_digits(metric, summary)
            cells.append(_fmt_pm(row[f"{metric}_mean"], row[f"{metric}_std"], digits))
            if metric in IMAGE_CI_METRICS:
                cells.append(_ci_cell(row, metric, digits))
            if metric == names.FID and floors:
                cells.append(_floor_cell(row, digits))
        rows.append(cells)
    doc.table(headers, rows)
    flagged = summary[summary[BELOW_FLOOR] > 0] if floors else summary.iloc[0:0]
    if len(flagged):
        doc.p("**Possible memorisation** -- FID below the real-data floor (unseen real images "
              "score worse against the same reference): "
              + "; ".join(f"`{r[names.TAG_VARIANT]}` in {int(r[BELOW_FLOOR])} of "
                          f"{int(r[f'{names.FID}_n'])} runs" for _, r in flagged.iterrows())
              + ". Look at these runs' samples for copies of training images before "
              "reading their FID as better than real data.")


def _floor_cell(row: pd.Series, digits: int) -> str:
    """The mean real-data floor, and the runs below it: "5.23 (⚠ 2 / 3 below: possible
    memorisation)"."""
    mean = row.get(FLOOR_MEAN)
    if _isnan(mean):
        return _DASH
    text = f"{mean:.{digits}f}"
    below = row.get(BELOW_FLOOR)
    if not _isnan(below) and int(below) > 0:
        text += (f" (⚠ {int(below)} / {int(row[f'{names.FID}_n'])} below: possible "
                 "memorisation)")
    return text


def _image_section(doc: _Doc, df: pd.DataFrame, summary: pd.DataFrame) -> None:
    """``## Image metrics``: per dataset whose runs logged FID / IS / KID / precision / recall /
    cond or code accuracy, a table of their mean ± sd over the compared runs
    (:func:`summarize_images`). The runs are first grouped by provenance: one group gets its
    best variant per metric named; several get a warning, one table per group and no winner."""
    if summary.empty:
        return
    doc.h(2, "Image metrics")
    doc.p("Mean ± sd over the compared runs (the seeds phase, as above) that finished and "
          "reported the metric; ↓ lower is better (FID, KID), ↑ higher is better (IS, "
          "precision, recall, cond/code accuracy). IS and KID are each run's mean (report.csv "
          f"also has `{names.IS_STD}` and `{names.KID_STD}`). Runs are only ranked against runs "
          f"with the same provenance tags ({_provenance_patterns()}): FID from a different "
          "extractor, reference set or sample count is a different number.")
    by_dataset = _image_rows(df)
    for dataset, ds in summary.groupby(names.TAG_DATASET, sort=True):
        doc.h(3, f"Dataset `{dataset}`")
        metrics = [m for m in IMAGE_METRICS if f"{m}_n" in ds and ds[f"{m}_n"].sum() > 0]
        pairs = by_dataset[dataset]
        groups = _image_groups(pairs)
        conflicts = provenance.provenance_conflicts(pd.concat([r for *_, r in pairs]))
        if conflicts:
            _provenance_warning(doc, dataset, conflicts,
                                "The numbers are shown per provenance group and no variant "
                                "is marked best.")
            for k, group in enumerate(groups, start=1):
                doc.p(_group_heading(k, group, conflicts))
                _image_table(doc, ds[ds["provenance_group"] == k], metrics)
            continue
        _image_table(doc, ds, metrics)
        tags = groups[0].tags if groups else {}
        shared = ", ".join(f"`{t}` = `{v}`" for t, v in tags.items() if v is not None)
        doc.p(("All compared runs share one provenance: " + shared + ".") if shared else
              "The runs carry no provenance tags: the report cannot check that their numbers "
              "were made the same way.")
        best = []
        for metric in metrics:
            winners = best_variants(ds, metric)
            if winners:
                value = ds.loc[ds[names.TAG_VARIANT] == winners[0], f"{metric}_mean"].iloc[0]
                how = "highest" if _higher_is_better(metric) else "lowest"
                best.append(f"{_LABELS[metric]} ({how}) "
                            + " = ".join(f"**{w}**" for w in winners)
                            + f" ({value:.{_image_digits(metric, ds)}f})")
        if best:
            doc.p("Best mean (same provenance; a description, not a significance test): "
                  + "; ".join(best) + ".")


def _pairwise_section(doc: _Doc, df: pd.DataFrame, n_resamples: int, seed: int,
                      alpha: float = 0.05, study_metric: str | None = None) -> None:
    """``## Pairwise comparisons``: per dataset, every pair of variants on the study's metric
    (where the dataset's runs report it; else modes covered or what they report) over the
    seeds-phase runs that did not fail (:func:`reports.stats.pairwise`), as the verdict
    compares them."""
    doc.h(2, "Pairwise comparisons")
    runs = df[(df[names.TAG_PHASE] == names.PHASE_SEEDS) & ~_failed_mask(df)]
    runs = runs[runs[names.TAG_VARIANT].notna()]
    datasets = sorted(df[names.TAG_DATASET].fillna("?").unique()) if len(df) else []
    if not datasets:
        doc.p("No trial runs to compare.")
        return
    for dataset in datasets:
        doc.h(3, f"Dataset `{dataset}`")
        rows = runs[runs[names.TAG_DATASET].fillna("?") == dataset]
        metric = (study_metric if study_metric in rows and rows[study_metric].notna().any()
                  else _median_metric(rows))  # modes covered, else what the runs report
        if metric == study_metric:
            better = "higher" if _higher_is_better(metric) else "lower"
            doc.p(f"Compared on the study's metric `{metric}` ({better} is better).")
        elif metric != names.MODES_COVERED:
            better = "higher" if _higher_is_better(metric) else "lower"
            doc.p(f"These runs count no modes: compared on `{metric}` ({_LABELS.get(metric, metric)}, "
                  f"{better} is better).")
        scored = rows[rows[metric].notna()] if metric in rows else rows.iloc[0:0]
        conflicts = provenance.provenance_conflicts(scored)
        if not conflicts:
            _pairwise_block(doc, scored, n_resamples, seed, alpha, metric)
            continue
        _provenance_warning(doc, dataset, conflicts,
                            "Variants are compared only within a provenance group, never "
                            "across groups.")
        for k, group in enumerate(provenance.provenance_groups(scored), start=1):
            doc.p(_group_heading(k, group, conflicts))
            _pairwise_block(doc, group.rows, n_resamples, seed, alpha, metric)


def _pairwise_block(doc: _Doc, rows: pd.DataFrame, n_resamples: int, seed: int,
                    alpha: float, metric: str = names.MODES_COVERED) -> None:
    """The pairwise table of one dataset's (or provenance group's) runs on ``metric`` and
    what it says. ``rows`` are the runs that reported it."""
    result = stats.pairwise(rows, metric, group_col=names.TAG_VARIANT,
                            n_resamples=n_resamples, seed=seed, alpha=alpha)
    if result.empty:
        n_var = rows[names.TAG_VARIANT].nunique()
        doc.p(f"Nothing to compare: {n_var} variant(s) with finished seeds-phase runs "
              f"that reported `{metric}` (at least 2 are needed).")
        return
    digits = SUMMARY_METRICS.get(metric, IMAGE_METRICS.get(metric, 3))
    table = []
    for _, r in result.iterrows():
        diff = _fmt_num(r["diff"], digits)
        if not _isnan(r["diff_low"]):
            diff += f" [{r['diff_low']:.{digits}f}, {r['diff_high']:.{digits}f}]"
        table.append([str(r["a"]), str(r["b"]), f"{int(r['n_a'])} / {int(r['n_b'])}",
                      _fmt_num(r["mean_a"], digits), _fmt_num(r["mean_b"], digits), diff,
                      _fmt_p(r["p"]), _fmt_p(r["p_holm"]),
                      "yes" if r["distinguishable"] else "no"])
    doc.table(["a", "b", "n (a / b)", "mean a", "mean b", "diff a − b [95% CI]",
               "Mann–Whitney p", "Holm p", "distinguishable"], table)
    hits = result[result["distinguishable"]]
    if len(hits):
        higher = _higher_is_better(metric)
        word = "covers more" if metric == names.MODES_COVERED else "is better"
        named = ", ".join(f"{r['a']} vs {r['b']} "
                          f"({r['a'] if (r['diff'] > 0) == higher else r['b']} {word})"
                          for _, r in hits.iterrows())
        doc.p(f"Distinguishable at alpha {alpha:g} (Holm-adjusted): {named}; "
              "every other pair is not.")
        return
    sizes = sorted({(int(min(a, b)), int(max(a, b)))
                    for a, b in zip(result["n_a"], result["n_b"]) if a >= 1 and b >= 1})
    floors = {s: stats.min_mann_whitney_p(*s) for s in sizes}
    text = f"No pair is distinguishable at alpha {alpha:g} (Holm-adjusted)."
    if floors and all(f >= alpha for f in floors.values()):
        if len({n for s in sizes for n in s}) == 1:
            n = sizes[0][0]
            text += (f" With {n} seeds per variant the smallest possible two-sided "
                     f"Mann–Whitney p is 2/C({2 * n}, {n}) = {floors[sizes[0]]:.3g}, "
                     "so none can be.")
        else:
            parts = ", ".join(f"{a} vs {b} runs: {f:.3g}" for (a, b), f in floors.items())
            text += (" With these group sizes the smallest possible two-sided Mann–Whitney "
                     f"p (2/C(n_a + n_b, n_a)) is {parts}, all at least {alpha:g}, "
                     "so none can be.")
    elif floors:
        text += (" The group sizes would allow it (smallest possible p "
                 f"{min(floors.values()):.3g}); the data do not show a difference.")
    doc.p(text)


def _budget_figure(dataset: str, curves: list[tuple[str, pd.DataFrame]], colours: dict,
                   n_modes: float) -> bytes:
    """One panel: per variant the expected best modes covered vs the number of search trials,
    with its 5%-95% band (:func:`reports.stats.best_of_k`)."""
    from matplotlib.ticker import MaxNLocator

    fig, axes = _panels(1, 1, f"Best score reachable vs number of search trials -- {dataset}")
    ax = axes[0][0]
    for variant, curve in curves:
        colour = colours.get(variant, "0.3")
        ax.plot(curve["k"], curve["expected"], color=colour, marker="o", markersize=3,
                linewidth=1.5, label=f"{variant} (K={len(curve)})")
        ax.fill_between(curve["k"], curve["low"], curve["high"], color=colour, alpha=0.15,
                        linewidth=0)
    if not _isnan(n_modes):
        ax.axhline(n_modes, color="0.5", linestyle=":", linewidth=1,
                   label=f"all {n_modes:g} modes")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("search trials (budget)")
    ax.set_ylabel("best modes covered")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def _budget_section(doc: _Doc, df: pd.DataFrame, colours: dict, out_dir: Path,
                    images: list[Path]) -> None:
    """``## Score vs budget``: per dataset, each variant's expected best ``modes_covered`` over
    k of its finished search-phase trials, k = 1 .. K (:func:`reports.stats.best_of_k`); the
    figure (``budget_<dataset>.png``, appended to ``images``) and a table of k = 1 and k = K."""
    doc.h(2, "Score vs budget")
    doc.p(f"How good a result could a smaller search have found? For each variant, over its "
          f"K `{names.PHASE_SEARCH}`-phase trials that did not fail and reported "
          f"`{names.MODES_COVERED}`: the expected best of k trials drawn at random without "
          "replacement, for k = 1 .. K, computed exactly from the order statistics "
          "(E[best of k] = sum_i x_(i) C(i-1, k-1) / C(K, k) with the values sorted "
          "ascending), with a band from the 5% to the 95% quantile of that best "
          "(Lucic et al. 2018, *Are GANs created equal?*). A curve still rising at k = K "
          "says a larger search would likely have found better; a flat one says the budget "
          "was enough. With few trials per variant the curves are short and the band wide.")
    search = df[(df[names.TAG_PHASE] == names.PHASE_SEARCH) & ~_failed_mask(df)]
    datasets = sorted(df[names.TAG_DATASET].fillna("?").unique()) if len(df) else []
    if not datasets:
        doc.p("No trial runs.")
        return
    digits = SUMMARY_METRICS[names.MODES_COVERED]
    for dataset in datasets:
        doc.h(3, f"Dataset `{dataset}`")
        ds_all = df[df[names.TAG_DATASET].fillna("?") == dataset]
        rows = search[search[names.TAG_DATASET].fillna("?") == dataset]
        conflicts = provenance.provenance_conflicts(rows[rows[names.MODES_COVERED].notna()])
        if conflicts:
            _provenance_warning(doc, dataset, conflicts,
                                "Read each variant's curve on its own: the curves of different "
                                "groups are not on one scale.")
        variants = sorted(ds_all[names.TAG_VARIANT].fillna("?").unique(), key=str)
        curves, table, missing = [], [], []
        for variant in variants:
            vals = rows.loc[rows[names.TAG_VARIANT].fillna("?") == variant, names.MODES_COVERED]
            curve = stats.best_of_k(vals.to_numpy(dtype=float), higher_is_better=True)
            if curve.empty:
                missing.append(variant)
                continue
            curves.append((variant, curve))
            first, last = curve.iloc[0], curve.iloc[-1]
            table.append([str(variant), str(len(curve)),
                          f"{first['expected']:.{digits}f} "
                          f"[{_fmt_num(first['low'])}, {_fmt_num(first['high'])}]",
                          f"{last['expected']:.{digits}f}"])
        if not curves:
            doc.p("No finished search-phase trials with "
                  f"`{names.MODES_COVERED}`: nothing to plot.")
            continue
        modes = _finite(ds_all[names.N_MODES]) if names.N_MODES in ds_all else pd.Series(dtype=float)
        n_modes = float(modes.max()) if len(modes) else math.nan
        name = f"budget_{_slug(dataset)}.png"
        (out_dir / name).write_bytes(_budget_figure(dataset, curves, colours, n_modes))
        images.append(out_dir / name)
        doc.p("Best modes covered reachable vs number of search trials (line: expected best "
              "of k; band: 5%-95%).")
        doc.img(name, f"score vs budget {dataset}")
        doc.table(["variant", "search trials K", "expected best, 1 trial [5%, 95%]",
                   "expected best, all K trials"], table)
        if missing:
            doc.p("No finished search-phase trials (not plotted): "
                  + ", ".join(f"**{v}**" for v in missing) + ".")


def _early_stop_section(doc: _Doc, df: pd.DataFrame) -> None:
    """``## Early stopping``: per variant and dataset, the runs stopped before their budget by
    reason and the steps that saved (:func:`early_stopping`)."""
    doc.h(2, "Early stopping")
    doc.p(f"Trials the harness stopped before their budget: `{names.STATUS_COLLAPSED}` and "
          f"`{names.STATUS_D_OVERPOWERS}` when the study lists them in "
          f"`diagnostics.stop_early`, `{names.STATUS_DIVERGED}` (a diverging trial always "
          f"stops), and `{names.STATUS_PRUNED}` for the search-phase trials the study's "
          "`search.pruner` stopped. *Steps saved* is the sum over the stopped trials of their "
          "budget minus the steps they ran. Stopped trials are not dropped from the "
          "comparisons: they count in every `n` and status count, and in the means with the "
          "values of their last evaluation, so a variant whose trials get stopped scores as "
          "badly as they did.")
    table = early_stopping(df)
    if table.empty:
        doc.p("No trial runs.")
        return
    total = table.iloc[-1]
    budget = total["steps_budget"]
    if int(total["stopped"]) == 0:
        doc.p(f"No trial was stopped early ({int(total['n'])} runs"
              + (f", {_fmt_num(budget)} budgeted steps)." if not _isnan(budget) else ")."))
        return
    rows = []
    for _, r in table.iterrows():
        saved = _fmt_num(r["steps_saved"])
        if not _isnan(r["saved_fraction"]):
            saved += f" of {_fmt_num(r['steps_budget'])} ({r['saved_fraction']:.0%})"
        cells = [str(r[names.TAG_VARIANT]), str(r[names.TAG_DATASET]), str(int(r["n"])),
                 str(int(r["stopped"])), *(str(int(r[s])) for s in STOP_STATUSES), saved]
        if r[names.TAG_VARIANT] == TOTAL:
            cells = [f"**{c}**" for c in cells]
        rows.append(cells)
    doc.table(["variant", "dataset", "runs", "stopped", *STOP_STATUSES, "steps saved"], rows)
    fraction = (f" ({total['saved_fraction']:.0%} of the {_fmt_num(budget)} budgeted)"
                if not _isnan(total["saved_fraction"]) else "")
    doc.p(f"In all, {int(total['stopped'])} of {int(total['n'])} trials stopped early; "
          f"{_fmt_num(total['steps_saved'])} steps were not run{fraction}.")


def _study_name(client, experiment_id: str, parent) -> str:
    name = parent.data.tags.get(names.TAG_STUDY) if parent is not None else None
    if name:
        return name
    try:
        return client.get_experiment(experiment_id).name
    except Exception:  # noqa: BLE001
        return f"experiment {experiment_id}"


def build_report(client, experiment_id: str, parent_run_id: str, out_dir: Path,
                 attach: bool = True, *, n_resamples: int = 2000, seed: int = 0,
                 runs: list | None = None, frame: pd.DataFrame | None = None,
                 sources: list[tuple[str, str]] | None = None) -> dict:
    """Write report.md, report.html, report.csv and the PNG figures into ``out_dir``.

    Returns ``{"dir": out_dir, "md": ..., "html": ..., "csv": ..., "<png stem>": ...}``: every
    value a Path, one entry per PNG written (``coverage_<dataset>``, ``losses_<dataset>``,
    ``d_outputs_<dataset>``, ``image_metrics_<dataset>``, ``budget_<dataset>``,
    ``samples_<dataset>_<variant>[_<grid>]``, ``orbits_<dataset>``, ``timeline_<dataset>``,
    ``sensitivity_<dataset>``). With
    ``attach`` the folder is logged to the parent run under the artifact path ``report``. ``n_resamples`` and ``seed``
    drive the bootstrap intervals (:func:`summarize`, the pairwise comparisons). ``runs``
    are the parent's child runs when the caller has already fetched them. ``frame`` and
    ``sources`` are a merged report's runs and ``[(study, parent run id)]``
    (:mod:`reports.merge`; the first study's ids are ``experiment_id``/``parent_run_id``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parent = retry(client.get_run, parent_run_id)
    study = _study_name(client, experiment_id, parent)
    if frame is not None:
        df = frame
    else:
        df = (load_runs(client, experiment_id, parent_run_id) if runs is None
              else runs_frame(runs))
    if sources:
        study = " + ".join(name for name, _ in sources)
    summary = summarize(df, n_resamples=n_resamples, seed=seed)
    image_summary = summarize_images(df, n_resamples=n_resamples, seed=seed)
    pairs = _comparison_rows(df)
    colours = _variant_colours(v for v, _ in pairs)

    csv_path = out_dir / "report.csv"
    df.to_csv(csv_path, index=False)

    plot_rows = pd.concat([rows for _, rows in pairs.values()]) if pairs else df.iloc[0:0]
    hist = _fetch_histories(client, plot_rows, _PLOT_HISTORIES)

    doc = _Doc()
    now = datetime.now(timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M %Z")
    title = f"Stability report: {study}"
    doc.h(1, title)
    started = parent.info.start_time
    started_text = (datetime.fromtimestamp(started / 1000, timezone.utc).astimezone()
                    .strftime("%Y-%m-%d %H:%M %Z") if started else "unknown")
    origin = (f"Study `{study}`, parent run `{parent_run_id}` (experiment `{experiment_id}`), "
              f"started {started_text}" if not sources else
              "Studies merged: " + ", ".join(f"`{n}` (parent run `{p}`)" for n, p in sources)
              + "; a variant name used by more than one of them is prefixed with its study")
    doc.p(f"{origin}; report written {now}. "
          f"{len(df)} trial runs: "
          + ", ".join(f"{(df[names.TAG_PHASE] == ph).sum()} {ph}"
                      for ph in sorted(df[names.TAG_PHASE].dropna().unique())) + ".")

    # --- the verdict first (reports.verdict), then the table it rests on
    from reports import verdict

    study_metric = parent.data.params.get("metric") or None
    verdicts = verdict.verdict(df, study_metric, parent.data.params.get("mode") or None,
                               n_resamples=n_resamples, seed=seed, summary=summary)
    verdict.verdict_section(doc, verdicts, study_metric)

    # --- summary table
    doc.h(2, "Summary over seeds")
    lead, judges = headline.columns(summary, study_metric)

    def head(m: str, text: str | None = None) -> str:
        text = text or _LABELS.get(m, m)
        return headline.search_header(m, text) if m == study_metric else text

    headers = ["variant", "dataset", "phase", "n",
               *([head(lead, headline.label(lead))] if lead else []),
               *(head(m) for m in headline.COVERAGE), "chance",
               *(head(m, headline.label(m)) for m in judges),
               head(names.STABILITY_SCORE), "steps to full coverage (k/n)", "status",
               "95% CI (modes covered)"]
    rows = []
    for _, row in summary.iterrows():
        rows.append([
            str(row[names.TAG_VARIANT]), str(row[names.TAG_DATASET]), str(row[names.TAG_PHASE]),
            str(int(row["n"])), *([headline.value_text(row, lead)] if lead else []),
            *(headline.value_text(row, m) for m in headline.COVERAGE),
            headline.chance_text(row, markdown=True),
            *(headline.value_text(row, m) for m in judges),
            headline.value_text(row, names.STABILITY_SCORE),
            _full_coverage_cell(row), _status_cell(row), _ci_cell(row),
        ])
    if rows:
        doc.table(headers, rows)
        doc.p("Coverage values show the chance level beside them: \"(noise x)\" is the mean "
              "score of a generator that ignores the data, with the same number of samples. "
              "A row is **at chance** when its mean deciding value (e.g. hq fraction) does "
              "not beat the bound such a generator reaches; *chance unknown* where the runs "
              "logged no chance level (docs/chance.md).")
    else:
        doc.p("No trial runs were found under this parent run.")
    conflicted = comparison_conflicts(df)
    for dataset, conflicts in conflicted.items():
        _provenance_warning(doc, dataset, conflicts,
                            "The order of its rows above is not a ranking; the image metrics "
                            "and the pairwise comparisons below are shown per provenance group.")

    doc.h(2, "How to read this report")
    doc.ul(_how_to_read(n_resamples, seed, images=not image_summary.empty))

    images: list[Path] = orbits.orbit_section(doc, client, df, pairs, colours, out_dir)
    _image_section(doc, df, image_summary)
    _pairwise_section(doc, df, n_resamples, seed, study_metric=study_metric)
    _budget_section(doc, df, colours, out_dir, images)
    images += sensitivity.sensitivity_section(doc, df, colours, out_dir,
                                              metric=parent.data.params.get("metric"))
    _early_stop_section(doc, df)
    pair_modes = {key: rows[names.N_MODES].max() for key, (_, rows) in pairs.items()
                  if names.N_MODES in rows}
    images += timeline.timeline_section(doc, df, pairs, hist, pair_modes, colours, out_dir)

    # --- figures per dataset
    datasets = sorted({d for _, d in pairs})
    for dataset in datasets:
        ds_pairs = [(v, rows) for (v, d), (_, rows) in pairs.items() if d == dataset]
        ds_pairs.sort(key=lambda p: p[0])
        n_modes = {v: summary.loc[(summary[names.TAG_VARIANT] == v)
                                  & (summary[names.TAG_DATASET] == dataset), names.N_MODES].max()
                   for v, _ in ds_pairs}
        doc.h(2, f"Dataset `{dataset}`")
        cov_caption = ("Mode coverage over generator steps (one panel per variant, one line "
                       "per run; wide pale line and band: their median and inter-quartile "
                       "range; dotted: all modes)")
        d_caption = ("D(x) (solid), D(G(z)) before (dashed) and after (dotted) the generator "
                     f"step ({BAND_TEXT})")
        figures = [
            ("coverage", cov_caption,
             _coverage_figure(dataset, ds_pairs, hist, colours, n_modes)),
            ("losses", "Discriminator and generator losses (one line per run)",
             _losses_figure(dataset, ds_pairs, hist, colours)),
            ("d_outputs", d_caption, _d_figure(dataset, ds_pairs, hist, colours)),
        ]
        if dataset in set(image_summary[names.TAG_DATASET]):
            img_caption = ("Image metrics over generator steps -- those logged of FID, IS, "
                           "translation accuracy, cycle error and modes covered (one line per "
                           f"variant; {BAND_TEXT})")
            if dataset in conflicted:
                img_caption += ("; the variants differ in provenance (see the warning above): "
                                "do not rank them by these curves")
            figures.append(("image_metrics", img_caption,
                            _image_curves_figure(dataset, ds_pairs, hist, colours, n_modes)))
        for stem, caption, png in figures:
            _figure_block(doc, out_dir, images, stem, dataset, caption, png)

        # final samples of the median run, per variant
        by = _median_metric(pd.concat([rows for _, rows in ds_pairs]))
        doc.h(3, f"Final samples (median run by {by})")
        with tempfile.TemporaryDirectory() as tmp, _no_progress_bars():
            for variant, rows in ds_pairs:
                median = _median_run(rows, by)
                if median is None:
                    doc.p(f"**{variant}**: no run reported `{by}`; no samples shown.")
                    continue
                dst = Path(tmp, median[RUN_ID])
                dst.mkdir(exist_ok=True)
                copied = []
                for path in _final_sample_paths(client, median[RUN_ID]):
                    try:
                        local = retry(client.download_artifacts, median[RUN_ID], path,
                                      str(dst))
                    except Exception as exc:  # noqa: BLE001 -- only skips the image
                        doc.p(f"**{variant}**: `{path}` could not be downloaded "
                              f"({type(exc).__name__}).")
                        continue
                    grid = _grid_name(path)
                    name = (f"samples_{_slug(dataset)}_{_slug(variant)}"
                            + (f"_{_slug(grid)}" if grid else "") + ".png")
                    shutil.copyfile(local, out_dir / name)
                    images.append(out_dir / name)
                    copied.append((grid, name))
                if not copied:
                    doc.p(f"**{variant}** ({_run_label(median)}, run `{median[RUN_ID]}`): "
                          f"no `{names.ARTIFACT_FINAL_SAMPLES}` artifact (nor any "
                          f"`{names.ARTIFACT_FINAL_SAMPLES.removesuffix('.png')}_*.png` grid).")
                    continue
                doc.p(f"**{variant}**: {_run_label(median)}, {_LABELS.get(by, by)} "
                      f"{_fmt_num(median[by])}, status {median[names.TAG_STATUS] or _DASH}, "
                      f"run `{median[RUN_ID]}`.")
                for grid, name in copied:
                    if grid is not None:
                        doc.p(f"*{variant}, grid `{grid}`*: {_grid_caption(grid)}.")
                    doc.img(name, f"final samples {variant} {dataset}"
                            + (f" {grid}" if grid else ""))

    # --- best hyperparameters
    doc.h(2, "Best hyperparameters")
    doc.p("The configuration each variant's seeds phase re-ran (the best of its search); "
          "pairs without seeds-phase runs show their search trial with the most modes covered.")
    searched = _searched_param_cols(df)
    hp_rows = []
    for (variant, dataset), (phase, rows) in sorted(pairs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        source = rows
        if phase != names.PHASE_SEEDS:
            ranked = rows.sort_values(names.MODES_COVERED, ascending=False, na_position="last")
            source = ranked.iloc[:1]
        extra = []
        for col in searched:
            text = _param_value_text(source[col])
            if text != _DASH:
                extra.append(f"{col}={text}")
        hp_rows.append([variant, dataset,
                        *(_param_value_text(source[p]) if p in source else _DASH
                          for p in KEY_PARAMS),
                        ", ".join(extra) or _DASH])
    if hp_rows:
        doc.table(["variant", "dataset", *KEY_PARAMS, "model / loss params"], hp_rows)

    # --- search trials
    doc.h(2, "Search trials")
    search = df[df[names.TAG_PHASE] == names.PHASE_SEARCH]
    if search.empty:
        doc.p("No search-phase trials.")
    else:
        search = search.sort_values([names.TAG_DATASET, names.TAG_VARIANT, names.MODES_COVERED],
                                    ascending=[True, True, False], na_position="last")
        varying = {}
        for key, group in search.groupby([names.TAG_VARIANT, names.TAG_DATASET], dropna=False):
            varying[key] = [c for c in searched
                            if group[c].dropna().astype(str).nunique() > 1]
        s_rows = []
        for _, row in search.iterrows():
            cols = varying.get((row[names.TAG_VARIANT], row[names.TAG_DATASET]), [])
            other = ", ".join(f"{c}={_fmt_num(row[c])}" for c in cols if not _isnan(row[c]))
            s_rows.append([
                str(row[names.TAG_VARIANT]), str(row[names.TAG_DATASET]),
                _fmt_num(row[names.TAG_SEED]),
                *(_fmt_num(row[p]) if p in row else _DASH for p in KEY_PARAMS),
                other or _DASH,
                _fmt_num(row[names.MODES_COVERED]),
                _fmt_num(row[names.STABILITY_SCORE], 2),
                str(row[names.TAG_STATUS]) if not _isnan(row[names.TAG_STATUS]) else _DASH,
            ])
        doc.p("Every search-phase trial, best first within each variant; "
              "\"other\" lists the model/loss params that vary across the variant's trials.")
        doc.table(["variant", "dataset", "seed", *KEY_PARAMS, "other", "modes covered",
                   "stability", "status"], s_rows)

    # --- failures
    doc.h(2, "Failures")
    failures = df[_failed_mask(df)]
    if failures.empty:
        doc.p("No run failed or was stopped.")
    else:
        doc.p(f"{len(failures)} run(s) failed or were stopped; they count in `n` and in the "
              "status counts above, and have no (or partial) metrics.")
        doc.table(["variant", "dataset", "phase", "seed", "status", "MLflow status", "run", "error"],
                  [[str(r[names.TAG_VARIANT]), str(r[names.TAG_DATASET]), str(r[names.TAG_PHASE]),
                    _fmt_num(r[names.TAG_SEED]),
                    str(r[names.TAG_STATUS]) if not _isnan(r[names.TAG_STATUS]) else _DASH,
                    str(r[RUN_STATUS]), f"`{r[RUN_ID]}`",
                    str(r[names.TAG_ERROR]) if not _isnan(r[names.TAG_ERROR]) else "(no error tag)"]
                   for _, r in failures.iterrows()])
    running = df[df[RUN_STATUS] == "RUNNING"]
    if not running.empty:
        doc.p(f"{len(running)} run(s) are still RUNNING (in flight, or their process died "
              "without ending them): " + ", ".join(f"`{r}`" for r in running[RUN_ID]) + ".")

    md_path = out_dir / "report.md"
    md_path.write_text(_to_markdown(doc), encoding="utf-8")
    html_path = out_dir / "report.html"
    html_path.write_text(_to_html(doc, title, out_dir), encoding="utf-8")

    if attach:
        retry(client.log_artifacts, parent_run_id, str(out_dir), "report")
    return {"dir": out_dir, "md": md_path, "html": html_path, "csv": csv_path,
            **{p.stem: p for p in images}}


# --- finding a study ----------------------------------------------------------------------


def _study_filter() -> str:
    return f"tags.`{names.TAG_KIND}` = 'study'"


def _active_experiments(client) -> list:
    out, token = [], None
    while True:
        page = retry(client.search_experiments, max_results=1000, page_token=token)
        out.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return out


def _study_names(client) -> list[str]:
    found = []
    for exp in _active_experiments(client):
        if search_all(client, [exp.experiment_id], _study_filter(), limit=1):
            found.append(exp.name)
    return sorted(found)


def _available(client) -> str:
    studies = _study_names(client)
    return ("available studies: " + ", ".join(studies)) if studies else \
        "this tracking store has no study runs yet (run `harness study` first)"


def latest_study_run(client, study: str | None) -> tuple[str, str]:
    """``(experiment_id, parent_run_id)`` of a study's parent run (tag ``kind=study``).

    ``study`` is a study (experiment) name -- its most recent parent run --, a 32-hex parent
    run id, or None for the most recent parent run in the whole store. ConfigError, listing
    the available study names, when nothing matches.
    """
    if study is None:
        ids = [e.experiment_id for e in _active_experiments(client)]
        runs = search_all(client, ids, _study_filter(), order_by=["attributes.start_time DESC"],
                           limit=1) if ids else []
        if not runs:
            raise ConfigError(f"no study found in the tracking store; {_available(client)}")
        return runs[0].info.experiment_id, runs[0].info.run_id

    if _HEX_RUN_ID.match(study):
        try:
            run = retry(client.get_run, study)
        except Exception:  # noqa: BLE001 -- not a run id: maybe a (strange) study name
            run = None
        if run is not None:
            if run.data.tags.get(names.TAG_KIND) == "study":
                return run.info.experiment_id, run.info.run_id
            parent = run.data.tags.get(names.TAG_PARENT)
            hint = f" (it is a trial run; its study's parent run is {parent})" if parent else ""
            raise ConfigError(f"run {study} is not a study's parent run{hint}; "
                              f"give a study name or a parent run id; {_available(client)}")

    exp = client.get_experiment_by_name(study)
    if exp is None or exp.lifecycle_stage != "active":
        raise ConfigError(f"no study named {study!r} in the tracking store; {_available(client)}")
    runs = search_all(client, [exp.experiment_id], _study_filter(),
                       order_by=["attributes.start_time DESC"], limit=1)
    if not runs:
        raise ConfigError(f"experiment {study!r} has no study parent run (tag "
                          f"{names.TAG_KIND}=study); {_available(client)}")
    return exp.experiment_id, runs[0].info.run_id
