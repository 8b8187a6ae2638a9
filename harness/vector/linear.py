"""Stacked linear networks: ``N`` copies of an MLP as one module of batched products.

:class:`StackedLinear` holds ``N`` ``nn.Linear`` layers of one shape (``weight``
``[N, out, in]``, ``bias`` ``[N, out]``) and applies them to ``[N, batch, in]`` with one
batched product; :class:`StackedMLP` chains such layers with the copies' element-wise
activations. On the CPU with MKL every copy's output and gradients are bit-equal to the
single layer's: :class:`StackedLinear` keeps ``nn.Linear``'s weight layout, computes the
weight gradient as ``F.linear``'s backward does, and a one-unit head's per copy (the
docstrings below say why each is needed). Other BLAS / CUDA: equal to float32 rounding.

A network class stacks through :class:`StackedMLP` by listing its layers
(:meth:`StackedMLP.from_layers`; :mod:`harness.vector.stacking`). Besides linear layers and
element-wise activations it stacks ``nn.BatchNorm1d`` (:class:`StackedBatchNorm1d`: each
copy normalised over its own batch by the single layer's own kernel) and any layer class
that says how its copies stack with a classmethod ``stack_layers(layers)`` (the ``mlp``
model's maxout: :class:`StackedMaxout`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: element-wise modules a stacked network applies unchanged to ``[N, batch, width]``
_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Identity)
#: the settings of ``nn.BatchNorm1d`` layers that must agree for them to stack
_NORM_SETTINGS = ("num_features", "eps", "momentum", "affine", "track_running_stats")


class _StackedLinearFunction(torch.autograd.Function):
    """``baddbmm(bias, x, weight^T)`` whose gradients are the single layer's products.

    ``F.linear``'s backward computes the weight gradient as ``grad^T @ x``
    (``mm_mat2_backward`` for the column-major ``weight.t()``); autograd's ``baddbmm``
    backward computes the batched one as ``x^T @ grad``, transposed. Those are other
    operand layouts, and MKL's AVX2 kernels (an Intel CPU without AVX-512, or
    ``MKL_ENABLE_INSTRUCTIONS=AVX2``) round them differently in the last bit. This
    backward computes ``bmm(grad^T, x)``, the single layer's product per copy, which also
    comes out in the weight's own ``[N, out, in]`` layout (autograd's is a transposed,
    non-contiguous view, and every later operation on it -- the sum of the gradients of D
    called on the real and on the fake batch, the Adam update -- runs over mixed strides).
    The input gradient ``bmm(grad, weight)`` and the bias gradient ``grad.sum(1)`` are the
    ones autograd computes. Not twice differentiable (no trick of the vectorized scope
    needs it).
    """

    # forward(ctx, ...) rather than forward + setup_context: with setup_context,
    # Function.apply binds the arguments through inspect.signature on every call, which
    # cost about a tenth of a one-copy MLP step on a CPU (benchmarks/vectorized.py)
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
                ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        grad_x = torch.bmm(grad, weight) if need_x else None
        grad_w = torch.bmm(grad.transpose(1, 2), x) if need_w else None
        grad_b = grad.sum(1) if need_b else None
        return grad_x, grad_w, grad_b


class _StackedHeadFunction(_StackedLinearFunction):
    """A one-unit layer (D's head): ``(weight @ x^T)^T + bias``, ``[N, batch, 1]``, whose
    weight gradient is each copy's own ``mm``.

    The single layer's weight gradient is a matrix-vector product (``grad^T @ x``,
    ``[1, batch] @ [batch, in]``: ``mm_mat2_backward`` for ``F.linear``'s column-major
    ``weight.t()``). MKL's batched product with one row accumulates it in another order on
    some CPUs (seen on an Intel Xeon with AVX-512 kernels: the last bit of a few elements,
    from the first step on), while the forward pass, the input and the bias gradients
    match. So the weight gradient is computed per copy with the single layer's ``mm``: N
    products of ``[1, batch] @ [batch, in]``, a negligible part of a step. It saves what
    :class:`_StackedLinearFunction` saves.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
                ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return torch.baddbmm(bias.unsqueeze(-1), weight, x.transpose(1, 2)).transpose(1, 2)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        grad = grad.contiguous()  # [N, batch, 1], as the single layer's [batch, 1] gradient
        grad_x = torch.bmm(grad, weight) if need_x else None  # outer products: no rounding order
        grad_w = (torch.stack([torch.mm(grad[k].t(), x[k]) for k in range(grad.shape[0])])
                  if need_w else None)
        grad_b = grad.sum(1) if need_b else None
        return grad_x, grad_w, grad_b


