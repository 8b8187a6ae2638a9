"""Model families: a generator/discriminator pair built for a dataset."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from harness.data import Dataset


@dataclass
class GANPair:
    """What a :class:`Model` builds: the two networks and the noise dimension."""

    generator: nn.Module
    discriminator: nn.Module
    z_dim: int


class Model(ABC):
    """A family of generator/discriminator architectures.

    Subclasses take their architecture parameters as constructor keyword arguments
    (these are what a study file's ``model.params`` may set and search) and build the
    networks in :meth:`build`, which is called once per trial after the seed is set.
    """

    #: family name that tricks match in ``Trick.applies_to`` (e.g. "mlp", "dcgan")
    family: ClassVar[str] = ""

    def capabilities(self) -> frozenset[str]:
        """What the built networks offer to tricks, checked when a study is validated.

        Known values: ``"d_features"`` (the discriminator has ``features(x, layer=-1)``
        returning the activations of a hidden layer) and
        ``"g_batchnorm"`` (the generator normalises with ``nn.BatchNorm1d/2d``).
        """
        return frozenset()

    @abstractmethod
    def build(self, dataset: Dataset) -> GANPair:
        """Build freshly initialised networks whose outputs match ``dataset.shape``."""

    def noise(self, n: int, z_dim: int, generator: torch.Generator) -> torch.Tensor:
        """Latent noise for ``n`` samples; standard normal unless a family overrides it."""
        return torch.randn(n, z_dim, generator=generator, device=generator.device)
