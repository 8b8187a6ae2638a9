"""MNIST / Stacked MNIST datasets and the IDX reader, on the real t10k files.

The files are looked up in ``$HARNESS_TEST_MNIST_DIR``, else in ``shared/datasets/mnist``
beside the repository (CI clones the repo to ``<tmp>/main`` with ``<tmp>/shared``).
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

import harness.builtin  # noqa: F401  (registers the built-in datasets)
import harness.builtin.mnist as vm
from harness import idx
from harness.errors import ConfigError, HarnessError
from harness.registry import DATASETS

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HARNESS_TEST_MNIST_DIR") or REPO.parent / "shared/datasets/mnist")
T10K_IMAGES = "t10k-images-idx3-ubyte"
T10K_LABELS = "t10k-labels-idx1-ubyte"
REAL_DOWNLOAD = vm.download_mnist  # before the autouse fixture replaces it


@pytest.fixture(scope="module")
def mnist_dir() -> Path:
    if not (SHARED / f"{T10K_IMAGES}.gz").is_file():
        pytest.fail(f"MNIST t10k files not found in {SHARED}: the tests need the real MNIST "
                    "test split (set HARNESS_TEST_MNIST_DIR)", pytrace=False)
    return SHARED


@pytest.fixture(scope="module")
def raw_t10k(mnist_dir) -> dict[str, bytes]:
    """The decompressed t10k files, read independently of harness.idx."""
    return {n: gzip.decompress((mnist_dir / f"{n}.gz").read_bytes())
            for n in (T10K_IMAGES, T10K_LABELS)}


@pytest.fixture(scope="module")
def t10k(raw_t10k) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.frombuffer(bytearray(raw_t10k[T10K_IMAGES][16:]), dtype=torch.uint8)
    labels = torch.frombuffer(bytearray(raw_t10k[T10K_LABELS][8:]), dtype=torch.uint8)
    return images.reshape(10000, 28, 28), labels.long()


@pytest.fixture(scope="module")
def default(mnist_dir) -> vm.Mnist:
    return vm.Mnist(root=str(mnist_dir))


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No real download attempts, no stray env, and a private cache folder."""
    calls: list[Path] = []

    def fail(directory):
        calls.append(Path(directory))
        return "offline (test)"

    monkeypatch.setattr(vm, "download_mnist", fail)
    monkeypatch.delenv(idx.ENV_DATA_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return calls


def write_files(folder: Path, images: bytes, labels: bytes, gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in ((T10K_IMAGES, images), (T10K_LABELS, labels)):
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=1))
        else:
            (folder / name).write_bytes(data)
    return folder


# -- mnist: contents and split ---------------------------------------------------------------


def test_shapes_range_labels_and_contents(default, t10k):
    images, labels = t10k
    x, y = default.train_data(), default.train_labels()
    assert default.shape == (1, 28, 28) and default.n_classes == 10
    assert x.shape == (8000, 1, 28, 28) and x.dtype == torch.float32
    assert default.heldout_data().shape == (2000, 1, 28, 28)
    assert y.shape == (8000,) and y.dtype == torch.int64
    held_y = default.heldout_labels()
    assert held_y.shape == (2000,) and held_y.dtype == torch.int64
    assert x.min() == -1.0 and x.max() == 1.0
    assert set(y.tolist()) == set(range(10)) == set(default.heldout_labels().tolist())
    # exactly x / 127.5 - 1 of the file's images, at the recorded indices
    assert torch.equal(x[:, 0], images[default.train_index].float() / 127.5 - 1)
    assert torch.equal(y, labels[default.train_index])
    assert torch.equal(default.heldout_labels(), labels[default.heldout_index])


