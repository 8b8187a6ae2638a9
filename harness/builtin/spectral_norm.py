"""``spectral_norm``: every weight of D divided by its largest singular value (Miyato et al. 2018).

Each ``Linear``, ``Conv*`` and ``ConvTranspose*`` layer of the discriminator gets
``torch.nn.utils.parametrizations.spectral_norm``, which estimates the top singular value
with ``n_power_iterations`` power iterations per forward pass in training (1 in the paper,
whose estimate improves over the steps since the vectors persist). Applied in ``start``,
after every trick's ``setup`` (so a replaced D is normalised too) and before the optimizers
exist (so they train the parametrized weights). Excludes ``wgan``'s weight clipping, which
would fight the normalisation.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from harness.models import GANPair
from harness.registry import register_trick
from harness.tricks import Trick

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d,
           nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def spectral_normalise(module: nn.Module, n_power_iterations: int = 1) -> int:
    """Parametrize every layer of :data:`_LAYERS` in ``module`` in place; returns how many."""
    layers = [m for m in module.modules() if isinstance(m, _LAYERS)]  # before adding any
    for layer in layers:
        spectral_norm(layer, n_power_iterations=n_power_iterations)
    return len(layers)


@register_trick("spectral_norm")
class SpectralNorm(Trick):
    """Spectral normalisation of every linear/conv layer of D (Miyato et al. 2018, SNGAN)."""

    changes = frozenset({"d_normalisation"})
    excludes = frozenset({"weight_clipping"})

    def __init__(self, n_power_iterations: int = 1):
        if n_power_iterations < 1:
            raise ValueError(f"n_power_iterations must be >= 1, got {n_power_iterations}")
        self.n_power_iterations = n_power_iterations

    def start(self, gan: GANPair) -> None:
        if not spectral_normalise(gan.discriminator, self.n_power_iterations):
            raise ValueError(f"spectral_norm: the discriminator "
                             f"{type(gan.discriminator).__name__} has no linear or conv layer")
