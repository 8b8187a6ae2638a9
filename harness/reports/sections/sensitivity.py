"""``## Sensitivity``: how the study's metric depends on each hyperparameter the search
varied, per dataset: the figure ``sensitivity_<dataset>.png`` (the metric against each
searched hyperparameter, one colour per variant) and a table of fANOVA parameter importances
per variant (:mod:`harness.reports.sensitivity`). Left out when there are no search-phase
runs, no metric, or no searched hyperparameter that varies."""

from __future__ import annotations

from pathlib import Path

from harness import names
from harness.reports import display, provenance, sensitivity
from harness.reports.context import ReportContext
from harness.reports.section import Section
from harness.reports.sensitivity import (
    FANOVA_SEED,
    METRIC_CONSTANT,
    MIN_TRIALS,
    NO_VARIATION,
    NOT_SEARCHED,
    TOO_FEW,
)


class Sensitivity(Section):
    """The metric against the searched hyperparameters, and their importances, on the
    study's ``search.metric`` (default: the first of
    :data:`harness.reports.sensitivity.DEFAULT_METRICS` the search rows report)."""

    def write(self, ctx: ReportContext) -> list[Path]:
        doc, df = ctx.doc, ctx.df
        search = sensitivity.search_rows(df)
        if search.empty:
            return []
        metric = ctx.metric or sensitivity.default_metric(search)
        if metric is None:
            return []
        by_dataset = {d: ds for d, ds in search.groupby(names.TAG_DATASET, sort=True)}
        params_of = {d: sensitivity.searched_params(ds) for d, ds in by_dataset.items()}
        if not any(params_of.values()):
            return []
        importances = sensitivity.param_importances(df, metric)
        label = display.label(metric)
        better = "higher" if display.higher_is_better(metric) else "lower"

        doc.h(2, "Sensitivity")
        doc.p(f"How `{metric}` ({label}, {better} is better; the search's metric) depends on "
              "each hyperparameter the search varied, over the "
              f"`{names.PHASE_SEARCH}`-phase trials. A hyperparameter counts as searched "
              "when it takes more than one value among one variant's search trials. The "
              "figures show every search trial; the **parameter importances** are fANOVA's "
              "(Hutter et al. 2014, as Optuna computes it with a random forest of 64 trees, "
              f"seed {FANOVA_SEED}): the share of the variance of the metric over the searched "
              "space that each hyperparameter explains on its own, per variant, summing to 1. "
              "They use the variant's trials that finished with a finite value (not failed, "
              "stopped, pruned or still running). An importance says how much the metric "
              "moves with a hyperparameter, not in which direction (see the figure), and with "
              "a handful of trials it is a rough estimate. A dash: the hyperparameter is "
              f"constant within that variant (not searched there); `{TOO_FEW}`: fewer than "
              f"{MIN_TRIALS} trials to fit; `{METRIC_CONSTANT}`: every trial used reached the "
              f"same value; `{NO_VARIATION}`: the searched values vary only among trials not "
              "used.")
        written: list[Path] = []
        for dataset, ds in by_dataset.items():
            doc.h(3, f"Dataset `{dataset}`")
            params = params_of[dataset]
            if not params:
                doc.p("No searched hyperparameter varies within a variant's search trials "
                      "here.")
                continue
            scored = ds[sensitivity.metric_values(ds, metric).notna()]
            conflicts = provenance.provenance_conflicts(scored)
            if conflicts:
                provenance.warning(doc, dataset, conflicts,
                                   "Compare the points of one variant with each other, not "
                                   "across variants; each variant's importances stand alone.")
            log_params = {p for p in params if sensitivity.log_scale(ds[p])}
            png, x_marks, undrawn = sensitivity.sensitivity_figure(
                dataset, ds, params, metric, ctx.colours, log_params)
            ctx.figure(written, "sensitivity", dataset,
                       _caption(dataset, metric, params, log_params, x_marks, undrawn), png)
            _importances(doc, dataset, metric, params,
                         importances[importances[names.TAG_DATASET] == dataset])
        return written


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{v} {n}" for v, n in sorted(counts.items(), key=lambda kv: str(kv[0]))
                     if n)


def _caption(dataset: str, metric: str, params: list[str], log_params: set[str],
             x_marks: dict, undrawn: dict) -> str:
    """The figure's caption: what its marks mean, and the trials it could not place."""
    caption = (f"`{metric}` against each searched hyperparameter on `{dataset}`: one "
               "panel per hyperparameter, one point per search trial, coloured by variant "
               "(filled: finished, used for the importances; hollow: pruned or "
               "unfinished, at its last reported value; x in the band below the dotted "
               f"line: failed or stopped, or no `{metric}` value, at its hyperparameter "
               "value)")
    if log_params:
        caption += "; log x axis for " + ", ".join(f"`{p}`" for p in params if p in log_params)
    failed = _counts_text(x_marks)
    caption += (f"; failed / without `{metric}` (x): {failed}" if failed
                else f"; every search trial reported `{metric}`")
    for param, counts in undrawn.items():
        caption += f"; without a `{param}` value (not in its panel): {_counts_text(counts)}"
    return caption


def _importances(doc, dataset: str, metric: str, params: list[str], imp) -> None:
    """The importances table of one dataset, and each variant's most important one."""
    table, tops = [], []
    for variant, rows in imp.groupby(names.TAG_VARIANT, sort=True):
        cell = dict(zip(rows["param"], rows["cell"]))
        table.append([str(variant), str(int(rows["n"].iloc[0])),
                      *(cell.get(p, NOT_SEARCHED) for p in params)])
        scored = rows.dropna(subset=["importance"])
        if len(scored):
            top = scored.loc[scored["importance"].idxmax()]
            tops.append(f"**{variant}**: `{top['param']}` ({top['importance']:.2f})")
    doc.p(f"**Parameter importances** on `{dataset}` (fANOVA share of `{metric}`'s "
          "variance; one row per variant; \"trials used\": finished search trials with a "
          "value).")
    doc.table(["variant", "trials used", *params], table)
    if tops:
        doc.p("Most important per variant: " + "; ".join(tops) + ".")
