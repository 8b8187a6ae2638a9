"""``## Pairwise comparisons``: per dataset, every pair of variants on the study's metric
(where the dataset's runs report it; else modes covered or what they report) over the
seeds-phase runs that did not fail and have ended
(:func:`harness.reports.runs.measured_mask`, :func:`harness.reports.stats.pairwise`), as the verdict
compares them; within each provenance group where the runs' provenance differs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness import names
from harness.reports import display, provenance, stats, tables
from harness.reports.context import ReportContext
from harness.reports.runs import measured_mask, median_metric
from harness.reports.section import Section
from harness.reports.verdict import ALPHA


class Pairwise(Section):
    """A table per dataset (or provenance group): difference of means with its interval,
    Mann–Whitney p, Holm-adjusted p, and what the group sizes allow."""

    def write(self, ctx: ReportContext) -> list[Path]:
        doc, df, study_metric = ctx.doc, ctx.df, ctx.metric
        doc.h(2, "Pairwise comparisons")
        runs = df[(df[names.TAG_PHASE] == names.PHASE_SEEDS) & measured_mask(df)]
        runs = runs[runs[names.TAG_VARIANT].notna()]
        datasets = sorted(df[names.TAG_DATASET].fillna("?").unique()) if len(df) else []
        if not datasets:
            doc.p("No trial runs to compare.")
            return []
        for dataset in datasets:
            doc.h(3, f"Dataset `{dataset}`")
            rows = runs[runs[names.TAG_DATASET].fillna("?") == dataset]
            metric = (study_metric if study_metric in rows and rows[study_metric].notna().any()
                      else median_metric(rows))  # modes covered, else what the runs report
            better = "higher" if display.higher_is_better(metric) else "lower"
            if metric == study_metric:
                doc.p(f"Compared on the study's metric `{metric}` ({better} is better).")
            elif metric != names.MODES_COVERED:
                doc.p(f"These runs count no modes: compared on `{metric}` "
                      f"({display.label(metric)}, {better} is better).")
            scored = rows[rows[metric].notna()] if metric in rows else rows.iloc[0:0]
            conflicts = provenance.provenance_conflicts(scored)
            if not conflicts:
                block(doc, scored, ctx.n_resamples, ctx.seed, ALPHA, metric)
                continue
            provenance.warning(doc, dataset, conflicts,
                               "Variants are compared only within a provenance group, never "
                               "across groups.")
            for k, group in enumerate(provenance.provenance_groups(scored), start=1):
                doc.p(provenance.group_heading(k, group, conflicts))
                block(doc, group.rows, ctx.n_resamples, ctx.seed, ALPHA, metric)
        return []


def block(doc, rows: pd.DataFrame, n_resamples: int, seed: int, alpha: float,
          metric: str = names.MODES_COVERED) -> None:
    """The pairwise table of one dataset's (or provenance group's) runs on ``metric`` and
    what it says. ``rows`` are the runs that reported it."""
    result = stats.pairwise(rows, metric, group_col=names.TAG_VARIANT,
                            n_resamples=n_resamples, seed=seed, alpha=alpha)
    if result.empty:
        n_var = rows[names.TAG_VARIANT].nunique()
        doc.p(f"Nothing to compare: {n_var} variant(s) with finished seeds-phase runs "
              f"that reported `{metric}` (at least 2 are needed).")
        return
    digits = display.decimals(metric)
    table = []
    for _, r in result.iterrows():
        diff = tables.fmt_num(r["diff"], digits)
        if not tables.isnan(r["diff_low"]):
            diff += f" [{r['diff_low']:.{digits}f}, {r['diff_high']:.{digits}f}]"
        table.append([str(r["a"]), str(r["b"]), f"{int(r['n_a'])} / {int(r['n_b'])}",
                      tables.fmt_num(r["mean_a"], digits), tables.fmt_num(r["mean_b"], digits),
                      diff, tables.fmt_p(r["p"]), tables.fmt_p(r["p_holm"]),
                      "yes" if r["distinguishable"] else "no"])
    doc.table(["a", "b", "n (a / b)", "mean a", "mean b", "diff a − b [95% CI]",
               "Mann–Whitney p", "Holm p", "distinguishable"], table)
    hits = result[result["distinguishable"]]
    if len(hits):
        higher = display.higher_is_better(metric)
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
