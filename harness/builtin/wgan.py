"""``wgan``: the Wasserstein GAN with weight clipping (Arjovsky, Chintala & Bottou 2017).

The critic f maximises ``E f(x) - E f(G(z))``, an estimate of the Wasserstein-1 distance
when f is 1-Lipschitz, which clipping every weight of D to ``[-clip, clip]`` after each
critic step keeps it (up to a constant). The paper's ``n_critic`` (5) is the harness's
``train.d_steps``; its RMSProp optimizer is not reproduced (the harness trains with Adam).
"""

from __future__ import annotations

import torch

from harness.losses import Loss
from harness.registry import register_loss


def wgan_d_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """The critic minimises ``mean f(G(z)) - mean f(x)``."""
    return fake_scores.mean() - real_scores.mean()


def wgan_g_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """The generator minimises ``-mean f(G(z))``."""
    return -fake_scores.mean()


@register_loss("wgan")
class WGAN(Loss):
    """Wasserstein GAN (Arjovsky et al. 2017): critic scores, weights clipped to ±clip after every D step."""

    critic = True

    def __init__(self, clip: float | None = 0.01):
        if clip is not None and clip < 0:
            raise ValueError(f"clip must be > 0 (or 0/None to disable clipping), got {clip}")
        #: None: no clipping (then only an outside constraint, e.g. a penalty, keeps f Lipschitz)
        self.clip = clip or None

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return wgan_d_loss(real_logits, fake_logits)

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return wgan_g_loss(fake_logits)

    def after_d_step(self, discriminator: torch.nn.Module) -> None:
        """Clips every parameter of D to ``[-clip, clip]`` (the paper's Algorithm 1, line 7)."""
        if self.clip is None:
            return
        with torch.no_grad():
            for p in discriminator.parameters():
                p.clamp_(-self.clip, self.clip)

    @property
    def provides(self) -> frozenset[str]:
        return frozenset({"weight_clipping"}) if self.clip is not None else frozenset()
