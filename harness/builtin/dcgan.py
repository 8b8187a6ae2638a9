"""``dcgan``: the deep convolutional GAN of Radford et al. (2016).

Generator: a transposed convolution from z (as a 1x1 map) to a small square, then
stride-2 transposed convolutions that double the side, each followed by batch norm and
ReLU, and a tanh output. Discriminator: stride-2 convolutions with LeakyReLU(0.2) (batch
norm on all but the first), no pooling and no fully connected hidden layer; the last
convolution covers the remaining square and gives one logit. Weights start from
N(0, 0.02) (batch-norm scales from N(1, 0.02)), as in the paper.

``d_norm`` picks D's normalisation, the axis Kurach et al. (2019) cross with the losses:
``batch`` (the paper's), ``layer`` (per sample over channels, height and width with a
per-channel scale and offset, as compare_gan's layer norm; ``nn.GroupNorm`` with one group)
or ``none``. A gradient penalty is per sample, and batch norm makes each sample's output
depend on its batch, so WGAN-GP's authors drop it from the critic (``layer`` or ``none``).

Supported image sides and their layouts (start side, doublings):
28 -> 7, 2 (MNIST at its native size); 32 -> 4, 3; 64 -> 4, 4 (DCGAN-64). Any channel
count (1 for MNIST, 3 for Stacked MNIST). The networks here are reused by ``cgan``
(conv arch) and ``infogan``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from harness.data import Dataset
from harness.models import GANPair, Model
from harness.registry import register_model
from harness.vector.conv import StackedConvNet

#: image side -> (side of the first feature map, number of stride-2 stages)
LAYOUTS = {28: (7, 2), 32: (4, 3), 64: (4, 4)}


def image_shape(dataset: Dataset) -> tuple[int, int]:
    """``(channels, side)`` of a square-image dataset; ValueError naming what is supported."""
    shape = tuple(dataset.shape)
    if len(shape) != 3 or shape[1] != shape[2] or shape[1] not in LAYOUTS:
        raise ValueError(
            f"convolutional models need square images of side {', '.join(map(str, LAYOUTS))} "
            f"(shape (C, H, W)); the dataset gives samples of shape {shape}")
    return shape[0], shape[1]


def dcgan_init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class ConvGenerator(nn.Module):
    """z (n, z_in) -> images (n, channels, side, side) in [-1, 1]."""

    def __init__(self, z_in: int, channels: int, side: int, ngf: int):
        super().__init__()
        start, stages = LAYOUTS[side]
        width = ngf * 2 ** (stages - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_in, width, start, 1, 0, bias=False),
                                   nn.BatchNorm2d(width), nn.ReLU(True)]
        for _ in range(stages - 1):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], z.shape[1], 1, 1))

    @classmethod
    def stack_copies(cls, copies: Sequence[ConvGenerator]) -> StackedConvNet:
        """The copies as one network of grouped convolutions (:mod:`harness.vector.stacking`)."""
        return StackedConvNet.from_layers("generator", [
            [(f"net.{i}.", m) for i, m in enumerate(g.net)] for g in copies])


#: D's normalisations (``DCGAN(d_norm=...)``)
D_NORMS = ("batch", "layer", "none")


def _d_norm(norm: str, width: int) -> list[nn.Module]:
    """The normalisation layer after a D convolution of ``width`` channels (none: [])."""
    if norm == "batch":
        return [nn.BatchNorm2d(width)]
    if norm == "layer":  # one group: per sample over (C, H, W), scale and offset per channel
        return [nn.GroupNorm(1, width)]
    return []


class ConvDiscriminator(nn.Module):
    """Images -> one logit per image, or ``(n, 1 + extra)`` with an auxiliary head.

    The auxiliary head (InfoGAN's Q) shares every convolution: a hidden layer of
    ``extra_hidden`` units on the flattened last feature map, then ``extra`` outputs.
    :meth:`features` exposes the stride-2 blocks for feature matching and minibatch
    discrimination.
    """

    def __init__(self, channels: int, side: int, ndf: int, norm: str = "batch",
                 extra: int = 0, extra_hidden: int = 128):
        super().__init__()
        if norm not in D_NORMS:
            raise ValueError(f"norm must be one of {', '.join(D_NORMS)}, got {norm!r}")
        start, stages = LAYOUTS[side]
        blocks = [nn.Sequential(nn.Conv2d(channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True))]
        width = ndf
        for _ in range(stages - 1):
            layer = _d_norm(norm, width * 2)
            blocks.append(nn.Sequential(nn.Conv2d(width, width * 2, 4, 2, 1, bias=not layer),
                                        *layer, nn.LeakyReLU(0.2, True)))
            width *= 2
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(width, 1, start, 1, 0)
        self.extra = extra
        if extra:
            self.q = nn.Sequential(nn.Flatten(1), nn.Linear(width * start * start, extra_hidden),
                                   nn.LeakyReLU(0.2, True), nn.Linear(extra_hidden, extra))
        dcgan_init(self)

    def _body(self, x: torch.Tensor, upto: int) -> torch.Tensor:
        for block in self.blocks[:upto]:
            x = block(x)
        return x

    def features(self, x: torch.Tensor, layer: int = -1) -> torch.Tensor:
        """Flattened output of stride-2 block ``layer`` (Python indexing; -1 = the last)."""
        n = len(self.blocks)
        if not -n <= layer < n:
            raise ValueError(f"layer {layer} out of range for {n} convolutional blocks")
        return self._body(x, layer % n + 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self._body(x, len(self.blocks))
        logit = self.head(h).flatten(1)
        if not self.extra:
            return logit.squeeze(1)
        return torch.cat([logit, self.q(h)], dim=1)

    @classmethod
    def stack_copies(cls, copies: Sequence[ConvDiscriminator]) -> StackedConvNet:
        """The copies as one network of grouped convolutions (:mod:`harness.vector.stacking`);
        ValueError with an auxiliary head, whose outputs the stacked network does not give."""
        if any(d.extra for d in copies):
            raise ValueError("cannot stack a discriminator with an auxiliary head (InfoGAN's Q)")
        return StackedConvNet.from_layers("discriminator", [
            [(f"blocks.{b}.{i}.", m) for b, block in enumerate(d.blocks)
             for i, m in enumerate(block)] + [("head.", d.head)]
            for d in copies])


@register_model("dcgan")
class DCGAN(Model):
    """DCGAN for square images of side 28, 32 or 64 with any channel count."""

    family = "dcgan"
    #: the networks stack (``stack_copies``): a study's ``vectorize`` may train copies as one
    vectorizable = True

    def __init__(self, z_dim: int = 100, ngf: int = 64, ndf: int = 64,
                 d_norm: Literal["batch", "layer", "none"] = "batch"):
        for key, value in (("z_dim", z_dim), ("ngf", ngf), ("ndf", ndf)):
            if value < 1:
                raise ValueError(f"{key} must be >= 1, got {value}")
        self.z_dim, self.ngf, self.ndf, self.d_norm = z_dim, ngf, ndf, d_norm

    def capabilities(self) -> frozenset[str]:
        return frozenset({"d_features", "g_batchnorm", "g_plain", "d_plain"})

    def check(self, dataset: Dataset) -> None:
        image_shape(dataset)

    def build(self, dataset: Dataset) -> GANPair:
        channels, side = image_shape(dataset)
        return GANPair(
            generator=ConvGenerator(self.z_dim, channels, side, self.ngf),
            discriminator=ConvDiscriminator(channels, side, self.ndf, self.d_norm),
            z_dim=self.z_dim,
        )
