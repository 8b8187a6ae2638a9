"""Reports of studies with many runs: figures draw a bounded number of runs per variant
(and say so), and the report of a synthetic study of a few hundred runs builds
(``benchmarks/report_scale.py``; its full-size figure is in docs/sweep-scale.md)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness import names
from harness.reports import curves, figures
from harness.reports.load import RUN_ID

ROOT = Path(__file__).resolve().parents[1]


def _rows(n: int) -> pd.DataFrame:
    # seeds out of order, as runs come back from MLflow
    seeds = [(7 * i) % n for i in range(n)]
    return pd.DataFrame({RUN_ID: [f"r{s}" for s in seeds], names.TAG_SEED: seeds,
                         names.TAG_VARIANT: "v", names.TAG_PHASE: names.PHASE_SEEDS})


def test_drawn_runs_keeps_a_few_evenly_spaced_in_seed_order():
    few = _rows(5)
    assert figures.drawn_runs(few) is few
    picked = figures.drawn_runs(_rows(100))
    assert len(picked) == figures.MAX_RUNS_DRAWN
    seeds = list(picked[names.TAG_SEED])
    assert seeds == sorted(seeds) and seeds[0] == 0 and seeds[-1] == 99
    gaps = {b - a for a, b in itertools.pairwise(seeds)}
    assert gaps <= {9, 10}  # 99 / 11 apart, rounded


def test_coverage_and_losses_figures_draw_at_most_the_cap_but_band_every_run(monkeypatch):
    rows = _rows(60)
    hist = {}
    for rid, seed in zip(rows[RUN_ID], rows[names.TAG_SEED]):
        steps = [100, 200, 300]
        hist[(rid, names.MODES_COVERED)] = pd.Series([seed % 9, 8, 8], index=steps, dtype=float)
        hist[(rid, names.LOSS_D)] = pd.Series([1.0, 0.9, 0.8], index=steps, dtype=float)
        hist[(rid, names.LOSS_G)] = pd.Series([0.5, 0.6, 0.7], index=steps, dtype=float)
    captured = []
    monkeypatch.setattr(curves, "png", lambda fig: captured.append(fig) or b"png")
    colours = figures.variant_colours(["v"])
    assert curves.coverage_figure("ring8", [("v", rows)], hist, colours, {"v": 8.0}) == b"png"
    assert curves.losses_figure("ring8", [("v", rows)], hist, colours) == b"png"
    coverage, losses = captured
    ax = coverage.axes[0]
    run_lines = [line for line in ax.lines if line.get_label().startswith("seed")]
    assert len(run_lines) == figures.MAX_RUNS_DRAWN
    assert any(line.get_label() == "median of 60" for line in ax.lines)
    for ax in losses.axes:
        assert len(ax.lines) == figures.MAX_RUNS_DRAWN


def test_the_sampling_is_in_the_captions():
    from harness.reports.sections import datasets, timeline

    for module in (datasets, timeline):
        assert "SAMPLED_TEXT" in Path(module.__file__).read_text()
    assert str(figures.MAX_RUNS_DRAWN) in figures.SAMPLED_TEXT


@pytest.mark.slow
def test_a_report_of_hundreds_of_runs_builds(tmp_path):
    out = tmp_path / "scale"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "report_scale.py"),
                           "--runs", "240", "--variants", "3", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "report_scale.json").read_text())
    assert result["runs"] == 240 and result["report_seconds"] > 0
    assert result["most_runs_drawn_in_a_panel"] == figures.MAX_RUNS_DRAWN
    md = (out / "report" / "report.md").read_text()
    assert "## Collapse timeline" in md and figures.SAMPLED_TEXT in md
    # the table counts every compared run: 240 runs over 6 pairs, 16 seeds-phase runs each
    timeline = md.split("## Collapse timeline")[1].split("\n## ")[0]
    rows = [line for line in timeline.splitlines() if line.startswith("| variant") and not line.startswith("| variant |")]
    assert len(rows) == 6 and all(line.split(" | ")[1] == "16" for line in rows), rows


def test_the_benchmark_refuses_a_bad_size_before_writing_anything(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "report_scale.py"),
                           "--runs", "0", "--out", str(tmp_path / "x")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and "--runs 0: allowed 1 .. 20000" in proc.stderr
    assert not (tmp_path / "x").exists()
