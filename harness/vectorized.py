"""N copies of a plain MLP GAN or a DCGAN trained as one vectorized model.

Copy ``k`` of a :class:`VectorizedGAN` built from trial configs ``cfgs`` plays exactly the
game a single-copy :class:`harness.trainer.Trainer` built by
:func:`harness.trial.build_trainer` from ``cfgs[k]`` plays, step for step:

* **Initialisation.** Each copy's networks are built the way ``build_trainer`` builds them
  (``torch.manual_seed(cfg.seed)``, then the dataset, the model and ``model.build``), and
  their parameters are *stacked* (:class:`StackedMLP` for ``variants/mlp.py``'s networks,
  :class:`~harness.vectorized_conv.StackedConvNet` -- grouped convolutions -- for
  ``variants/dcgan.py``'s), so copy ``k`` starts from bit-equal weights.
* **Noise and data.** ``Trainer`` draws every minibatch index and every latent from one
  ``torch.Generator(device).manual_seed(seed)`` (not from the global RNG), in a fixed
  order per step: ``d_steps`` x (``randint`` for the real batch, ``model.noise`` for the
  fakes), then ``model.noise`` for the generator step. Each copy here owns such a generator
  and makes the same calls in the same order, so it draws bit-equal batches and noise.
  The evaluation noise is the Trainer's too (``seed + 1_000_003``; ``seed + 2_000_003`` for
  :meth:`VectorizedGAN.sample` with ``n``).
* **Algorithm 1.** One step is ``d_steps`` discriminator steps, each on a fresh real
  batch and fresh noise, then one generator step on fresh noise -- ``Trainer.train_step``.
* **Gradients.** The loss minimised is the *sum* over copies of each copy's loss (the
  harness's registered :class:`~harness.losses.Loss` applied per copy, with ``torch.vmap``
  or a loop, so its ``.mean()`` is a per-copy mean). Copy ``k``'s parameters appear only in copy
  ``k``'s term, so the gradient of the sum with respect to them is copy ``k``'s own
  gradient. (A mean over copies would scale every gradient by ``1/N``; Adam is almost
  invariant to that, but not exactly: ``eps``.)
* **Optimiser.** :class:`StackedAdam` is ``torch.optim.Adam`` (the single-tensor CPU path,
  which the Trainer gets on the CPU) with per-copy ``lr``, ``beta1``, ``beta2`` tensors:
  the same operations, in the same order, on the same float32 constants. Param groups
  cannot split one stacked tensor, and scaling copy ``k``'s loss does not change its Adam
  step, so a per-copy learning rate needs per-copy tensors.

Bit-equality. On the CPU (eager) copy ``k``'s parameters, diagnostics rows and
evaluation samples are *bit-equal* to its single-copy trial's at every step
(``tests/test_vectorized.py``: 200 steps, and under MKL's AVX2/SSE4.2 and ATen's AVX2 and
scalar kernels). That takes care in three places: :class:`StackedLinear` keeps
``nn.Linear``'s weight layout, computes its weight gradient as ``F.linear``'s backward does
and a one-unit head's per copy (:class:`_StackedHeadFunction`), so every product rounds
like the single layer's;
:class:`StackedAdam` feeds per-copy coefficients through ``addcmul_``/``addcdiv_`` so the
kernels' rounding (fused multiply-adds) is torch's; the gradient norm is the norm of the
per-tensor norms with each copy's norms contiguous, as ``harness.trainer.grad_norm``
computes it. On CUDA or another BLAS the batched and single matmuls may accumulate in
another order: equal to float32 rounding, drifting apart slowly like any two runs that
differ in the last bit.

Throughput. Each step makes ``N x (2 d_steps + 1)`` small RNG calls (one per copy and
draw, as the Trainer makes them); everything else is one batched operation for all
copies. :class:`StackedLinear`'s backward returns weight gradients in the weights' own
layout, and :class:`StackedAdam`'s eager update allocates nothing and keeps zeros and
subnormals out of ``torch.sqrt`` (both exact; docs/vectorize.md has the measurements). The
loss is applied with ``torch.vmap`` (``loss_mode``). ``compile`` compiles the networks and
the Adam update with ``torch.compile``; on the 2-core CPU it measured no faster than eager
(docs/vectorize.md), and it gives up bit-equality, so the default is eager.

Divergence. A copy whose loss or gradient is NaN/inf at some optimiser step is *frozen*
before that step is applied: its gradients are masked to zero and its Adam coefficients to
"no update" (:meth:`StackedAdam.step` ``active``), on the device, without a host sync. A
copy whose *logged* loss exceeds ``diagnostics.diverge_loss`` (the rule of
:class:`harness.loop.TrainingLoop`) is frozen at that log step. Frozen copies are reported
in :attr:`VectorizedGAN.diverged` with the step; the others are unaffected (every operation
here is per copy: batched matmuls, per-copy means, element-wise Adam), so their parameters
equal those of a run without the diverged copy. A single-copy Trainer would report a
non-finite loss only at its next logged step (its ``steps_done`` is that step); its
parameters by then may be NaN, a frozen copy's are its last finite ones.

The DCGAN's copies are equal to float32 rounding rather than bit for bit: a grouped
convolution is another kernel than the single one (:mod:`harness.vectorized_conv`).

Scope: the unconditional MLP family without tricks, batch norm, maxout or dropout
(``variants/mlp.py``'s plain networks) and the unconditional DCGAN
(``variants/dcgan.py``, batch norm included), with any registered loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from harness import names
from harness.config import TrialConfig
from harness.diagnostics import is_bad
from harness.metrics import ModeCoverage, batched_mode_coverage
from harness.trainer import frozen

#: element-wise modules a stacked network applies unchanged to ``[N, batch, width]``
_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Identity)


# --------------------------------------------------------------------------------------
# Stacked networks
# --------------------------------------------------------------------------------------


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

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        x, weight, _ = inputs
        ctx.save_for_backward(x, weight)

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
    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
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


def _layer_list(module: nn.Module) -> tuple[str, list[tuple[str, nn.Module]]]:
    """``(kind, [(state-dict prefix, layer), ...])`` of a plain MLP G or D, in call order."""
    from variants.mlp import MLPDiscriminator, MLPGenerator

    if isinstance(module, MLPGenerator):
        return "generator", [(f"net.{i}.", m) for i, m in enumerate(module.net)]
    if isinstance(module, MLPDiscriminator):
        layers = [(f"body.{i}.", m) for i, m in enumerate(module.body)]
        return "discriminator", layers + [("head.", module.head)]
    raise TypeError(f"StackedMLP stacks variants.mlp networks, not {type(module).__name__}")


def _same_elementwise(mods: Sequence[nn.Module]) -> bool:
    first = mods[0]
    return all(type(m) is type(first) and m.extra_repr() == first.extra_repr() for m in mods)


class StackedMLP(nn.Module):
    """``N`` copies of one ``variants.mlp`` generator or discriminator, stacked.

    Built from ``N`` separately built single-copy modules (:meth:`from_modules`), so every
    copy's initial weights are its own module's. The architecture is the single module's:
    the same linear layers (:class:`StackedLinear`) and the same activation modules (ReLU,
    LeakyReLU(0.2), a final Tanh), applied to ``[N, batch, width]``.

    * generator: ``z`` ``[N, batch, z_dim]`` -> ``[N, batch, *out_shape]``;
    * discriminator: ``x`` ``[N, batch, *shape]`` -> logits ``[N, batch]``.

    Layers that mix samples or need the global RNG (batch norm, dropout, maxout) are
    refused.
    """

    def __init__(self, kind: str, layers: list[nn.Module], prefixes: list[str],
                 out_shape: tuple[int, ...] | None = None):
        super().__init__()
        self.kind = kind
        self.layers = nn.ModuleList(layers)
        self.prefixes = prefixes
        self.out_shape = out_shape

    @classmethod
    def from_modules(cls, modules: Sequence[nn.Module]) -> StackedMLP:
        if not modules:
            raise ValueError("no modules to stack")
        parsed = [_layer_list(m) for m in modules]
        kinds = {kind for kind, _ in parsed}
        lengths = {len(layers) for _, layers in parsed}
        if len(kinds) != 1 or len(lengths) != 1:
            raise ValueError("the modules to stack differ in kind or depth")
        kind = kinds.pop()
        layers: list[nn.Module] = []
        prefixes: list[str] = []
        for i in range(lengths.pop()):
            prefix = parsed[0][1][i][0]
            mods = [p[1][i][1] for p in parsed]
            if all(type(m) is nn.Linear for m in mods):
                layers.append(StackedLinear.from_linears(mods))
                prefixes.append(prefix)
            elif all(isinstance(m, _ELEMENTWISE) for m in mods) and _same_elementwise(mods):
                layers.append(mods[0])
                prefixes.append("")
            elif all(type(m) is nn.Dropout and m.p == 0 for m in mods):
                continue
            else:
                raise ValueError(f"cannot stack {type(mods[0]).__name__} ({prefix.rstrip('.')}): "
                                 "only plain MLPs (no batch norm, maxout or dropout)")
        out_shape = tuple(modules[0].out_shape) if kind == "generator" else None
        return cls(kind, layers, prefixes, out_shape)

    @property
    def n_copies(self) -> int:
        return next(layer for layer in self.layers if isinstance(layer, StackedLinear)).weight.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, b = x.shape[0], x.shape[1]
        h = x.flatten(2) if self.kind == "discriminator" else x
        for layer in self.layers:
            h = layer(h)
        if self.kind == "discriminator":
            return h.squeeze(-1)
        return h.view(n, b, *self.out_shape)

    def copy_state(self, k: int) -> dict[str, torch.Tensor]:
        """Copy ``k``'s parameters as the single-copy module's ``state_dict``."""
        out: dict[str, torch.Tensor] = {}
        for layer, prefix in zip(self.layers, self.prefixes):
            if isinstance(layer, StackedLinear):
                out.update(layer.copy_state(k, prefix))
        return out


# --------------------------------------------------------------------------------------
# Adam with per-copy hyperparameters
# --------------------------------------------------------------------------------------


#: ``compile`` values of :class:`VectorizedGAN` and :class:`StackedAdam`: None (eager) or
#: a ``torch.compile`` mode
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune",
                 "max-autotune-no-cudagraphs")


def check_compile_mode(mode: str | None) -> str | None:
    """``mode`` if it is one of :data:`COMPILE_MODES`, else ValueError naming them."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile must be one of {', '.join(map(repr, COMPILE_MODES))}, "
                         f"got {mode!r}")
    return mode


