"""The vectorized mode on a CUDA GPU: copies against single-copy trials, eager, compiled and
replayed as CUDA graphs (``compile="reduce-overhead"``), and a diverging copy frozen there.

Skipped where torch sees no GPU. ``benchmarks/gpu_check.sh run`` runs them on a GPU machine.
``HARNESS_GPU_TEST_DEVICE=cpu`` runs them on the CPU instead, to check the tests themselves
on a machine without a GPU (the compiled cases then take about a minute each).

On the GPU a copy equals its single trial to float32 rounding, not bit for bit (cuBLAS's
batched products and cuDNN's grouped convolutions are other kernels than the single ones).
TF32 is turned off for these comparisons (cuDNN allows it by default), so the tolerance is
float32's.
"""

import os

import pytest
import torch

from harness.vector.engine import VectorizedGAN
from tests.test_vectorized import (
    assert_same_networks,
    assert_same_rows,
    four_configs,
    single_run,
    vector_run,
)
from tests.test_vectorized_conv import dcgan_config

DEVICE = os.environ.get("HARNESS_GPU_TEST_DEVICE", "cuda")

pytestmark = pytest.mark.skipif(
    DEVICE == "cuda" and not torch.cuda.is_available(),
    reason="needs a CUDA GPU (HARNESS_GPU_TEST_DEVICE=cpu runs these on the CPU)")

TOL = {"rtol": 1e-4, "atol": 1e-5}
MODES = pytest.mark.parametrize("compile", [None, "default", "reduce-overhead"],
                                ids=["eager", "compiled", "cuda-graphs"])


@pytest.fixture(autouse=True)
def float32_kernels():
    """No TF32 in matrix products and convolutions, and deterministic cuDNN algorithms
    (no autotuned Winograd/FFT choice between runs), for the test; restored afterwards."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = (matmul.allow_tf32, cudnn.allow_tf32, cudnn.deterministic, cudnn.benchmark)
    matmul.allow_tf32 = cudnn.allow_tf32 = cudnn.benchmark = False
    cudnn.deterministic = True
    torch._dynamo.reset()  # each compiled case compiles afresh (not against the recompile limit)
    yield
    matmul.allow_tf32, cudnn.allow_tf32, cudnn.deterministic, cudnn.benchmark = before


@MODES
def test_mlp_copies_match_single_trials_on_the_device(compile):
    cfgs = four_configs(device=DEVICE)
    vec, vec_rows = vector_run(cfgs, 10, compile=compile)
    assert vec.g_params[0].device.type == DEVICE
    samples = vec.sample()
    for k, cfg in enumerate(cfgs):
        trainer, rows = single_run(cfg, 10)
        assert trainer.data.device.type == DEVICE
        assert_same_networks(vec, k, trainer, TOL)
        assert_same_rows(vec_rows, rows, k, rel=1e-3, abs=1e-4)
        torch.testing.assert_close(samples[k], trainer.sample(), **TOL)


@pytest.mark.parametrize("compile", [None, "reduce-overhead"], ids=["eager", "cuda-graphs"])
def test_dcgan_copies_match_single_trials_on_the_device(compile, mnist_dir):
    cfgs = [dcgan_config(mnist_dir, seed=k, lr_d=1e-4 * (k + 1), lr_g=3e-4 / (k + 1),
                         device=DEVICE) for k in range(3)]
    vec = VectorizedGAN(cfgs, compile=compile)
    vec_rows = [vec.train_step(measure=(vec.step + 1) % 2 == 0) for _ in range(6)]
    samples = vec.sample()
    for k, cfg in enumerate(cfgs):
        trainer, rows = single_run(cfg, 6)
        assert_same_networks(vec, k, trainer, TOL)  # parameters and batch-norm averages
        assert_same_rows(vec_rows, rows, k, rel=1e-3, abs=1e-4)
        torch.testing.assert_close(samples[k], trainer.sample(), **TOL)


@MODES
def test_a_nan_copy_is_frozen_on_the_device_and_the_others_train_on(compile):
    """The GPU path masks every step without a host sync (and, as CUDA graphs, replays the
    same kernels): a copy whose weights turn NaN is frozen at once with its state kept,
    while the others train as a run without it does."""
    cfgs = four_configs(device=DEVICE)
    vec, _ = vector_run(cfgs, 5, compile=compile)
    with torch.no_grad():
        vec.D.layers[0].weight[1, 0, 0] = float("nan")
    frozen = {net: {k: v.clone() for k, v in state.items()}
              for net, state in vec.copy_state(1).items()}
    vec.train(10)
    assert vec.diverged == {1: 6}
    assert [s for s, _ in vec.history[1]] == [5]  # no rows once frozen
    for net, state in frozen.items():
        for key, value in state.items():
            torch.testing.assert_close(vec.copy_state(1)[net][key], value, rtol=0, atol=0,
                                       equal_nan=True, msg=f"frozen copy {net}.{key}")
    reference, _ = vector_run([cfgs[0], cfgs[2], cfgs[3]], 15, compile=compile)
    for j, k in enumerate((0, 2, 3)):
        for net in ("generator", "discriminator"):
            for key, value in reference.copy_state(j)[net].items():
                torch.testing.assert_close(vec.copy_state(k)[net][key], value, **TOL,
                                           msg=f"copy {k} {net}.{key}")
