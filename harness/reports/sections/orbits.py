"""``## Orbits (xy game)``: for studies with runs of the xy game, each variant's orbits
(converging / oscillating / diverging), final distances and learning rates, and per dataset
``orbits_<dataset>.png`` (:mod:`harness.reports.orbits`). Left out for other studies."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness import names
from harness.reports import orbits
from harness.reports.context import ReportContext
from harness.reports.load import fetch_histories
from harness.reports.section import Section


class Orbits(Section):
    """A table of each variant's orbit classifications and distances, a line naming which
    variants converged, oscillated and diverged, and per dataset a figure of every run's
    path and its distance to (0, 0) over steps."""

    def write(self, ctx: ReportContext) -> list[Path]:
        doc = ctx.doc
        summary = orbits.summarize_orbits(ctx.df, ctx.pairs)
        if summary.empty:
            return []
        doc.h(2, "Orbits (xy game)")
        doc.p("Runs of the xy game V(x, y) = x·y (recognised by their logged "
              f"`{names.XY_X}` / `{names.XY_Y}` positions or their `{names.TAG_ORBIT}` "
              "tag): player x minimises V, player y maximises it, and the only equilibrium "
              f"is (0, 0). `{names.TAG_ORBIT}` is how each run's orbit behaved, as the game "
              "tagged it when the run finished, from the reported point's distance to (0, 0) "
              "at the start and at the end (the `xy_game` model's `classify_orbit`): "
              f"`{names.ORBIT_CONVERGING}` below 0.5 × the start's distance, "
              f"`{names.ORBIT_DIVERGING}` above 2 × (or when training stopped as diverged), "
              f"`{names.ORBIT_OSCILLATING}` in between. The reported point is the last "
              "iterate, or the mean of the iterates for a variant that averages. "
              f"`{names.XY_FINAL_DISTANCE}` is the final distance and "
              f"`{names.XY_DISTANCE_RATIO}` final / start distance, mean ± sd over the runs "
              "that finished (3 significant digits); runs are the compared ones (the seeds "
              "phase, as above). The learning rates are the study's `lr_g` (x's step) and "
              "`lr_d` (y's step); a model parameter such as `lr_scale` multiplies both.")
        doc.table(
            ["variant", "dataset", "phase", "n", "orbit", "final distance to (0, 0)",
             "final / start distance", "lr_g (x)", "lr_d (y)", "model / loss params"],
            [[str(r[names.TAG_VARIANT]), str(r[names.TAG_DATASET]), str(r[names.TAG_PHASE]),
              str(int(r["n"])), orbits.orbit_cell(r),
              *(orbits.sig(r[f"{m}_mean"], r[f"{m}_std"])
                for m in (names.XY_FINAL_DISTANCE, names.XY_DISTANCE_RATIO)),
              str(r["lr_g"]), str(r["lr_d"]), str(r["params"])]
             for _, r in summary.iterrows()])
        by_orbit: dict[str, list[str]] = {}
        for _, r in summary.iterrows():
            orbit = orbits.majority_orbit(r)
            if orbit is not None:
                label = str(r[names.TAG_VARIANT])
                if summary[names.TAG_DATASET].nunique() > 1:
                    label += f" ({r[names.TAG_DATASET]})"
                by_orbit.setdefault(orbit, []).append(label)
        if by_orbit:
            doc.p("By the orbit of most of their runs: " + "; ".join(
                f"**{orbit}**: {', '.join(by_orbit[orbit])}"
                for orbit in names.ORBITS if orbit in by_orbit) + ".")

        written: list[Path] = []
        rows = pd.concat([r[orbits.is_xy_run(r)] for _, r in ctx.pairs.values()])
        hist = ({} if ctx.client is None
                else fetch_histories(ctx.client, rows, orbits.HISTORIES))
        for dataset in sorted(summary[names.TAG_DATASET].unique()):
            ds_pairs = [(v, r[orbits.is_xy_run(r)]) for v, r in ctx.dataset_pairs(dataset)]
            ds_pairs = [(v, r) for v, r in ds_pairs if len(r)]
            png = orbits.orbit_figure(dataset, ds_pairs, hist, ctx.colours)
            caption = (f"Orbits on `{dataset}`: one panel per variant, one line per run (x "
                       "against y from the logged histories; circle: first logged point, "
                       "square: last); last panel: distance to (0, 0) over steps, log scale")
            ctx.figure(written, "orbits", dataset, caption, png,
                       f"no `{names.XY_X}` / `{names.XY_Y}` histories logged")
        return written
