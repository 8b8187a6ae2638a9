"""benchmarks/vectorized.py: its hand-written vectorized loop and its argument checks."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "vectorized.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_vectorized", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bare_vectorized_loop_holds_every_trainers_networks(bench):
    from harness.plugins import load_plugins
    from harness.trial import build_trainer

    load_plugins()
    loop = bench.BareVectorized(3, first_seed=5)
    x = torch.randn(3, 16, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        d_out = bench.BareVectorized.net(loop.D, x)
        g_out = bench.BareVectorized.net(loop.G, x)
        for k in range(3):  # copy k is the Trainer of seed 5 + k, layer for layer
            trainer = build_trainer(bench.config(5 + k))
            torch.testing.assert_close(d_out[k].squeeze(-1), trainer.D(x[k]))  # D: one logit per sample
            torch.testing.assert_close(g_out[k], trainer.G(x[k]))
    before = [p.detach().clone() for p in loop.D + loop.G]
    loop.train_step()
    after = loop.D + loop.G
    # one step moves every copy's every tensor (each copy has its own gradient)
    for b, a in zip(before, after):
        assert all(not torch.equal(b[k], a[k]) for k in range(3))


@pytest.mark.parametrize("argv, message", [
    (["--model", "dcgan", "--bare-vectorized"], "--bare-vectorized"),
    (["--repeat", "0"], "--repeat must be at least 1"),
    (["--compile", "fastest"], "unknown mode(s) fastest"),
])
def test_bad_arguments_exit_2_naming_the_problem(argv, message):
    proc = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "trial-steps/s" not in proc.stdout  # nothing measured
