"""benchmarks/gpu_packing.py: its definitions (fast) and one tiny CPU run end to end (slow)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import parse_study
from harness.resolve import resolve

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_packing.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gpu_packing", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_side_by_side_trials_sum_their_rates(bench):
    # two trials of 100 steps, each 10 s long, trained over the same 10 s
    out = bench.summarize([(100, 0.0, 10.0), (100, 0.0, 10.0)])
    assert out["steps_per_s"] == pytest.approx(20.0)
    assert out["overlap"] == pytest.approx(1.0) and out["span"] == pytest.approx(20.0)


def test_staggered_trials_show_a_small_overlap(bench):
    # the second started when the first was half done: they shared half of their time
    out = bench.summarize([(100, 0.0, 10.0), (100, 5.0, 15.0)])
    assert out["overlap"] == pytest.approx(0.5)
    assert out["span"] == pytest.approx(200 / 15)
    assert out["overlap"] < bench.MIN_OVERLAP
    # trials that never met
    assert bench.summarize([(10, 0.0, 1.0), (10, 2.0, 3.0)])["overlap"] == 0.0


@pytest.mark.parametrize("k, gpu", [(1, 1.0), (3, 0.3333), (7, 0.1428), (8, 0.125)])
def test_the_study_is_valid_and_k_shares_fit_one_gpu(bench, mnist_dir, k, gpu):
    args = {"device": "cuda", "steps": 40, "batch": 64, "log_every": 20, "cpus": 1, "ngf": 8,
            "ndf": 8, "z_dim": 100, "data_dir": str(mnist_dir)}
    spec = parse_study(json.loads(bench.study_yaml(k, args)))
    assert spec.resources.gpu == gpu and k * spec.resources.gpu <= 1
    (plan,) = resolve(spec)
    assert plan.base.train.device == "cuda" and plan.base.train.eval_every == 40
    assert spec.search.trials == k and spec.max_concurrent_trials == k


@pytest.mark.slow
def test_tiny_cpu_run_prints_the_table(tmp_path, mnist_dir):
    out = tmp_path / "packing.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--packs", "1", "--steps", "20",
         "--ngf", "8", "--ndf", "8", "--data-dir", str(mnist_dir), "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trials per GPU" in proc.stdout and "harness steps/s" in proc.stdout
    report = json.loads(out.read_text())
    (row,) = report["packs"]
    assert report["device"] == "cpu" and report["steps"] == 20 and row["k"] == 1
    for side in ("harness", "bare"):
        assert row[side]["steps_per_s"] > 0 and len(row[side]["per_trial"]) == 1
        (steps, start, end), = row[side]["intervals"]
        assert steps == 20 and end > start
    assert row["ratio"] == pytest.approx(row["harness"]["steps_per_s"]
                                         / row["bare"]["steps_per_s"])
