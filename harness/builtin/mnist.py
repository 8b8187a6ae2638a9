"""``mnist`` and ``stacked_mnist``: real digits, with a held-out split for the classifier.

Where the files come from: the ``root`` parameter, else ``$HARNESS_DATA_DIR``, else the
user cache folder (``$XDG_CACHE_HOME/gan-harness/data``); see :mod:`harness.idx` for the
accepted names and layouts and for the checks every file passes. When no split is found
and ``download`` is true, torchvision's downloader is tried once (into that folder); if
the files are still missing the constructor raises, so a study fails at validation, before
anything starts. A relative ``root`` in a study file is made absolute against the study file's
folder when the study is validated (``root`` is ``Path``-annotated), so
trials that Ray starts elsewhere read the same files.

Splits: three parts, so that the FID reference is disjoint from the images the harness's
classifier (the feature extractor of :mod:`harness.fidelity`) learns from
(docs/fidelity.md):

* **held-out** -- never trained on by anyone: the classifier is scored on it and it gives
  FID's real-data floor;
* **reference** -- the FID reference (:meth:`Mnist.reference_data`): part of what the GAN
  trains on, never seen by the classifier;
* **classifier** -- the rest of the train part: what the classifier trains on
  (:meth:`Mnist.classifier_source`).

The GAN trains on the whole train part, reference + classifier images. With only one split
present (e.g. just t10k) the file is split *randomly* with ``torch.randperm`` seeded by
``split_seed`` (the two halves of t10k were written by different populations, Census
employees vs. students, so a first/second-half split would hold out a different
distribution): the first ``heldout_fraction`` of the permutation is held out, the next
``reference_fraction`` is the reference and the rest trains the classifier -- 2,000 /
2,000 / 6,000 of t10k by default, the train part being the 8,000 reference + classifier
images. With the official train files present, the GAN trains on the 60k train split
(shuffled by ``split_seed``), whose first ``reference_fraction`` (12,000) is the reference
and the other 48,000 train the classifier; t10k is the held-out part. ``n_train`` keeps the
first images of the shuffled train part for the GAN -- reference images first -- and
leaves the classifier's part alone. The split is logged in :meth:`Mnist.tags` and
:meth:`Mnist.describe`.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from harness import names
from harness.data import LabelledImages
from harness.idx import (
    ENV_DATA_DIR,
    SUBDIRS,
    DataFileError,
    expected_names,
    find_mnist,
    load_mnist_split,
    resolve_data_dir,
)
from harness.registry import register_dataset


def download_mnist(directory: Path) -> str | None:
    """Try torchvision's MNIST download into ``directory`` (it writes ``MNIST/raw/``).

    Returns None on success, else one line saying why it failed. Never raises: tests
    replace this function, and no network simply means the files must be provided.
    """
    try:
        import torchvision

        torchvision.datasets.MNIST(str(directory), train=True, download=True)
        return None
    except Exception as exc:  # noqa: BLE001  (no torchvision, no network, mirror down ...)
        return " ".join(f"{type(exc).__name__}: {exc}".split())


def to_unit_range(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``(N, 28, 28)`` -> float32 ``(N, 1, size, size)`` in [-1, 1] (x / 127.5 - 1),
    resized with antialiased bilinear interpolation when ``size != 28``."""
    x = images.to(torch.float32).div_(127.5).sub_(1.0).unsqueeze(1)
    if size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                          align_corners=False).clamp_(-1.0, 1.0)
    return x.contiguous()


