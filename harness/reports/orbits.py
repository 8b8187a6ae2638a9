"""The orbits of runs of the xy game V(x, y) = x·y: which runs, their summary, their figure.

A run belongs here when it logged the players' position -- the ``x`` / ``y`` histories
(their last values are among the run's metrics) -- or carries the ``orbit`` tag; the variant
and model names are not looked at, so a third-party game that logs the same names is
reported the same way. For each (variant, dataset) pair the runs compared are the ones the
rest of the report compares (the seeds phase, or every run of a pair without one).

:func:`summarize_orbits` counts each variant's orbit classifications (the ``orbit`` tag:
converging / oscillating / diverging) with its final distance to the equilibrium and final /
start distance; :func:`orbit_figure` draws each run's path (x against y, the equilibrium
marked) and every run's distance to (0, 0) over steps. The section that shows them is
:mod:`harness.reports.sections.orbits`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from harness import names
from harness.reports import tables
from harness.reports.figures import grid, panels, png, seed_style, step_axes, thin
from harness.reports.load import RUN_ID
from harness.reports.runs import (
    measured_mask,
    param_value_text,
    run_label,
    searched_param_cols,
)

NO_ORBIT = "no orbit"  # runs without the tag (failed or stopped before they finished)
#: the histories :func:`orbit_figure` draws
HISTORIES = (names.XY_X, names.XY_Y, names.XY_DISTANCE)


def is_xy_run(df: pd.DataFrame) -> pd.Series:
    """Per row of a :func:`harness.reports.load.load_runs` frame: did the run play the xy game
    (an ``x`` or ``y`` value logged, or an ``orbit`` tag)?"""
    mask = pd.Series(False, index=df.index)
    for col in (names.XY_X, names.XY_Y, names.TAG_ORBIT):
        if col in df:
            mask |= df[col].notna()
    return mask


def _stats(values: pd.Series) -> tuple[float, float, int]:
    vals = values.replace([np.inf, -np.inf], np.nan).dropna()
    mean = float(vals.mean()) if len(vals) else math.nan
    std = float(vals.std(ddof=1)) if len(vals) > 1 else math.nan
    return mean, std, len(vals)


def summarize_orbits(df: pd.DataFrame, pairs: dict) -> pd.DataFrame:
    """Per compared (variant, dataset) pair with xy-game runs: ``variant``, ``dataset``,
    ``phase``, ``n`` (its xy runs, failed ones included), one count column per orbit in
    :data:`harness.names.ORBITS` and :data:`NO_ORBIT` (runs without the tag), the mean / sd / n
    of ``xy_final_distance`` and ``xy_distance_ratio`` over the runs that finished, and the
    ``lr_g`` / ``lr_d`` values used and the ``params`` (``model.*`` / ``loss.*``; text).
    The learning rates are the study's: a model may scale them (``xy_game``'s
    ``lr_scale``, shown among the params). ``pairs`` is
    :func:`harness.reports.runs.comparison_rows` of ``df``. Sorted by dataset, then mean
    distance ratio (the most converged first)."""
    records = []
    for (variant, dataset), (phase, rows) in pairs.items():
        rows = rows[is_xy_run(rows)]
        if rows.empty:
            continue
        done = rows[measured_mask(rows)]
        tags = (rows[names.TAG_ORBIT] if names.TAG_ORBIT in rows
                else pd.Series(None, index=rows.index, dtype=object))
        rec: dict[str, Any] = {names.TAG_VARIANT: variant, names.TAG_DATASET: dataset,
                               names.TAG_PHASE: phase, "n": len(rows)}
        for orbit in names.ORBITS:
            rec[orbit] = int((tags == orbit).sum())
        rec[NO_ORBIT] = int(tags.isna().sum())
        for metric in (names.XY_FINAL_DISTANCE, names.XY_DISTANCE_RATIO):
            col = done[metric] if metric in done else pd.Series(dtype=float)
            rec[f"{metric}_mean"], rec[f"{metric}_std"], rec[f"{metric}_n"] = _stats(col)
        for p in ("lr_g", "lr_d"):
            rec[p] = param_value_text(rows[p], significant=3) if p in rows else tables.DASH
        params = []
        for col in searched_param_cols(rows):
            text = param_value_text(rows[col])
            if text != tables.DASH:
                params.append(f"{col}={text}")
        rec["params"] = ", ".join(params) or tables.DASH
        records.append(rec)
    columns = [names.TAG_VARIANT, names.TAG_DATASET, names.TAG_PHASE, "n", *names.ORBITS,
               NO_ORBIT]
    for metric in (names.XY_FINAL_DISTANCE, names.XY_DISTANCE_RATIO):
        columns += [f"{metric}_mean", f"{metric}_std", f"{metric}_n"]
    columns += ["lr_g", "lr_d", "params"]
    out = pd.DataFrame(records, columns=columns)
    if out.empty:
        return out
    return out.sort_values([names.TAG_DATASET, f"{names.XY_DISTANCE_RATIO}_mean",
                            names.TAG_VARIANT], na_position="last",
                           kind="stable").reset_index(drop=True)


def majority_orbit(row: pd.Series) -> str | None:
    """The orbit most of a summary row's runs were tagged with (ties: the worse one, in the
    order diverging, oscillating, converging); None when no run has a tag."""
    counts = {o: int(row[o]) for o in names.ORBITS}
    best = max(counts.values())
    if best == 0:
        return None
    for orbit in reversed(names.ORBITS):
        if counts[orbit] == best:
            return orbit
    return None


def sig(mean: float, std: float) -> str:
    """``mean ± sd`` to 3 significant digits (the values span 1e-5 .. 1e4)."""
    if math.isnan(mean):
        return "—"
    text = f"{mean:.3g}"
    return text if math.isnan(std) else f"{text} ± {std:.2g}"


def orbit_cell(row: pd.Series) -> str:
    """A summary row's orbit counts: ``converging 2, no orbit 1``."""
    parts = [f"{o} {int(row[o])}" for o in (*names.ORBITS, NO_ORBIT) if int(row[o])]
    return ", ".join(parts) or "—"


