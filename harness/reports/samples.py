"""The final-sample pictures a run logged: which artifacts they are, and what a grid shows."""

from __future__ import annotations

import contextlib
import os
import re

from harness import names
from harness.tracking import retry

_STEM = names.ARTIFACT_FINAL_SAMPLES.removesuffix(".png")


def final_sample_paths(client, run_id: str) -> list[str]:
    """The run's final-sample pictures at the artifact root: ``final_samples.png`` (models
    without grids) and every ``final_samples_<grid>.png`` (conditional / InfoGAN grids), the
    plain one first, then by name. Empty when there are none, or the listing fails."""
    try:
        listed = retry(client.list_artifacts, run_id)
    except Exception:  # noqa: BLE001 -- an unreadable artifact store only skips the images
        return []
    found = [a.path for a in listed if not a.is_dir
             and a.path.rsplit("/", 1)[-1].startswith(_STEM) and a.path.endswith(".png")]
    return sorted(found, key=lambda p: (p != names.ARTIFACT_FINAL_SAMPLES, p))


def grid_name(path: str) -> str | None:
    """``final_samples_<grid>.png`` -> ``<grid>``; None for the plain ``final_samples.png``."""
    name = path.rsplit("/", 1)[-1].removesuffix(".png")
    return name[len(_STEM):].lstrip("_") or None


def grid_caption(grid: str) -> str:
    """What a model's sample grid shows (the grids of :meth:`harness.models.Model.grids`)."""
    known = {"classes": "rows: fixed noise vectors, columns: the class each is conditioned on",
             "ab": "held-out A images (top row), their translations G(a) and the round "
                   "trips F(G(a))",
             "ba": "held-out B images (top row), their translations F(b) and the round "
                   "trips G(F(b))",
             "code_grid": "rows: fixed noise vectors, columns: the values of the first "
                          "categorical code"}
    m = re.fullmatch(r"continuous_(\d+)", grid)
    if m:
        return (f"continuous code {m.group(1)} traversed from -2 to 2 (columns); rows: the "
                "values of the first categorical code (noise vectors when there is none)")
    return known.get(grid, "a grid of the model's samples")


@contextlib.contextmanager
def no_progress_bars():
    """MLflow draws a progress bar per downloaded artifact unless this variable says no."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(key)
    if before is None:
        os.environ[key] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