class StackedLinear(nn.Module):
    """``N`` linear layers in one: ``weight`` ``[N, out, in]``, ``bias`` ``[N, out]``.

    ``forward(x)`` with ``x`` ``[N, batch, in]`` is ``baddbmm(bias, x, weight^T)``: row ``k``
    equals ``nn.Linear`` ``k`` applied to ``x[k]``.

    The weight keeps ``nn.Linear``'s ``[out, in]`` layout per copy and is multiplied as a
    transposed view, as ``F.linear`` does, so the BLAS sees operands of the same layout as
    the single-copy layer's ``addmm`` (a contiguous ``[N, in, out]`` weight rounds
    differently on MKL). A one-unit layer (D's head) is computed as ``(W x^T)^T``: with
    ``out == 1`` the single layer's ``addmm`` is a matrix-vector product, and this form of
    the batched product rounds like it. With MKL on the CPU both are then bit-equal to
    ``F.linear``, forward and backward (other BLAS / CUDA: equal to float rounding).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)

    @classmethod
    def from_linears(cls, layers: Sequence[nn.Linear]) -> StackedLinear:
        shapes = {tuple(layer.weight.shape) for layer in layers}
        if len(shapes) != 1 or any(layer.bias is None for layer in layers):
            raise ValueError(f"cannot stack linear layers of shapes {sorted(shapes)} "
                             "(or without bias)")
        with torch.no_grad():
            weight = torch.stack([layer.weight.detach() for layer in layers]).contiguous()
            bias = torch.stack([layer.bias.detach() for layer in layers]).contiguous()
        return cls(weight, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.shape[1] == 1:
            return _StackedHeadFunction.apply(x, self.weight, self.bias)
        return _StackedLinearFunction.apply(x, self.weight, self.bias)

    def copy_state(self, k: int, prefix: str) -> dict[str, torch.Tensor]:
        """Copy ``k`` as an ``nn.Linear`` state dict under ``prefix``."""
        return {f"{prefix}weight": self.weight[k].detach().clone(),
                f"{prefix}bias": self.bias[k].detach().clone()}


class StackedMaxout(nn.Module):
    """``N`` maxout layers: a :class:`StackedLinear` to ``units * pieces`` outputs, then the
    maximum over each unit's ``pieces`` consecutive outputs -- the single layer's
    ``linear(x).view(batch, units, pieces).amax(-1)`` per copy, bit for bit (the maximum is
    exact, and so is its gradient, shared equally between tied pieces as ``amax``'s)."""

    def __init__(self, linear: StackedLinear, pieces: int):
        super().__init__()
        if linear.weight.shape[1] % pieces:
            raise ValueError(f"{linear.weight.shape[1]} outputs do not split into "
                             f"{pieces} pieces per unit")
        self.linear, self.pieces = linear, pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear(x)
        return h.view(*h.shape[:-1], h.shape[-1] // self.pieces, self.pieces).amax(dim=-1)

    def copy_state(self, k: int, prefix: str) -> dict[str, torch.Tensor]:
        """Copy ``k`` as the single maxout layer's state dict (its ``linear.`` layer)."""
        return self.linear.copy_state(k, f"{prefix}linear.")


class StackedBatchNorm1d(nn.Module):
    """``N`` ``nn.BatchNorm1d`` layers of one width: ``weight`` / ``bias`` ``[N, features]``,
    running statistics ``[N, features]``, a batch counter per copy.

    ``forward(x)`` with ``x`` ``[N, batch, features]`` normalises each copy over its own
    batch with ``F.batch_norm`` on that copy's rows and statistics -- the single layer's
    call, copy by copy -- so outputs, gradients and running statistics are bit-equal to
    each copy's own layer (a statistic over ``[batch, N * features]`` in one call would
    reduce in another order on some kernels). Batch norm costs little next to the
    products, so the loop over copies does too. A ``momentum`` of None (a cumulative
    average) is refused.
    """

    def __init__(self, norms: Sequence[nn.BatchNorm1d]):
        super().__init__()
        first = norms[0]
        settings = {tuple(getattr(n, key) for key in _NORM_SETTINGS) for n in norms}
        if len(settings) != 1 or not (first.affine and first.track_running_stats):
            raise ValueError("cannot stack BatchNorm1d layers that differ in their settings "
                             "or lack an affine part or running statistics")
        if first.momentum is None:
            raise ValueError("cannot stack BatchNorm1d with momentum=None (a cumulative average)")
        self.eps, self.momentum = first.eps, first.momentum

        def stacked(name: str) -> torch.Tensor:
            return torch.stack([getattr(n, name).detach() for n in norms]).clone()

        self.weight = nn.Parameter(stacked("weight"))
        self.bias = nn.Parameter(stacked("bias"))
        self.register_buffer("running_mean", stacked("running_mean"))
        self.register_buffer("running_var", stacked("running_var"))
        self.register_buffer("num_batches_tracked", stacked("num_batches_tracked"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.num_batches_tracked.add_(1)
        return torch.stack([
            F.batch_norm(x[k], self.running_mean[k], self.running_var[k], self.weight[k],
                         self.bias[k], self.training, self.momentum, self.eps)
            for k in range(x.shape[0])])

    def copy_state(self, k: int, prefix: str) -> dict[str, torch.Tensor]:
        """Copy ``k`` as the single ``nn.BatchNorm1d``'s state dict."""
        return {f"{prefix}{name}": getattr(self, name)[k].detach().clone()
                for name in ("weight", "bias", "running_mean", "running_var",
                             "num_batches_tracked")}


def _same_elementwise(mods: Sequence[nn.Module]) -> bool:
    first = mods[0]
    return all(type(m) is type(first) and m.extra_repr() == first.extra_repr() for m in mods)


#: ``[(state-dict prefix, layer), ...]``: one copy's layers in call order
Layers = Sequence[tuple[str, nn.Module]]


class StackedMLP(nn.Module):
    """``N`` copies of one fully connected generator or discriminator, stacked.

    Built from ``N`` separately built single-copy networks (:meth:`from_layers`), so every
    copy's initial weights are its own network's. The architecture is the single
    network's: the same linear layers (:class:`StackedLinear`) and the same element-wise
    activation modules (ReLU, LeakyReLU, Tanh, Identity), applied to ``[N, batch, width]``.

    * generator: ``z`` ``[N, batch, z_dim]`` -> ``[N, batch, *out_shape]``;
    * discriminator: ``x`` ``[N, batch, *shape]`` (flattened per sample) -> logits
      ``[N, batch]``.

    Batch norm stacks (:class:`StackedBatchNorm1d`), and so does a layer class with a
    ``stack_layers`` classmethod (maxout, :class:`StackedMaxout`); dropout, which draws from
    the global RNG, and every other layer are refused. Every device gains from stacking it
    (:attr:`auto_devices`).
    """

    #: devices on which ``vectorize: auto`` stacks such networks (:mod:`harness.vector.plan`)
    auto_devices = ("cpu", "cuda")

    def __init__(self, kind: str, layers: list[nn.Module], prefixes: list[str],
                 out_shape: tuple[int, ...] | None = None):
        super().__init__()
        self.kind = kind
        self.layers = nn.ModuleList(layers)
        self.prefixes = prefixes
        self.out_shape = out_shape

    @classmethod
    def from_layers(cls, kind: str, copies: Sequence[Layers],
                    out_shape: tuple[int, ...] | None = None) -> StackedMLP:
        """The stacked network of ``copies`` (each copy's layers in call order, with their
        state-dict prefixes). ``kind`` ``"generator"`` (then ``out_shape``, the shape of
        one sample) or ``"discriminator"`` (whose last layer is its one-unit head)."""
        if kind not in ("generator", "discriminator"):
            raise ValueError(f"kind must be 'generator' or 'discriminator', got {kind!r}")
        if kind == "generator" and out_shape is None:
            raise ValueError("a stacked generator needs the shape of its samples (out_shape)")
        copies = [list(c) for c in copies]
        if not copies:
            raise ValueError("no modules to stack")
        lengths = {len(c) for c in copies}
        if len(lengths) != 1:
            raise ValueError("the modules to stack differ in depth")
        layers: list[nn.Module] = []
        prefixes: list[str] = []
        for i in range(lengths.pop()):
            prefix = copies[0][i][0]
            mods = [c[i][1] for c in copies]
            if all(type(m) is nn.Linear for m in mods):
                layers.append(StackedLinear.from_linears(mods))
                prefixes.append(prefix)
            elif all(isinstance(m, _ELEMENTWISE) for m in mods) and _same_elementwise(mods):
                layers.append(mods[0])
                prefixes.append("")
            elif all(type(m) is nn.BatchNorm1d for m in mods):
                layers.append(StackedBatchNorm1d(mods))
                prefixes.append(prefix)
            elif (getattr(type(mods[0]), "stack_layers", None) is not None
                  and all(type(m) is type(mods[0]) for m in mods)):
                layers.append(type(mods[0]).stack_layers(mods))
                prefixes.append(prefix)
            elif all(type(m) is nn.Dropout and m.p == 0 for m in mods):
                continue
            else:
                raise ValueError(f"cannot stack {type(mods[0]).__name__} ({prefix.rstrip('.')}): "
                                 "only linear layers, element-wise activations, batch norm "
                                 "and layers with a stack_layers classmethod (maxout)")
        return cls(kind, layers, prefixes,
                   tuple(out_shape) if kind == "generator" else None)

    @property
    def n_copies(self) -> int:
        return next(layer for layer in self.layers
                    if isinstance(layer, StackedLinear)).weight.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, b = x.shape[0], x.shape[1]
        h = x.flatten(2) if self.kind == "discriminator" else x
        for layer in self.layers:
            h = layer(h)
        if self.kind == "discriminator":
            return h.squeeze(-1)
        return h.view(n, b, *self.out_shape)

    def copy_state(self, k: int) -> dict[str, torch.Tensor]:
        """Copy ``k``'s parameters and buffers as the single-copy module's ``state_dict``."""
        out: dict[str, torch.Tensor] = {}
        for layer, prefix in zip(self.layers, self.prefixes):
            if hasattr(layer, "copy_state"):  # not the activations
                out.update(layer.copy_state(k, prefix))
        return out


__all__ = ["StackedBatchNorm1d", "StackedLinear", "StackedMLP", "StackedMaxout"]
