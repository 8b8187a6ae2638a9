"""``cgan``: the conditional GAN of Mirza & Osindero (2014).

The class label is given to both networks. ``arch: mlp`` (the paper's setting)
concatenates a one-hot label to z and to the flattened image; ``arch: conv`` uses the
DCGAN networks, with the one-hot label appended to z and given to D as ``n_classes``
constant label planes stacked on the image channels (the projection-channel variant).
Samples are drawn for chosen classes; training draws fake labels uniformly.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from harness.builtin.dcgan import ConvDiscriminator, ConvGenerator, image_shape
from harness.builtin.mlp import MLPDiscriminator, MLPGenerator
from harness.data import Dataset
from harness.models import GANPair, Grid, Model
from harness.registry import register_model


class LabelledGenerator(nn.Module):
    """G(z, y) = inner([z, onehot(y)])."""

    def __init__(self, inner: nn.Module, n_classes: int):
        super().__init__()
        self.inner, self.n_classes = inner, n_classes

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.cat([z, F.one_hot(y, self.n_classes).to(z.dtype)], dim=1))


class LabelledDiscriminator(nn.Module):
    """D(x, y): the one-hot label joins the flattened image (mlp) or as planes (conv)."""

    def __init__(self, inner: nn.Module, n_classes: int, planes: bool):
        super().__init__()
        self.inner, self.n_classes, self.planes = inner, n_classes, planes

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(y, self.n_classes).to(x.dtype)
        if self.planes:
            maps = onehot[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
            return self.inner(torch.cat([x, maps], dim=1))
        return self.inner(torch.cat([x.flatten(1), onehot], dim=1))


def class_grid(z_rows: torch.Tensor, n_classes: int, name: str = "classes") -> Grid:
    """Rows are noise vectors, columns are classes 0..n_classes-1 (seed 001's layout)."""
    rows = z_rows.shape[0]
    z = z_rows.repeat_interleave(n_classes, dim=0)
    labels = torch.arange(n_classes).repeat(rows)
    return Grid(name=name, z=z, labels=labels, ncol=n_classes,
                col_labels=[str(c) for c in range(n_classes)])


@register_model("cgan")
class ConditionalGAN(Model):
    """Conditional GAN; arch 'mlp' (one-hot concatenation) or 'conv' (DCGAN + label planes)."""

    family = "cgan"

    def __init__(
        self,
        arch: Literal["mlp", "conv"] = "mlp",
        z_dim: int = 100,
        g_hidden: tuple[int, ...] = (256, 512, 1024),
        d_hidden: tuple[int, ...] = (1024, 512, 256),
        d_dropout: float = 0.3,
        g_batchnorm: bool = True,
        ngf: int = 64,
        ndf: int = 64,
        grid_rows: int = 8,
    ):
        if z_dim < 1 or ngf < 1 or ndf < 1 or grid_rows < 1:
            raise ValueError("z_dim, ngf, ndf and grid_rows must be >= 1")
        if not g_hidden or not d_hidden or min(*g_hidden, *d_hidden) < 1:
            raise ValueError("g_hidden and d_hidden must be non-empty lists of positive widths")
        if not 0 <= d_dropout < 1:
            raise ValueError(f"d_dropout must be in [0, 1), got {d_dropout}")
        self.arch, self.z_dim = arch, z_dim
        self.g_hidden, self.d_hidden, self.d_dropout = tuple(g_hidden), tuple(d_hidden), d_dropout
        self.ngf, self.ndf, self.grid_rows = ngf, ndf, grid_rows
        self.g_batchnorm = g_batchnorm

    def capabilities(self) -> frozenset[str]:
        return frozenset({"conditional"})

    def check(self, dataset: Dataset) -> None:
        if not dataset.n_classes:
            raise ValueError(f"cgan needs a labelled dataset (one with classes); "
                             f"{type(dataset).__name__} has none")
        if self.arch == "conv":
            image_shape(dataset)

    def build(self, dataset: Dataset) -> GANPair:
        self.check(dataset)
        k = int(dataset.n_classes)
        shape = tuple(dataset.shape)
        if self.arch == "conv":
            channels, side = image_shape(dataset)
            g = ConvGenerator(self.z_dim + k, channels, side, self.ngf)
            d = ConvDiscriminator(channels + k, side, self.ndf)
        else:
            g = MLPGenerator(self.z_dim + k, self.g_hidden, shape, self.g_batchnorm,
                             "leaky_relu", "tanh")
            d = MLPDiscriminator(math.prod(shape) + k, self.d_hidden, 1, "leaky_relu",
                                 self.d_dropout)
        return GANPair(generator=LabelledGenerator(g, k),
                       discriminator=LabelledDiscriminator(d, k, planes=self.arch == "conv"),
                       z_dim=self.z_dim, n_classes=k)

    def grids(self, gan: GANPair, generator: torch.Generator) -> list[Grid]:
        z = torch.randn(self.grid_rows, gan.z_dim, generator=generator)
        return [class_grid(z, int(gan.n_classes))]