def test_t10k_only_split_is_disjoint_deterministic_and_random(default, mnist_dir):
    tr, he = default.train_index, default.heldout_index
    assert len(tr) == 8000 and len(he) == 2000
    assert sorted(torch.cat([tr, he]).tolist()) == list(range(10000))
    again = vm.Mnist(root=str(mnist_dir))
    assert torch.equal(again.train_index, tr) and torch.equal(again.heldout_index, he)
    assert torch.equal(again.train_data(), default.train_data())
    # random, not a block: both halves of t10k (different writer populations) are held out
    assert int(he.max() - he.min()) + 1 > 2000
    assert 800 < int((he < 5000).sum()) < 1200
    other = vm.Mnist(root=str(mnist_dir), split_seed=1)
    assert not torch.equal(other.heldout_index, he)
    assert default.source == "t10k"
    split = default.tags()["dataset.split"]
    assert split == ("t10k only: 8000 train (2000 FID reference + 6000 classifier training, "
                     "disjoint) / 2000 held-out, random, seed 0")
    assert default.describe() == {"n_train": 8000, "n_heldout": 2000, "n_reference": 2000,
                                  "n_classifier": 6000, "size": 28, "source": "t10k"}


def _keys(images: torch.Tensor) -> set[bytes]:
    """The images' contents, one bytes object per image."""
    return {images[i].numpy().tobytes() for i in range(len(images))}


@pytest.mark.parametrize("split_seed", [0, 1, 2])
def test_fid_reference_is_disjoint_from_the_classifiers_images(mnist_dir, t10k, split_seed):
    """Three parts of t10k: held-out / FID reference / the classifier's training images,
    disjoint by index and by content; the GAN trains on reference + classifier images."""
    images, labels = t10k
    d = vm.Mnist(root=str(mnist_dir), split_seed=split_seed)
    ref, clf, held = (set(i.tolist()) for i in (d.reference_index, d.classifier_index,
                                                   d.heldout_index))
    assert (len(ref), len(clf), len(held)) == (2000, 6000, 2000)
    assert not ref & clf and not ref & held and not clf & held
    assert ref | clf == set(d.train_index.tolist())
    source = d.classifier_source()
    assert source.train_data().shape == (6000, 1, 28, 28)
    assert torch.equal(source.train_data()[:, 0], images[d.classifier_index].float() / 127.5 - 1)
    assert torch.equal(source.train_labels(), labels[d.classifier_index])
    assert torch.equal(source.heldout_data(), d.heldout_data())
    assert torch.equal(d.reference_data()[:, 0], images[d.reference_index].float() / 127.5 - 1)
    # by content, as the classifier and torch-fidelity see the images
    reference = _keys(d.reference_data())
    assert len(reference) == 2000
    assert not reference & _keys(source.train_data())
    assert not reference & _keys(d.heldout_data())
    assert reference <= _keys(d.train_data())  # the GAN trains on the reference


def test_heldout_fraction_and_n_train(default, mnist_dir):
    d = vm.Mnist(root=str(mnist_dir), heldout_fraction=0.1, n_train=100)
    assert (d.n_train, d.n_heldout, d.n_reference, d.n_classifier) == (100, 1000, 2000, 7000)
    split = d.tags()["dataset.split"]
    assert split == ("t10k only: 9000 train (2000 FID reference + 7000 classifier training, "
                     "disjoint) / 1000 held-out, random, seed 0; GAN keeps the first 100 of "
                     "the shuffled train part")
    e = vm.Mnist(root=str(mnist_dir), n_train=100)
    assert torch.equal(e.train_index, default.train_index[:100])  # first n of the shuffled part
    assert torch.equal(e.heldout_index, default.heldout_index)
    assert e.train_data().shape == (100, 1, 28, 28)
    # the classifier's images and the reference do not depend on n_train
    assert torch.equal(e.classifier_index, default.classifier_index)
    assert torch.equal(e.reference_data(), default.reference_data())
    assert e.classifier_source().fingerprint() == default.classifier_source().fingerprint()
    assert e.classifier_source().fingerprint() != e.fingerprint()
    f = vm.Mnist(root=str(mnist_dir), reference_fraction=0.3)
    assert (f.n_train, f.n_reference, f.n_classifier) == (8000, 3000, 5000)
    assert f.classifier_source().fingerprint() != default.classifier_source().fingerprint()


@pytest.mark.parametrize("size", [32, 64])
def test_resized(mnist_dir, default, size):
    d = vm.Mnist(root=str(mnist_dir), size=size, n_train=50)
    assert d.shape == (1, size, size)
    x = d.train_data()
    assert x.shape == (50, 1, size, size) and d.heldout_data().shape == (2000, 1, size, size)
    assert x.min() >= -1 and x.max() <= 1
    ref = F.interpolate(default.train_data()[:50], size=(size, size), mode="bilinear",
                        antialias=True, align_corners=False)
    assert torch.allclose(x, ref.clamp(-1, 1))
    assert d.fingerprint() != vm.Mnist(root=str(mnist_dir), n_train=50).fingerprint()


