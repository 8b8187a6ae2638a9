"""``infogan``: InfoGAN (Chen et al. 2016) on the DCGAN networks.

The latent is noise ``z`` (``z_dim``, standard normal) followed by the codes: each
categorical code (default one with 10 values) as a one-hot block drawn uniformly, then
``continuous`` codes drawn from U(-1, 1). The Q network is a head on the
discriminator's last feature map (it shares every convolution); D returns the
adversarial logit and Q's outputs together.

The mutual-information lower bound is estimated on every batch of generated samples
and added, with weight ``lambda_cat`` (categorical, cross-entropy on raw logits) and
``lambda_cont`` (continuous: Gaussian negative log-likelihood with a predicted mean and
log-variance, or mean squared error with ``cont_loss: mse``), to both the D loss (which
trains Q and the shared body) and the G loss -- as in the paper's official code. Its
value is recorded as ``loss_q``.

``arch`` picks the networks: ``dcgan`` (default) reuses :mod:`harness.builtin.dcgan` with Q as
a hidden layer on D's last feature map; ``paper`` is the InfoGAN paper's MNIST
architecture (Chen et al. 2016, appendix C.1), see :class:`PaperGenerator` and
:class:`PaperDiscriminator`, with ``ngf``/``ndf`` as the width of the convolution next
to the image (64 in the paper) and ``fc_hidden`` the fully connected width (1024).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from harness.builtin.cgan import class_grid
from harness.builtin.dcgan import ConvDiscriminator, ConvGenerator, dcgan_init, image_shape
from harness.data import Dataset
from harness.models import GANPair, Grid, Model
from harness.registry import register_model

TRAVERSAL = torch.linspace(-2, 2, 9)  # continuous code values of the traversal grids


class PaperGenerator(nn.Module):
    """InfoGAN-paper MNIST generator: z -> FC ``fc_hidden`` -> BN -> ReLU -> FC
    ``2 ngf x (side/4)^2`` -> BN -> ReLU -> upconv ``ngf`` 4x4 s2 -> BN -> ReLU -> upconv
    ``channels`` 4x4 s2 -> tanh (the paper: fc_hidden 1024, ngf 64)."""

    def __init__(self, z_in: int, channels: int, side: int, ngf: int, fc_hidden: int):
        super().__init__()
        self.start, self.width = side // 4, 2 * ngf
        self.fc = nn.Sequential(
            nn.Linear(z_in, fc_hidden, bias=False), nn.BatchNorm1d(fc_hidden), nn.ReLU(True),
            nn.Linear(fc_hidden, self.width * self.start ** 2, bias=False),
            nn.BatchNorm1d(self.width * self.start ** 2), nn.ReLU(True))
        self.conv = nn.Sequential(
            nn.ConvTranspose2d(self.width, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf),
            nn.ReLU(True), nn.ConvTranspose2d(ngf, channels, 4, 2, 1), nn.Tanh())
        dcgan_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.conv(self.fc(z).view(z.shape[0], self.width, self.start, self.start))


class PaperDiscriminator(nn.Module):
    """InfoGAN-paper MNIST discriminator with its Q head: conv ``ndf`` 4x4 s2 -> lReLU ->
    conv ``2 ndf`` 4x4 s2 -> BN -> lReLU -> FC ``fc_hidden`` -> BN -> lReLU, shared; then
    FC 1 (the adversarial logit) and, for Q, FC ``q_hidden`` -> BN -> lReLU -> FC
    ``extra``. Returns ``(n, 1 + extra)``, the logit in column 0. :meth:`features` exposes
    the three shared blocks."""

    def __init__(self, channels: int, side: int, ndf: int, fc_hidden: int, extra: int,
                 q_hidden: int):
        super().__init__()
        flat = 2 * ndf * (side // 4) ** 2
        self.blocks = nn.ModuleList([
            nn.Sequential(nn.Conv2d(channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)),
            nn.Sequential(nn.Conv2d(ndf, 2 * ndf, 4, 2, 1, bias=False),
                          nn.BatchNorm2d(2 * ndf), nn.LeakyReLU(0.2, True)),
            nn.Sequential(nn.Flatten(1), nn.Linear(flat, fc_hidden, bias=False),
                          nn.BatchNorm1d(fc_hidden), nn.LeakyReLU(0.2, True)),
        ])
        self.head = nn.Linear(fc_hidden, 1)
        self.q = nn.Sequential(nn.Linear(fc_hidden, q_hidden, bias=False),
                               nn.BatchNorm1d(q_hidden), nn.LeakyReLU(0.2, True),
                               nn.Linear(q_hidden, extra))
        dcgan_init(self)

    def features(self, x: torch.Tensor, layer: int = -1) -> torch.Tensor:
        """Flattened output of shared block ``layer`` (Python indexing; -1 = the FC layer)."""
        n = len(self.blocks)
        if not -n <= layer < n:
            raise ValueError(f"layer {layer} out of range for {n} shared blocks")
        for block in self.blocks[:layer % n + 1]:
            x = block(x)
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        return torch.cat([self.head(h), self.q(h)], dim=1)


class InfoCodes:
    """The latent layout ``[z | one-hot cat_1 | ... | cont]`` and the MI loss on Q's outputs."""

    def __init__(self, z_dim: int, categorical: tuple[int, ...], continuous: int,
                 lambda_cat: float, lambda_cont: float, cont_loss: str):
        self.z_dim, self.categorical, self.continuous = z_dim, categorical, continuous
        self.lambda_cat, self.lambda_cont, self.cont_loss = lambda_cat, lambda_cont, cont_loss
        self.width = z_dim + sum(categorical) + continuous
        self.q_outputs = sum(categorical) + continuous * (2 if cont_loss == "gaussian_nll" else 1)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        dev = generator.device
        parts = [torch.randn(n, self.z_dim, generator=generator, device=dev)]
        for k in self.categorical:
            idx = torch.randint(0, k, (n,), generator=generator, device=dev)
            parts.append(F.one_hot(idx, k).float())
        if self.continuous:
            parts.append(torch.rand(n, self.continuous, generator=generator, device=dev) * 2 - 1)
        return torch.cat(parts, dim=1)

    def cat_slices(self) -> list[slice]:
        out, start = [], self.z_dim
        for k in self.categorical:
            out.append(slice(start, start + k))
            start += k
        return out

    def cont_slice(self) -> slice:
        start = self.z_dim + sum(self.categorical)
        return slice(start, start + self.continuous)

    def loss(self, aux: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        total = aux.new_zeros(())
        q_at = 0
        for sl in self.cat_slices():
            k = sl.stop - sl.start
            total = total + self.lambda_cat * F.cross_entropy(aux[:, q_at:q_at + k],
                                                              z[:, sl].argmax(dim=1))
            q_at += k
        if self.continuous:
            target = z[:, self.cont_slice()]
            mean = aux[:, q_at:q_at + self.continuous]
            if self.cont_loss == "mse":
                cont = F.mse_loss(mean, target)
            else:
                log_var = aux[:, q_at + self.continuous:q_at + 2 * self.continuous].clamp(-8, 8)
                cont = 0.5 * ((target - mean) ** 2 * torch.exp(-log_var) + log_var
                              + math.log(2 * math.pi)).sum(dim=1).mean()
            total = total + self.lambda_cont * cont
        return total

    def codes(self, z: torch.Tensor) -> torch.Tensor | None:
        if not self.categorical:
            return None
        return z[:, self.cat_slices()[0]].argmax(dim=1)


@register_model("infogan")
class InfoGAN(Model):
    """InfoGAN with categorical (default [10]) and continuous (default 2) codes, on the
    DCGAN networks (``arch: dcgan``) or the paper's MNIST networks (``arch: paper``)."""

    family = "infogan"

    def __init__(
        self,
        z_dim: int = 62,
        categorical: tuple[int, ...] = (10,),
        continuous: int = 2,
        lambda_cat: float = 1.0,
        lambda_cont: float = 0.1,
        cont_loss: Literal["gaussian_nll", "mse"] = "gaussian_nll",
        ngf: int = 64,
        ndf: int = 64,
        q_hidden: int = 128,
        grid_rows: int = 8,
        arch: Literal["dcgan", "paper"] = "dcgan",
        fc_hidden: int = 1024,
    ):
        categorical = tuple(categorical)
        if not categorical and continuous == 0:
            raise ValueError("an InfoGAN needs at least one code: give 'categorical' (a list of "
                             "value counts, e.g. [10]) and/or 'continuous' > 0; both are empty")
        if any(k < 2 for k in categorical):
            raise ValueError(f"every categorical code needs >= 2 values, got {list(categorical)}")
        if continuous < 0:
            raise ValueError(f"continuous must be >= 0, got {continuous}")
        if lambda_cat < 0 or lambda_cont < 0:
            raise ValueError("lambda_cat and lambda_cont must be >= 0")
        if min(z_dim, ngf, ndf, q_hidden, grid_rows, fc_hidden) < 1:
            raise ValueError("z_dim, ngf, ndf, q_hidden, grid_rows and fc_hidden must be >= 1")
        if arch not in ("dcgan", "paper"):
            raise ValueError(f"arch must be 'dcgan' or 'paper', got {arch!r}")
        self.codes = InfoCodes(z_dim, categorical, continuous, lambda_cat, lambda_cont, cont_loss)
        self.ngf, self.ndf, self.q_hidden, self.grid_rows = ngf, ndf, q_hidden, grid_rows
        self.arch, self.fc_hidden = arch, fc_hidden

    def capabilities(self) -> frozenset[str]:
        caps = {"g_plain", "g_batchnorm", "d_features"}
        return frozenset(caps | ({"categorical_code"} if self.codes.categorical else set()))

    def check(self, dataset: Dataset) -> None:
        image_shape(dataset)

    def build(self, dataset: Dataset) -> GANPair:
        channels, side = image_shape(dataset)
        c = self.codes
        if self.arch == "paper":
            return GANPair(
                generator=PaperGenerator(c.width, channels, side, self.ngf, self.fc_hidden),
                discriminator=PaperDiscriminator(channels, side, self.ndf, self.fc_hidden,
                                                 c.q_outputs, self.q_hidden),
                z_dim=c.width, aux=c,
            )
        return GANPair(
            generator=ConvGenerator(c.width, channels, side, self.ngf),
            discriminator=ConvDiscriminator(channels, side, self.ndf, extra=c.q_outputs,
                                            extra_hidden=self.q_hidden),
            z_dim=c.width, aux=c,
        )

    def noise(self, n: int, z_dim: int, generator: torch.Generator) -> torch.Tensor:
        return self.codes.sample(n, generator)

    def grids(self, gan: GANPair, generator: torch.Generator) -> list[Grid]:
        """Rows of fixed noise x columns of the first categorical code's values (other
        codes at their first value / 0); then, per continuous code, a traversal from -2
        to 2 (columns) for each value of the first categorical code (rows)."""
        c = self.codes
        base = self.noise(self.grid_rows, c.width, generator)
        base[:, c.z_dim:] = 0
        for sl in c.cat_slices():
            base[:, sl.start] = 1.0
        out: list[Grid] = []
        if c.categorical:
            k, sl = c.categorical[0], c.cat_slices()[0]
            grid = class_grid(base, k, name="code_grid")
            z = grid.z.clone()
            z[:, sl] = F.one_hot(grid.labels, k).float()
            out.append(Grid("code_grid", z, k, None, grid.col_labels))
        rows = (F.one_hot(torch.arange(c.categorical[0]), c.categorical[0]).float()
                if c.categorical else None)
        n_rows = rows.shape[0] if rows is not None else self.grid_rows
        for j in range(c.continuous):
            z = base[:1].repeat(n_rows * len(TRAVERSAL), 1)
            if rows is not None:
                z[:, c.cat_slices()[0]] = rows.repeat_interleave(len(TRAVERSAL), dim=0)
            else:
                z[:, :c.z_dim] = base[:, :c.z_dim].repeat_interleave(len(TRAVERSAL), dim=0)
            z[:, c.cont_slice().start + j] = TRAVERSAL.repeat(n_rows)
            out.append(Grid(f"continuous_{j}", z, len(TRAVERSAL), None,
                            [f"{v:.1f}" for v in TRAVERSAL.tolist()]))
        return out
