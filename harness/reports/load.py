"""Reading a study from MLflow: its trial runs as one per-run frame, and metric histories.

Everything the report knows about a study comes through here: :func:`load_runs` (the frame
every table is computed from), :func:`fetch_histories` (the step-indexed curves the figures
draw) and :func:`study_name`.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from harness import names
from harness.reports import provenance
from harness.tracking import child_runs, retry

RUN_ID = "run_id"
RUN_STATUS = "run_status"
RUN_NAME = "run_name"
START_TIME = "start_time"

#: tag-derived columns, in this order, first in the per-run frame
TAG_COLUMNS = (
    names.TAG_VARIANT,
    names.TAG_DATASET,
    names.TAG_PHASE,
    names.TAG_SEED,
    names.TAG_STATUS,
    names.TAG_ERROR,
    names.TAG_DIVERGED_REASON,
    names.TAG_MODEL,
    names.TAG_LOSS,
    names.TAG_TRICKS,
    names.TAG_TRIAL_ID,
    names.TAG_ORBIT,
)
#: metrics that always get a column (NaN when no run logged them), so summaries never KeyError
CORE_METRICS = (
    names.MODES_COVERED,
    names.HQ_FRACTION,
    names.MODE_KL,
    names.STABILITY_SCORE,
    names.N_MODES,
    names.STEPS_TO_FULL_COVERAGE,
    names.MODE_HOPS,
)


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
    """:func:`load_runs`'s frame of already fetched MLflow runs."""
    rows = []
    param_keys: set[str] = set()
    metric_keys: set[str] = set(CORE_METRICS)
    prov_keys: set[str] = set()
    for run in runs:
        metric_keys.update(run.data.metrics)
        param_keys.update(run.data.params)
        prov_keys.update(t for t in run.data.tags if provenance.is_provenance_tag(t))
    prov_keys -= set(TAG_COLUMNS) | metric_keys
    base_cols = [RUN_ID, RUN_STATUS, *TAG_COLUMNS, RUN_NAME, START_TIME, *sorted(prov_keys)]
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
        for tag in (*TAG_COLUMNS, *prov_keys):
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
    ``tricks``, ``trial_id``, ``orbit``, ``run_name``, ``start_time``, one column per
    provenance tag any run has (``fidelity.*``, ``classifier.*``, ``class_modes.*``,
    ``dataset.split``: :mod:`harness.reports.provenance`; None where a run lacks it), then the
    final value of every metric any run logged (NaN where a run has none -- failed runs are
    kept), then every param (numeric where every value parses as a number; a param whose name
    clashes with a column above is prefixed ``param.``).
    """
    return runs_frame(child_runs(client, experiment_id, parent_run_id))


def history(client, run_id: str, key: str) -> pd.Series:
    """A metric's history as a step-indexed Series (the last value logged at each step)."""
    hist = retry(client.get_metric_history, run_id, key)
    if not hist:
        return pd.Series(dtype=float)
    hist = sorted(hist, key=lambda m: (m.step, m.timestamp))
    values = {m.step: float(m.value) for m in hist}
    return pd.Series(values, dtype=float).sort_index()


def fetch_histories(client, runs: pd.DataFrame, keys: Iterable[str]) -> dict:
    """``{(run_id, key): Series}`` for the runs' logged metrics among ``keys``; a metric a
    run has no final value of is not asked for. Fetched on threads: the calls wait on I/O."""
    jobs = []
    for _, row in runs.iterrows():
        for key in keys:
            if key in row and pd.notna(row[key]):
                jobs.append((row[RUN_ID], key))
    if not jobs:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(jobs))) as pool:
        series = list(pool.map(lambda job: history(client, *job), jobs))
    return dict(zip(jobs, series))


def study_name(client, experiment_id: str, parent) -> str:
    """The parent run's ``study`` tag, else its experiment's name."""
    name = parent.data.tags.get(names.TAG_STUDY) if parent is not None else None
    if name:
        return name
    try:
        return client.get_experiment(experiment_id).name
    except Exception:  # noqa: BLE001 -- only a heading: never fail the report over it
        return f"experiment {experiment_id}"
