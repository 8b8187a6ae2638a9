"""``## Collapse timeline``: when the compared runs lost their modes, and for good, per
dataset: a table per variant and ``timeline_<dataset>.png`` (:mod:`harness.reports.timeline`).
Left out when no compared run logged a ``modes_covered`` history."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness import names
from harness.config import DiagnosticSettings
from harness.reports.context import ReportContext
from harness.reports.figures import SAMPLED_TEXT
from harness.reports.load import RUN_ID
from harness.reports.section import Section
from harness.reports.timeline import collapse_table, run_events, timeline_figure


class Timeline(Section):
    """Per variant: runs collapsed (and at which step), never spread, or held; the figure
    shows every run's coverage over its evaluations."""

    def write(self, ctx: ReportContext) -> list[Path]:
        per_dataset: dict[str, list[pd.DataFrame]] = {}
        for (variant, dataset), (_, rows) in sorted(ctx.pairs.items()):
            n_modes = rows[names.N_MODES].max() if names.N_MODES in rows else None
            ev = run_events(rows, ctx.histories, {variant: n_modes}, RUN_ID)
            if not ev.empty:
                per_dataset.setdefault(dataset, []).append(ev)
        if not per_dataset:
            return []
        doc = ctx.doc
        doc.h(2, "Collapse timeline")
        fraction = DiagnosticSettings().collapse_fraction
        doc.p("When the compared runs lost their modes. A run **collapsed at step s** when it "
              "had covered more than the collapse limit at some evaluation and covered at most "
              "the limit from s to its end; it **never spread** when it never got above the "
              "limit, and it **held** when it was above the limit at its last evaluation. The "
              f"limit is max(1, ⌊{fraction:g} × modes⌋), the harness's `collapsed` rule at "
              "its default `collapse_fraction`. Mode hops: how often the set of covered modes "
              "changed between evaluations (mean over the runs).")
        written: list[Path] = []
        for dataset, parts in per_dataset.items():
            events = pd.concat(parts, ignore_index=True)
            doc.h(3, f"Dataset `{dataset}`")
            doc.table(["variant", "runs", "collapsed", "never spread", "held",
                       "peak → final modes (median)", "mode hops"], collapse_table(events))
            ctx.figure(written, "timeline", dataset,
                       "One row per run: a dot per evaluation coloured by the fraction of "
                       "modes covered, a red bar at the step the run collapsed (the table "
                       f"counts every run; {SAMPLED_TEXT})",
                       timeline_figure(dataset, events, ctx.colours))
        return written