def _digest(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@register_dataset("mnist")
class Mnist(LabelledImages):
    """MNIST digits, 1 x size x size in [-1, 1]; held-out = t10k, or a random split of t10k."""

    n_classes = 10

    def __init__(
        self,
        root: Path | None = None,
        size: Literal[28, 32, 64] = 28,
        heldout_fraction: float = 0.2,
        split_seed: int = 0,
        n_train: int | None = None,
        download: bool = True,
        reference_fraction: float = 0.2,
    ):
        if size not in (28, 32, 64):
            raise ValueError(f"size must be 28, 32 or 64, got {size}")
        if not 0.0 < heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction must be between 0 and 1 (exclusive), "
                             f"got {heldout_fraction}")
        if not 0.0 < reference_fraction < 1.0:
            raise ValueError(f"reference_fraction must be between 0 and 1 (exclusive), "
                             f"got {reference_fraction}")
        if n_train is not None and n_train < 1:
            raise ValueError(f"n_train must be >= 1 (or null for all), got {n_train}")
        self.size = int(size)
        self.heldout_fraction = float(heldout_fraction)
        self.reference_fraction = float(reference_fraction)
        self.split_seed = int(split_seed)
        self.data_dir, self.data_dir_from = resolve_data_dir(root)
        self._classifier_part: MnistClassifierPart | None = None

        splits = find_mnist(self.data_dir)
        download_error = None
        if not splits and download:
            download_error = download_mnist(self.data_dir)
            splits = find_mnist(self.data_dir)
        if not splits:
            self._missing(download, download_error)

        loaded = {name: load_mnist_split(s) for name, s in splits.items()}
        self.checksums = {f.path.name.removesuffix(".gz"): f.content_md5
                          for pair in loaded.values() for f in pair}
        self.files = [str(f.path) for pair in loaded.values() for f in pair]
        g = torch.Generator().manual_seed(self.split_seed)
        if len(loaded) == 2:
            self.source = "train+t10k"
            train_x, train_y = (f.tensor() for f in loaded["train"])
            held_x, held_y = (f.tensor() for f in loaded["t10k"])
            self.train_index = torch.randperm(train_x.shape[0], generator=g)
            self.heldout_index = torch.arange(held_x.shape[0])
        else:
            (self.source,) = loaded
            train_x, train_y = (f.tensor() for f in loaded[self.source])
            held_x, held_y = train_x, train_y
            total = train_x.shape[0]
            n_held = round(total * self.heldout_fraction)
            if not 1 <= n_held <= total - 1:
                raise ValueError(f"heldout_fraction {heldout_fraction} of the {total} images "
                                 f"in {self.source} leaves an empty train or held-out part")
            perm = torch.randperm(total, generator=g)
            self.heldout_index = perm[:n_held].sort().values
            self.train_index = perm[n_held:]
        # the train part = reference (its first images) + the classifier's images (the rest)
        total = train_x.shape[0]
        n_ref = round(total * self.reference_fraction)
        if not 1 <= n_ref <= self.train_index.shape[0] - 1:
            raise ValueError(f"reference_fraction {reference_fraction} of the {total} images in "
                             f"{self.source} leaves an empty reference or classifier part "
                             f"(train part: {self.train_index.shape[0]} images)")
        self.reference_index = self.train_index[:n_ref]
        self.classifier_index = self.train_index[n_ref:]
        available = self.train_index.shape[0]
        if n_train is not None and n_train > available:
            raise ValueError(f"n_train ({n_train}) is larger than the {available} training "
                             f"images available (source {self.source}, files in {self.data_dir})")
        self.n_train_param = n_train
        self.n_train_part = int(available)  # train images of the split, before n_train
        if n_train is not None:
            self.train_index = self.train_index[:n_train]
        self._train_u8 = train_x[self.train_index]
        self._train_y = train_y[self.train_index].long()
        self._held_u8 = held_x[self.heldout_index]
        self._held_y = held_y[self.heldout_index].long()
        self._ref_u8 = train_x[self.reference_index]
        self._clf_u8 = train_x[self.classifier_index]
        self._clf_y = train_y[self.classifier_index].long()

    def _missing(self, download: bool, download_error: str | None) -> None:
        where = ", ".join(str(self.data_dir / s) if s != "." else str(self.data_dir)
                          for s in SUBDIRS)
        tried = ("; download: false" if not download
                 else f"; download failed: {download_error}" if download_error
                 else "; download reported success but the files are still missing")
        raise DataFileError(
            f"no MNIST files in {self.data_dir} (from {self.data_dir_from}; looked in {where}); "
            f"expected {expected_names()}{tried}; put the files there, or set the dataset's "
            f"root: parameter or ${ENV_DATA_DIR} to a folder holding them")

    # -- the LabelledImages contract ---------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return (1, self.size, self.size)

    @property
    def n_train(self) -> int:
        return int(self._train_y.shape[0])

    @property
    def n_heldout(self) -> int:
        return int(self._held_y.shape[0])

    @property
    def n_reference(self) -> int:
        return int(self._ref_u8.shape[0])

    @property
    def n_classifier(self) -> int:
        """Images the classifier trains on: the train part minus the reference."""
        return int(self._clf_y.shape[0])

    @cached_property
    def _train(self) -> torch.Tensor:
        return to_unit_range(self._train_u8, self.size)

    @cached_property
    def _reference(self) -> torch.Tensor:
        return to_unit_range(self._ref_u8, self.size)

    @cached_property
    def _heldout(self) -> torch.Tensor:
        return to_unit_range(self._held_u8, self.size)

    def train_data(self) -> torch.Tensor:
        return self._train

    def train_labels(self) -> torch.Tensor:
        return self._train_y

    def heldout_data(self) -> torch.Tensor:
        return self._heldout

    def heldout_labels(self) -> torch.Tensor:
        return self._held_y

    def reference_data(self) -> torch.Tensor:
        """The FID reference: the first ``reference_fraction`` of the shuffled train part,
        which the GAN trains on and the classifier never sees."""
        return self._reference

    def _payload(self, n_train: int | None) -> dict:
        split = {"source": self.source, "split_seed": self.split_seed,
                 "reference_fraction": self.reference_fraction}
        if self.source != "train+t10k":
            split["heldout_fraction"] = self.heldout_fraction
        return {"class": "Mnist", "checksums": self.checksums, "split": split,
                "size": self.size, "n_train": n_train}

    def fingerprint(self) -> str:
        return _digest(self._payload(self.n_train_param))

    @property
    def split_text(self) -> str:
        """How the split was made (the ``dataset.split`` tag)."""
        keep = (f"; GAN keeps the first {self.n_train_param} of the shuffled train part"
                if self.n_train_param is not None else "")
        parts = (f"{self.n_reference} FID reference + {self.n_classifier} classifier training, "
                 "disjoint")
        if self.source == "train+t10k":
            return (f"train+t10k: {self.n_train_part} train (official train split, shuffled, "
                    f"seed {self.split_seed}: {parts}) / {self.n_heldout} held-out (official "
                    f"t10k){keep}")
        return (f"{self.source} only: {self.n_train_part} train ({parts}) / {self.n_heldout} "
                f"held-out, random, seed {self.split_seed}{keep}")

    def describe(self) -> dict[str, object]:
        return {"n_train": self.n_train, "n_heldout": self.n_heldout,
                "n_reference": self.n_reference, "n_classifier": self.n_classifier,
                "size": self.size, "source": self.source}

    def tags(self) -> dict[str, str]:
        return {names.TAG_DATASET_SPLIT: self.split_text,
                names.TAG_DATASET_DATA_DIR: str(self.data_dir)}

    def classifier_source(self) -> MnistClassifierPart:
        """What the harness's classifier trains on -- the train part minus the FID
        reference, however few images ``n_train`` gives the GAN -- and is scored on (the
        held-out part)."""
        if self._classifier_part is None:
            self._classifier_part = MnistClassifierPart(self)
        return self._classifier_part


