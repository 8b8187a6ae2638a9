"""``## Dataset `<name>```, one per dataset: the training curves of the compared runs --
mode coverage, losses, D(x) / D(G(z)) before and after the generator step, image metrics
(:mod:`harness.reports.curves`) -- and the final samples (and sample grids) of each
variant's median run (:mod:`harness.reports.samples`)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd

from harness import names
from harness.reports import curves, display, samples, tables
from harness.reports.context import ReportContext
from harness.reports.figures import BAND_TEXT, SAMPLED_TEXT, slug
from harness.reports.load import RUN_ID
from harness.reports.runs import median_metric, median_run, run_label
from harness.reports.section import Section
from harness.tracking import retry

_COVERAGE = ("Mode coverage over generator steps (one panel per variant, one line per run; "
             "wide pale line and band: the median and inter-quartile range of all runs; "
             f"dotted: all modes; {SAMPLED_TEXT})")
_D_OUTPUTS = ("D(x) (solid), D(G(z)) before (dashed) and after (dotted) the generator step "
              f"({BAND_TEXT})")
_IMAGES = ("Image metrics over generator steps -- those logged of FID, IS, translation "
           "accuracy, cycle error and modes covered (one line per variant; "
           f"{BAND_TEXT})")


class Datasets(Section):
    """Per dataset, its figures over training and each variant's final samples."""

    def write(self, ctx: ReportContext) -> list[Path]:
        written: list[Path] = []
        image_datasets = set(ctx.image_summary[names.TAG_DATASET])
        for dataset in ctx.datasets():
            pairs = ctx.dataset_pairs(dataset)
            n_modes = ctx.n_modes(dataset)
            hist, colours = ctx.histories, ctx.colours
            ctx.doc.h(2, f"Dataset `{dataset}`")
            figures = [
                ("coverage", _COVERAGE,
                 curves.coverage_figure(dataset, pairs, hist, colours, n_modes)),
                ("losses", ("Discriminator and generator losses (one line per run; for "
                            f"critic losses also the critic gap f(x) − f(G(z)); {SAMPLED_TEXT})"),
                 curves.losses_figure(dataset, pairs, hist, colours)),
                ("d_outputs", _D_OUTPUTS, curves.d_figure(dataset, pairs, hist, colours)),
            ]
            if dataset in image_datasets:
                caption = _IMAGES
                if dataset in ctx.conflicts:
                    caption += ("; the variants differ in provenance (see the warning above): "
                                "do not rank them by these curves")
                figures.append(("image_metrics", caption,
                                curves.image_curves_figure(dataset, pairs, hist, colours,
                                                           n_modes)))
            for stem, caption, picture in figures:
                ctx.figure(written, stem, dataset, caption, picture)
            written += _final_samples(ctx, dataset, pairs)
        return written


def _final_samples(ctx: ReportContext, dataset: str, pairs: list[tuple[str, pd.DataFrame]]
                   ) -> list[Path]:
    """``### Final samples``: each variant's median run's final pictures, copied into the
    report's folder."""
    doc, client = ctx.doc, ctx.client
    by = median_metric(pd.concat([rows for _, rows in pairs]))
    doc.h(3, f"Final samples (median run by {by})")
    written: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp, samples.no_progress_bars():
        for variant, rows in pairs:
            median = median_run(rows, by)
            if median is None:
                doc.p(f"**{variant}**: no run reported `{by}`; no samples shown.")
                continue
            dst = Path(tmp, median[RUN_ID])
            dst.mkdir(exist_ok=True)
            copied = []
            paths = [] if client is None else samples.final_sample_paths(client, median[RUN_ID])
            for path in paths:
                try:
                    local = retry(client.download_artifacts, median[RUN_ID], path, str(dst))
                except Exception as exc:  # noqa: BLE001 -- only skips the image
                    doc.p(f"**{variant}**: `{path}` could not be downloaded "
                          f"({type(exc).__name__}).")
                    continue
                grid = samples.grid_name(path)
                name = (f"samples_{slug(dataset)}_{slug(variant)}"
                        + (f"_{slug(grid)}" if grid else "") + ".png")
                shutil.copyfile(local, ctx.out_dir / name)
                written.append(ctx.out_dir / name)
                copied.append((grid, name))
            if not copied:
                doc.p(f"**{variant}** ({run_label(median)}, run `{median[RUN_ID]}`): "
                      f"no `{names.ARTIFACT_FINAL_SAMPLES}` artifact (nor any "
                      f"`{names.ARTIFACT_FINAL_SAMPLES.removesuffix('.png')}_*.png` grid).")
                continue
            doc.p(f"**{variant}**: {run_label(median)}, {display.label(by)} "
                  f"{tables.fmt_num(median[by])}, status "
                  f"{median[names.TAG_STATUS] or tables.DASH}, run `{median[RUN_ID]}`.")
            for grid, name in copied:
                if grid is not None:
                    doc.p(f"*{variant}, grid `{grid}`*: {samples.grid_caption(grid)}.")
                doc.img(name, f"final samples {variant} {dataset}"
                        + (f" {grid}" if grid else ""))
    return written
