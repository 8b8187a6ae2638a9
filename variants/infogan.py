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
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from harness.data import Dataset
from harness.models import GANPair, Grid, Model
from harness.registry import register_model
from variants.cgan import class_grid
from variants.dcgan import ConvDiscriminator, ConvGenerator, image_shape

TRAVERSAL = torch.linspace(-2, 2, 9)  # continuous code values of the traversal grids


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
    """DCGAN-based InfoGAN: categorical (default [10]) and continuous (default 2) codes."""

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
        if min(z_dim, ngf, ndf, q_hidden, grid_rows) < 1:
            raise ValueError("z_dim, ngf, ndf, q_hidden and grid_rows must be >= 1")
        self.codes = InfoCodes(z_dim, categorical, continuous, lambda_cat, lambda_cont, cont_loss)
        self.ngf, self.ndf, self.q_hidden, self.grid_rows = ngf, ndf, q_hidden, grid_rows

    def capabilities(self) -> frozenset[str]:
        caps = {"g_plain", "g_batchnorm", "d_features"}
        return frozenset(caps | ({"categorical_code"} if self.codes.categorical else set()))

    def check(self, dataset: Dataset) -> None:
        image_shape(dataset)

    def build(self, dataset: Dataset) -> GANPair:
        channels, side = image_shape(dataset)
        c = self.codes
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
