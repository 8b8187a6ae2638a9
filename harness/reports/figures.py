"""What every figure of the report shares: variant colours, run line styles, a fixed panel
layout, PNG bytes, and the block that puts a figure and its caption into the document.

The figures themselves live with what they show (:mod:`harness.reports.curves`, the orbit,
sensitivity and timeline modules, the budget section).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from harness.plots import plt

#: the caption words of every median-and-band figure
BAND_TEXT = "line: median over runs, band: inter-quartile range"

#: the most runs a figure draws one by one per variant (a study of a thousand trials would
#: draw spaghetti): beyond it, :func:`drawn_runs` picks that many, and medians and bands
#: still use every run
MAX_RUNS_DRAWN = 12
#: the caption words of a figure that draws at most :data:`MAX_RUNS_DRAWN` runs per variant
SAMPLED_TEXT = (f"a variant with more than {MAX_RUNS_DRAWN} runs shows {MAX_RUNS_DRAWN} of "
                "them, evenly spaced in seed order")

_SEED_STYLES = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ("-", "v"), ("--", "P"),
                (":", "X"), ("-.", "*")]
_PANEL_W, _PANEL_H = 3.4, 2.3  # inches of plotting area per panel
_MARGIN_L, _MARGIN_R, _MARGIN_B, _MARGIN_T = 0.8, 0.15, 0.5, 0.75  # figure margins (inches)
_GAP_W, _GAP_H = 0.9, 0.75  # between panels (tick labels, axis label, panel title)


def variant_colours(variants: Iterable[str]) -> dict[str, Any]:
    """One tab10 colour per variant, by sorted name: a variant has the same colour in every
    figure of a report."""
    cmap = plt.get_cmap("tab10")
    return {v: cmap(i % 10) for i, v in enumerate(sorted(set(variants)))}


def drawn_runs(rows: pd.DataFrame, most: int = MAX_RUNS_DRAWN) -> pd.DataFrame:
    """``rows`` when there are at most ``most``, else ``most`` of them evenly spaced in seed
    order (the first and the last included): the runs a figure draws one by one."""
    if len(rows) <= most:
        return rows
    from harness import names

    order = (rows.sort_values(names.TAG_SEED, kind="stable") if names.TAG_SEED in rows
             else rows)
    picks = sorted({round(i * (len(rows) - 1) / (most - 1)) for i in range(most)})
    return order.iloc[picks]


def seed_style(i: int) -> dict[str, Any]:
    """Line style and marker of the ``i``-th run of a variant (runs share its colour)."""
    ls, marker = _SEED_STYLES[i % len(_SEED_STYLES)]
    return {"linestyle": ls, "marker": marker, "markersize": 3, "linewidth": 1.2,
            "alpha": 0.9 if i < len(_SEED_STYLES) else 0.6}


def panels(nrows: int, ncols: int, title: str, **kwargs):
    """A grid of panels laid out with fixed margins in inches.

    ``tight_layout`` / ``bbox_inches="tight"`` cost more than all the drawing, so the layout
    is computed here once: every panel gets the same plotting area whatever the grid.
    """
    width = _MARGIN_L + _MARGIN_R + ncols * _PANEL_W + (ncols - 1) * _GAP_W
    height = _MARGIN_B + _MARGIN_T + nrows * _PANEL_H + (nrows - 1) * _GAP_H
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), dpi=85, squeeze=False,
                             **kwargs)
    fig.subplots_adjust(left=_MARGIN_L / width, right=1 - _MARGIN_R / width,
                        bottom=_MARGIN_B / height, top=1 - _MARGIN_T / height,
                        wspace=_GAP_W / _PANEL_W, hspace=_GAP_H / _PANEL_H)
    fig.suptitle(title, fontsize=10, y=1 - 0.12 / height, va="top")
    return fig, axes


def grid(n: int, max_cols: int = 4) -> tuple[int, int]:
    """(rows, columns) of a grid of ``n`` panels, at most ``max_cols`` wide."""
    cols = min(max_cols, max(1, n))
    return math.ceil(n / cols), cols


def png(fig) -> bytes:
    """PNG bytes of a figure laid out by :func:`panels` (no tight-bbox pass), then closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def thin(s: pd.Series, most: int = 400) -> pd.Series:
    """At most ``most`` points per plotted line (every k-th, the last always kept)."""
    if len(s) <= most:
        return s
    k = math.ceil(len(s) / most)
    return pd.concat([s.iloc[::k], s.iloc[-1:]]).groupby(level=0).last()


def median_band(series: list[pd.Series]) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(median, 25th, 75th percentile) over runs at each step, at most ~400 steps drawn.
    A run without a value at a step does not count there (its history is shorter)."""
    frame = pd.concat(series, axis=1).sort_index()
    frame = frame.iloc[::max(1, math.ceil(len(frame) / 400))]
    return frame.median(axis=1), frame.quantile(0.25, axis=1), frame.quantile(0.75, axis=1)


def step_axes(ax, ylabel: str, legend_loc: str) -> None:
    """The common dressing of a panel plotted against generator steps."""
    ax.set_xlabel("generator step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc=legend_loc)


def slug(text: str) -> str:
    """``text`` as a file-name part: runs of other characters become ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "x"


def figure_block(doc, out_dir: Path, written: list[Path], stem: str, dataset: str,
                 caption: str, picture: bytes | None,
                 missing: str = "no histories logged") -> None:
    """Write ``picture`` as ``<stem>_<dataset>.png`` under ``out_dir`` (appended to
    ``written``) and put its caption and image into ``doc``; when there is no figure, the
    caption and ``missing``."""
    if picture is None:
        doc.p(f"*{caption}*: {missing}.")
        return
    name = f"{stem}_{slug(dataset)}.png"
    (Path(out_dir) / name).write_bytes(picture)
    written.append(Path(out_dir) / name)
    doc.p(caption + ".")
    doc.img(name, f"{stem} {dataset}")
