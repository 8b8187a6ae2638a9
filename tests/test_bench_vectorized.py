"""benchmarks/vectorized.py: its hand-written vectorized loop and its argument checks."""

import importlib.util
import os
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
    (["--pack", "2"], "above 1 only with --model pacgan"),
    (["--model", "pacgan", "--pack", "0"], "--pack must be at least 1"),
])
def test_bad_arguments_exit_2_naming_the_problem(argv, message):
    proc = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "trial-steps/s" not in proc.stdout  # nothing measured


# --- benchmarks/gpu_check.sh: the prepared GPU run ---------------------------------------------

GPU_CHECK = SCRIPT.parent / "gpu_check.sh"
ROOT = SCRIPT.parents[1]


def _gpu_check(*args, env=None, timeout=120):
    return subprocess.run(["bash", str(GPU_CHECK), *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, check=False)


@pytest.mark.parametrize("args", [[], ["measure"]])
def test_gpu_check_without_a_known_verb_exits_2_with_its_usage(args):
    proc = _gpu_check(*args)
    assert proc.returncode == 2
    assert "usage: bash benchmarks/gpu_check.sh prepare|run" in proc.stderr


def test_gpu_check_prepare_without_mnist_exits_2_and_writes_nothing(tmp_path):
    stage = tmp_path / "stage"
    proc = _gpu_check("prepare", env={"HARNESS_TEST_MNIST_DIR": str(tmp_path / "none"),
                                      "GPU_CHECK_DIR": str(stage)})
    assert proc.returncode == 2
    assert "t10k-images-idx3-ubyte.gz not found" in proc.stderr
    assert not list(tmp_path.iterdir())


def test_gpu_check_run_without_prepare_exits_2_naming_the_step(tmp_path):
    proc = _gpu_check("run", env={"GPU_CHECK_DIR": str(tmp_path / "stage"),
                                  "OUT": str(tmp_path / "out")})
    assert proc.returncode == 2
    assert "run 'bash benchmarks/gpu_check.sh prepare' here first" in proc.stderr
    assert not list(tmp_path.iterdir())


#: what the GPU machine's Python lacks (KINDS.md's package list), hidden from the simulated one
_NOT_ON_THE_GPU_MACHINE = ("ray", "mlflow", "optuna", "torch_fidelity", "gan_harness",
                           "__editable__")


@pytest.mark.slow
def test_gpu_check_rehearses_in_a_python_without_the_projects_dependencies(tmp_path, mnist_dir):
    """``gpu_check.sh run`` on the CPU, in a Python like the GPU machine's: this one's
    packages minus Ray, MLflow, Optuna, torch-fidelity and this project's installation
    (so no entry points but those of the wheel it carries). pydantic stays visible here:
    ``prepare`` downloads it for the GPU machine's Python, which this test does not."""
    import sysconfig

    site = tmp_path / "site"
    site.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.endswith(".pth") and not entry.name.startswith(_NOT_ON_THE_GPU_MACHINE):
            (site / entry.name).symlink_to(entry)
    python = tmp_path / "python3"
    python.write_text(f'#!/bin/sh\nPYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{site}" '
                      f'exec {sys.executable} -S "$@"\n')
    python.chmod(0o755)
    probe = ("import importlib.util as u, importlib.metadata as md; "
             "print([m for m in ('ray', 'mlflow', 'optuna', 'torch_fidelity', 'harness') "
             "if u.find_spec(m)], list(md.entry_points(group='harness.plugins')))")
    missing = subprocess.run([str(python), "-c", probe], capture_output=True, text=True,
                             cwd=tmp_path, timeout=60, check=False)
    assert missing.stdout.split() == ["[]", "[]"], missing.stderr
    # the folder `prepare` makes, less the download: MNIST and this checkout as a wheel
    stage = tmp_path / "stage"
    (stage / "mnist").mkdir(parents=True)
    for f in mnist_dir.glob("t10k-*-ubyte.gz"):
        (stage / "mnist" / f.name).write_bytes(f.read_bytes())
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(stage / "whl"), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    out = tmp_path / "out"
    proc = _gpu_check("run", timeout=900, env={
        "PYTHON": str(python), "GPU_CHECK_DIR": str(stage), "OUT": str(out),
        "GPU_CHECK_SITE": str(tmp_path / "gsite"), "GPU_CHECK_DEVICE": "cpu"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "torch" in (out / "env.txt").read_text()
    tests = (out / "tests.txt").read_text()
    assert "== tests: exit 0" in tests and "3 passed" in tests, tests[-2000:]
    for name, model in (("bench_eager", "DCGAN-MNIST"), ("bench_mlp", "ring8 MLP"),
                        ("bench_pacgan", "grid25 PacGAN2 networks")):
        text = (out / f"{name}.txt").read_text()
        assert f"== {name}: exit 0" in text, text[-2000:]
        assert model in text and "2 procs x vectorized N=2" in text
        assert "measured vectorized N=2, 1 proc" in text  # rows as they come
