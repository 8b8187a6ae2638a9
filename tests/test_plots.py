"""Sample pictures say what they leave out: samples outside the drawn range, non-finite ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness import plots
from harness.plugins import load_plugins
from harness.registry import DATASETS

load_plugins()

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def drawn(monkeypatch):
    """The texts of every figure a plot helper renders (title and annotations): what the
    picture says, read from the figure instead of its pixels."""
    texts = []
    render, blit = plots.figure_png, plots.ScatterCanvas.png

    def capture(fig):
        for ax in fig.axes:
            texts.append(ax.get_title())
            texts.extend(t.get_text() for t in ax.texts)
        return render(fig)

    def capture_blit(canvas, samples, title):
        png = blit(canvas, samples, title)
        texts.extend(canvas.texts())
        return png

    monkeypatch.setattr(plots, "figure_png", capture)
    monkeypatch.setattr(plots.ScatterCanvas, "png", capture_blit)
    return texts


def test_range_note_counts_samples_outside_the_range_and_non_finite_ones():
    inside = np.array([[0.0, 0.0], [2.0, -2.0], [-2.0, 2.0]])
    assert plots.range_note(inside, 2.0) == ""  # on the edge is drawn
    assert plots.range_note(np.full((5, 2), 9.0), 2.0) == \
        "all 5 samples outside the plotted range [-2, 2]"
    mixed = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, -3.0], [np.nan, 0.0], [np.inf, 1.0]])
    assert plots.range_note(mixed, 2.5) == \
        "2 of 5 samples outside the plotted range [-2.5, 2.5]; 2 non-finite"
    assert plots.range_note(mixed, None) == "2 of 5 samples non-finite"
    assert plots.range_note(np.full((2000, 2), np.nan), 6.25) == "all 2,000 samples non-finite"
    assert plots.range_note(np.zeros((0, 2)), 1.0) == ""


def test_a_scatter_of_samples_all_outside_the_range_says_so(drawn):
    far = np.full((300, 2), 50.0)
    real = np.random.default_rng(0).normal(size=(100, 2))
    png = plots.scatter_png(far, real, np.zeros((1, 2)), "step 10", limit=4.0)
    assert png.startswith(PNG)
    assert "all 300 samples outside the plotted range [-4, 4]" in drawn
    assert "step 10" in drawn


def test_a_scatter_of_samples_inside_the_range_has_no_note(drawn):
    near = np.random.default_rng(0).uniform(-1, 1, size=(300, 2))
    assert plots.scatter_png(near, near, None, "step 10", limit=4.0).startswith(PNG)
    assert drawn == ["step 10"]


def test_mixture_sample_plots_count_samples_outside_their_range(drawn):
    ds = DATASETS.build("ring8", {})
    samples = torch.cat([ds.sample(90, torch.Generator().manual_seed(0))[0],
                         torch.full((10, 2), 1e3), torch.full((2, 2), float("nan"))])
    png = ds.plot_samples(samples, "final")
    assert png.startswith(PNG)
    assert [t for t in drawn if "outside" in t] == [
        "10 of 102 samples outside the plotted range [-1.5, 1.5]; 2 non-finite"]


def test_image_grids_say_which_images_hold_non_finite_or_clipped_pixels(drawn):
    images = torch.zeros(8, 1, 4, 4)
    assert plots.pixel_note(images) == ""
    images[1, 0, 0, 0] = float("nan")
    images[2, 0, 1, 1] = 3.0
    images[3, 0, 2, 2] = -1.5
    assert plots.pixel_note(images) == ("1 of 8 images with non-finite pixels (drawn black); "
                                        "2 with pixels outside [-1, 1] (clipped)")
    assert plots.pixel_note(torch.full((3, 1, 2, 2), 2.0)) == \
        "all 3 images with pixels outside [-1, 1] (clipped)"
    assert plots.image_grid_png(images, ncol=4, title="step 5").startswith(PNG)
    assert plots.image_grid_png(torch.zeros(2, 1, 4, 4), ncol=2, title="clean").startswith(PNG)
    note = ("1 of 8 images with non-finite pixels (drawn black); 2 with pixels outside "
            "[-1, 1] (clipped)")
    assert drawn == [f"step 5\n{note}", "clean"]


def test_a_scatter_canvas_draws_each_picture_over_the_fixed_parts_alone():
    """The second picture on a canvas is the same as the first picture of the same samples
    on a new canvas: nothing of an earlier picture stays behind (samples, title, note)."""
    rng = np.random.default_rng(0)
    real = rng.normal(size=(200, 2))
    centres = np.array([[0.0, 0.0], [1.0, 1.0]])
    a, b = rng.uniform(-2, 2, (300, 2)), np.vstack([rng.uniform(-2, 2, (300, 2)), [[90.0, 0]]])
    canvas = plots.ScatterCanvas(real, centres, 3.0)
    first_a = canvas.png(a, "a")
    assert canvas.texts() == ["a"]
    first_b = canvas.png(b, "b")
    assert canvas.texts() == ["b", "1 of 301 samples outside the plotted range [-3, 3]"]
    assert canvas.png(a, "a") == first_a  # the note and b's samples are gone
    assert plots.ScatterCanvas(real, centres, 3.0).png(b, "b") == first_b
    assert first_a != first_b


def test_scatter_canvases_are_kept_per_real_points_centres_and_range():
    real = np.random.default_rng(1).normal(size=(50, 2))
    one = plots.scatter_canvas(real, None, 2.0)
    assert plots.scatter_canvas(real.copy(), None, 2.0) is one
    assert plots.scatter_canvas(real, None, 3.0) is not one
    assert plots.scatter_canvas(real + 1, None, 2.0) is not one
