"""``feature_matching``: G matches the mean of a hidden D layer on real vs generated batches.

Salimans et al. 2016, 3.1: ``|| E f(x) - E f(G(z)) ||_2^2`` with f a discriminator layer.
"""

from __future__ import annotations

from typing import Literal

import torch

from harness.registry import register_trick
from harness.tricks import StepContext, Trick


def feature_matching_loss(real_features: torch.Tensor, fake_features: torch.Tensor) -> torch.Tensor:
    """Squared L2 distance between the batch means of the two feature sets."""
    return (real_features.mean(dim=0) - fake_features.mean(dim=0)).pow(2).sum()


@register_trick("feature_matching")
class FeatureMatching(Trick):
    """G's loss is (mode=replace) or gains (mode=add, times weight) the feature-matching distance."""

    changes = frozenset({"g_loss"})
    requires = frozenset({"d_features"})

    def __init__(self, layer: int = -1, mode: Literal["replace", "add"] = "replace",
                 weight: float = 1.0):
        if weight <= 0:
            raise ValueError(f"weight must be > 0, got {weight}")
        self.layer, self.mode, self.weight = layer, mode, weight

    def g_loss(self, value: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        d = ctx.gan.discriminator
        with torch.no_grad():
            real_f = d.features(ctx.real, self.layer)
        fm = feature_matching_loss(real_f, d.features(ctx.fake, self.layer))
        return fm if self.mode == "replace" else value + self.weight * fm
