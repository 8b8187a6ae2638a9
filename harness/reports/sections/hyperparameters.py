"""``## Best hyperparameters``: the configuration each variant's seeds phase re-ran."""

from __future__ import annotations

from pathlib import Path

from harness import names
from harness.reports import tables
from harness.reports.context import ReportContext
from harness.reports.runs import KEY_PARAMS, param_value_text, searched_param_cols
from harness.reports.section import Section


class Hyperparameters(Section):
    """Per variant and dataset, the training settings and the ``model.*`` / ``loss.*`` params
    of its compared runs (a pair without a seeds phase: its search trial with the most modes
    covered)."""

    def write(self, ctx: ReportContext) -> list[Path]:
        doc = ctx.doc
        doc.h(2, "Best hyperparameters")
        doc.p("The configuration each variant's seeds phase re-ran (the best of its search); "
              "pairs without seeds-phase runs show their search trial with the most modes "
              "covered.")
        searched = searched_param_cols(ctx.df)
        rows_out = []
        for (variant, dataset), (phase, rows) in sorted(ctx.pairs.items(),
                                                         key=lambda kv: (kv[0][1], kv[0][0])):
            source = rows
            if phase != names.PHASE_SEEDS:
                ranked = rows.sort_values(names.MODES_COVERED, ascending=False,
                                          na_position="last")
                source = ranked.iloc[:1]
            extra = []
            for col in searched:
                text = param_value_text(source[col])
                if text != tables.DASH:
                    extra.append(f"{col}={text}")
            rows_out.append([variant, dataset,
                             *(param_value_text(source[p]) if p in source else tables.DASH
                               for p in KEY_PARAMS),
                             ", ".join(extra) or tables.DASH])
        if rows_out:
            doc.table(["variant", "dataset", *KEY_PARAMS, "model / loss params"], rows_out)
        return []
