"""How the search metric depends on each searched hyperparameter, per variant: Optuna's
parameter importances (:func:`param_importances`) and the scatter figure
(:func:`sensitivity_figure`). The section that shows them is
:mod:`harness.reports.sections.sensitivity`.

Choices:

* **Rows**: only ``search``-phase runs (the seeds phase re-runs one configuration, so it
  says nothing about sensitivity). No search rows, no metric, or no searched hyperparameter
  that varies: the section is left out altogether (nothing appended, ``[]`` returned), as
  the orbit section is for a study without xy-game runs.
* **Metric**: the study's ``search.metric`` when the caller passes it (the parent run's
  ``metric`` param); otherwise the first of :data:`DEFAULT_METRICS` (modes covered, FID,
  translation accuracy) that some search row reports.
* **Searched hyperparameters** of a dataset: the columns among
  :data:`harness.reports.runs.KEY_PARAMS` and the ``model.*`` / ``loss.*`` params that take more
  than one distinct value (compared as text, missing values ignored) within the search rows
  of at least one variant of that dataset.
* **Trials used** for the importances: search trials that finished -- not failed or stopped
  (:data:`harness.reports.runs.FAILED_STATUSES`, MLflow FAILED / KILLED), not pruned by the
  search's pruner and not still RUNNING -- with a finite metric and a value for every
  hyperparameter searched in that variant. Pruned trials are left out as Optuna leaves them
  out (their metric is from an earlier step than the others').
* **Figure**: one panel per searched hyperparameter; x = its value (a log axis when every
  value is > 0 and max / min >= 10; text values on a categorical axis), y = the metric.
  Filled points: trials used; hollow points: pruned or unfinished trials, at their last
  reported value; ``x`` markers in a band at the bottom of every panel, below a dotted
  line: failed / stopped trials and trials without a finite metric (so they never vanish),
  at their hyperparameter value. The caption counts the ``x`` markers per variant, and the
  trials that could not be drawn in a panel because they lack that hyperparameter.
* **Importances**: fANOVA (Hutter et al. 2014) as Optuna computes it
  (``optuna.importance.get_param_importances`` with ``FanovaImportanceEvaluator(seed=0)``,
  so the numbers are reproducible), on an in-memory Optuna study built per (dataset,
  variant) from its trials used, in the direction of
  :func:`harness.reports.display.direction`.
  Distributions: integer-valued numeric columns -> ``IntDistribution``, other numeric ones
  -> ``FloatDistribution`` over the variant's min .. max (``log=True`` under the axis rule;
  Optuna's fANOVA fits the raw values, so the flag does not change the numbers), text ->
  ``CategoricalDistribution``. The importances of a variant sum to 1. Cells: a dash (—)
  for a hyperparameter that is constant within the variant (not searched there);
  ``n < 3`` for every searched hyperparameter when fewer than :data:`MIN_TRIALS` trials are
  used (a forest fitted to one or two points says nothing); ``metric constant`` when the
  used trials all reached the same value (fANOVA would split nothing, and the normalised
  shares would be a meaningless 1 / k each); ``no variation`` when the searched
  hyperparameters vary only among trials that were not used.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from harness import names
from harness.reports import display, tables
from harness.reports.figures import grid, panels, png
from harness.reports.runs import (
    KEY_PARAMS,
    failed_mask,
    pruned_mask,
    searched_param_cols,
    unended_mask,
)

#: the metric the section plots when the caller does not name one: the first some search
#: row reports
DEFAULT_METRICS = (names.MODES_COVERED, names.FID, names.TRANSLATION_ACCURACY)
#: the fewest trials used for which a variant's importances are computed
MIN_TRIALS = 3
#: the ratio max / min from which a positive hyperparameter gets a log axis
LOG_RATIO = 10.0
#: fANOVA's random forest seed (deterministic importances)
FANOVA_SEED = 0

NOT_SEARCHED = tables.DASH
TOO_FEW = f"n < {MIN_TRIALS}"
METRIC_CONSTANT = "metric constant"
NO_VARIATION = "no variation"


# --- which rows, which metric, which hyperparameters --------------------------------------


def _keyed(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with missing variant / dataset names as ``?`` (as the rest of the report)."""
    return df.assign(**{names.TAG_VARIANT: df[names.TAG_VARIANT].fillna("?").astype(str),
                        names.TAG_DATASET: df[names.TAG_DATASET].fillna("?").astype(str)})


