"""``## Search trials``: every search-phase trial, best first within each variant."""

from __future__ import annotations

from pathlib import Path

from harness import names
from harness.reports import tables
from harness.reports.context import ReportContext
from harness.reports.runs import KEY_PARAMS, searched_param_cols
from harness.reports.section import Section


class SearchTrials(Section):
    """One row per search trial: its seed, training settings, the model / loss params that
    vary across the variant's trials, modes covered, stability and status."""

    def write(self, ctx: ReportContext) -> list[Path]:
        doc, df = ctx.doc, ctx.df
        doc.h(2, "Search trials")
        search = df[df[names.TAG_PHASE] == names.PHASE_SEARCH]
        if search.empty:
            doc.p("No search-phase trials.")
            return []
        searched = searched_param_cols(df)
        search = search.sort_values([names.TAG_DATASET, names.TAG_VARIANT, names.MODES_COVERED],
                                    ascending=[True, True, False], na_position="last")
        varying = {}
        for key, group in search.groupby([names.TAG_VARIANT, names.TAG_DATASET], dropna=False):
            varying[key] = [c for c in searched
                            if group[c].dropna().astype(str).nunique() > 1]
        rows = []
        for _, row in search.iterrows():
            cols = varying.get((row[names.TAG_VARIANT], row[names.TAG_DATASET]), [])
            other = ", ".join(f"{c}={tables.fmt_num(row[c])}" for c in cols
                              if not tables.isnan(row[c]))
            rows.append([
                str(row[names.TAG_VARIANT]), str(row[names.TAG_DATASET]),
                tables.fmt_num(row[names.TAG_SEED]),
                *(tables.fmt_num(row[p]) if p in row else tables.DASH for p in KEY_PARAMS),
                other or tables.DASH,
                tables.fmt_num(row[names.MODES_COVERED]),
                tables.fmt_num(row[names.STABILITY_SCORE], 2),
                str(row[names.TAG_STATUS]) if not tables.isnan(row[names.TAG_STATUS])
                else tables.DASH,
            ])
        doc.p("Every search-phase trial, best first within each variant; "
              "\"other\" lists the model/loss params that vary across the variant's trials.")
        doc.table(["variant", "dataset", "seed", *KEY_PARAMS, "other", "modes covered",
                   "stability", "status"], rows)
        return []
