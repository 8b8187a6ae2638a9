"""``r1``: a zero-centred gradient penalty on the real samples (and the base of ``r2``).

Mescheder, Geiger & Nowozin 2018, "Which Training Methods for GANs do actually Converge?",
eq. 9 and 10: ``R1 = γ/2 · E_x ‖∇D(x)‖²`` on the real data, ``R2`` the same on generated
samples. ``every`` > 1 is StyleGAN2's lazy regularization (Karras et al. 2020, sec. 3.1):
the penalty is applied only on the D steps of every ``every``-th generator step, multiplied
by ``every`` so that its average strength is unchanged.
"""

from __future__ import annotations

import torch

from harness.builtin.gradient_penalty import INPUT_GRADIENT_FAMILIES
from harness.penalties import squared_grad_norm
from harness.registry import register_trick
from harness.tricks import StepContext, Trick


class ZeroCentred(Trick):
    """γ/2 · E‖∇D(x)‖² on the samples :meth:`_points` picks, every ``every`` generator steps."""

    changes = frozenset({"penalty"})
    applies_to = INPUT_GRADIENT_FAMILIES

    def __init__(self, gamma: float = 10.0, every: int = 1):
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.gamma, self.every = gamma, every

    def _points(self, ctx: StepContext) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def d_loss(self, value: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if ctx.step % self.every:
            return value
        x, labels = self._points(ctx)
        reg = squared_grad_norm(lambda v: ctx.gan.discriminate(v, labels)[0], x)
        return value + self.every * self.gamma / 2 * reg


@register_trick("r1")
class R1(ZeroCentred):
    """R1 (Mescheder et al. 2018): adds γ/2 · E‖∇D(x_real)‖² to D's loss; every > 1 is lazy (×every)."""

    def _points(self, ctx):
        return ctx.real, ctx.real_y

