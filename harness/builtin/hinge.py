"""``hinge``: the hinge adversarial loss (Lim & Ye 2017, "Geometric GAN"; used by SNGAN,
Miyato et al. 2018, and BigGAN, Brock et al. 2019).

D: ``E relu(1 - f(x)) + E relu(1 + f(G(z)))``; G: ``-E f(G(z))``. D's output is a score
(a critic), not the logit of a probability.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.losses import Loss
from harness.registry import register_loss


@register_loss("hinge")
class Hinge(Loss):
    """Hinge loss (Lim & Ye 2017; SNGAN, BigGAN): D: E relu(1-f(x)) + E relu(1+f(G(z))); G: -E f(G(z))."""

    critic = True
    #: a pure function of the logits: vectorized trials could apply it per copy (they fall
    #: back for now because the stacked engine logs no critic histories)
    vectorizable = True

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -fake_logits.mean()