class MnistClassifierPart(LabelledImages):
    """The classifier's view of an :class:`Mnist` split: its training images are the train
    part minus the FID reference (:attr:`Mnist.classifier_index`), its held-out images the
    split's held-out part. Independent of ``n_train``: its fingerprint (the classifier's
    cache key) is the split's without it."""

    n_classes = 10

    def __init__(self, split: Mnist):
        self.split = split
        self.size = split.size

    @property
    def shape(self) -> tuple[int, ...]:
        return self.split.shape

    @cached_property
    def _train(self) -> torch.Tensor:
        return to_unit_range(self.split._clf_u8, self.size)

    def train_data(self) -> torch.Tensor:
        return self._train

    def train_labels(self) -> torch.Tensor:
        return self.split._clf_y

    def heldout_data(self) -> torch.Tensor:
        return self.split.heldout_data()

    def heldout_labels(self) -> torch.Tensor:
        return self.split.heldout_labels()

    def reference_data(self) -> torch.Tensor:
        return self.split.reference_data()

    def fingerprint(self) -> str:
        return _digest({**self.split._payload(None), "part": "classifier"})

    def describe(self) -> dict[str, object]:
        return {"n_train": int(self.split.n_classifier), "n_heldout": self.split.n_heldout,
                "size": self.size, "source": self.split.source}


def _seed(data_seed: int, part: str) -> int:
    """Independent generator seeds for the train, held-out and reference stacks of one
    ``data_seed``."""
    h = hashlib.sha256(f"stacked_mnist/{part}/{data_seed}".encode()).digest()
    return int.from_bytes(h[:8], "big") & ((1 << 63) - 1)


