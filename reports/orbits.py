"""The orbit section of the stability report, for runs of the xy game V(x, y) = x·y.

A run belongs here when it logged the players' position -- the ``x`` / ``y`` histories
(their last values are among the run's metrics) -- or carries the ``orbit`` tag; the variant
and model names are not looked at, so a third-party game that logs the same names is
reported the same way. For each (variant, dataset) pair the runs compared are the ones the
rest of the report compares (the seeds phase, or every run of a pair without one).

:func:`orbit_section` writes ``## Orbits (xy game)``: a table of each variant's orbit
classifications over its runs (the ``orbit`` tag: converging / oscillating / diverging),
its final distance to the equilibrium and final / start distance (mean ± sd over the runs
that finished), the learning rates, a line naming which variants converged, oscillated and
diverged, and per dataset one figure ``orbits_<dataset>.png``: a panel per variant with
each run's path (x against y, from the MLflow histories, the equilibrium marked) and a last
panel with every run's distance to (0, 0) over steps on a log scale.

It reuses the figure and formatting helpers of :mod:`reports.stability`, which imports this
module; they are looked up when the section is written.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import names

_NO_ORBIT = "no orbit"  # runs without the tag (failed or stopped before they finished)
_HISTORIES = (names.XY_X, names.XY_Y, names.XY_DISTANCE)


def is_xy_run(df: pd.DataFrame) -> pd.Series:
    """Per row of a :func:`reports.stability.load_runs` frame: did the run play the xy game
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
    :data:`harness.names.ORBITS` and ``no orbit`` (runs without the tag), the mean / sd / n
    of ``xy_final_distance`` and ``xy_distance_ratio`` over the runs that finished, and the
    ``lr_g`` / ``lr_d`` values used and the ``params`` (``model.*`` / ``loss.*``; text).
    The learning rates are the study's: a model may scale them (``xy_game``'s
    ``lr_scale``, shown among the params). ``pairs`` is
    :func:`reports.stability._comparison_rows` of ``df``. Sorted by dataset, then mean
    distance ratio (the most converged first)."""
    from reports import stability as st

    records = []
    for (variant, dataset), (phase, rows) in pairs.items():
        rows = rows[is_xy_run(rows)]
        if rows.empty:
            continue
        done = rows[~st._failed_mask(rows)]
        tags = (rows[names.TAG_ORBIT] if names.TAG_ORBIT in rows
                else pd.Series(None, index=rows.index, dtype=object))
        rec: dict[str, Any] = {names.TAG_VARIANT: variant, names.TAG_DATASET: dataset,
                               names.TAG_PHASE: phase, "n": len(rows)}
        for orbit in names.ORBITS:
            rec[orbit] = int((tags == orbit).sum())
        rec[_NO_ORBIT] = int(tags.isna().sum())
        for metric in (names.XY_FINAL_DISTANCE, names.XY_DISTANCE_RATIO):
            col = done[metric] if metric in done else pd.Series(dtype=float)
            rec[f"{metric}_mean"], rec[f"{metric}_std"], rec[f"{metric}_n"] = _stats(col)
        for p in ("lr_g", "lr_d"):
            rec[p] = st._param_value_text(rows[p], significant=3) if p in rows else st._DASH
        params = []
        for col in st._searched_param_cols(rows):
            text = st._param_value_text(rows[col])
            if text != st._DASH:
                params.append(f"{col}={text}")
        rec["params"] = ", ".join(params) or st._DASH
        records.append(rec)
    columns = [names.TAG_VARIANT, names.TAG_DATASET, names.TAG_PHASE, "n", *names.ORBITS,
               _NO_ORBIT]
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


def _sig(mean: float, std: float) -> str:
    """``mean ± sd`` to 3 significant digits (the values span 1e-5 .. 1e4)."""
    if math.isnan(mean):
        return "—"
    text = f"{mean:.3g}"
    return text if math.isnan(std) else f"{text} ± {std:.2g}"


def _orbit_cell(row: pd.Series) -> str:
    parts = [f"{o} {int(row[o])}" for o in (*names.ORBITS, _NO_ORBIT) if int(row[o])]
    return ", ".join(parts) or "—"


def _orbit_figure(dataset: str, pairs: list[tuple[str, pd.DataFrame]], hist: dict,
                  colours: dict) -> bytes | None:
    """One panel per variant: each run's path (x against y), start (circle) and end
    (square), the equilibrium (red star); a last panel: every run's distance to (0, 0) over
    steps, log scale. None when no run has both an ``x`` and a ``y`` history."""
    from reports import stability as st

    def path(rid: str) -> pd.DataFrame | None:
        x, y = hist.get((rid, names.XY_X)), hist.get((rid, names.XY_Y))
        if x is None or y is None or x.empty or y.empty:
            return None
        xy = pd.concat([x.rename("x"), y.rename("y")], axis=1).dropna()
        xy = xy[np.isfinite(xy["x"]) & np.isfinite(xy["y"])]
        return xy if len(xy) else None

    paths = {rid: path(rid) for _, rows in pairs for rid in rows[st.RUN_ID]}
    if not any(p is not None for p in paths.values()):
        return None
    nrows, ncols = st._grid(len(pairs) + 1)
    fig, axes = st._panels(nrows, ncols, f"Orbits of the xy game -- {dataset}\n(x minimises "
                           "x·y, y maximises it; red star: the equilibrium (0, 0))")
    for ax in axes.flat[len(pairs) + 1:]:
        ax.set_visible(False)
    for ax, (variant, rows) in zip(axes.flat, pairs):
        for i, (_, row) in enumerate(rows.iterrows()):
            xy = paths.get(row[st.RUN_ID])
            if xy is None:
                continue
            xy = st._thin(xy, most=1000)
            style = st._seed_style(i)
            style["marker"] = None
            ax.plot(xy["x"], xy["y"], color=colours.get(variant, "0.3"),
                    label=st._run_label(row), **style)
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
        for i, rid in enumerate(rows[st.RUN_ID]):
            s = hist.get((rid, names.XY_DISTANCE))
            if s is None or s.empty:
                continue
            s = st._thin(s[np.isfinite(s) & (s > 0)])
            ax.plot(s.index, s.values, color=colours.get(variant, "0.3"), linewidth=1.2,
                    label=variant if i == 0 else None)
    ax.set_yscale("log")
    ax.set_title("distance to (0, 0)", fontsize=10)
    st._step_axes(ax, "distance (log scale)", "best")
    return st._png(fig)


def orbit_section(doc, client, df: pd.DataFrame, pairs: dict, colours: dict,
                  out_dir: Path) -> list[Path]:
    """Append ``## Orbits (xy game)`` to ``doc`` (a :class:`reports.stability._Doc`) when
    ``df`` has xy-game runs; nothing otherwise. Writes ``orbits_<dataset>.png`` into
    ``out_dir`` and returns the paths written. ``pairs`` is
    :func:`reports.stability._comparison_rows` of ``df``."""
    from reports import stability as st

    summary = summarize_orbits(df, pairs)
    if summary.empty:
        return []
    doc.h(2, "Orbits (xy game)")
    doc.p("Runs of the xy game V(x, y) = x·y (recognised by their logged "
          f"`{names.XY_X}` / `{names.XY_Y}` positions or their `{names.TAG_ORBIT}` tag): "
          "player x minimises V, player y maximises it, and the only equilibrium is (0, 0). "
          f"`{names.TAG_ORBIT}` is how each run's orbit behaved, as the game tagged it when the "
          "run finished, from the reported point's distance to (0, 0) at the start and at the "
          f"end (the `xy_game` model's `classify_orbit`): `{names.ORBIT_CONVERGING}` below 0.5 × "
          f"the start's distance, `{names.ORBIT_DIVERGING}` above 2 × (or when training "
          f"stopped as diverged), `{names.ORBIT_OSCILLATING}` in between. The reported point "
          "is the last iterate, or the mean of the iterates for a variant that averages. "
          f"`{names.XY_FINAL_DISTANCE}` is the final distance and `{names.XY_DISTANCE_RATIO}` "
          "final / start distance, mean ± sd over the runs that finished (3 significant "
          "digits); runs are the compared ones (the seeds phase, as above). The learning "
          "rates are the study's `lr_g` (x's step) and `lr_d` (y's step); a model parameter "
          "such as `lr_scale` multiplies both.")
    doc.table(
        ["variant", "dataset", "phase", "n", "orbit", "final distance to (0, 0)",
         "final / start distance", "lr_g (x)", "lr_d (y)", "model / loss params"],
        [[str(r[names.TAG_VARIANT]), str(r[names.TAG_DATASET]), str(r[names.TAG_PHASE]),
          str(int(r["n"])), _orbit_cell(r),
          _sig(r[f"{names.XY_FINAL_DISTANCE}_mean"], r[f"{names.XY_FINAL_DISTANCE}_std"]),
          _sig(r[f"{names.XY_DISTANCE_RATIO}_mean"], r[f"{names.XY_DISTANCE_RATIO}_std"]),
          str(r["lr_g"]), str(r["lr_d"]), str(r["params"])]
         for _, r in summary.iterrows()])
    by_orbit: dict[str, list[str]] = {}
    for _, r in summary.iterrows():
        orbit = majority_orbit(r)
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
    rows = pd.concat([r[is_xy_run(r)] for _, r in pairs.values()])
    hist = st._fetch_histories(client, rows, _HISTORIES)
    for dataset in sorted(summary[names.TAG_DATASET].unique()):
        ds_pairs = sorted(((v, r[is_xy_run(r)]) for (v, d), (_, r) in pairs.items()
                           if d == dataset), key=lambda p: p[0])
        ds_pairs = [(v, r) for v, r in ds_pairs if len(r)]
        png = _orbit_figure(dataset, ds_pairs, hist, colours)
        caption = (f"Orbits on `{dataset}`: one panel per variant, one line per run (x "
                   "against y from the logged histories; circle: first logged point, square: "
                   "last); last panel: distance to (0, 0) over steps, log scale")
        st._figure_block(doc, out_dir, written, "orbits", dataset, caption, png,
                         f"no `{names.XY_X}` / `{names.XY_Y}` histories logged")
    return written
