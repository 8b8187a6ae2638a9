"""The per-dataset figures of training over steps: mode coverage, losses, D's outputs and
the image metrics. Each takes ``[(variant, compared runs)]`` and the fetched histories
(``{(run_id, key): Series}``) and returns PNG bytes, or None when nothing was logged."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness import names
from harness.reports import display, tables
from harness.reports.figures import (
    BAND_TEXT,
    drawn_runs,
    grid,
    median_band,
    panels,
    png,
    seed_style,
    step_axes,
    thin,
)
from harness.reports.load import RUN_ID
from harness.reports.runs import run_label

_LOSSES = (names.LOSS_D, names.LOSS_G)
_D_OUTPUTS = (names.D_REAL, names.D_FAKE, names.D_FAKE_AFTER)
#: every history a figure here draws; :class:`harness.reports.ReportContext` fetches them
#: columns of the losses figure shown only when some run logged them: InfoGAN's ``loss_q``,
#: a critic's gap (``Loss.critic``: its Wasserstein estimate, in place of D's outputs)
_EXTRA_LOSS_COLUMNS = (names.LOSS_Q, names.CRITIC_GAP)
PLOT_HISTORIES = (names.MODES_COVERED, *_LOSSES, *_D_OUTPUTS, *_EXTRA_LOSS_COLUMNS,
                  *display.curve_metrics())


def _any(pairs: list[tuple[str, pd.DataFrame]], hist: dict, keys) -> bool:
    return any((rid, k) in hist for _, rows in pairs for rid in rows[RUN_ID] for k in keys)


def coverage_figure(dataset: str, pairs: list[tuple[str, pd.DataFrame]], hist: dict,
                    colours: dict, n_modes: dict) -> bytes | None:
    """A panel per variant: each run's modes covered (:func:`drawn_runs` of them), the
    median and inter-quartile band of all of them, and the dataset's mode count."""
    if not _any(pairs, hist, (names.MODES_COVERED,)):
        return None
    nrows, ncols = grid(len(pairs))
    fig, axes = panels(nrows, ncols, f"Mode coverage over training -- {dataset}")
    for ax in axes.flat[len(pairs):]:
        ax.set_visible(False)
    for ax, (variant, rows) in zip(axes.flat, pairs):
        drawn = [s for s in (hist.get((rid, names.MODES_COVERED)) for rid in rows[RUN_ID])
                 if s is not None and not s.empty]
        for i, (_, row) in enumerate(drawn_runs(rows).iterrows()):
            s = hist.get((row[RUN_ID], names.MODES_COVERED))
            if s is None or s.empty:
                continue
            ax.plot(s.index, s.values, color=colours[variant], label=run_label(row),
                    **seed_style(i))
        if len(drawn) > 1:  # behind the runs: their median and inter-quartile band
            median, low, high = median_band(drawn)
            ax.fill_between(median.index, low, high, color=colours[variant], alpha=0.12,
                            linewidth=0, zorder=0)
            ax.plot(median.index, median.values, color=colours[variant], linewidth=4,
                    alpha=0.3, zorder=0, label=f"median of {len(drawn)}")
        total = n_modes.get(variant)
        if total is not None and not tables.isnan(total):
            ax.axhline(total, color="0.5", linestyle=":", linewidth=1, label=f"all {total:g} modes")
            ax.set_ylim(-0.03 * total, 1.08 * total)
        ax.set_title(variant, fontsize=10, color=colours[variant])
        step_axes(ax, "modes covered", "lower right")
    return png(fig)


