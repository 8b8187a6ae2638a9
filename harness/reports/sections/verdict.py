"""``## Verdict``: what the study found, per dataset, in computed sentences
(:mod:`harness.reports.verdict`). The report opens with it."""

from __future__ import annotations

from pathlib import Path

from harness.reports.context import ReportContext
from harness.reports.section import Section
from harness.reports.verdict import ALPHA


class Verdict(Section):
    """The best variant on the study's metric, the distinguishable pairs, what is at chance,
    the failures and what more seeds would buy."""

    def write(self, ctx: ReportContext) -> list[Path]:
        doc = ctx.doc
        doc.h(2, "Verdict")
        if not ctx.verdicts:
            doc.p("No trial runs: nothing to conclude.")
            return []
        on = f"the study's metric `{ctx.metric}`" if ctx.metric else "the study's metric"
        doc.p(f"Computed from the tables below, on {on} over the compared (seeds-phase) runs. "
              f"Distinguishable: two-sided Mann–Whitney, Holm-adjusted over the dataset's "
              f"pairs, p < {ALPHA:g}. At chance: not clearly above a generator that ignores "
              "the data. See docs/verdict.md.")
        doc.ul([f"`{v.dataset}` -- " + " ".join(v.sentences) for v in ctx.verdicts])
        return []