def _adam_update(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor,
                 c_omb1: torch.Tensor, c_b2: torch.Tensor, c_omb2: torch.Tensor,
                 c_bc2_sqrt: torch.Tensor, c_neg_step: torch.Tensor, eps: float) -> None:
    """One tensor's Adam update in place, :class:`StackedAdam`'s arithmetic.

    addcmul/addcdiv with value 1 on a pre-scaled operand: the kernels compute
    ``self + (value * t1) * t2`` and ``self + (value * t1) / t2``, so this is torch's
    arithmetic (including any fused multiply-add) with a per-copy value.
    """
    m.lerp_(g, c_omb1)
    v.mul_(c_b2).addcmul_(c_omb2 * g, g)
    denom = v.sqrt().div_(c_bc2_sqrt).add_(eps)
    p.addcdiv_(c_neg_step * m, denom)


def _adam_update_eager(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor,
                       c_omb1: torch.Tensor, c_b2: torch.Tensor, c_omb2: torch.Tensor,
                       c_bc2_sqrt: torch.Tensor, c_neg_step: torch.Tensor, eps: float,
                       sqrt_floor: float, scratch: tuple[torch.Tensor, torch.Tensor]) -> None:
    """:func:`_adam_update`, value for value, without allocating: the two temporaries
    (``c_omb2 * g`` then ``c_neg_step * m``, and the denominator) are written into
    ``scratch``, two preallocated tensors shaped like ``v``.

    Why: a CPU tensor of a few MB is a fresh ``malloc`` each time, whose pages the kernel
    faults in and zeroes on first touch (about 2,300 page faults per N = 32 step of the
    ring MLP on two threads, measured with ``/usr/bin/time``, unless the process keeps its
    freed memory: :mod:`harness.allocator`); the preallocated ones are touched once.

    ``sqrt_floor`` (0: none) raises ``v`` to at least that value before the square root
    (:meth:`StackedAdam.sqrt_floor` chooses it): it changes no denominator, because for
    every ``v`` at or below it ``sqrt(v) / sqrt(1 - beta2 ** t) + eps`` rounds to ``eps``
    exactly, but it keeps zeros (never-updated parameters: dead ReLU units) and
    subnormals out of ``torch.sqrt``, whose CPU kernel took about 5x longer on zeros and
    40x longer on subnormals than on normal numbers (measured on an AVX-512 AMD EPYC).
    """
    a, b = scratch
    m.lerp_(g, c_omb1)
    v.mul_(c_b2).addcmul_(torch.mul(c_omb2, g, out=a), g)
    if sqrt_floor > 0:
        denom = torch.clamp_min(v, sqrt_floor, out=b).sqrt_()
    else:
        denom = torch.sqrt(v, out=b)
    denom.div_(c_bc2_sqrt).add_(eps)
    p.addcdiv_(torch.mul(c_neg_step, m, out=a), denom)


