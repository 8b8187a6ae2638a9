"""Adam over stacked parameters, one Adam per copy: :class:`StackedAdam`.

Per copy, :meth:`StackedAdam.step` is ``torch.optim.Adam``'s update (the single-tensor
CPU path, which a single-copy trial gets on the CPU) with per-copy ``lr``, ``beta1``,
``beta2`` tensors: the same operations, in the same order, on the same float32 constants,
fed through ``addcmul_``/``addcdiv_`` so that the kernels' rounding (fused multiply-adds)
is torch's. Param groups cannot split one stacked tensor, and scaling copy ``k``'s loss
does not change its Adam step, so a per-copy learning rate needs per-copy tensors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

#: ``compile`` values of :class:`~harness.vector.engine.VectorizedGAN` and
#: :class:`StackedAdam`: None (eager) or a ``torch.compile`` mode
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


__all__ = ["COMPILE_MODES", "StackedAdam", "check_compile_mode"]
