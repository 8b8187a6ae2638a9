"""N copies of a DCGAN generator or discriminator as one grouped-convolution network.

The vectorized GAN (:mod:`harness.vector.engine`) stacks ``N`` copies of a network along a
leading copy dimension. For a convolutional network that stacks through
:class:`StackedConvNet` (its class lists its layers: :mod:`harness.vector.stacking`) the
copies' activations travel as one image batch with the copies side by side in the channel
dimension, ``[batch, N * C, H, W]`` (copy ``k`` owns channels ``k*C .. (k+1)*C - 1``):

* a convolution is one ``conv2d`` / ``conv_transpose2d`` with ``groups=N``: group ``k``
  sees only copy ``k``'s input channels and owns copy ``k``'s weights, so it is exactly
  copy ``k``'s layer (:class:`StackedConv`);
* batch norm over the ``N * C`` channels normalises each channel over (batch, H, W), which
  is copy ``k``'s ``BatchNorm2d`` statistic for its channels, running averages included
  (:class:`StackedBatchNorm`);
* ReLU, LeakyReLU and Tanh are element-wise.

Every parameter is stored with the copy first (``[N, out, in, kh, kw]``, ``[N, C]``), as
:class:`~harness.vector.adam.StackedAdam` and the per-copy gradient norms need, and viewed
as the grouped layer's weight in ``forward`` (a free view). The interface is
:class:`~harness.vector.linear.StackedMLP`'s: ``forward`` takes and returns copy-first tensors
(``z`` ``[N, batch, z_dim]`` -> images ``[N, batch, C, H, W]``; images -> logits
``[N, batch]``), and :meth:`StackedConvNet.copy_state` returns copy ``k`` as the single
module's ``state_dict``.

Numerics: a grouped convolution is a different kernel from the single-copy one (oneDNN
on the CPU, cuDNN on a GPU), so copy ``k`` equals its single-copy network to float32
rounding (about 1e-6 relative per layer), not bit for bit; batch norm then amplifies such
differences slowly over training steps, as between any two runs that differ in the last
bit. The tests check the first steps to a tolerance.

Scope: networks of convolutions, transposed convolutions, ``BatchNorm2d`` and the
element-wise activations above, called as ``G(z)`` / ``D(x)`` (no labels, no auxiliary head).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh)


class StackedConv(nn.Module):
    """``N`` ``Conv2d`` (or ``ConvTranspose2d``) layers of one shape as one grouped layer."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, transposed: bool,
                 stride: tuple[int, int], padding: tuple[int, int]):
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = None if bias is None else nn.Parameter(bias)
        self.transposed, self.stride, self.padding = transposed, stride, padding

    @classmethod
    def from_convs(cls, convs: Sequence[nn.Module]) -> StackedConv:
        first = convs[0]
        transposed = isinstance(first, nn.ConvTranspose2d)
        for c in convs:
            if (type(c) is not type(first) or c.weight.shape != first.weight.shape
                    or (c.bias is None) != (first.bias is None) or c.stride != first.stride
                    or c.padding != first.padding or c.groups != 1 or c.dilation != (1, 1)
                    or (transposed and c.output_padding != (0, 0))):
                raise ValueError("cannot stack convolutions of different shapes or settings")
        with torch.no_grad():
            weight = torch.stack([c.weight.detach() for c in convs]).contiguous()
            bias = (None if first.bias is None
                    else torch.stack([c.bias.detach() for c in convs]).contiguous())
        return cls(weight, bias, transposed, tuple(first.stride), tuple(first.padding))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        n = self.weight.shape[0]
        w = self.weight.flatten(0, 1)  # conv: [N*out, in, k, k]; transposed: [N*in, out, k, k]
        b = None if self.bias is None else self.bias.flatten()
        if self.transposed:
            return F.conv_transpose2d(h, w, b, self.stride, self.padding, groups=n)
        return F.conv2d(h, w, b, self.stride, self.padding, groups=n)

    def copy_state(self, k: int, prefix: str) -> dict[str, torch.Tensor]:
        out = {f"{prefix}weight": self.weight[k].detach().clone()}
        if self.bias is not None:
            out[f"{prefix}bias"] = self.bias[k].detach().clone()
        return out


