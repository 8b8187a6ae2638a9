"""``dragan``: a Bernoulli GAN with a gradient penalty around the data (Kodali et al. 2017).

"On Convergence and Stability of GANs": D's cross-entropy loss (as ``non_saturating``,
whose G loss it uses) plus ``gp_weight * E (‖∇D(x̂)‖₂ - 1)²`` at points ``x̂`` between the
real samples and their perturbation ``x + c·std(x)·u`` (u ~ U[0, 1]): the penalty keeps D
smooth near the data, where the authors find the sharp gradients of mode collapse
(λ = 10, c = 0.5 as in the paper and the authors' code, which samples x̂ on the segment
between x and its perturbation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.losses import BernoulliLoss
from harness.penalties import dragan_perturb, gradient_penalty, interpolates
from harness.registry import register_loss
from harness.tricks import StepContext


@register_loss("dragan")
class DRAGAN(BernoulliLoss):
    """DRAGAN (Kodali et al. 2017): non-saturating loss plus a one-centred gradient penalty near the data."""

    def __init__(self, gp_weight: float = 10.0, c: float = 0.5):
        if gp_weight < 0:
            raise ValueError(f"gp_weight must be >= 0, got {gp_weight}")
        if c <= 0:
            raise ValueError(f"c must be > 0, got {c}")
        self.gp_weight, self.c = gp_weight, c

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake_logits).mean()

    def penalty(self, ctx: StepContext) -> torch.Tensor:
        """``gp_weight * E (‖∇D(x̂)‖ - 1)²`` between this D step's real batch and its perturbation."""
        x_hat = interpolates(ctx.real, dragan_perturb(ctx.real, ctx.rng, self.c), ctx.rng)
        return self.gp_weight * gradient_penalty(
            lambda x: ctx.gan.discriminate(x, ctx.real_y)[0], x_hat, center=1.0)
