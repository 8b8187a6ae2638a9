"""``## Early stopping``: per variant and dataset, the trials the harness stopped before their
budget, by reason, and the steps that saved (:func:`harness.reports.summary.early_stopping`)."""

from __future__ import annotations

from pathlib import Path

from harness import names
from harness.reports import tables
from harness.reports.context import ReportContext
from harness.reports.runs import STOP_STATUSES
from harness.reports.section import Section
from harness.reports.summary import TOTAL, early_stopping


class EarlyStopping(Section):
    """How many trials were stopped early and why; stopped trials stay in every comparison."""

    def write(self, ctx: ReportContext) -> list[Path]:
        doc = ctx.doc
        doc.h(2, "Early stopping")
        doc.p(f"Trials the harness stopped before their budget: `{names.STATUS_COLLAPSED}` and "
              f"`{names.STATUS_D_OVERPOWERS}` when the study lists them in "
              f"`diagnostics.stop_early`, `{names.STATUS_DIVERGED}` (a diverging trial always "
              f"stops), and `{names.STATUS_PRUNED}` for the search-phase trials the study's "
              "`search.pruner` stopped. *Steps saved* is the sum over the stopped trials of "
              "their budget minus the steps they ran. Stopped trials are not dropped from the "
              "comparisons: they count in every `n` and status count, and in the means with "
              "the values of their last evaluation, so a variant whose trials get stopped "
              "scores as badly as they did.")
        table = early_stopping(ctx.df)
        if table.empty:
            doc.p("No trial runs.")
            return []
        total = table.iloc[-1]
        budget = total["steps_budget"]
        if int(total["stopped"]) == 0:
            doc.p(f"No trial was stopped early ({int(total['n'])} runs"
                  + (f", {tables.fmt_num(budget)} budgeted steps)." if not tables.isnan(budget)
                     else ")."))
            return []
        rows = []
        for _, r in table.iterrows():
            saved = tables.fmt_num(r["steps_saved"])
            if not tables.isnan(r["saved_fraction"]):
                saved += f" of {tables.fmt_num(r['steps_budget'])} ({r['saved_fraction']:.0%})"
            cells = [str(r[names.TAG_VARIANT]), str(r[names.TAG_DATASET]), str(int(r["n"])),
                     str(int(r["stopped"])), *(str(int(r[s])) for s in STOP_STATUSES), saved]
            if r[names.TAG_VARIANT] == TOTAL:
                cells = [f"**{c}**" for c in cells]
            rows.append(cells)
        doc.table(["variant", "dataset", "runs", "stopped", *STOP_STATUSES, "steps saved"], rows)
        fraction = (f" ({total['saved_fraction']:.0%} of the {tables.fmt_num(budget)} budgeted)"
                    if not tables.isnan(total["saved_fraction"]) else "")
        doc.p(f"In all, {int(total['stopped'])} of {int(total['n'])} trials stopped early; "
              f"{tables.fmt_num(total['steps_saved'])} steps were not run{fraction}.")
        _diverged(doc, ctx.df)
        return []


#: diverged runs listed with their reason, at most
MAX_DIVERGED_LISTED = 20


def _diverged(doc, df) -> None:
    """The diverged runs and why (the ``diverged_reason`` tag: which logged loss went bad,
    its value and step), the first :data:`MAX_DIVERGED_LISTED` by variant and seed."""
    reason = names.TAG_DIVERGED_REASON
    if reason not in df:
        return
    rows = df[(df[names.TAG_STATUS] == names.STATUS_DIVERGED) & df[reason].notna()]
    if rows.empty:
        return
    rows = rows.sort_values([names.TAG_VARIANT, names.TAG_DATASET, names.TAG_PHASE,
                             names.TAG_SEED], kind="stable")
    doc.p(f"Why each `{names.STATUS_DIVERGED}` trial stopped (the logged loss that was NaN, "
          "infinite or beyond `diagnostics.diverge_loss`)"
          + (f"; the first {MAX_DIVERGED_LISTED} of {len(rows)}:" if len(rows) > MAX_DIVERGED_LISTED
             else ":"))
    doc.table(["variant", "dataset", "phase", "seed", "reason"],
              [[str(r[names.TAG_VARIANT]), str(r[names.TAG_DATASET]), str(r[names.TAG_PHASE]),
                str(r[names.TAG_SEED]), str(r[reason])]
               for _, r in rows.head(MAX_DIVERGED_LISTED).iterrows()])
