"""A third-party plugin module, registered only through a study file's ``plugins:`` list.

It is *not* installed: the study names it as ``tests.plugin_example`` and the harness
imports it on the driver and in every trial process.
"""

import torch
import torch.nn.functional as F

from harness.losses import Loss
from harness.registry import register_loss


@register_loss("test_hinge")
class Hinge(Loss):
    """Hinge loss (Lim & Ye 2017): D: E[relu(1-D(x))] + E[relu(1+D(G(z)))]; G: -E[D(G(z))]."""

    def __init__(self, margin: float = 1.0):
        self.margin = margin

    def d_loss(self, real_logits, fake_logits):
        return F.relu(self.margin - real_logits).mean() + F.relu(self.margin + fake_logits).mean()

    def g_loss(self, fake_logits):
        return -fake_logits.mean()


@register_loss("test_explodes")
class Explodes(Loss):
    """A loss that raises after ``after`` generator steps (to test failed trials)."""

    def __init__(self, after: int = 30):
        self.after = after
        self.calls = 0

    def d_loss(self, real_logits, fake_logits):
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def g_loss(self, fake_logits):
        self.calls += 1
        if self.calls > self.after:
            raise RuntimeError(f"test_explodes: boom after {self.after} steps")
        return F.softplus(-fake_logits).mean() + 0 * torch.zeros(())


@register_loss("test_dies_once")
class DiesOnce(Loss):
    """Non-saturating, but the first process to reach generator step ``after`` exits on the
    spot (``os._exit``: no cleanup, like a lost node); ``marker`` records that it happened."""

    def __init__(self, marker: str, after: int = 50):
        self.marker, self.after = marker, after
        self.calls = 0

    def d_loss(self, real_logits, fake_logits):
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def g_loss(self, fake_logits):
        import os
        from pathlib import Path

        self.calls += 1
        if self.calls >= self.after and not Path(self.marker).exists():
            Path(self.marker).write_text("died")
            os._exit(1)
        return F.softplus(-fake_logits).mean()
