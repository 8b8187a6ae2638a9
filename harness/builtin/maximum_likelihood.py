"""``maximum_likelihood``: G cost -1/2 E[exp(sigmoid^-1(D(G(z))))] (Goodfellow, NIPS 2016 tutorial)."""

import torch

from harness.losses import BernoulliLoss
from harness.registry import register_loss


@register_loss("maximum_likelihood")
class MaximumLikelihood(BernoulliLoss):
    """D as in minimax; G minimises -1/2 E[exp(logit)], which makes G's game minimise KL(p_data||p_g)."""

    #: a pure function of the logits: vectorized trials apply it per copy
    vectorizable = True

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        # sigmoid^-1(D(G(z))) is the logit itself: no sigmoid/log round trip.
        return -0.5 * torch.exp(fake_logits).mean()
