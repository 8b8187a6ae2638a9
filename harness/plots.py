"""Small matplotlib helpers shared by trials and reports (Agg backend, PNG bytes)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def scatter_png(samples: np.ndarray, real: np.ndarray, centres: np.ndarray | None,
                title: str, limit: float | None = None) -> bytes:
    """Generated points (blue) over real points (grey) and the mixture centres (red x)."""
    fig, ax = plt.subplots(figsize=(3.6, 3.6), dpi=90)
    ax.scatter(real[:, 0], real[:, 1], s=2, c="0.75", label="real", rasterized=True)
    finite = np.isfinite(samples).all(axis=1)
    ax.scatter(samples[finite, 0], samples[finite, 1], s=2, c="tab:blue", alpha=0.6,
               label="generated", rasterized=True)
    if centres is not None:
        ax.scatter(centres[:, 0], centres[:, 1], s=30, c="tab:red", marker="x", label="centres")
    if limit is not None:
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=6, markerscale=3)
    return figure_png(fig)
