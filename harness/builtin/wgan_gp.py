"""``wgan_gp``: WGAN with a gradient penalty instead of clipping (Gulrajani et al. 2017).

The critic loss of WGAN plus ``gp_weight * E (‖∇f(x̂)‖₂ - 1)²`` at random interpolates
``x̂ = εx + (1-ε)G(z)`` (the paper's Algorithm 1, λ = 10). The paper's ``n_critic`` (5) is
the harness's ``train.d_steps``. Interpolates take the real batch's labels in conditional
families. D should not use batch normalisation (the penalty is per sample); the paper
suggests layer norm.
"""

from __future__ import annotations

import torch

from harness.builtin.wgan import wgan_d_loss, wgan_g_loss
from harness.losses import Loss
from harness.penalties import gradient_penalty, interpolates
from harness.registry import register_loss
from harness.tricks import StepContext


@register_loss("wgan_gp")
class WGANGP(Loss):
    """WGAN-GP (Gulrajani et al. 2017): critic scores, one-centred gradient penalty at interpolates."""

    critic = True

    def __init__(self, gp_weight: float = 10.0):
        if gp_weight < 0:
            raise ValueError(f"gp_weight must be >= 0, got {gp_weight}")
        self.gp_weight = gp_weight

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return wgan_d_loss(real_logits, fake_logits)

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return wgan_g_loss(fake_logits)

    def penalty(self, ctx: StepContext) -> torch.Tensor:
        """``gp_weight * E (‖∇f(x̂)‖ - 1)²`` at this D step's interpolates."""
        x_hat = interpolates(ctx.real, ctx.fake, ctx.rng)
        return self.gp_weight * gradient_penalty(
            lambda x: ctx.gan.discriminate(x, ctx.real_y)[0], x_hat, center=1.0)
