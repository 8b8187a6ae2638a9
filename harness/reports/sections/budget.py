"""``## Score vs budget``: per dataset, each variant's expected best score over k of its
finished search-phase trials, k = 1 .. K (:func:`harness.reports.stats.best_of_k`); the
figure ``budget_<dataset>.png`` and a table of k = 1, k = K/2 and k = K.

The score is the study's own metric (``search.metric``, e.g. ``fid`` for a Lucic-style
image study, lower being better) in the direction the study optimises it; a report that
does not know its study's metric (an old store) reads ``modes_covered``, higher better."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from harness import names
from harness.reports import display, provenance, stats, tables
from harness.reports.context import ReportContext
from harness.reports.figures import panels, png, slug
from harness.reports.runs import measured_mask
from harness.reports.section import Section
from harness.reports.summary import finite


class Budget(Section):
    """How good a result a smaller search would have found."""

    def write(self, ctx: ReportContext) -> list[Path]:
        doc, df = ctx.doc, ctx.df
        metric = ctx.metric or names.MODES_COVERED
        higher = display.higher_is_better(metric, ctx.mode)
        word = "best" if higher else "best (lowest)"
        doc.h(2, "Score vs budget")
        doc.p(f"How good a result could a smaller search have found? For each variant, over "
              f"its K `{names.PHASE_SEARCH}`-phase trials that did not fail and reported "
              f"the study's metric `{metric}`: the expected {word} of k trials drawn at random "
              "without replacement, for k = 1 .. K, computed exactly from the order "
              "statistics (E[best of k] = sum_i x_(i) C(i-1, k-1) / C(K, k) with the values "
              "sorted ascending), with a band from the 5% to the 95% quantile of that best "
              "(Lucic et al. 2018, *Are GANs created equal?*). A curve still rising at k = K "
              "says a larger search would likely have found better; a flat one says the "
              "budget was enough. With few trials per variant the curves are short and the "
              "band wide.")
        search = df[(df[names.TAG_PHASE] == names.PHASE_SEARCH) & measured_mask(df)]
        datasets = sorted(df[names.TAG_DATASET].fillna("?").unique()) if len(df) else []
        if not datasets:
            doc.p("No trial runs.")
            return []
        written: list[Path] = []
        digits = display.decimals(metric)
        for dataset in datasets:
            doc.h(3, f"Dataset `{dataset}`")
            ds_all = df[df[names.TAG_DATASET].fillna("?") == dataset]
            rows = search[search[names.TAG_DATASET].fillna("?") == dataset]
            scored = rows[rows[metric].notna()] if metric in rows else rows.iloc[0:0]
            conflicts = provenance.provenance_conflicts(scored)
            if conflicts:
                provenance.warning(doc, dataset, conflicts,
                                   "Read each variant's curve on its own: the curves of "
                                   "different groups are not on one scale.")
            variants = sorted(ds_all[names.TAG_VARIANT].fillna("?").unique(), key=str)
            curves, table, missing = [], [], []
            for variant in variants:
                vals = scored.loc[scored[names.TAG_VARIANT].fillna("?") == variant, metric]
                curve = stats.best_of_k(vals.to_numpy(dtype=float), higher_is_better=higher)
                if curve.empty:
                    missing.append(variant)
                    continue
                curves.append((variant, curve))
                first, half, last = (curve.iloc[0], curve.iloc[(len(curve) - 1) // 2],
                                     curve.iloc[-1])
                band = f"[{first['low']:.{digits}f}, {first['high']:.{digits}f}]"  # as the means
                table.append([str(variant), str(len(curve)),
                              f"{first['expected']:.{digits}f} {band}",
                              f"{half['expected']:.{digits}f} (k = {int(half['k'])})",
                              f"{last['expected']:.{digits}f}"])
            if not curves:
                doc.p(f"No finished search-phase trials with `{metric}`: nothing to plot.")
                continue
            modes = (finite(ds_all[names.N_MODES])
                     if metric == names.MODES_COVERED and names.N_MODES in ds_all
                     else pd.Series(dtype=float))
            n_modes = float(modes.max()) if len(modes) else math.nan
            name = f"budget_{slug(dataset)}.png"
            (ctx.out_dir / name).write_bytes(_figure(dataset, curves, ctx.colours, n_modes,
                                                     display.label(metric), higher))
            written.append(ctx.out_dir / name)
            doc.p(f"Best {display.label(metric)} reachable vs number of search trials (line: "
                  f"expected {word} of k; band: 5%-95%).")
            doc.img(name, f"score vs budget {dataset}")
            doc.table(["variant", "search trials K", f"expected {word}, 1 trial [5%, 95%]",
                       f"expected {word}, half the trials", f"expected {word}, all K trials"],
                      table)
            if missing:
                doc.p("No finished search-phase trials (not plotted): "
                      + ", ".join(f"**{v}**" for v in missing) + ".")
        return written


def _figure(dataset: str, curves: list[tuple[str, pd.DataFrame]], colours: dict,
            n_modes: float, ylabel: str, higher: bool) -> bytes:
    """One panel: per variant the expected best score vs the number of search trials, with
    its 5%-95% band."""
    from matplotlib.ticker import MaxNLocator

    fig, axes = panels(1, 1, f"Best score reachable vs number of search trials -- {dataset}")
    ax = axes[0][0]
    for variant, curve in curves:
        colour = colours.get(variant, "0.3")
        ax.plot(curve["k"], curve["expected"], color=colour, marker="o", markersize=3,
                linewidth=1.5, label=f"{variant} (K={len(curve)})")
        ax.fill_between(curve["k"], curve["low"], curve["high"], color=colour, alpha=0.15,
                        linewidth=0)
    if not tables.isnan(n_modes):
        ax.axhline(n_modes, color="0.5", linestyle=":", linewidth=1,
                   label=f"all {n_modes:g} modes")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("search trials (budget)")
    ax.set_ylabel(f"best {ylabel}" + ("" if higher else " (lower is better)"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right" if higher else "upper right")
    return png(fig)
