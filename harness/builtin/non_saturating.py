"""``non_saturating``: the heuristic G loss -log D(G(z)) (Goodfellow et al. 2014, sec. 3)."""

import torch
import torch.nn.functional as F

from harness.losses import BernoulliLoss
from harness.registry import register_loss


@register_loss("non_saturating")
class NonSaturating(BernoulliLoss):
    """D as in minimax; G maximises log D(G(z)), i.e. minimises softplus(-logit)."""

    #: a pure function of the logits: vectorized trials apply it per copy
    vectorizable = True

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake_logits).mean()