def search_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The search-phase rows of a :func:`harness.reports.load.runs_frame` frame (variant and
    dataset ``?`` where missing)."""
    if df.empty or names.TAG_PHASE not in df:
        return df.iloc[0:0]
    return _keyed(df[df[names.TAG_PHASE] == names.PHASE_SEARCH])


def _finite_values(values: pd.Series) -> pd.Series:
    vals = pd.to_numeric(values, errors="coerce").astype(float)
    return vals[np.isfinite(vals)]


def default_metric(search: pd.DataFrame) -> str | None:
    """The first of :data:`DEFAULT_METRICS` that some row of ``search`` reports (a finite
    value); None when none does."""
    for metric in DEFAULT_METRICS:
        if metric in search and len(_finite_values(search[metric])):
            return metric
    return None


def _distinct(values: pd.Series) -> int:
    return values.dropna().astype(str).nunique()


def searched_params(search: pd.DataFrame) -> list[str]:
    """The hyperparameters searched in ``search`` (search-phase rows): the columns among
    ``KEY_PARAMS`` and the ``model.*`` / ``loss.*`` params with more than one distinct value
    within the rows of at least one (variant, dataset); ``KEY_PARAMS`` order first."""
    if search.empty:
        return []
    keyed = _keyed(search)
    candidates = [c for c in KEY_PARAMS if c in keyed]
    candidates += [c for c in searched_param_cols(keyed) if c not in candidates]
    groups = [g for _, g in keyed.groupby([names.TAG_VARIANT, names.TAG_DATASET], sort=True)]
    return [c for c in candidates if any(_distinct(g[c]) > 1 for g in groups)]


def _is_numeric(values: pd.Series) -> bool:
    return (pd.api.types.is_numeric_dtype(values)
            and not pd.api.types.is_bool_dtype(values))


def _is_integer(values: pd.Series) -> bool:
    """Numeric and every finite value a whole number (``d_steps``, ``batch_size``, ...)."""
    if not _is_numeric(values):
        return False
    vals = _finite_values(values)
    return bool(len(vals)) and bool(np.all(np.mod(vals.to_numpy(), 1.0) == 0.0))


def log_scale(values: pd.Series) -> bool:
    """The axis rule: numeric, every finite value > 0 and max / min >= :data:`LOG_RATIO`."""
    if not _is_numeric(values):
        return False
    vals = _finite_values(values)
    return bool(len(vals)) and bool((vals > 0).all()) and vals.max() / vals.min() >= LOG_RATIO


def metric_values(rows: pd.DataFrame, metric: str) -> pd.Series:
    if metric not in rows:
        return pd.Series(np.nan, index=rows.index, dtype=float)
    vals = pd.to_numeric(rows[metric], errors="coerce").astype(float)
    return vals.where(np.isfinite(vals))


def _kinds(rows: pd.DataFrame, metric: str) -> pd.Series:
    """Per row: ``used`` (finished, finite metric), ``unfinished`` (pruned / running, finite
    metric) or ``failed`` (failed / stopped, or no finite metric)."""
    value = metric_values(rows, metric)
    kind = pd.Series("used", index=rows.index, dtype=object)
    kind[pruned_mask(rows) | unended_mask(rows)] = "unfinished"
    kind[failed_mask(rows) | value.isna()] = "failed"
    return kind


# --- importances ---------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_optuna():
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield optuna
    finally:
        optuna.logging.set_verbosity(before)


def _distribution(values: pd.Series, log: bool):
    """Optuna's distribution for a hyperparameter's used values and the values as Optuna
    wants them (python int / float / str)."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if _is_integer(values):
        vals = [int(v) for v in values]
        return IntDistribution(min(vals), max(vals), log=log and min(vals) >= 1), vals
    if _is_numeric(values):
        vals = [float(v) for v in values]
        return FloatDistribution(min(vals), max(vals), log=log and min(vals) > 0), vals
    vals = [str(v) for v in values]
    return CategoricalDistribution(sorted(set(vals))), vals


