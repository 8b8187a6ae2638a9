"""``packing``: PacGAN (Lin et al. 2018) -- the discriminator judges m samples at once.

D is rebuilt by the model for inputs of m samples concatenated along the first data
dimension (features for vectors, channels for images) and every batch D sees is packed
into batch/m packs of m real or m generated samples. The batch size must be divisible
by m.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.data import Dataset
from harness.losses import Loss
from harness.models import GANPair, Model
from harness.registry import register_trick
from harness.tricks import Trick
from harness.vector.stacking import auto_devices, stack_networks


class PackedShape(Dataset):
    """A stand-in dataset with the packed sample shape, to build the packed discriminator."""

    def __init__(self, inner: Dataset, m: int):
        self.inner, self.m = inner, m

    @property
    def shape(self) -> tuple[int, ...]:
        first, *rest = self.inner.shape
        return (first * self.m, *rest)

    def train_data(self) -> torch.Tensor:
        raise NotImplementedError("a shape-only stand-in")


def pack(x: torch.Tensor, m: int, batch_dim: int = 0) -> torch.Tensor:
    """(..., n, d0, ...) -> (..., n/m, m*d0, ...): consecutive samples side by side. The
    batch is dimension ``batch_dim`` (1 for stacked copies, ``[N, n, d0, ...]``)."""
    n = x.shape[batch_dim]
    if n % m:
        raise ValueError(f"packing m={m} needs batches divisible by {m}, got {n} samples")
    return x.reshape(*x.shape[:batch_dim], n // m, m * x.shape[batch_dim + 1],
                     *x.shape[batch_dim + 2:])


class PackedDiscriminator(nn.Module):
    def __init__(self, inner: nn.Module, m: int):
        super().__init__()
        self.inner, self.m = inner, m

    @classmethod
    def stack_copies(cls, copies: list[PackedDiscriminator]) -> StackedPacked:
        """The copies as one stacked network: their inner discriminators stacked
        (:func:`harness.vector.stacking.stack_networks`), fed packed inputs."""
        if len({d.m for d in copies}) != 1:
            raise ValueError("cannot stack packed discriminators with different m")
        return StackedPacked(stack_networks([d.inner for d in copies]), copies[0].m)

    def features(self, x: torch.Tensor, layer: int = -1) -> torch.Tensor:
        return self.inner.features(pack(x, self.m), layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(pack(x, self.m))


class StackedPacked(nn.Module):
    """``N`` packed discriminators: each copy's batch ``[N, batch, d0, ...]`` packed as
    :func:`pack` packs it (``[N, batch/m, m*d0, ...]``, the same memory order per copy),
    then the stacked inner discriminators."""

    def __init__(self, inner: nn.Module, m: int):
        super().__init__()
        self.inner, self.m = inner, m
        self.auto_devices = auto_devices(inner)

    @property
    def n_copies(self) -> int:
        return self.inner.n_copies

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(pack(x, self.m, batch_dim=1))

    def copy_state(self, k: int) -> dict[str, torch.Tensor]:
        return {f"inner.{key}": v for key, v in self.inner.copy_state(k).items()}


@register_trick("packing")
class Packing(Trick):
    """PacGAN: D sees m samples concatenated (default m=2); batch size divisible by m."""

    changes = frozenset({"d_body"})
    requires = frozenset({"d_plain"})
    #: only the discriminator's architecture changes (in ``setup``): copies stack
    vectorizable = True

    def __init__(self, m: int = 2):
        if m < 2:
            raise ValueError(f"m must be >= 2 (m=1 is no packing), got {m}")
        self.m = m

    def check_train(self, train) -> None:
        if train.batch_size % self.m:
            lower = train.batch_size - train.batch_size % self.m
            near = [b for b in (lower, lower + self.m) if b > 0]
            raise ValueError(f"train.batch_size {train.batch_size} is not divisible by m={self.m} "
                             f"(packs of {self.m} samples); allowed: a multiple of {self.m}, "
                             f"e.g. {' or '.join(map(str, near))}")

    def setup(self, gan: GANPair, loss: Loss, dataset: Dataset, model: Model) -> None:
        packed = model.build(PackedShape(dataset, self.m)).discriminator
        gan.discriminator = PackedDiscriminator(packed, self.m)
