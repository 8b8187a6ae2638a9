"""``gradient_penalty``: ``weight * E (‖∇ₓD(x̂)‖₂ - center)²`` added to D's loss, with any loss.

The penalty of WGAN-GP (Gulrajani et al. 2017; ``center`` 1, at interpolates between real
and generated samples) as a regularizer of its own: ``center`` 0 makes it the zero-centred
penalty (Mescheder et al. 2018; Thanh-Tung et al. 2019), ``at: real`` puts it on the real
batch instead of the interpolates.
"""

from __future__ import annotations

from typing import Literal

import torch

from harness.penalties import gradient_penalty, interpolates
from harness.registry import register_trick
from harness.tricks import StepContext, Trick

#: families whose D takes a sample tensor it can be differentiated against (the CycleGAN
#: and xy games run loops of their own, which call no trick)
INPUT_GRADIENT_FAMILIES = frozenset({"mlp", "dcgan", "cgan", "infogan"})


@register_trick("gradient_penalty")
class GradientPenalty(Trick):
    """Adds weight * E(‖∇D(x̂)‖ - center)² to every D step, x̂ interpolates (or the real batch)."""

    changes = frozenset({"penalty"})
    applies_to = INPUT_GRADIENT_FAMILIES

    def __init__(self, weight: float = 10.0, center: float = 1.0,
                 at: Literal["interpolates", "real"] = "interpolates"):
        if weight <= 0:
            raise ValueError(f"weight must be > 0, got {weight}")
        if center not in (0.0, 1.0):
            raise ValueError(f"center must be 1.0 (one-centred) or 0.0 (zero-centred), got {center}")
        self.weight, self.center, self.at = weight, float(center), at

    def d_loss(self, value: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        x = interpolates(ctx.real, ctx.fake, ctx.rng) if self.at == "interpolates" else ctx.real
        gp = gradient_penalty(lambda v: ctx.gan.discriminate(v, ctx.real_y)[0], x, self.center)
        return value + self.weight * gp
