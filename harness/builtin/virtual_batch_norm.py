"""``virtual_batch_norm``: the generator normalises with a fixed reference batch (Salimans et al. 2016, 3.5).

A reference batch of latent codes is drawn once when the trial starts. Every batch-norm
layer of G becomes a virtual batch-norm layer. At each forward pass, the reference batch
goes through G first and every layer records its statistics. Each example is then
normalised with the statistics of the reference batch combined with that example
alone. The mean is ``(n_ref * mu_ref + x) / (n_ref + 1)``, and the second moment is
built the same way. An example's output therefore depends on the fixed reference,
never on the rest of its minibatch. The reference codes are a buffer of the generator, saved in its
checkpoint.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.data import Dataset
from harness.losses import Loss
from harness.models import GANPair, Model
from harness.registry import register_trick
from harness.tricks import Trick


class VirtualBatchNorm(nn.Module):
    """Replaces a BatchNorm1d/2d, keeping its affine weight and bias."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm):
        super().__init__()
        self.eps = bn.eps
        self.weight = bn.weight
        self.bias = bn.bias
        self.reference: tuple[torch.Tensor, torch.Tensor] | None = None
        self.recording = False
        self.n_ref = 0  # set by VBNGenerator

    def _dims(self, x: torch.Tensor) -> list[int]:
        return [0] + list(range(2, x.dim()))  # batch and spatial dims, per channel

    def _shape(self, x: torch.Tensor) -> list[int]:
        return [1, x.shape[1]] + [1] * (x.dim() - 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims, shape = self._dims(x), self._shape(x)
        if self.recording:  # the reference batch: normalised by its own statistics
            self.reference = (x.mean(dims), (x * x).mean(dims))
            mean, meansq = (r.view(shape) for r in self.reference)
        elif self.reference is None:
            raise RuntimeError("virtual batch norm used before its reference batch was recorded")
        else:  # each example: the reference statistics combined with the example alone
            spatial = dims[1:]
            xm = x.mean(spatial, keepdim=True) if spatial else x
            xsq = (x * x).mean(spatial, keepdim=True) if spatial else x * x
            k = self.n_ref
            mean = (k * self.reference[0].view(shape) + xm) / (k + 1)
            meansq = (k * self.reference[1].view(shape) + xsq) / (k + 1)
        var = (meansq - mean * mean).clamp_min(0)
        out = (x - mean) / torch.sqrt(var + self.eps)
        if self.weight is not None:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


class VBNGenerator(nn.Module):
    """Runs the reference batch through G before every forward pass, then the real input."""

    def __init__(self, inner: nn.Module, z_ref: torch.Tensor):
        super().__init__()
        self.inner = inner
        self.register_buffer("z_ref", z_ref)
        self.vbn = [m for m in inner.modules() if isinstance(m, VirtualBatchNorm)]
        for m in self.vbn:
            m.n_ref = z_ref.shape[0]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        for m in self.vbn:
            m.recording = True
        try:
            self.inner(self.z_ref)
        finally:
            for m in self.vbn:
                m.recording = False
        return self.inner(z)


def replace_batchnorm(module: nn.Module) -> int:
    """Swap every BatchNorm1d/2d below ``module`` for a VirtualBatchNorm; returns how many."""
    n = 0
    for name, child in module.named_children():
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)):
            setattr(module, name, VirtualBatchNorm(child))
            n += 1
        else:
            n += replace_batchnorm(child)
    return n


@register_trick("virtual_batch_norm")
class VirtualBatchNormTrick(Trick):
    """G's batch norm uses a fixed reference batch of ``ref_size`` codes (+ the current example)."""

    changes = frozenset({"g_normalisation"})
    requires = frozenset({"g_batchnorm", "g_plain"})

    def __init__(self, ref_size: int = 64, ref_seed: int = 0):
        if ref_size < 2:
            raise ValueError(f"ref_size must be >= 2, got {ref_size}")
        self.ref_size, self.ref_seed = ref_size, ref_seed

    def setup(self, gan: GANPair, loss: Loss, dataset: Dataset, model: Model) -> None:
        if replace_batchnorm(gan.generator) == 0:
            raise ValueError("virtual_batch_norm found no batch-norm layer in the generator")
        z_ref = model.noise(self.ref_size, gan.z_dim, torch.Generator().manual_seed(self.ref_seed))
        # z_ref is a buffer of the wrapped generator: it is saved with G's state_dict
        gan.generator = VBNGenerator(gan.generator, z_ref)