def _variant_importances(rows: pd.DataFrame, params: list[str], metric: str,
                         log_params: set[str]) -> tuple[dict[str, tuple[float, str]], int]:
    """``({param: (importance or NaN, cell text)}, trials used)`` for one variant's search
    rows of one dataset."""
    searched = [p for p in params if _distinct(rows[p]) > 1]
    used = rows[_kinds(rows, metric) == "used"]
    used = used[used[searched].notna().all(axis=1)] if searched else used
    n = len(used)
    out: dict[str, tuple[float, str]] = {p: (math.nan, NOT_SEARCHED) for p in params}
    if not searched:
        return out, n
    if n < MIN_TRIALS:
        out.update({p: (math.nan, TOO_FEW) for p in searched})
        return out, n
    values = metric_values(used, metric)
    if values.nunique() < 2:
        out.update({p: (math.nan, METRIC_CONSTANT) for p in searched})
        return out, n
    if all(_distinct(used[p]) < 2 for p in searched):
        out.update({p: (math.nan, NO_VARIATION) for p in searched})
        return out, n
    with _quiet_optuna() as optuna:
        from optuna.importance import FanovaImportanceEvaluator, get_param_importances

        direction = "maximize" if display.higher_is_better(metric) else "minimize"
        study = optuna.create_study(direction=direction)
        dists, vals = {}, {}
        for p in searched:
            dists[p], vals[p] = _distribution(used[p], p in log_params)
        for i, value in enumerate(values):
            study.add_trial(optuna.trial.create_trial(
                params={p: vals[p][i] for p in searched}, distributions=dists,
                value=float(value)))
        imp = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=FANOVA_SEED),
                                    params=searched)
    for p in searched:
        v = float(imp.get(p, 0.0))
        out[p] = (v, f"{v:.2f}")
    return out, n


def param_importances(df: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Per (dataset, variant, searched hyperparameter) of the search-phase rows of ``df``
    (a :func:`harness.reports.load.runs_frame` frame): ``dataset``, ``variant``, ``param``,
    ``n`` (the variant's trials used), ``importance`` (fANOVA's share, NaN where none was
    computed) and ``cell`` (the table's text: the importance to 2 decimals, or the dash /
    ``n < 3`` / ``metric constant`` / ``no variation``). ``metric`` defaults as the section's.
    Sorted by dataset, variant, then the hyperparameters in :func:`searched_params` order."""
    columns = [names.TAG_DATASET, names.TAG_VARIANT, "param", "n", "importance", "cell"]
    search = search_rows(df)
    metric = metric or default_metric(search)
    records: list[dict[str, Any]] = []
    if metric is None or search.empty:
        return pd.DataFrame(records, columns=columns)
    for dataset, ds in search.groupby(names.TAG_DATASET, sort=True):
        params = searched_params(ds)
        if not params:
            continue
        log_params = {p for p in params if log_scale(ds[p])}
        for variant, rows in ds.groupby(names.TAG_VARIANT, sort=True):
            cells, n = _variant_importances(rows, params, metric, log_params)
            records += [{names.TAG_DATASET: dataset, names.TAG_VARIANT: variant, "param": p,
                         "n": n, "importance": cells[p][0], "cell": cells[p][1]}
                        for p in params]
    return pd.DataFrame(records, columns=columns)


# --- the figure ----------------------------------------------------------------------------


def _x_positions(values: pd.Series) -> tuple[pd.Series, list[str] | None]:
    """x coordinates of a hyperparameter's values, and the category labels of a text one."""
    if _is_numeric(values):
        return pd.to_numeric(values, errors="coerce").astype(float), None
    text = values.map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v))
                      else str(v))
    cats = sorted(set(text.dropna()))
    pos = {c: float(i) for i, c in enumerate(cats)}
    return text.map(lambda t: pos.get(t, np.nan)).astype(float), cats