def _per_copy(values: Any, n: int, name: str) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=torch.float64).flatten()
    if t.numel() == 1:
        t = t.expand(n).clone()
    if t.numel() != n:
        raise ValueError(f"{name}: expected {n} per-copy values, got {t.numel()}")
    return t


class StackedAdam:
    """Adam over tensors whose leading dimension is the copy: one Adam per copy.

    ``lr``, ``beta1`` and ``beta2`` are per copy (shape ``[N]``, or one number for all),
    broadcast over each tensor's remaining dimensions. Per copy, :meth:`step` performs
    exactly the update of ``torch.optim.Adam`` (single-tensor implementation, weight
    decay 0, no amsgrad), in its order of operations::

        m = m.lerp(g, 1 - beta1)
        v = v * beta2 + ((1 - beta2) * g) * g                  # addcmul
        denom = sqrt(v) / sqrt(1 - beta2 ** t) + eps
        p = p + (-(lr / (1 - beta1 ** t)) * m) / denom         # addcdiv

    with the scalar coefficients computed in float64 (torch computes them as Python
    floats) and cast to the parameters' dtype. ``eps`` is added *after* the bias
    correction of ``sqrt(v)``, as in torch.

    ``active`` (bool ``[N]``) freezes the other copies for this step: their gradients are
    replaced by 0 and their coefficients by "no update" (``1 - beta1 -> 0``, ``beta2 -> 1``,
    ``lr -> 0``), so their parameters and moments stay exactly as they were even when
    their gradients are NaN, and their step counts do not advance. On CUDA this needs no
    host sync; on the CPU (where a sync is free) the gradient masking is skipped while
    every copy is active.

    ``compile`` (a ``torch.compile`` mode, default None: eager) compiles the per-tensor
    update into one fused kernel per parameter tensor instead of about nine. Each tensor
    is updated as its ``[N, numel]`` view, so one compiled graph (dynamic in ``numel``)
    serves every tensor. Fused kernels round differently from the eager ones (fewer
    intermediate float32 roundings), so a compiled step equals ``torch.optim.Adam`` to
    float32 rounding, not bit for bit.
    """

    def __init__(self, params: Sequence[torch.Tensor], lr: Any, betas: tuple[Any, Any] = (0.9, 0.999),
                 eps: float = 1e-8, compile: str | None = None):
        self.params = list(params)
        if not self.params:
            raise ValueError("no parameters")
        n = self.params[0].shape[0]
        if any(p.shape[0] != n for p in self.params):
            raise ValueError("every stacked parameter needs the same leading (copy) dimension")
        self.n = n
        device = self.params[0].device
        self.lr = _per_copy(lr, n, "lr").to(device)
        self.beta1 = _per_copy(betas[0], n, "beta1").to(device)
        self.beta2 = _per_copy(betas[1], n, "beta2").to(device)
        self.eps = float(eps)
        self.steps = torch.zeros(n, dtype=torch.float64, device=device)
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format)
                           for p in self.params]
        self.compile = check_compile_mode(compile)
        self._update = (_adam_update if compile is None
                        else torch.compile(_adam_update, mode=compile, dynamic=True))
        #: the eager update's temporaries, one pair per (shape, strides, dtype), made once
        self._scratch: dict[tuple[Any, ...], tuple[torch.Tensor, torch.Tensor]] = {}
        self._floors: dict[torch.dtype, float] = {}

    def sqrt_floor(self, dtype: torch.dtype) -> float:
        """A value ``T`` such that raising ``v`` to ``T`` before the square root changes
        no Adam denominator of a ``dtype`` parameter; 0 where there is none.

        The denominator is ``sqrt(v) / c + eps`` with ``c = sqrt(1 - beta2 ** t)``, which
        for ``t >= 1`` is at least ``c_min = sqrt(1 - max(beta2))``. For ``v <= T`` with
        ``sqrt(T) <= c_min * ulp(eps) / 8``, the quotient is below a quarter of a unit in
        the last place of ``eps`` (the 8 covers the rounding of ``sqrt``, the division and
        ``c``), so the sum rounds to ``eps`` whatever ``v`` is in ``[0, T]``: the same
        denominator as without the floor, to the last bit. A floor below the smallest
        normal number would not keep subnormals out, so it is not used (0), nor is one for
        ``eps = 0`` or ``beta2 = 1``. The eager :meth:`step` uses it on the CPU only, where
        the slow square roots were measured (on a GPU it would be one more kernel launch).
        """
        if dtype not in self._floors:
            info = torch.finfo(dtype)
            c_min = math.sqrt(max(0.0, 1.0 - float(self.beta2.max())))
            floor = 0.0
            if self.eps > 0 and c_min > 0:
                ulp = 2.0 ** math.floor(math.log2(self.eps)) * info.eps
                floor = (c_min * ulp / 8) ** 2
                if floor < info.tiny:
                    floor = 0.0
            self._floors[dtype] = floor
        return self._floors[dtype]

    def _scratch_for(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (tuple(v.shape), v.stride(), v.dtype, v.device)
        if key not in self._scratch:
            self._scratch[key] = (torch.empty_like(v), torch.empty_like(v))
        return self._scratch[key]

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor] | None = None,
             active: torch.Tensor | None = None) -> None:
        """One Adam step per (active) copy; ``grads`` default to each parameter's ``.grad``."""
        if grads is None:
            grads = [p.grad for p in self.params]
        if active is None:
            self.steps += 1
        else:
            self.steps += active.to(torch.float64)
        # torch: bias_correction = 1 - beta ** step (Python floats), step = lr / bc1
        t = self.steps.clamp(min=1)  # a frozen copy that never stepped: any finite value
        bc1 = 1 - self.beta1 ** t
        bc2_sqrt = (1 - self.beta2 ** t).sqrt()
        neg_step = -(self.lr / bc1)
        omb1, b2, omb2 = 1 - self.beta1, self.beta2, 1 - self.beta2
        mask_grads = False
        if active is not None:
            zero, one = torch.zeros_like(omb1), torch.ones_like(b2)
            omb1 = torch.where(active, omb1, zero)
            b2 = torch.where(active, b2, one)
            omb2 = torch.where(active, omb2, zero)
            neg_step = torch.where(active, neg_step, zero)
            # on the CPU a sync is free: skip masking the gradients while every copy trains
            mask_grads = self.params[0].device.type != "cpu" or not bool(active.all())
        coef = torch.stack([omb1, b2, omb2, bc2_sqrt, neg_step])
        by_dtype: dict[tuple[torch.dtype, int], torch.Tensor] = {}
        for p, g, m, v in zip(self.params, grads, self.exp_avg, self.exp_avg_sq):
            key = (p.dtype, p.ndim)
            if key not in by_dtype:
                by_dtype[key] = coef.to(p.dtype).view(5, self.n, *([1] * (p.ndim - 1)))
            c_omb1, c_b2, c_omb2, c_bc2_sqrt, c_neg_step = by_dtype[key]
            if mask_grads:
                mask = active.view(-1, *([1] * (p.ndim - 1)))
                g = torch.where(mask, g, torch.zeros((), dtype=g.dtype, device=g.device))
            if self.compile is not None and p.is_contiguous() and m.is_contiguous() \
                    and v.is_contiguous():
                flat = (self.n, -1)
                coefs = [c.reshape(self.n, 1) for c in (c_omb1, c_b2, c_omb2, c_bc2_sqrt,
                                                        c_neg_step)]
                self._update(p.view(flat), g.reshape(flat), m.view(flat), v.view(flat),
                             *coefs, self.eps)
            else:
                floor = self.sqrt_floor(p.dtype) if p.device.type == "cpu" else 0.0
                _adam_update_eager(p, g, m, v, c_omb1, c_b2, c_omb2, c_bc2_sqrt, c_neg_step,
                                   self.eps, floor, self._scratch_for(v))

    def state_dict(self) -> dict[str, Any]:
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "steps": self.steps, "exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for key in ("lr", "beta1", "beta2", "steps"):
                getattr(self, key).copy_(state[key])
            for mine, theirs in zip(self.exp_avg + self.exp_avg_sq,
                                    list(state["exp_avg"]) + list(state["exp_avg_sq"])):
                mine.copy_(theirs)
        self.eps = float(state["eps"])
        self._floors.clear()  # beta2 and eps may have changed


