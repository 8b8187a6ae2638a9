"""``## Summary over seeds``: per variant and dataset, the study's metric, the coverage values
beside their chance levels, the judging metrics, stability, status counts and intervals
(:func:`harness.reports.summary.summarize`, :mod:`harness.reports.headline`)."""

from __future__ import annotations

from pathlib import Path

from harness import names
from harness.reports import display, headline, provenance, tables
from harness.reports.context import ReportContext
from harness.reports.section import Section


class Summary(Section):
    """The table the verdict rests on, sorted by the study's metric, best first."""

    def write(self, ctx: ReportContext) -> list[Path]:
        doc, summary, metric = ctx.doc, ctx.summary, ctx.metric
        doc.h(2, "Summary over seeds")
        lead, judges = headline.columns(summary, metric)

        def head(m: str, text: str | None = None) -> str:
            text = text or display.label(m)
            return headline.search_header(m, text) if m == metric else text

        # the interval of the value the table ranks on: the study's metric where the runs
        # report it (noise nearly fills the mode count on the mixtures, docs/chance.md)
        ci_of = next((m for m in (metric, lead) if m and f"{m}_ci_low" in summary
                      and summary[f"{m}_ci_low"].notna().any()), names.MODES_COVERED)
        headers = ["variant", "dataset", "phase", "n",
                   *([head(lead, display.headed(lead))] if lead else []),
                   *(head(m) for m in headline.COVERAGE), "chance",
                   *(head(m, display.headed(m)) for m in judges),
                   head(names.STABILITY_SCORE), "steps to full coverage (k/n)", "status",
                   f"95% CI ({display.label(ci_of)})"]
        rows = []
        for _, row in summary.iterrows():
            rows.append([
                str(row[names.TAG_VARIANT]), str(row[names.TAG_DATASET]),
                str(row[names.TAG_PHASE]), str(int(row["n"])),
                *([headline.value_text(row, lead)] if lead else []),
                *(headline.value_text(row, m) for m in headline.COVERAGE),
                headline.chance_text(row, markdown=True),
                *(headline.value_text(row, m) for m in judges),
                headline.value_text(row, names.STABILITY_SCORE),
                tables.full_coverage_cell(row), tables.status_cell(row),
                tables.ci_cell(row, ci_of),
            ])
        if rows:
            doc.table(headers, rows)
            doc.p("Coverage values show the chance level beside them: \"(noise x)\" is the "
                  "mean score of a generator that ignores the data, with the same number of "
                  "samples. A row is **at chance** when its mean deciding value (e.g. hq "
                  "fraction) does not beat the bound such a generator reaches; *chance "
                  "unknown* where the runs logged no chance level (docs/chance.md).")
        else:
            doc.p("No trial runs were found under this parent run.")
        for dataset, conflicts in ctx.conflicts.items():
            provenance.warning(doc, dataset, conflicts,
                               "The order of its rows above is not a ranking; the image "
                               "metrics and the pairwise comparisons below are shown per "
                               "provenance group.")
        return []
