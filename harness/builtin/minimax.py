"""``minimax``: the original saturating GAN game (Goodfellow et al. 2014)."""

import torch
import torch.nn.functional as F

from harness.losses import BernoulliLoss
from harness.registry import register_loss


@register_loss("minimax")
class Minimax(BernoulliLoss):
    """D maximises log D(x) + log(1-D(G(z))); G minimises log(1-D(G(z))) (saturating)."""

    #: a pure function of the logits: vectorized trials apply it per copy
    vectorizable = True

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        # log(1 - sigmoid(l)) = -softplus(l)
        return -F.softplus(fake_logits).mean()
