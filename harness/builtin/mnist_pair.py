"""``mnist_pair``: two unpaired image domains built from the MNIST files, for CycleGAN.

Domain A is MNIST; domain B is MNIST under a fixed transform -- ``rot90`` (a quarter turn
anticlockwise) or ``invert`` (colour inversion, ``x -> -x`` on the [-1, 1] scale). The two
domains train on **disjoint** images: the shuffled train part of the ``mnist`` split is
dealt alternately to A and B, so no B training image is the transform of an A training
image and the task is truly unpaired. Both domains hold out the whole held-out part (A as
is, B transformed): held-out images are never trained on, and evaluating on the same
digits in both domains costs nothing.

Each domain is a :class:`~harness.data.LabelledImages` (``domain_a``, ``domain_b``), so the
harness's classifier machinery serves both: domain A's classifier is the plain ``mnist``
one (same cache entry); domain B's trains on the transformed train part.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from pathlib import Path
from typing import Literal

import torch

from harness import names
from harness.builtin.mnist import Mnist
from harness.data import Dataset, LabelledImages
from harness.registry import register_dataset

TRANSFORMS = ("none", "rot90", "invert")


def apply_transform(images: torch.Tensor, transform: str) -> torch.Tensor:
    """``images`` ``(N, C, H, W)`` in [-1, 1] under ``transform`` (one of :data:`TRANSFORMS`)."""
    if transform == "none":
        return images
    if transform == "rot90":
        return torch.rot90(images, k=1, dims=(-2, -1)).contiguous()
    if transform == "invert":
        return -images
    raise ValueError(f"unknown transform {transform!r}; allowed: {', '.join(TRANSFORMS)}")


class MnistDomain(LabelledImages):
    """One domain: a subset of an :class:`~harness.builtin.mnist.Mnist` train part under a transform.

    ``part`` selects the train images: ``"even"`` / ``"odd"`` positions of the shuffled
    train part, or ``"all"`` (the domain's classifier source).
    """

    n_classes = 10

    def __init__(self, base: Mnist, transform: str, part: Literal["even", "odd", "all"]):
        if transform not in TRANSFORMS:
            raise ValueError(f"unknown transform {transform!r}; allowed: {', '.join(TRANSFORMS)}")
        self.base, self.transform, self.part = base, transform, part
        self._source: MnistDomain | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.base.shape

    def _select(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.part == "all" else x[0 if self.part == "even" else 1::2]

    @cached_property
    def _train(self) -> torch.Tensor:
        return apply_transform(self._select(self.base.train_data()), self.transform)

    @cached_property
    def _heldout(self) -> torch.Tensor:
        return apply_transform(self.base.heldout_data(), self.transform)

    def train_data(self) -> torch.Tensor:
        return self._train

    def train_labels(self) -> torch.Tensor:
        return self._select(self.base.train_labels())

    def heldout_data(self) -> torch.Tensor:
        return self._heldout

    def heldout_labels(self) -> torch.Tensor:
        return self.base.heldout_labels()

    def fingerprint(self) -> str:
        if self.transform == "none" and self.part == "all":
            return self.base.fingerprint()  # the plain mnist dataset: share its caches
        blob = json.dumps({"base": self.base.fingerprint(), "transform": self.transform,
                           "part": self.part}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def classifier_source(self) -> LabelledImages:
        """All of the base's classifier images under this domain's transform."""
        source = self.base.classifier_source()
        if self.transform == "none":
            return source
        if self._source is None:
            self._source = MnistDomain(source, self.transform, "all")
        return self._source


@register_dataset("mnist_pair")
class MnistPair(Dataset):
    """MNIST (domain A) and transformed MNIST (domain B, ``rot90`` or ``invert``), unpaired."""

    default_metrics = ("cycle_error", "translation_accuracy")

    def __init__(
        self,
        transform: Literal["rot90", "invert"] = "rot90",
        root: Path | None = None,
        size: Literal[28, 32, 64] = 28,
        heldout_fraction: float = 0.2,
        split_seed: int = 0,
        n_train: int | None = None,
        download: bool = True,
    ):
        if transform not in ("rot90", "invert"):
            raise ValueError(f"transform must be 'rot90' or 'invert', got {transform!r}")
        if n_train is not None and n_train < 2:
            raise ValueError(f"n_train must be >= 2 (it is shared by the two domains), "
                             f"got {n_train}")
        self.transform = transform
        self.base = Mnist(root=root, size=size, heldout_fraction=heldout_fraction,
                          split_seed=split_seed, n_train=n_train, download=download)
        self.domain_a = MnistDomain(self.base, "none", "even")
        self.domain_b = MnistDomain(self.base, transform, "odd")

    @property
    def shape(self) -> tuple[int, ...]:
        return self.base.shape

    def train_data(self) -> torch.Tensor:
        """Domain A's training images (CycleGAN's loop reads both domains itself)."""
        return self.domain_a.train_data()

    def describe(self) -> dict[str, object]:
        return {"transform": self.transform, "n_train_a": int(self.domain_a.train_data().shape[0]),
                "n_train_b": int(self.domain_b.train_data().shape[0]),
                "n_heldout": self.base.n_heldout, "size": self.base.size}

    def tags(self) -> dict[str, str]:
        return {
            names.TAG_DATASET_SPLIT: (f"{self.base.split_text}; train part dealt alternately "
                                      f"to A (even) and B (odd, {self.transform}), disjoint"),
            names.TAG_DATASET_DATA_DIR: str(self.base.data_dir),
        }