# --------------------------------------------------------------------------------------
# The vectorized game
# --------------------------------------------------------------------------------------

#: train settings that may differ between the copies (everything else must agree)
PER_COPY_TRAIN = ("lr_d", "lr_g", "beta1", "beta2")


def _check_compatible(cfgs: Sequence[TrialConfig]) -> None:
    first = cfgs[0]
    for i, cfg in enumerate(cfgs[1:], 1):
        for part in ("model", "loss", "dataset", "tricks", "plugins", "plugin_paths",
                     "diagnostics"):
            if getattr(cfg, part) != getattr(first, part):
                raise ValueError(f"copy {i} differs from copy 0 in {part!r}; copies may "
                                 f"differ only in seed and {', '.join(PER_COPY_TRAIN)}")
        a, b = first.train.model_dump(), cfg.train.model_dump()
        diff = sorted(key for key in a if key not in PER_COPY_TRAIN and a[key] != b[key])
        if diff:
            raise ValueError(f"copy {i} differs from copy 0 in train.{', train.'.join(diff)}; "
                             f"copies may differ only in seed and {', '.join(PER_COPY_TRAIN)}")
    if first.tricks:
        raise ValueError("the vectorized GAN trains networks without tricks")
    if first.loss is None:
        raise ValueError("the vectorized GAN needs a loss")


