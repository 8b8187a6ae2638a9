"""Small matplotlib helpers shared by trials and reports (Agg backend, PNG bytes)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _count(k: int, n: int) -> str:
    return f"{k:,} of {n:,}" if k < n else f"all {n:,}"


def range_note(samples: np.ndarray, limit: float | None = None) -> str:
    """What a scatter of ``samples`` (``(n, 2)``) drawn within ``[-limit, limit]`` on both
    axes leaves out, for the picture to say: e.g. ``"37 of 2,000 samples outside the plotted
    range [-6.5, 6.5]; 3 non-finite"``. Empty when every sample is drawn (``limit`` None:
    only non-finite samples are left out)."""
    samples = np.asarray(samples, dtype=np.float64)
    n = int(samples.shape[0])
    finite = np.isfinite(samples).all(axis=1)
    parts = []
    if limit is not None:
        outside = int((np.abs(samples[finite]) > limit).any(axis=1).sum())
        if outside:
            parts.append(f"{_count(outside, n)} samples outside the plotted range "
                         f"[-{limit:.3g}, {limit:.3g}]")
    bad = n - int(finite.sum())
    if bad:
        parts.append(f"{bad:,} non-finite" if parts else f"{_count(bad, n)} samples non-finite")
    return "; ".join(parts)


def _scatter_axes(ax, real: np.ndarray, centres: np.ndarray | None, limit: float | None):
    """The parts of a sample scatter that do not depend on the samples; returns the
    centres' artist (None without centres), which goes over the samples."""
    ax.scatter(real[:, 0], real[:, 1], s=2, c="0.75", label="real", rasterized=True)
    marks = None
    if centres is not None:
        marks = ax.scatter(centres[:, 0], centres[:, 1], s=30, c="tab:red", marker="x",
                           label="centres", zorder=3)
    if limit is not None:
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    return marks


_SAMPLES = dict(s=2, c="tab:blue", alpha=0.6, label="generated")
_NOTE = dict(ha="center", va="bottom", fontsize=7, color="tab:red", wrap=True, zorder=5,
             bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1})


class ScatterCanvas:
    """One figure for every scatter of samples over the same real points, centres and range.

    Its fixed parts (axes, ticks, labels, real points) are drawn once and their pixels kept;
    each :meth:`png` puts those pixels back and draws the samples and, over them as a full
    draw would, the centres, the legend, the note and the title (Agg blitting). A full
    matplotlib draw with
    ``bbox_inches="tight"`` was most of a short trial's time outside training. The layout is
    fixed (the axes' margins leave room for a two-line title), so pictures of one dataset
    are the same size.
    """

    FIGSIZE, DPI = (3.6, 3.8), 90

    def __init__(self, real: np.ndarray, centres: np.ndarray | None, limit: float):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.fig = Figure(figsize=self.FIGSIZE, dpi=self.DPI)  # not pyplot's: never shown
        self.canvas = FigureCanvasAgg(self.fig)
        ax = self.fig.add_subplot()
        self.fig.subplots_adjust(left=0.16, right=0.97, bottom=0.12, top=0.86)
        self.centres = _scatter_axes(ax, real, centres, limit)
        if self.centres is not None:
            self.centres.set_animated(True)
        self.samples = ax.scatter(np.zeros((0, 2)), np.zeros((0, 2)), animated=True,
                                  **_SAMPLES)
        # over the samples, as in a full draw: the centres, the legend, the note
        self.legend = ax.legend(loc="upper right", fontsize=6, markerscale=3)
        self.legend.set_animated(True)
        self.title = ax.set_title("", fontsize=9, wrap=True)
        self.title.set_animated(True)
        self.note = ax.text(0.5, 0.02, "", transform=ax.transAxes, animated=True, **_NOTE)
        self.limit, self.ax = limit, ax
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(self.fig.bbox)

    def texts(self) -> list[str]:
        """What the last picture says: its title and, when it has one, its note."""
        return [t for t in (self.title.get_text(), self.note.get_text()) if t] or [""]

    def png(self, samples: np.ndarray, title: str) -> bytes:
        from PIL import Image

        finite = np.isfinite(samples).all(axis=1)
        self.canvas.restore_region(self.background)
        self.samples.set_offsets(samples[finite])
        self.ax.draw_artist(self.samples)
        if self.centres is not None:
            self.ax.draw_artist(self.centres)
        self.ax.draw_artist(self.legend)
        self.note.set_text(range_note(samples, self.limit))
        if self.note.get_text():
            self.ax.draw_artist(self.note)
        self.title.set_text(title)
        self.ax.draw_artist(self.title)
        rgba = np.asarray(self.canvas.buffer_rgba())
        buf = io.BytesIO()
        Image.fromarray(rgba[..., :3]).save(buf, format="png", compress_level=3)
        return buf.getvalue()


#: canvases by (real points, centres, range): a process draws each dataset's fixed parts once
_CANVASES: dict[tuple, ScatterCanvas] = {}
_CANVASES_KEPT = 8


