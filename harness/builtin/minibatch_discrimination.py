"""``minibatch_discrimination``: D sees how close each sample is to the rest of its batch.

Salimans et al. 2016, 3.2: features f(x_i) in R^A are multiplied by a tensor T in
R^{A x B x C} giving M_i in R^{B x C}; c_b(x_i, x_j) = exp(-||M_{i,b} - M_{j,b}||_L1);
o(x_i)_b = sum_j c_b(x_i, x_j) (j != i); o(x_i) in R^B is concatenated to f(x_i) before
D's last layer. Real and generated batches are scored separately, as D sees them.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.data import Dataset
from harness.losses import Loss
from harness.models import GANPair, Model
from harness.registry import register_trick
from harness.tricks import Trick


class MinibatchDiscrimination(nn.Module):
    """Maps (n, A) features to (n, B) closeness statistics."""

    def __init__(self, n_in: int, b: int, c: int):
        super().__init__()
        self.b, self.c = b, c
        self.T = nn.Parameter(torch.randn(n_in, b * c) * 0.1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        m = (f @ self.T).view(-1, self.b, self.c)                    # (n, B, C)
        l1 = (m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(dim=-1)    # (n, n, B)
        return torch.exp(-l1).sum(dim=0) - 1.0                       # minus c_b(x_i, x_i) = 1


class WithMinibatchFeatures(nn.Module):
    """A discriminator whose last layer also sees the minibatch-discrimination features."""

    def __init__(self, inner: nn.Module, n_features: int, b: int, c: int):
        super().__init__()
        self.inner = inner
        self.mbd = MinibatchDiscrimination(n_features, b, c)
        self.head = nn.Linear(n_features + b, 1)

    def features(self, x: torch.Tensor, layer: int = -1) -> torch.Tensor:
        return self.inner.features(x, layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.inner.features(x)
        return self.head(torch.cat([f, self.mbd(f)], dim=1)).squeeze(-1)


@register_trick("minibatch_discrimination")
class MinibatchDiscriminationTrick(Trick):
    """Adds a minibatch-discrimination layer (B kernels of C dims) before D's last layer."""

    changes = frozenset({"d_body"})
    requires = frozenset({"d_features", "d_plain"})

    def __init__(self, b: int = 16, c: int = 8):
        if b < 1 or c < 1:
            raise ValueError(f"b and c must be >= 1, got b={b}, c={c}")
        self.b, self.c = b, c

    def setup(self, gan: GANPair, loss: Loss, dataset: Dataset, model: Model) -> None:
        d = gan.discriminator
        with torch.no_grad():
            n_features = d.features(torch.zeros(2, *dataset.shape)).shape[1]
        gan.discriminator = WithMinibatchFeatures(d, n_features, self.b, self.c)