def sensitivity_figure(dataset: str, ds: pd.DataFrame, params: list[str], metric: str,
                        colours: dict, log_params: set[str]) -> tuple[bytes, dict, dict]:
    """The figure's PNG, ``{variant: its failed / metric-less trials (the x markers)}`` and
    ``{param: {variant: trials not drawn in that panel for lack of a value}}``."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    label = display.label(metric)
    better = "higher" if display.higher_is_better(metric) else "lower"
    kinds = _kinds(ds, metric)
    y = metric_values(ds, metric)
    shown = y[kinds != "failed"]
    lo, hi = (float(shown.min()), float(shown.max())) if len(shown.dropna()) else (0.0, 1.0)
    span = hi - lo if hi > lo else max(abs(hi), 1.0) * 0.2
    any_failed = bool((kinds == "failed").any())
    band_y, sep_y = lo - 0.17 * span, lo - 0.08 * span
    ylim = (lo - 0.26 * span if any_failed else lo - 0.06 * span, hi + 0.06 * span)

    variants = sorted(ds[names.TAG_VARIANT].unique(), key=str)
    nrows, ncols = grid(len(params))
    fig, axes = panels(nrows, ncols, f"{label} vs the searched hyperparameters -- "
                           f"{dataset}\n(search phase; one colour per variant; {better} is "
                           "better)")
    for ax in axes.flat[len(params):]:
        ax.set_visible(False)
    x_marks = {v: int(((ds[names.TAG_VARIANT] == v) & (kinds == "failed")).sum())
               for v in variants}
    undrawn: dict[str, dict[str, int]] = {}
    for ax, param in zip(axes.flat, params):
        x, cats = _x_positions(ds[param])
        for variant in variants:
            colour = colours.get(variant, "0.3")
            mine = (ds[names.TAG_VARIANT] == variant).to_numpy()
            has_x = x.notna().to_numpy()
            missing = int((mine & ~has_x).sum())
            if missing:
                undrawn.setdefault(param, {})[variant] = missing
            for kind in ("used", "unfinished", "failed"):
                sel = mine & has_x & (kinds == kind).to_numpy()
                if not sel.any():
                    continue
                if kind == "used":
                    ax.scatter(x[sel], y[sel], s=18, color=colour, alpha=0.8, linewidths=0)
                elif kind == "unfinished":
                    ax.scatter(x[sel], y[sel], s=18, facecolors="none", edgecolors=colour,
                               linewidths=1.0)
                else:
                    ax.scatter(x[sel], np.full(int(sel.sum()), band_y), s=22, marker="x",
                               color=colour, linewidths=1.0)
        ax.set_ylim(*ylim)
        if any_failed:  # the band is no value of the metric: its one tick says "failed"
            ax.axhline(sep_y, color="0.6", linestyle=":", linewidth=0.8)
            ticks = [t for t in ax.get_yticks() if sep_y < t <= ylim[1]]
            ax.set_yticks([band_y, *ticks], ["failed", *(f"{t:g}" for t in ticks)])
        if cats is not None:
            ax.set_xticks(range(len(cats)))
            ax.set_xticklabels(cats, fontsize=8, rotation=20 if len(cats) > 3 else 0)
            ax.set_xlim(-0.5, len(cats) - 0.5)
        elif param in log_params:
            ax.set_xscale("log")
        elif _is_integer(ds[param]):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        else:  # small learning rates: 4 ticks, in scientific notation, so labels never touch
            ax.xaxis.set_major_locator(MaxNLocator(4))
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 4))
        ax.set_title(param + (" (log scale)" if param in log_params else ""), fontsize=10)
        ax.set_xlabel(param)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], linestyle="", marker="o", color=colours.get(v, "0.3"),
                      markersize=5, label=str(v)) for v in variants]
    if (kinds == "unfinished").any():
        handles.append(Line2D([], [], linestyle="", marker="o", markerfacecolor="none",
                              markeredgecolor="0.3", markersize=5, label="pruned / unfinished"))
    if any_failed:
        handles.append(Line2D([], [], linestyle="", marker="x", color="0.3", markersize=5,
                              label="failed / no value"))
    axes.flat[0].legend(handles=handles, fontsize=6, loc="best")
    return png(fig), x_marks, undrawn