def scatter_canvas(real: np.ndarray, centres: np.ndarray | None, limit: float) -> ScatterCanvas:
    """The :class:`ScatterCanvas` of these real points, centres and range (made once per
    process; the oldest of more than a few is dropped)."""
    real = np.ascontiguousarray(real, dtype=np.float64)
    key = (real.shape, hash(real.tobytes()),
           None if centres is None else hash(np.ascontiguousarray(centres, np.float64).tobytes()),
           float(limit))
    canvas = _CANVASES.get(key)
    if canvas is None:
        if len(_CANVASES) >= _CANVASES_KEPT:
            _CANVASES.pop(next(iter(_CANVASES)))
        canvas = _CANVASES[key] = ScatterCanvas(real, centres, limit)
    return canvas


def scatter_png(samples: np.ndarray, real: np.ndarray, centres: np.ndarray | None,
                title: str, limit: float | None = None) -> bytes:
    """Generated points (blue) over real points (grey) and the mixture centres (red x),
    within ``[-limit, limit]`` on both axes when ``limit`` is given. Samples the picture
    cannot show -- outside that range, or non-finite -- are counted in a red note at the
    bottom of the axes (:func:`range_note`). With a ``limit`` the figure's fixed parts are
    drawn once per process (:class:`ScatterCanvas`); without one the axes fit the samples,
    so each picture is drawn whole."""
    samples = np.asarray(samples, dtype=np.float64)
    if limit is not None:
        return scatter_canvas(real, centres, limit).png(samples, title)
    fig, ax = plt.subplots(figsize=(3.6, 3.6), dpi=90)
    _scatter_axes(ax, real, centres, None)
    finite = np.isfinite(samples).all(axis=1)
    note = range_note(samples, None)
    if note:
        ax.text(0.5, 0.02, note, transform=ax.transAxes, **_NOTE)
    ax.scatter(samples[finite, 0], samples[finite, 1], rasterized=True, **_SAMPLES)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=6, markerscale=3)
    return figure_png(fig)


def image_grid_png(images, ncol: int, title: str = "", row_labels=None, col_labels=None) -> bytes:
    """Images ``(n, C, H, W)`` in [-1, 1] laid out ``ncol`` per row, as a PNG.

    One channel is drawn in grey, three as RGB; other channel counts show the first.
    Non-finite pixels are drawn black and pixels outside [-1, 1] clipped; the title says
    how many images hold either (:func:`pixel_note`).
    """
    import torch

    x = torch.as_tensor(images).detach().float().cpu()
    note = pixel_note(x)
    title = f"{title}\n{note}" if title and note else title or note
    x = torch.nan_to_num(x, nan=-1.0, posinf=1.0, neginf=-1.0).clamp(-1, 1)
    n, c, h, w = x.shape
    ncol = max(1, min(ncol, n))
    nrow = -(-n // ncol)
    pad = 2
    canvas = torch.ones(3 if c == 3 else 1, nrow * (h + pad) + pad, ncol * (w + pad) + pad)
    for i in range(n):
        r, q = divmod(i, ncol)
        img = x[i] if c in (1, 3) else x[i, :1]
        canvas[:, pad + r * (h + pad): pad + r * (h + pad) + h,
               pad + q * (w + pad): pad + q * (w + pad) + w] = (img + 1) / 2
    arr = canvas.permute(1, 2, 0).numpy()
    scale = 0.04
    fig, ax = plt.subplots(figsize=(max(2.0, arr.shape[1] * scale), max(2.0, arr.shape[0] * scale)),
                           dpi=100)
    ax.imshow(arr.squeeze(-1) if arr.shape[-1] == 1 else arr, cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_xticks([pad + q * (w + pad) + w / 2 for q in range(ncol)] if col_labels else [])
    if col_labels:
        ax.set_xticklabels([str(v) for v in col_labels][:ncol], fontsize=6)
    ax.set_yticks([pad + r * (h + pad) + h / 2 for r in range(nrow)] if row_labels else [])
    if row_labels:
        ax.set_yticklabels([str(v) for v in row_labels][:nrow], fontsize=6)
    if title:
        ax.set_title(title, fontsize=8)
    return figure_png(fig)


def pixel_note(images) -> str:
    """What an image grid of ``images`` (``(n, ...)``, drawn in [-1, 1]) does not show as it
    is: e.g. ``"2 of 64 images with non-finite pixels (drawn black); 5 with pixels outside
    [-1, 1] (clipped)"``. Empty when every pixel is a finite value in [-1, 1]."""
    import torch

    x = torch.as_tensor(images).detach().cpu().flatten(1)
    n = int(x.shape[0])
    finite = torch.isfinite(x)
    bad = int((~finite).any(dim=1).sum())
    clipped = int(((x.abs() > 1) & finite).any(dim=1).sum())
    parts = []
    if bad:
        parts.append(f"{_count(bad, n)} images with non-finite pixels (drawn black)")
    if clipped:
        what = f"{clipped:,}" if parts else f"{_count(clipped, n)} images"
        parts.append(f"{what} with pixels outside [-1, 1] (clipped)")
    return "; ".join(parts)