def stack_networks(modules: Sequence[nn.Module]) -> nn.Module:
    """The stacked network of ``modules`` (one per copy): :class:`StackedMLP` for
    ``variants.mlp`` networks, :class:`~harness.vectorized_conv.StackedConvNet` for
    ``variants.dcgan`` ones; ValueError/TypeError naming what cannot be stacked."""
    from variants.dcgan import ConvDiscriminator, ConvGenerator

    if isinstance(modules[0], (ConvGenerator, ConvDiscriminator)):
        from harness.vectorized_conv import StackedConvNet

        return StackedConvNet.from_modules(modules)
    return StackedMLP.from_modules(modules)


class VectorizedGAN:
    """``N`` plain MLP GANs or DCGANs, one per trial config, trained as one stacked model.

    Copy ``k`` equals the single-copy ``Trainer`` of ``build_trainer(cfgs[k])`` (see the
    module docstring for what is equal and why): same initial weights, same real batches
    and noise, same Algorithm-1 step, same Adam update with its own ``lr_d``, ``lr_g``,
    ``beta1``, ``beta2``, same diagnostics rows. Copies may differ only in those four
    settings and the seed.

    ``loss_mode``: ``"vmap"`` applies the registered loss per copy with ``torch.vmap``
    (one call for all copies); ``"loop"`` calls it once per copy (also for losses vmap
    cannot batch). Both give the same per-copy losses ``[N]``. ``"auto"`` (default) loops
    for N <= 2, where vmap's fixed cost per call (about 0.8 ms on a CPU) exceeds the
    loop's, and vmaps otherwise (measured with ``benchmarks/vectorized.py``).

    ``compile`` (default None: eager) is a ``torch.compile`` mode (:data:`COMPILE_MODES`)
    for the training step: the stacked G and D forward passes (and, through AOTAutograd,
    their backward passes) and both optimisers' updates (:class:`StackedAdam`). On CUDA,
    ``"reduce-overhead"`` also replays the networks as CUDA graphs. Sampling for
    evaluation stays eager. Compiled kernels round differently, so a compiled copy equals
    its single-copy trial to float32 rounding, not bit for bit (the eager default does).
    The first steps pay the compilation (seconds to a minute).
    """

    def __init__(self, cfgs: Sequence[TrialConfig], device: torch.device | str | None = None,
                 loss_mode: str = "auto", compile: str | None = None):
        from harness.plugins import load_plugins
        from harness.registry import DATASETS, LOSSES, MODELS
        from harness.trainer import Trainer
        from harness.trial import resolve_device

        cfgs = list(cfgs)
        if not cfgs:
            raise ValueError("no trial configs")
        _check_compatible(cfgs)
        if loss_mode not in ("auto", "vmap", "loop"):
            raise ValueError(f"loss_mode must be 'auto', 'vmap' or 'loop', got {loss_mode!r}")
        if loss_mode == "auto":
            loss_mode = "loop" if len(cfgs) <= 2 else "vmap"
        self.compile = check_compile_mode(compile)
        first = cfgs[0]
        self.cfgs = cfgs
        self.n = len(cfgs)
        self.device = torch.device(device) if device is not None else resolve_device(first.train.device)
        self.settings, self.diag = first.train, first.diagnostics
        self.seeds = [cfg.seed for cfg in cfgs]
        self.loss_mode = loss_mode
        load_plugins(first.plugins, first.plugin_paths)

        # the networks of every copy, built as build_trainer builds them
        rng_state = torch.get_rng_state()
        gens, discs = [], []
        try:
            for cfg in cfgs:
                torch.manual_seed(cfg.seed)
                dataset = DATASETS.build(cfg.dataset.name, cfg.dataset.params, "dataset.params")
                model = MODELS.build(cfg.model.name, cfg.model.params, "model.params")
                gan = model.build(dataset)
                if gan.conditional or gan.aux is not None:
                    raise ValueError("the vectorized GAN trains unconditional models only")
                if model.loop_class() is not Trainer:
                    raise ValueError(f"model {cfg.model.name!r} does not play Trainer's game")
                gens.append(gan.generator)
                discs.append(gan.discriminator)
                if len(gens) == 1:
                    self.dataset, self.model, self.z_dim = dataset, model, gan.z_dim
        finally:
            torch.set_rng_state(rng_state)
        self.loss = LOSSES.build(first.loss.name, first.loss.params, "loss.params")
        self.G = stack_networks(gens).to(self.device)
        self.D = stack_networks(discs).to(self.device)
        self.g_params = list(self.G.parameters())
        self.d_params = list(self.D.parameters())
        betas = ([c.train.beta1 for c in cfgs], [c.train.beta2 for c in cfgs])
        self.opt_d = StackedAdam(self.d_params, [c.train.lr_d for c in cfgs], betas,
                                 compile=compile)
        self.opt_g = StackedAdam(self.g_params, [c.train.lr_g for c in cfgs], betas,
                                 compile=compile)
        #: the networks as the training step calls them (compiled or not); ``self.G`` and
        #: ``self.D`` stay the plain modules (state, copies, evaluation). Static shapes: a
        #: trial's shapes do not change, and inductor failed on the DCGAN's dynamic ones
        self._g = self.G if compile is None else torch.compile(self.G, mode=compile, dynamic=False)
        self._d = self.D if compile is None else torch.compile(self.D, mode=compile, dynamic=False)
        self.data = self.dataset.train_data().to(self.device)

        # the Trainer's generators, one per copy
        self.rngs = [torch.Generator(device=self.device).manual_seed(s) for s in self.seeds]
        self.eval_noise = torch.stack([
            self.model.noise(self.settings.eval_samples, self.z_dim,
                             torch.Generator().manual_seed(s + 1_000_003)) for s in self.seeds
        ]).to(self.device)
        self._extra: torch.Tensor | None = None

        self.step = 0
        self.active = torch.ones(self.n, dtype=torch.bool, device=self.device)
        #: step at which each copy was frozen (0: still training)
        self.diverged_at = torch.zeros(self.n, dtype=torch.long, device=self.device)
        #: per-copy history rows ``[(step, row), ...]`` as ``TrainingLoop.history``
        self.history: list[list[tuple[int, dict[str, float]]]] = [[] for _ in cfgs]

    # -- drawing ----------------------------------------------------------------------------
    def _real_batch(self) -> torch.Tensor:
        """``[N, batch, *shape]``: each copy's ``Trainer._real_batch``, from its generator."""
        b, n_data = self.settings.batch_size, self.data.shape[0]
        idx = torch.stack([torch.randint(0, n_data, (b,), generator=g, device=self.device)
                           for g in self.rngs])
        return self.data[idx]

    def _latent(self) -> torch.Tensor:
        """``[N, batch, z_dim]``: each copy's ``Trainer._latent``, from its generator."""
        b = self.settings.batch_size
        return torch.stack([self.model.noise(b, self.z_dim, g) for g in self.rngs])

    # -- per-copy losses --------------------------------------------------------------------
    def _per_copy(self, fn: Callable[..., torch.Tensor], *args: torch.Tensor) -> torch.Tensor:
        if self.loss_mode == "vmap":
            return torch.vmap(fn)(*args)
        return torch.stack([fn(*(a[k] for a in args)) for k in range(self.n)])

    @staticmethod
    def _grad_norms(grads: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-copy L2 norm over all tensors: ``harness.trainer.grad_norm`` per copy (the
        norm of the per-tensor norms, as it computes it)."""
        per_tensor = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads],
                                 dim=1)  # [N, tensors]: each copy's norms contiguous, as in torch.stack
        return torch.linalg.vector_norm(per_tensor, dim=1)

    def _freeze_bad(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        """Freezes, before the optimiser step, every copy whose loss or gradient is NaN/inf."""
        ok = torch.isfinite(loss) & torch.isfinite(grad_norm)
        newly = self.active & ~ok
        self.diverged_at = torch.where(newly, self.step + 1, self.diverged_at)
        self.active = self.active & ok

    # -- one generator step -----------------------------------------------------------------
    def train_step(self, measure: bool) -> list[dict[str, float] | None] | None:
        """One step of every copy: ``d_steps`` D steps then one G step (Algorithm 1).

        With ``measure`` returns one diagnostics row per copy (``Trainer.train_step``'s
        keys and meanings), None for copies frozen before this step; otherwise None.
        """
        loss = self.loss
        was_active = self.active.clone() if measure else None
        if self.compile is not None and self.device.type == "cuda":
            # CUDA graphs (reduce-overhead): a new step may reuse the last one's buffers
            torch.compiler.cudagraph_mark_step_begin()
        for _ in range(self.settings.d_steps):
            real = self._real_batch()
            z = self._latent()
            with torch.no_grad():
                fake = self._g(z)
            real_logits = self._d(real)
            fake_logits = self._d(fake)
            loss_d = self._per_copy(loss.d_loss, real_logits, fake_logits)
            grads = torch.autograd.grad(loss_d.sum(), self.d_params)
            grad_d = self._grad_norms(grads)
            self._freeze_bad(loss_d, grad_d)
            self.opt_d.step(grads, self.active)

        z = self._latent()
        fake = self._g(z)
        # D frozen: torch.autograd.grad(loss_g, g_params) prunes autograd's own D weight
        # gradients, not _StackedLinearFunction's, whose needs_input_grad is fixed when the
        # forward runs (three of the 36 or so 64x128x128 products of a 4x128 ring MLP step
        # at N = 32: 6-7 % of the step in one-thread A/B runs at N = 32 and 128). G's input
        # gradients are the same products, bit for bit
        with frozen(self.d_params):
            fake_logits = self._d(fake)
        if measure:  # read now: a CUDA-graph replay may overwrite a graph's outputs
            with torch.no_grad():
                d_real = loss.d_prob(real_logits).mean(dim=1)
                d_fake = loss.d_prob(fake_logits).mean(dim=1)
        loss_g = self._per_copy(loss.g_loss, fake_logits)
        grads = torch.autograd.grad(loss_g.sum(), self.g_params)
        grad_g = self._grad_norms(grads)
        self._freeze_bad(loss_g, grad_g)
        self.opt_g.step(grads, self.active)
        self.step += 1
        if not measure:
            return None
        with torch.no_grad():
            d_fake_after = loss.d_prob(self._d(self._g(z))).mean(dim=1)
            cols = {
                names.LOSS_D: loss_d,
                names.LOSS_G: loss_g,
                names.D_REAL: d_real,
                names.D_FAKE: d_fake,
                names.D_FAKE_AFTER: d_fake_after,
                names.GRAD_D: grad_d,
                names.GRAD_G: grad_g,
            }
            table = torch.stack([c.detach().to(torch.float64) for c in cols.values()]).cpu()
        keys = list(cols)
        alive = was_active.cpu().tolist()
        rows: list[dict[str, float] | None] = []
        bad = []
        for k in range(self.n):
            if not alive[k]:
                rows.append(None)
                continue
            row = dict(zip(keys, table[:, k].tolist()))
            rows.append(row)
            self.history[k].append((self.step, row))
            if any(is_bad(row[key], self.diag.diverge_loss) for key in (names.LOSS_D, names.LOSS_G)):
                bad.append(k)
        if bad:  # TrainingLoop's rule on the logged row: stop the copy here
            idx = torch.tensor(bad, device=self.device)
            newly = torch.zeros_like(self.active)
            newly[idx] = True
            newly &= self.active
            self.diverged_at = torch.where(newly, self.step, self.diverged_at)
            self.active = self.active & ~newly
        return rows

    def train(self, steps: int) -> None:
        """``steps`` steps, measuring every ``log_every``-th as ``TrainingLoop.fit`` does."""
        log_every = self.settings.log_every
        for _ in range(steps):
            self.train_step(measure=(self.step + 1) % log_every == 0)

    # -- results ----------------------------------------------------------------------------
    @property
    def diverged(self) -> dict[int, int]:
        """``{copy: step}`` of every frozen copy (the step whose update was withheld, or
        the log step whose loss exceeded ``diverge_loss``)."""
        at = self.diverged_at.cpu().tolist()
        return {k: s for k, s in enumerate(at) if s > 0}

    def copy_state(self, k: int) -> dict[str, dict[str, torch.Tensor]]:
        """Copy ``k``'s networks as the single-copy modules' state dicts."""
        return {"generator": self.G.copy_state(k), "discriminator": self.D.copy_state(k)}

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """``[N, n, *shape]`` on the CPU from per-copy noise ``z`` ``[N, n, z_dim]``,
        generated in chunks of 4096 samples like ``Trainer.sample``."""
        was = self.G.training
        self.G.eval()
        try:
            return torch.cat([self.G(c.to(self.device)) for c in z.split(4096, dim=1)],
                             dim=1).cpu()
        finally:
            self.G.train(was)

    def sample(self, n: int | None = None) -> torch.Tensor:
        """Every copy's evaluation samples, ``[N, n, *shape]`` on the CPU.

        Without ``n``: from the Trainer's fixed evaluation noise (``train.eval_samples``
        per copy, seeded ``seed + 1_000_003``), i.e. ``Trainer.sample()`` per copy. With
        ``n``: ``Trainer.generate_extra(n)`` per copy -- noise seeded ``seed + 2_000_003``,
        drawn for the largest ``n`` asked so far and cut to ``n`` as the Trainer does.
        """
        if n is None:
            return self.generate(self.eval_noise)
        if self._extra is None or self._extra.shape[1] < n:
            self._extra = torch.stack([
                self.model.noise(n, self.z_dim, torch.Generator().manual_seed(s + 2_000_003))
                for s in self.seeds])
        return self.generate(self._extra[:, :n])

    def mode_coverage(self, metric: ModeCoverage | None = None,
                      samples: torch.Tensor | None = None) -> list[dict[str, float]]:
        """Per copy, the values ``ModeCoverage.evaluate`` reports for its evaluation
        samples, computed for all copies at once (``ModeCoverage.evaluate_copies``)."""
        metric = metric or ModeCoverage()
        samples = self.sample() if samples is None else samples
        evs = metric.evaluate_copies(list(samples), self.dataset, [None] * self.n)
        return [ev.values for ev in evs]


__all__ = [
    "COMPILE_MODES",
    "PER_COPY_TRAIN",
    "StackedAdam",
    "StackedLinear",
    "StackedMLP",
    "VectorizedGAN",
    "batched_mode_coverage",
    "stack_networks",
]