@register_dataset("stacked_mnist")
class StackedMnist(LabelledImages):
    """Stacked MNIST (VEEGAN/PacGAN): 3 random digits as 3 channels, 1000 modes.

    Training stacks are drawn from the digits' train part, held-out stacks from their
    held-out part and ``n_heldout`` FID-reference stacks from their reference part, each
    with replacement and its own generator: no reference stack holds a digit the
    classifier (trained on the digits' classifier part) learned from.
    """

    n_classes = 1000
    channels_stacked = True

    def __init__(
        self,
        root: Path | None = None,
        size: Literal[28, 32, 64] = 28,
        n_train: int = 25_600,
        n_heldout: int = 10_000,
        data_seed: int = 0,
        heldout_fraction: float = 0.2,
        split_seed: int = 0,
        download: bool = True,
    ):
        if n_train < 1:
            raise ValueError(f"n_train must be >= 1, got {n_train}")
        if n_heldout < 1:
            raise ValueError(f"n_heldout must be >= 1, got {n_heldout}")
        self.digits = Mnist(root=root, size=size, heldout_fraction=heldout_fraction,
                            split_seed=split_seed, download=download)
        self.size = self.digits.size
        self.data_seed = int(data_seed)
        # digits drawn with replacement: training stacks from the mnist train part,
        # held-out stacks from the mnist held-out part, each with its own generator
        g_train = torch.Generator().manual_seed(_seed(self.data_seed, "train"))
        g_held = torch.Generator().manual_seed(_seed(self.data_seed, "heldout"))
        self.train_index = torch.randint(0, self.digits.n_train, (n_train, 3), generator=g_train)
        self.heldout_index = torch.randint(0, self.digits.n_heldout, (n_heldout, 3),
                                           generator=g_held)
        g_ref = torch.Generator().manual_seed(_seed(self.data_seed, "reference"))
        self.reference_index = torch.randint(0, self.digits.n_reference, (n_heldout, 3),
                                             generator=g_ref)

    @staticmethod
    def _stack(images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor):
        x = images[:, 0][index]  # (N, 3, H, W): channel c is digit index[:, c]
        d = labels[index]
        return x.contiguous(), d[:, 0] * 100 + d[:, 1] * 10 + d[:, 2]

    @cached_property
    def _train(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._stack(self.digits.train_data(), self.digits.train_labels(), self.train_index)

    @cached_property
    def _heldout(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._stack(self.digits.heldout_data(), self.digits.heldout_labels(),
                           self.heldout_index)

    @cached_property
    def _reference(self) -> torch.Tensor:
        return self.digits.reference_data()[:, 0][self.reference_index].contiguous()

    def reference_data(self) -> torch.Tensor:
        return self._reference

    @property
    def shape(self) -> tuple[int, ...]:
        return (3, self.size, self.size)

    @property
    def n_train(self) -> int:
        return int(self.train_index.shape[0])

    @property
    def n_heldout(self) -> int:
        return int(self.heldout_index.shape[0])

    def train_data(self) -> torch.Tensor:
        return self._train[0]

    def train_labels(self) -> torch.Tensor:
        return self._train[1]

    def heldout_data(self) -> torch.Tensor:
        return self._heldout[0]

    def heldout_labels(self) -> torch.Tensor:
        return self._heldout[1]

    def classifier_source(self) -> LabelledImages:
        return self.digits.classifier_source()

    def fingerprint(self) -> str:
        return _digest({"class": type(self).__name__, "digits": self.digits.fingerprint(),
                        "n_train": self.n_train, "n_heldout": self.n_heldout,
                        "data_seed": self.data_seed})

    def describe(self) -> dict[str, object]:
        return {"n_train": self.n_train, "n_heldout": self.n_heldout, "size": self.size,
                "source": self.digits.source, "digits_n_train": self.digits.n_train,
                "digits_n_heldout": self.digits.n_heldout}

    def tags(self) -> dict[str, str]:
        tags = self.digits.tags()
        tags[names.TAG_DATASET_STACKS] = (f"{self.n_train} train stacks from the {self.digits.n_train} "
                                  f"train digits / {self.n_heldout} held-out stacks from the "
                                  f"{self.digits.n_heldout} held-out digits / {self.n_heldout} "
                                  f"FID-reference stacks from the {self.digits.n_reference} "
                                  f"reference digits, with replacement, data_seed {self.data_seed}")
        return tags
