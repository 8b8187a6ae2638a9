"""``minimax``: the original saturating GAN game (Goodfellow et al. 2014)."""

import torch
import torch.nn.functional as F

from harness.losses import Loss
from harness.registry import register_loss


@register_loss("minimax")
class Minimax(Loss):
    """D maximises log D(x) + log(1-D(G(z))); G minimises log(1-D(G(z))) (saturating)."""

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        # -log sigmoid(l) = softplus(-l);  -log(1 - sigmoid(l)) = softplus(l)
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        # log(1 - sigmoid(l)) = -softplus(l)
        return -F.softplus(fake_logits).mean()
