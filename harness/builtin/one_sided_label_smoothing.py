"""``one_sided_label_smoothing``: real targets alpha, fake targets unchanged (Salimans et al. 2016, 3.4)."""

from __future__ import annotations

import torch

from harness.registry import register_trick
from harness.tricks import StepContext, Trick


@register_trick("one_sided_label_smoothing")
class OneSidedLabelSmoothing(Trick):
    """D's real targets become alpha (default 0.9); fake targets stay 0 (smoothing them hurts)."""

    changes = frozenset({"targets"})
    requires = frozenset({"loss_targets"})

    def __init__(self, alpha: float = 0.9):
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha

    def d_loss(self, value: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return ctx.loss.d_loss_targets(ctx.real_logits, ctx.fake_logits, self.alpha, 0.0)
