"""The collapse timeline: when each compared run lost its modes, and for good.

A run *collapses at step s* when its ``modes_covered`` had been above the collapse limit at
some earlier evaluation and is at or below it at ``s`` and at every evaluation after ``s``
(it fell and stayed down). The limit is the harness's own ``collapsed`` rule with its
default fraction: ``max(1, floor(collapse_fraction * K))`` modes of ``K``
(:class:`harness.config.DiagnosticSettings`, 0.25: 2 of 8 modes on ring8, 6 of 25 on grid25,
2 of 10 digits). A run that never got above the limit *never spread* (collapsed from the
start); a run above the limit at its last evaluation did not collapse, however often it lost
modes on the way. Mode hopping is the ``mode_hops`` each run logged (how often the set of
covered modes changed between evaluations).

Pure functions over step-indexed histories (:func:`collapse_step`, :func:`run_events`), a
per-variant table (:func:`collapse_table`) and a figure (:func:`timeline_figure`): one row per
run, a dot per evaluation coloured by the fraction of modes covered, a red bar at the
collapse step. The section that shows them is :mod:`harness.reports.sections.timeline`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness import names
from harness.config import DiagnosticSettings
from harness.reports import tables
from harness.reports.figures import drawn_runs, panels, png

#: a run's fate in the timeline
COLLAPSED, NEVER_SPREAD, HELD = "collapsed", "never spread", "held"


def collapse_limit(n_modes: float, fraction: float | None = None) -> int:
    """The most modes a collapsed run covers: ``max(1, floor(fraction * n_modes))``."""
    fraction = DiagnosticSettings().collapse_fraction if fraction is None else fraction
    return max(1, math.floor(fraction * n_modes))


def collapse_step(coverage: pd.Series, n_modes: float, fraction: float | None = None
                  ) -> tuple[str, int | None]:
    """``(fate, step)`` of one run's ``modes_covered`` history (index: steps).

    ``(COLLAPSED, s)``: above the limit at some evaluation before ``s``, at or below it from
    ``s`` to the end. ``(NEVER_SPREAD, None)``: never above it. ``(HELD, None)``: above it
    at the last evaluation.
    """
    limit = collapse_limit(n_modes, fraction)
    values = coverage.sort_index()
    above = values > limit
    if not above.any():
        return NEVER_SPREAD, None
    if above.iloc[-1]:
        return HELD, None
    last_above = int(np.flatnonzero(above.to_numpy())[-1])
    return COLLAPSED, int(values.index[last_above + 1])


def run_events(rows: pd.DataFrame, hist: dict, n_modes: dict[str, float],
               run_id_col: str = "run_id") -> pd.DataFrame:
    """One row per run with a ``modes_covered`` history: variant, dataset, run id, fate,
    collapse step, peak and final coverage, mode hops, status and steps done."""
    out = []
    for _, row in rows.iterrows():
        s = hist.get((row[run_id_col], names.MODES_COVERED))
        total = n_modes.get(row[names.TAG_VARIANT])
        if s is None or s.empty or total is None or tables.isnan(total):
            continue
        fate, step = collapse_step(s, total)
        out.append({
            names.TAG_VARIANT: row[names.TAG_VARIANT], names.TAG_DATASET: row[names.TAG_DATASET],
            run_id_col: row[run_id_col], names.TAG_SEED: row.get(names.TAG_SEED),
            "fate": fate, "collapse_step": step, "peak": float(s.max()),
            "final": float(s.sort_index().iloc[-1]), names.N_MODES: float(total),
            names.MODE_HOPS: row.get(names.MODE_HOPS), names.TAG_STATUS: row.get(names.TAG_STATUS),
            "steps": s.sort_index(),
        })
    return pd.DataFrame(out)


def collapse_table(events: pd.DataFrame) -> list[list[str]]:
    """Per variant: runs, collapsed k/n with the median step, never spread k/n, held k/n,
    peak → final coverage (medians) and mean mode hops."""
    rows = []
    for variant, group in events.groupby(names.TAG_VARIANT, sort=True):
        n = len(group)
        fates = group["fate"].value_counts()
        steps = group.loc[group["fate"] == COLLAPSED, "collapse_step"].astype(float)
        step_text = f" (median step {steps.median():,.0f})" if len(steps) else ""
        hops = pd.to_numeric(group[names.MODE_HOPS], errors="coerce").dropna()
        total = group[names.N_MODES].max()
        rows.append([
            str(variant), str(n), f"{fates.get(COLLAPSED, 0)}/{n}{step_text}",
            f"{fates.get(NEVER_SPREAD, 0)}/{n}", f"{fates.get(HELD, 0)}/{n}",
            f"{group['peak'].median():g} → {group['final'].median():g} of {total:g}",
            f"{hops.mean():.1f}" if len(hops) else "—",
        ])
    return rows


def timeline_figure(dataset: str, events: pd.DataFrame, colours: dict) -> bytes:
    """One row per run of :func:`run_events` (per variant, :func:`drawn_runs` of them): a
    dot per evaluation coloured by the fraction of modes covered, a red bar at the collapse
    step."""
    import matplotlib
    from matplotlib import cm
    from matplotlib.colors import Normalize

    events = pd.concat([drawn_runs(group) for _, group in
                        events.groupby(names.TAG_VARIANT, sort=False)])
    events = events.sort_values([names.TAG_VARIANT, names.TAG_SEED], kind="stable")
    height_runs = len(events)
    fig, axes = panels(1, 1, f"Collapse timeline -- {dataset}")
    ax = axes[0][0]
    fig.set_size_inches(fig.get_size_inches()[0] * 2,
                        max(fig.get_size_inches()[1], 1.3 + 0.28 * height_runs))
    height = fig.get_size_inches()[1]  # keep the margins in inches as the figure grows
    fig.subplots_adjust(top=1 - 0.75 / height, bottom=0.5 / height)
    fig.suptitle(f"Collapse timeline -- {dataset}", fontsize=10, y=1 - 0.12 / height, va="top")
    norm, cmap = Normalize(0, 1), matplotlib.colormaps["viridis"]
    labels = []
    for y, (_, ev) in enumerate(events.iterrows()):
        s = ev["steps"]
        ax.plot([s.index.min(), s.index.max()], [y, y], color=colours[ev[names.TAG_VARIANT]],
                linewidth=1, alpha=0.6, zorder=1)
        ax.scatter(s.index, [y] * len(s), c=cmap(norm(s.to_numpy() / ev[names.N_MODES])), s=18,
                   zorder=2, edgecolors="none")
        if ev["fate"] == COLLAPSED:
            ax.plot([ev["collapse_step"]] * 2, [y - 0.4, y + 0.4], color="red", linewidth=2.5,
                    zorder=3)
        seed = ev[names.TAG_SEED]
        labels.append(f"{ev[names.TAG_VARIANT]} seed {seed}" if not tables.isnan(seed)
                      else f"{ev[names.TAG_VARIANT]} {str(ev['run_id'])[:8]}")
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    for tick, (_, ev) in zip(ax.get_yticklabels(), events.iterrows()):
        tick.set_color(colours[ev[names.TAG_VARIANT]])
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlabel("generator step")
    ax.grid(axis="x", alpha=0.3)
    fig.subplots_adjust(left=min(0.35, 0.06 + 0.008 * max(len(t) for t in labels)), right=0.9)
    bar = fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=0.03, pad=0.01)
    bar.set_label("fraction of modes covered", fontsize=8)
    return png(fig)
