"""``## Failures``: every run that failed or was stopped, with its error, and the runs MLflow
still counts as running."""

from __future__ import annotations

from pathlib import Path

from harness import names
from harness.reports import tables
from harness.reports.context import ReportContext
from harness.reports.load import RUN_ID, RUN_STATUS
from harness.reports.runs import failed_mask
from harness.reports.section import Section


class Failures(Section):
    """A row per failed or stopped run (they count in ``n``, not in the means)."""

    def write(self, ctx: ReportContext) -> list[Path]:
        doc, df = ctx.doc, ctx.df
        doc.h(2, "Failures")
        failures = df[failed_mask(df)]
        if failures.empty:
            doc.p("No run failed or was stopped.")
        else:
            doc.p(f"{len(failures)} run(s) failed or were stopped; they count in `n` and in "
                  "the status counts above, and have no (or partial) metrics.")
            doc.table(["variant", "dataset", "phase", "seed", "status", "MLflow status", "run",
                       "error"],
                      [[str(r[names.TAG_VARIANT]), str(r[names.TAG_DATASET]),
                        str(r[names.TAG_PHASE]), tables.fmt_num(r[names.TAG_SEED]),
                        _text(r[names.TAG_STATUS], tables.DASH), str(r[RUN_STATUS]),
                        f"`{r[RUN_ID]}`", _text(r[names.TAG_ERROR], "(no error tag)")]
                       for _, r in failures.iterrows()])
        running = df[df[RUN_STATUS] == "RUNNING"]
        if not running.empty:
            doc.p(f"{len(running)} run(s) are still RUNNING (in flight, or their process died "
                  "without ending them): " + ", ".join(f"`{r}`" for r in running[RUN_ID])
                  + ".")
        return []


def _text(value, missing: str) -> str:
    return missing if tables.isnan(value) else str(value)
