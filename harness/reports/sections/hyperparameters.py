"""``## Best hyperparameters``: the configuration each variant's seeds phase re-ran."""

from __future__ import annotations

from pathlib import Path

from harness import names
from harness.reports import display, tables
from harness.reports.context import ReportContext
from harness.reports.runs import KEY_PARAMS, param_value_text, searched_param_cols
from harness.reports.section import Section


class Hyperparameters(Section):
    """Per variant and dataset, the training settings and the ``model.*`` / ``loss.*`` params
    of its compared runs (a pair without a seeds phase: its best search trial on the study's
    metric, in the study's direction; ``modes_covered`` when the report does not know it)."""

    def write(self, ctx: ReportContext) -> list[Path]:
        doc = ctx.doc
        doc.h(2, "Best hyperparameters")
        metric = ctx.metric or names.MODES_COVERED
        higher = display.higher_is_better(metric, ctx.mode)
        doc.p("The configuration each variant's seeds phase re-ran (the best of its search); "
              f"pairs without seeds-phase runs show their search trial with the "
              f"{'highest' if higher else 'lowest'} `{metric}`.")
        searched = searched_param_cols(ctx.df)
        rows_out = []
        for (variant, dataset), (phase, rows) in sorted(ctx.pairs.items(),
                                                         key=lambda kv: (kv[0][1], kv[0][0])):
            source = rows
            if phase != names.PHASE_SEEDS:
                if metric in rows:
                    rows = rows.sort_values(metric, ascending=not higher, na_position="last")
                source = rows.iloc[:1]
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
