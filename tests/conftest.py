import os

# Quiet, offline-friendly Ray for every test process (the harness sets these too).
for key, value in {
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
}.items():
    os.environ.setdefault(key, value)
os.environ.pop("MLFLOW_TRACKING_URI", None)


from pathlib import Path

import pytest

#: the real MNIST test split (CI clones the repo beside ../shared)
MNIST_DIR = Path(os.environ.get("HARNESS_TEST_MNIST_DIR")
                 or Path(__file__).resolve().parents[1].parent / "shared/datasets/mnist")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"MNIST t10k files not found in {MNIST_DIR}: the image tests need the real "
                    "MNIST test split (CI clones the project beside ../shared; elsewhere set "
                    "HARNESS_TEST_MNIST_DIR)", pytrace=False)
    return MNIST_DIR


@pytest.fixture
def one_thread():
    """torch on one thread for the test (tiny networks: more threads only add overhead and
    make results depend on the machine), restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def no_stray_mlflow_store():
    """Every test keeps its MLflow state under a tmp path: an experiment made without an
    artifact location would write ``./mlruns`` into the working directory (the checkout)."""
    stray = Path.cwd() / "mlruns"
    existed = stray.exists()
    yield
    assert existed or not stray.exists(), f"a test wrote MLflow artifacts into {stray}"


@pytest.fixture(scope="module")
def fast_mixtures():
    """One torch thread (determinism, no contention) and no PNG rendering of mixture samples
    (matplotlib is most of a tiny run's time), for a whole module; restored afterwards."""
    import torch

    from harness.data import GaussianMixture

    before = torch.get_num_threads()
    mp = pytest.MonkeyPatch()
    torch.set_num_threads(1)
    mp.setattr(GaussianMixture, "plot_samples", lambda self, samples, title: None)
    try:
        yield
    finally:
        mp.undo()
        torch.set_num_threads(before)