def losses_figure(dataset: str, pairs: list[tuple[str, pd.DataFrame]], hist: dict,
                  colours: dict) -> bytes | None:
    """A row per variant, a column per loss, a line per run (:func:`drawn_runs`); InfoGAN's ``loss_q`` and a
    critic's ``critic_gap`` get a column of their own when some run logged them (hidden in
    the rows of the variants that did not)."""
    keys = _LOSSES
    if not _any(pairs, hist, keys):
        return None
    keys += tuple(k for k in _EXTRA_LOSS_COLUMNS if _any(pairs, hist, (k,)))
    fig, axes = panels(len(pairs), len(keys), f"Losses -- {dataset}")
    for r, (variant, rows) in enumerate(pairs):
        for c, key in enumerate(keys):
            ax = axes[r][c]
            for i, (_, row) in enumerate(drawn_runs(rows).iterrows()):
                s = hist.get((row[RUN_ID], key))
                if s is None or s.empty:
                    continue
                style = seed_style(i)
                style["marker"] = None
                s = thin(s)
                ax.plot(s.index, s.values, color=colours[variant], label=run_label(row), **style)
            if key in _EXTRA_LOSS_COLUMNS and not ax.lines:
                ax.set_visible(False)
                continue
            if ax.lines and max(np.nanmax(np.abs(np.asarray(line.get_ydata(), float)),
                                          initial=0.0) for line in ax.lines) > 1e4:
                ax.set_yscale("symlog")  # a diverging run would flatten every other line
            ax.set_title(f"{variant}: {display.label(key)}", fontsize=9, color=colours[variant])
            step_axes(ax, key, "upper right")
    return png(fig)


def d_figure(dataset: str, pairs: list[tuple[str, pd.DataFrame]], hist: dict,
             colours: dict) -> bytes | None:
    """A panel per variant: D(x) and D(G(z)) before and after the generator step, median
    over the runs with the inter-quartile band."""
    styles = {names.D_REAL: "-", names.D_FAKE: "--", names.D_FAKE_AFTER: ":"}
    if not _any(pairs, hist, _D_OUTPUTS):
        return None
    nrows, ncols = grid(len(pairs))
    fig, axes = panels(nrows, ncols, f"D(x) and D(G(z)) before/after the generator step -- "
                       f"{dataset}\n({BAND_TEXT})")
    for ax in axes.flat[len(pairs):]:
        ax.set_visible(False)
    for ax, (variant, rows) in zip(axes.flat, pairs):
        for key in _D_OUTPUTS:
            series = [hist[(rid, key)] for rid in rows[RUN_ID] if (rid, key) in hist]
            series = [s for s in series if not s.empty]
            if not series:
                continue
            median, low, high = median_band(series)
            ax.plot(median.index, median.values, color=colours[variant], linestyle=styles[key],
                    linewidth=1.5, label=f"{display.label(key)} (median of {len(series)})")
            if len(series) > 1:
                ax.fill_between(median.index, low, high, color=colours[variant], alpha=0.12,
                                linewidth=0)
        ax.set_title(variant, fontsize=10, color=colours[variant])
        step_axes(ax, "discriminator output", "lower left")
    return png(fig)


def image_curves_figure(dataset: str, pairs: list[tuple[str, pd.DataFrame]], hist: dict,
                        colours: dict, n_modes: dict) -> bytes | None:
    """The :func:`harness.reports.display.curve_metrics` and modes covered over generator
    steps: one panel per metric that has a history, one line per variant (median over its
    runs, inter-quartile band). None unless some run logged a curve metric over steps."""
    def series_of(rows: pd.DataFrame, key: str) -> list[pd.Series]:
        found = [hist.get((rid, key)) for rid in rows[RUN_ID]]
        return [s for s in found if s is not None and not s.empty]

    curves = (*display.curve_metrics(), names.MODES_COVERED)
    keys = [k for k in curves if any(series_of(rows, k) for _, rows in pairs)]
    if not any(k in keys for k in display.curve_metrics()):
        return None
    fig, axes = panels(1, len(keys), f"Image metrics over training -- {dataset}\n"
                       f"({BAND_TEXT})")
    for ax, key in zip(axes[0], keys):
        for variant, rows in pairs:
            series = series_of(rows, key)
            if not series:
                continue
            median, low, high = median_band(series)
            ax.plot(median.index, median.values, color=colours[variant], marker="o",
                    markersize=3, linewidth=1.5, label=f"{variant} (median of {len(series)})")
            if len(series) > 1:
                ax.fill_between(median.index, low, high, color=colours[variant], alpha=0.12,
                                linewidth=0)
        if key == names.MODES_COVERED:
            totals = [t for t in n_modes.values() if t is not None and not tables.isnan(t)]
            if totals:
                ax.axhline(max(totals), color="0.5", linestyle=":", linewidth=1,
                           label=f"all {max(totals):g} modes")
        better = "higher" if display.higher_is_better(key) else "lower"
        ax.set_title(f"{display.label(key)} ({better} is better)", fontsize=10)
        step_axes(ax, key, "best")
    return png(fig)