def test_fingerprint_follows_content_and_split(default, mnist_dir, raw_t10k, tmp_path):
    fp = default.fingerprint()
    assert len(fp) == 64 and fp == vm.Mnist(root=str(mnist_dir)).fingerprint()
    for change in ({"split_seed": 1}, {"heldout_fraction": 0.3}, {"n_train": 10}, {"size": 32},
                   {"reference_fraction": 0.3}):
        assert vm.Mnist(root=str(mnist_dir), **change).fingerprint() != fp, change
    # the same content uncompressed gives the same images, so the same fingerprint
    raw = write_files(tmp_path / "raw", raw_t10k[T10K_IMAGES], raw_t10k[T10K_LABELS])
    assert vm.Mnist(root=str(raw)).fingerprint() == fp
    # a recompressed copy of the original content is accepted (content MD5 is known)
    regz = write_files(tmp_path / "regz", raw_t10k[T10K_IMAGES], raw_t10k[T10K_LABELS], gz=True)
    assert vm.Mnist(root=str(regz)).fingerprint() == fp


# -- where the files are looked up -------------------------------------------------------------


def test_env_dir_is_honoured_and_root_beats_it(monkeypatch, mnist_dir, tmp_path):
    monkeypatch.setenv(idx.ENV_DATA_DIR, str(mnist_dir))
    d = vm.Mnist(n_train=10)
    assert d.data_dir == mnist_dir and d.n_train == 10
    monkeypatch.setenv(idx.ENV_DATA_DIR, str(tmp_path / "empty"))
    assert vm.Mnist(root=str(mnist_dir), n_train=10).data_dir == mnist_dir
    with pytest.raises(idx.DataFileError, match=str(tmp_path / "empty")):
        vm.Mnist(download=False)


def test_default_cache_folder(tmp_path, monkeypatch):
    assert idx.default_data_dir() == tmp_path / "cache" / "gan-harness" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert idx.default_data_dir() == Path.home() / ".cache" / "gan-harness" / "data"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(idx.DataFileError) as err:
        vm.Mnist(download=False)
    assert str(tmp_path / "cache" / "gan-harness" / "data") in str(err.value)
    assert "default cache folder" in str(err.value)


def test_torchvision_layout_and_mnist_subfolder(mnist_dir, tmp_path):
    for sub in ("MNIST/raw", "mnist"):
        folder = tmp_path / sub.replace("/", "_") / sub
        folder.mkdir(parents=True)
        for n in (T10K_IMAGES, T10K_LABELS):
            shutil.copy(mnist_dir / f"{n}.gz", folder / f"{n}.gz")
        root = tmp_path / sub.replace("/", "_")
        assert set(idx.find_mnist(root)) == {"t10k"}
        assert idx.find_mnist(root)["t10k"].images == folder / f"{T10K_IMAGES}.gz"
    assert idx.find_mnist(tmp_path / "nowhere") == {}


def test_missing_files_without_download(tmp_path, offline):
    where = tmp_path / "nothing-here"
    with pytest.raises(idx.DataFileError) as err:
        vm.Mnist(root=str(where), download=False)
    msg = str(err.value)
    assert str(where) in msg and str(where / "MNIST/raw") in msg
    for name in ("t10k-images-idx3-ubyte[.gz]", "t10k-labels-idx1-ubyte[.gz]",
                 "train-images-idx3-ubyte[.gz]", "train-labels-idx1-ubyte[.gz]"):
        assert name in msg
    assert "HARNESS_DATA_DIR" in msg and "root:" in msg and "download: false" in msg
    assert "\n" not in msg and offline == []


def test_missing_files_with_failed_download(tmp_path, offline):
    where = tmp_path / "nothing-here"
    with pytest.raises(idx.DataFileError) as err:
        vm.Mnist(root=str(where))
    assert offline == [where]
    assert str(where) in str(err.value) and "download failed: offline (test)" in str(err.value)


