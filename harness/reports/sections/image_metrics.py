"""``## Image metrics``: per image dataset, FID / IS / KID / precision / recall / cond and
code accuracy / the translation metrics of each variant, mean ± sd over the compared runs
(:func:`harness.reports.images.summarize_images`). The runs are grouped by provenance first:
one group gets its best variant per metric named; several get a warning, one table per
group and no winner. Left out for studies without image metrics."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness import names
from harness.reports import display, images, provenance, tables
from harness.reports.context import ReportContext
from harness.reports.images import BELOW_FLOOR, FLOOR_MEAN, IMAGE_CI_METRICS, image_decimals
from harness.reports.section import Section


class ImageMetrics(Section):
    """The image-metric tables, the real-data floor, and the best variant per metric where
    the runs share one provenance."""

    def write(self, ctx: ReportContext) -> list[Path]:
        summary, doc = ctx.image_summary, ctx.doc
        if summary.empty:
            return []
        doc.h(2, "Image metrics")
        doc.p("Mean ± sd over the compared runs (the seeds phase, as above) that finished and "
              "reported the metric; ↓ lower is better (FID, KID), ↑ higher is better (IS, "
              "precision, recall, cond/code accuracy). IS and KID are each run's mean "
              f"(report.csv also has `{names.IS_STD}` and `{names.KID_STD}`). Runs are only "
              "ranked against runs with the same provenance tags "
              f"({provenance.patterns()}): FID from a different extractor, reference set or "
              "sample count is a different number.")
        by_dataset = images.image_rows(ctx.df)
        for dataset, ds in summary.groupby(names.TAG_DATASET, sort=True):
            doc.h(3, f"Dataset `{dataset}`")
            metrics = [m for m in display.image_metrics()
                       if f"{m}_n" in ds and ds[f"{m}_n"].sum() > 0]
            pairs = by_dataset[dataset]
            groups = images.image_groups(pairs)
            conflicts = provenance.provenance_conflicts(pd.concat([r for *_, r in pairs]))
            if conflicts:
                provenance.warning(doc, dataset, conflicts,
                                   "The numbers are shown per provenance group and no variant "
                                   "is marked best.")
                for k, group in enumerate(groups, start=1):
                    doc.p(provenance.group_heading(k, group, conflicts))
                    _table(doc, ds[ds["provenance_group"] == k], metrics)
                continue
            _table(doc, ds, metrics)
            tags = groups[0].tags if groups else {}
            shared = ", ".join(f"`{t}` = `{v}`" for t, v in tags.items() if v is not None)
            doc.p(("All compared runs share one provenance: " + shared + ".") if shared else
                  "The runs carry no provenance tags: the report cannot check that their "
                  "numbers were made the same way.")
            best = []
            for metric in metrics:
                winners = images.best_variants(ds, metric)
                if winners:
                    value = ds.loc[ds[names.TAG_VARIANT] == winners[0], f"{metric}_mean"].iloc[0]
                    how = "highest" if display.higher_is_better(metric) else "lowest"
                    best.append(f"{display.label(metric)} ({how}) "
                                + " = ".join(f"**{w}**" for w in winners)
                                + f" ({value:.{image_decimals(metric, ds)}f})")
            if best:
                doc.p("Best mean (same provenance; a description, not a significance test): "
                      + "; ".join(best) + ".")
        return []


def _table(doc, summary: pd.DataFrame, metrics: list[str]) -> None:
    headers = ["variant", "phase", "runs (used / all)"]
    floors = FLOOR_MEAN in summary
    for metric in metrics:
        headers.append(f"{display.label(metric)} {display.arrow(metric)}")
        if metric in IMAGE_CI_METRICS:
            headers.append(f"95% CI ({display.label(metric)})")
        if metric == names.FID and floors:
            headers.append("real-data floor (FID)")
    rows = []
    for _, row in summary.iterrows():
        cells = [str(row[names.TAG_VARIANT]), str(row[names.TAG_PHASE]),
                 f"{int(row['n_group'])} / {int(row['n'])}"]
        for metric in metrics:
            digits = image_decimals(metric, summary)
            cells.append(tables.fmt_pm(row[f"{metric}_mean"], row[f"{metric}_std"], digits))
            if metric in IMAGE_CI_METRICS:
                cells.append(tables.ci_cell(row, metric, digits))
            if metric == names.FID and floors:
                cells.append(_floor_cell(row, digits))
        rows.append(cells)
    doc.table(headers, rows)
    flagged = summary[summary[BELOW_FLOOR] > 0] if floors else summary.iloc[0:0]
    if len(flagged):
        doc.p("**Possible memorisation** -- FID below the real-data floor (unseen real images "
              "score worse against the same reference): "
              + "; ".join(f"`{r[names.TAG_VARIANT]}` in {int(r[BELOW_FLOOR])} of "
                          f"{int(r[f'{names.FID}_n'])} runs" for _, r in flagged.iterrows())
              + ". Look at these runs' samples for copies of training images before "
              "reading their FID as better than real data.")


def _floor_cell(row: pd.Series, digits: int) -> str:
    """The mean real-data floor, and the runs below it: "5.23 (⚠ 2 / 3 below: possible
    memorisation)"."""
    mean = row.get(FLOOR_MEAN)
    if tables.isnan(mean):
        return tables.DASH
    text = f"{mean:.{digits}f}"
    below = row.get(BELOW_FLOOR)
    if not tables.isnan(below) and int(below) > 0:
        text += (f" (⚠ {int(below)} / {int(row[f'{names.FID}_n'])} below: possible "
                 "memorisation)")
    return text
