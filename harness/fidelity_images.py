"""The real images FID compares with, and images as torch-fidelity takes them.

* **The reference** (:func:`real_images`): by default the dataset's
  :meth:`~harness.data.LabelledImages.reference_data`, real images the classifier never
  trained on. A reference the extractor learned from scores the extractor's training
  images better than unseen real digits (FID 2.08 against 2.79 with the old default,
  ``reference: train``), so a generator that memorised them would look better than real
  data. ``"heldout"`` and ``"train"`` (the GAN's training images, which with the ``mnist``
  datasets include the classifier's) remain for comparison.
* **The floor set** (:attr:`RealImages.floor`): the real images the real-data floor
  (:func:`harness.fidelity.fid_floor`) is measured with, disjoint by content from the
  reference.
* Images go in as an :class:`ImageSet`, a dataset returning one bare uint8 ``C x H x W``
  tensor per item (torch-fidelity refuses tuples); generated samples in [-1, 1] are mapped
  to uint8 by :func:`to_uint8`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import torch
from torch.utils.data import Dataset as TorchDataset

from harness.data import LabelledImages

#: which real images FID compares with (:func:`real_images`); the first is the default
Reference = Literal["reference", "heldout", "train"]
REFERENCES: tuple[str, ...] = ("reference", "heldout", "train")


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (any float dtype, any device) -> uint8 in [0, 255] on the CPU.

    Values outside [-1, 1] are clipped; NaN becomes mid-grey and +/-inf white/black, so a
    diverged generator is scored (badly) instead of crashing the evaluation. uint8 input
    is returned as it is.
    """
    images = images.detach()
    if images.dtype == torch.uint8:
        return images.cpu()
    x = torch.nan_to_num(images.float(), nan=0.0, posinf=1.0, neginf=-1.0).clamp(-1.0, 1.0)
    return ((x + 1.0) * 127.5).round().to(torch.uint8).cpu()


class ImageSet(TorchDataset):
    """uint8 images ``(N, C, H, W)`` as the dataset torch-fidelity wants: a bare tensor per item."""

    def __init__(self, images: torch.Tensor):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"expected uint8 images (N, C, H, W), got {images.dtype} "
                             f"{tuple(images.shape)}")
        self.images = images.contiguous()

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def _three_channels(images: torch.Tensor) -> torch.Tensor:
    c = images.shape[1]
    if c == 3:
        return images
    if c == 1:
        return images.expand(-1, 3, -1, -1).contiguous()
    raise ValueError(f"Inception-v3 takes 1- or 3-channel images, got {c} channels")


@dataclass(frozen=True)
class RealImages:
    """The real images every score of a dataset compares against, and their cache name;
    ``floor``: the real images its real-data floor is measured with
    (:func:`harness.fidelity.fid_floor`), None where there is none."""

    images: torch.Tensor  # uint8 (N, C, H, W)
    name: str  # torch-fidelity cache name: fingerprint, which split, how many, content hash
    hash: str  # sha256 of the uint8 bytes (16 hex digits)
    floor: RealImages | None = None


def _part(dataset: LabelledImages, part: str) -> torch.Tensor:
    if part == "reference":
        return dataset.reference_data()
    if part == "heldout":
        return dataset.heldout_data()
    if part == "train":
        return dataset.train_data()
    raise ValueError(f"unknown reference {part!r}; one of {', '.join(REFERENCES)}")


def _image_keys(images: torch.Tensor) -> list[bytes]:
    """One digest per uint8 image: equal images, equal keys."""
    flat = images.reshape(images.shape[0], -1).contiguous().numpy()
    return [hashlib.sha1(row.tobytes()).digest() for row in flat]


def _named(images: torch.Tensor, prefix: str, dataset: LabelledImages, part: str) -> RealImages:
    digest = hashlib.sha256(images.numpy().tobytes()).hexdigest()[:16]
    name = f"{prefix}-{dataset.fingerprint()[:16]}-{part}-{images.shape[0]}-{digest}"
    return RealImages(images=images, name=name, hash=digest)


def real_images(dataset: LabelledImages, reference: Reference = "reference",
                n: int = 10_000, seed: int = 0, floor: bool = False) -> RealImages:
    """Up to ``n`` real images of ``dataset`` (a seeded random subset when there are more).

    ``reference="reference"`` (the default) compares with the dataset's
    :meth:`~harness.data.LabelledImages.reference_data`, disjoint from the images the
    harness's classifier trains on; ``"heldout"`` with its held-out images (never trained
    on by anyone); ``"train"`` with the images the GAN learns from -- with the ``mnist``
    datasets those include the classifier's training images, which flatters memorisation.

    ``floor=True`` also collects the floor set (:attr:`RealImages.floor`): the held-out
    images (the reference part's, for ``reference="heldout"``) not in the whole reference
    part, compared by content; None when fewer than 2 are left.
    """
    part = _part(dataset, reference)
    data = part
    if data.shape[0] > n:
        idx = torch.randperm(data.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
        data = data[idx.sort().values]
    real = _named(to_uint8(data), "real", dataset, reference)
    if not floor:
        return real
    floor_part = "reference" if reference == "heldout" else "heldout"
    candidates = to_uint8(_part(dataset, floor_part))
    taken = set(_image_keys(to_uint8(part)))
    keep = torch.tensor([k not in taken for k in _image_keys(candidates)], dtype=torch.bool)
    if int(keep.sum()) < 2:
        return real
    floor_set = _named(candidates[keep].contiguous(), "floor", dataset, floor_part)
    return RealImages(images=real.images, name=real.name, hash=real.hash, floor=floor_set)