class StackedBatchNorm(nn.Module):
    """``N`` ``BatchNorm2d(C)`` as one batch norm over ``N * C`` channels.

    ``weight``/``bias`` ``[N, C]`` (trained), ``running_mean``/``running_var`` ``[N, C]``
    updated in place through flat views, exactly as each copy's module would update its own
    (``momentum`` and ``eps`` are the copies', which must agree).
    """

    def __init__(self, norms: Sequence[nn.BatchNorm2d]):
        super().__init__()
        first = norms[0]
        for m in norms:
            if (m.num_features != first.num_features or m.eps != first.eps
                    or m.momentum != first.momentum or not m.affine
                    or not m.track_running_stats or m.momentum is None):
                raise ValueError("cannot stack batch norms of different settings "
                                 "(or without affine parameters, running stats or momentum)")
        with torch.no_grad():
            self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in norms]).contiguous())
            self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in norms]).contiguous())
            self.register_buffer("running_mean",
                                 torch.stack([m.running_mean for m in norms]).contiguous())
            self.register_buffer("running_var",
                                 torch.stack([m.running_var for m in norms]).contiguous())
            self.register_buffer("num_batches_tracked", first.num_batches_tracked.clone())
        self.eps, self.momentum = float(first.eps), float(first.momentum)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.num_batches_tracked.add_(1)
        return F.batch_norm(h, self.running_mean.view(-1), self.running_var.view(-1),
                            self.weight.flatten(), self.bias.flatten(), self.training,
                            self.momentum, self.eps)

    def copy_state(self, k: int, prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}weight": self.weight[k].detach().clone(),
                f"{prefix}bias": self.bias[k].detach().clone(),
                f"{prefix}running_mean": self.running_mean[k].clone(),
                f"{prefix}running_var": self.running_var[k].clone(),
                f"{prefix}num_batches_tracked": self.num_batches_tracked.clone()}


class StackedConvNet(nn.Module):
    """``N`` copies of one convolutional generator or discriminator (module docstring)."""

    #: devices on which ``vectorize: auto`` stacks such networks (:mod:`harness.vector.plan`):
    #: on a CPU grouped convolutions are compute-bound, N copies in one process ran at the
    #: rate of one trial per core (``benchmarks/vectorized.py --model dcgan``, 1.0x), so auto
    #: keeps such trials apart, where they use every core the study grants
    auto_devices = ("cuda",)

    def __init__(self, kind: str, layers: list[nn.Module], prefixes: list[str]):
        super().__init__()
        self.kind = kind
        self.layers = nn.ModuleList(layers)
        self.prefixes = prefixes

    @classmethod
    def from_layers(cls, kind: str,
                    copies: Sequence[Sequence[tuple[str, nn.Module]]]) -> StackedConvNet:
        """The stacked network of ``copies`` (each copy's layers in call order, with their
        state-dict prefixes): a ``"generator"`` (``z`` as a 1x1 map in, images out) or a
        ``"discriminator"`` (images in, one logit per image out of its last layer)."""
        if kind not in ("generator", "discriminator"):
            raise ValueError(f"kind must be 'generator' or 'discriminator', got {kind!r}")
        parsed = [list(c) for c in copies]
        if not parsed:
            raise ValueError("no modules to stack")
        if len({len(c) for c in parsed}) != 1:
            raise ValueError("the modules to stack differ in depth")
        layers: list[nn.Module] = []
        prefixes: list[str] = []
        for i, (prefix, first) in enumerate(parsed[0]):
            mods = [p[i][1] for p in parsed]
            if isinstance(first, (nn.Conv2d, nn.ConvTranspose2d)):
                layers.append(StackedConv.from_convs(mods))
            elif isinstance(first, nn.BatchNorm2d):
                layers.append(StackedBatchNorm(mods))
            elif isinstance(first, _ELEMENTWISE) and all(
                    type(m) is type(first) and m.extra_repr() == first.extra_repr() for m in mods):
                layers.append(first)
                prefix = ""
            else:
                raise ValueError(f"cannot stack {type(first).__name__} ({prefix.rstrip('.')})")
            prefixes.append(prefix)
        return cls(kind, layers, prefixes)

    @property
    def n_copies(self) -> int:
        return next(m for m in self.layers if isinstance(m, StackedConv)).weight.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, b = x.shape[0], x.shape[1]
        if self.kind == "generator":  # [N, B, z] -> [B, N*z, 1, 1]
            h = x.transpose(0, 1).reshape(b, n * x.shape[2], 1, 1)
        else:  # [N, B, C, H, W] -> [B, N*C, H, W]
            h = x.transpose(0, 1).reshape(b, n * x.shape[2], *x.shape[3:])
        for layer in self.layers:
            h = layer(h)
        if self.kind == "generator":  # [B, N*C, H, W] -> [N, B, C, H, W] (a view)
            return h.view(b, n, -1, *h.shape[2:]).transpose(0, 1)
        return h.view(b, n).t()  # the head's one logit per copy: [B, N] -> [N, B]

    def copy_state(self, k: int) -> dict[str, torch.Tensor]:
        """Copy ``k`` as the single-copy module's ``state_dict``."""
        out: dict[str, torch.Tensor] = {}
        for layer, prefix in zip(self.layers, self.prefixes):
            if prefix:
                out.update(layer.copy_state(k, prefix))
        return out


__all__ = ["StackedBatchNorm", "StackedConv", "StackedConvNet"]