def orbit_figure(dataset: str, pairs: list[tuple[str, pd.DataFrame]], hist: dict,
                  colours: dict) -> bytes | None:
    """One panel per variant: each run's path (x against y), start (circle) and end
    (square), the equilibrium (red star); a last panel: every run's distance to (0, 0) over
    steps, log scale. None when no run has both an ``x`` and a ``y`` history."""
    def path(rid: str) -> pd.DataFrame | None:
        x, y = hist.get((rid, names.XY_X)), hist.get((rid, names.XY_Y))
        if x is None or y is None or x.empty or y.empty:
            return None
        xy = pd.concat([x.rename("x"), y.rename("y")], axis=1).dropna()
        xy = xy[np.isfinite(xy["x"]) & np.isfinite(xy["y"])]
        return xy if len(xy) else None

    paths = {rid: path(rid) for _, rows in pairs for rid in rows[RUN_ID]}
    if not any(p is not None for p in paths.values()):
        return None
    nrows, ncols = grid(len(pairs) + 1)
    fig, axes = panels(nrows, ncols, f"Orbits of the xy game -- {dataset}\n(x minimises "
                           "x·y, y maximises it; red star: the equilibrium (0, 0))")
    for ax in axes.flat[len(pairs) + 1:]:
        ax.set_visible(False)
    for ax, (variant, rows) in zip(axes.flat, pairs):
        for i, (_, row) in enumerate(rows.iterrows()):
            xy = paths.get(row[RUN_ID])
            if xy is None:
                continue
            xy = thin(xy, most=1000)
            style = seed_style(i)
            style["marker"] = None
            ax.plot(xy["x"], xy["y"], color=colours.get(variant, "0.3"),
                    label=run_label(row), **style)
            ax.plot(xy["x"].iloc[0], xy["y"].iloc[0], "o", color=colours.get(variant, "0.3"),
                    markersize=4)
            ax.plot(xy["x"].iloc[-1], xy["y"].iloc[-1], "s", color=colours.get(variant, "0.3"),
                    markersize=4)
        ax.plot(0, 0, "*", color="tab:red", markersize=9, zorder=5)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(variant, fontsize=10, color=colours.get(variant, "0.3"))
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="upper right")
    ax = axes.flat[len(pairs)]
    for variant, rows in pairs:
        for i, rid in enumerate(rows[RUN_ID]):
            s = hist.get((rid, names.XY_DISTANCE))
            if s is None or s.empty:
                continue
            s = thin(s[np.isfinite(s) & (s > 0)])
            ax.plot(s.index, s.values, color=colours.get(variant, "0.3"), linewidth=1.2,
                    label=variant if i == 0 else None)
    ax.set_yscale("log")
    ax.set_title("distance to (0, 0)", fontsize=10)
    step_axes(ax, "distance (log scale)", "best")
    return png(fig)