def test_successful_download_is_used(tmp_path, mnist_dir, monkeypatch):
    def fake(directory):  # what torchvision leaves behind: <root>/MNIST/raw/*
        raw = Path(directory) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for n in (T10K_IMAGES, T10K_LABELS):
            shutil.copy(mnist_dir / f"{n}.gz", raw / f"{n}.gz")

    monkeypatch.setattr(vm, "download_mnist", fake)
    d = vm.Mnist(root=str(tmp_path / "dl"), n_train=10)
    assert d.n_heldout == 2000 and str(tmp_path / "dl" / "MNIST" / "raw") in d.files[0]


def test_real_downloader_reports_failure_instead_of_raising(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_torchvision(name, *args, **kwargs):
        if name == "torchvision":
            raise ImportError("No module named 'torchvision'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchvision)
    assert REAL_DOWNLOAD(tmp_path) == "ImportError: No module named 'torchvision'"


# -- corrupt files -----------------------------------------------------------------------------


def test_wrong_magic(tmp_path, raw_t10k):
    bad = struct.pack(">I", 0x00000801) + raw_t10k[T10K_IMAGES][4:]
    folder = write_files(tmp_path, bad, raw_t10k[T10K_LABELS])
    with pytest.raises(idx.DataFileError) as err:
        vm.Mnist(root=str(folder))
    msg = str(err.value)
    assert str(folder / T10K_IMAGES) in msg
    assert "wrong magic number 0x00000801, expected 0x00000803" in msg


def test_truncated_raw_and_gz(tmp_path, raw_t10k, mnist_dir):
    folder = write_files(tmp_path / "raw", raw_t10k[T10K_IMAGES][:5000], raw_t10k[T10K_LABELS])
    with pytest.raises(idx.DataFileError, match=r"truncated: expected 7840016 bytes .*got 5000"):
        vm.Mnist(root=str(folder))
    folder = write_files(tmp_path / "gz", raw_t10k[T10K_IMAGES][:5000], raw_t10k[T10K_LABELS],
                         gz=True)
    with pytest.raises(idx.DataFileError, match=r"truncated: expected 7840016 bytes "
                                                r".*after decompression, got 5000"):
        vm.Mnist(root=str(folder))
    cut = tmp_path / f"{T10K_IMAGES}.gz"
    cut.write_bytes((mnist_dir / f"{T10K_IMAGES}.gz").read_bytes()[:100_000])
    with pytest.raises(idx.DataFileError, match="truncated: the gzip stream ends early"):
        idx.read_idx(cut, "images")
    with pytest.raises(idx.DataFileError, match="truncated: expected at least 8 bytes"):
        (tmp_path / "tiny").write_bytes(struct.pack(">IH", 0x801, 3))
        idx.read_idx(tmp_path / "tiny", "labels")


def test_checksum_mismatch_raw_and_gz(tmp_path, raw_t10k):
    data = bytearray(raw_t10k[T10K_IMAGES])
    data[5000] ^= 0xFF  # one pixel changed: header and size still fine
    folder = write_files(tmp_path / "raw", bytes(data), raw_t10k[T10K_LABELS])
    with pytest.raises(idx.DataFileError) as err:
        vm.Mnist(root=str(folder))
    assert str(folder / T10K_IMAGES) in str(err.value)
    assert "checksum mismatch" in str(err.value)
    assert "expected 2646ac647ad5339dbf082846283269ea" in str(err.value)
    folder = write_files(tmp_path / "gz", bytes(data), raw_t10k[T10K_LABELS], gz=True)
    with pytest.raises(idx.DataFileError, match="checksum mismatch: MD5 [0-9a-f]{32}, expected "
                                                "9fb629c4189551a2d022fa330f9573f3"):
        vm.Mnist(root=str(folder))


def test_not_gzip_and_bad_labels(tmp_path, raw_t10k):
    (tmp_path / f"{T10K_IMAGES}.gz").write_bytes(raw_t10k[T10K_IMAGES])
    with pytest.raises(idx.DataFileError, match="not a valid gzip file"):
        idx.read_idx(tmp_path / f"{T10K_IMAGES}.gz", "images")
    labels = struct.pack(">II", 0x801, 3) + bytes([1, 2, 12])
    images = struct.pack(">IIII", 0x803, 3, 28, 28) + bytes(3 * 784)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(images)  # raw train: header/size only
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(labels)
    with pytest.raises(idx.DataFileError, match="label 12 found, expected digits 0..9"):
        idx.load_mnist_split(idx.find_mnist(tmp_path)["train"])


def test_train_plus_t10k_uses_official_split(tmp_path, mnist_dir, raw_t10k):
    """With train files present: train = train split (shuffled), held-out = all of t10k."""
    images = struct.pack(">IIII", 0x803, 30, 28, 28) + raw_t10k[T10K_IMAGES][16:16 + 30 * 784]
    labels = struct.pack(">II", 0x801, 30) + raw_t10k[T10K_LABELS][8:38]
    (tmp_path / "train-images-idx3-ubyte").write_bytes(images)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(labels)
    for n in (T10K_IMAGES, T10K_LABELS):
        shutil.copy(mnist_dir / f"{n}.gz", tmp_path / f"{n}.gz")
    d = vm.Mnist(root=str(tmp_path))
    assert d.source == "train+t10k" and (d.n_train, d.n_heldout) == (30, 10000)
    assert sorted(d.train_index.tolist()) == list(range(30))
    assert d.tags()["dataset.split"] == (
        "train+t10k: 30 train (official train split, shuffled, seed 0: 6 FID reference + 24 "
        "classifier training, disjoint) / 10000 held-out (official t10k)")
    assert d.describe()["source"] == "train+t10k"
    # the reference: the first fifth of the shuffled train split, never the classifier's
    assert torch.equal(d.reference_index, d.train_index[:6])
    assert not set(d.reference_index.tolist()) & set(d.classifier_index.tolist())
    source = d.classifier_source()
    assert source.train_data().shape == (24, 1, 28, 28) and source.heldout_data().shape[0] == 10000
    assert not _keys(d.reference_data()) & _keys(source.train_data())


# -- stacked mnist -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stacked(mnist_dir) -> vm.StackedMnist:
    return vm.StackedMnist(root=str(mnist_dir), n_train=500, n_heldout=200)


def test_stacked_shapes_and_labels(stacked):
    digits = stacked.digits
    x, y = stacked.train_data(), stacked.train_labels()
    assert x.shape == (500, 3, 28, 28) and stacked.shape == (3, 28, 28)
    assert stacked.heldout_data().shape == (200, 3, 28, 28)
    assert y.dtype == torch.int64 and 0 <= int(y.min()) and int(y.max()) <= 999
    assert stacked.n_classes == 1000 and stacked.channels_stacked
    assert stacked.classifier_source() is digits.classifier_source()
    assert isinstance(digits, vm.Mnist)
    d = digits.train_labels()[stacked.train_index]
    assert torch.equal(y, 100 * d[:, 0] + 10 * d[:, 1] + d[:, 2])
    for c in range(3):
        assert torch.equal(x[:, c], digits.train_data()[stacked.train_index[:, c], 0])
    # held-out stacks come from held-out digits only
    hd = digits.heldout_labels()[stacked.heldout_index]
    assert torch.equal(stacked.heldout_labels(), 100 * hd[:, 0] + 10 * hd[:, 1] + hd[:, 2])
    assert torch.equal(stacked.heldout_data()[:, 1],
                       digits.heldout_data()[stacked.heldout_index[:, 1], 0])
    assert int(stacked.heldout_index.max()) < digits.n_heldout
    assert len(set(y.tolist())) > 300  # many of the 1000 modes present
    # reference stacks: as many as held-out ones, from the reference digits only
    ref = stacked.reference_data()
    assert ref.shape == (200, 3, 28, 28)
    for c in range(3):
        assert torch.equal(ref[:, c], digits.reference_data()[stacked.reference_index[:, c], 0])
    channels = _keys(ref.reshape(-1, 1, 28, 28))
    assert channels <= _keys(digits.reference_data())
    assert not channels & _keys(stacked.classifier_source().train_data())


def test_stacked_determinism_and_classifier_source(stacked, mnist_dir, default):
    again = vm.StackedMnist(root=str(mnist_dir), n_train=500, n_heldout=200)
    assert torch.equal(again.train_data(), stacked.train_data())
    assert again.fingerprint() == stacked.fingerprint()
    other = vm.StackedMnist(root=str(mnist_dir), n_train=500, n_heldout=200, data_seed=1)
    assert not torch.equal(other.train_labels(), stacked.train_labels())
    assert other.fingerprint() != stacked.fingerprint()
    more = vm.StackedMnist(root=str(mnist_dir), n_train=800, n_heldout=200)
    assert torch.equal(more.heldout_labels(), stacked.heldout_labels())
    assert stacked.classifier_source().fingerprint() == default.classifier_source().fingerprint()
    tags = stacked.tags()
    assert "dataset.split" in tags and tags["dataset.stacks"].startswith("500 train stacks")
    small = vm.StackedMnist(root=str(mnist_dir), size=32, n_train=20, n_heldout=5)
    assert small.train_data().shape == (20, 3, 32, 32)
    assert small.classifier_source().train_data().shape == (6000, 1, 32, 32)


# -- through the registry and the CLI -----------------------------------------------------------


def test_registry_build(mnist_dir):
    d = DATASETS.build("mnist", {"root": str(mnist_dir), "size": 32, "n_train": 64},
                       "dataset.params")
    assert isinstance(d, vm.Mnist) and d.train_data().shape == (64, 1, 32, 32)
    s = DATASETS.build("stacked_mnist", {"root": str(mnist_dir), "n_train": 10, "n_heldout": 10},
                       "dataset.params")
    assert s.train_data().shape == (10, 3, 28, 28)


@pytest.mark.parametrize("params,message", [
    ({"size": 30}, "dataset.params.size: Input should be 28, 32 or 64"),
    ({"heldout_fraction": 1.5}, ("dataset.params: dataset 'mnist': heldout_fraction must be "
                                 "between 0 and 1")),
    ({"heldout_fraction": 0.0}, "heldout_fraction must be between 0 and 1"),
    ({"n_train": 0}, "dataset.params: dataset 'mnist': n_train must be >= 1"),
    ({"n_train": 9000}, "n_train (9000) is larger than the 8000 training images"),
    ({"reference_fraction": 1.0}, "reference_fraction must be between 0 and 1"),
    ({"reference_fraction": 0.8}, ("reference_fraction 0.8 of the 10000 images in t10k leaves "
                                   "an empty reference or classifier part")),
    ({"colour": "red"}, "dataset.params.colour: unknown parameter of dataset 'mnist'"),
    ({"download": "maybe"}, "dataset.params.download: Input should be a valid boolean"),
])
def test_registry_bad_params(mnist_dir, params, message):
    with pytest.raises(ConfigError) as err:
        DATASETS.build("mnist", {"root": str(mnist_dir), **params}, "dataset.params")
    assert message in str(err.value)


def test_registry_missing_dir_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as err:
        DATASETS.build("mnist", {"root": str(tmp_path / "nope"), "download": False},
                       "dataset.params")
    assert str(err.value).startswith("dataset.params: dataset 'mnist': no MNIST files in")
    assert str(tmp_path / "nope") in str(err.value)
    with pytest.raises(ConfigError, match="n_heldout must be >= 1"):
        DATASETS.build("stacked_mnist", {"n_heldout": 0}, "dataset.params")


def test_cli_study_with_missing_mnist_dir_exits_2(tmp_path, monkeypatch, capsys):
    from harness.cli import main

    study = {
        "name": "mnist-missing",
        "seeds": 1,
        "datasets": {"digits": {"name": "mnist",
                                "params": {"root": str(tmp_path / "no-mnist"), "download": False}}},
        "train": {"steps": 10, "eval_every": 10, "log_every": 5},
        "search": {"trials": 1, "space": {"lr_d": {"type": "loguniform", "low": 1e-4,
                                                   "high": 1e-3}}},
        "variants": [{"name": "v", "model": "mlp", "loss": "minimax"}],
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    monkeypatch.chdir(tmp_path)
    assert main(["study", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "datasets.digits.params: dataset 'mnist': no MNIST files in" in err[0]
    assert str(tmp_path / "no-mnist") in err[0]
    assert not (tmp_path / "runs").exists()


def test_errors_are_harness_errors():
    assert issubclass(idx.DataFileError, HarnessError) and issubclass(idx.DataFileError, ValueError)
