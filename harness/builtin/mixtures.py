"""``ring8`` and ``grid25``: the 2-D Gaussian mixtures of VEEGAN / PacGAN / Unrolled GAN."""

from __future__ import annotations

import math

import torch

from harness.data import GaussianMixture
from harness.registry import register_dataset


@register_dataset("ring8")
class Ring(GaussianMixture):
    """Gaussians evenly spaced on a circle (default: 8 modes, radius 1, std 0.01)."""

    def __init__(
        self,
        modes: int = 8,
        radius: float = 1.0,
        std: float = 0.01,
        n_train: int = 100_000,
        data_seed: int = 0,
    ):
        if modes < 1:
            raise ValueError(f"modes must be >= 1, got {modes}")
        if radius <= 0:
            raise ValueError(f"radius must be > 0, got {radius}")
        angles = torch.arange(modes, dtype=torch.float64) * (2 * math.pi / modes)
        centres = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
        super().__init__(centres, std, n_train, data_seed)


@register_dataset("grid25")
class Grid(GaussianMixture):
    """Gaussians on a square grid (default: 5x5 means in {-4,-2,0,2,4}^2, std 0.05)."""

    def __init__(
        self,
        side: int = 5,
        spacing: float = 2.0,
        std: float = 0.05,
        n_train: int = 100_000,
        data_seed: int = 0,
    ):
        if side < 1:
            raise ValueError(f"side must be >= 1, got {side}")
        if spacing <= 0:
            raise ValueError(f"spacing must be > 0, got {spacing}")
        axis = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
        xx, yy = torch.meshgrid(axis, axis, indexing="ij")
        centres = torch.stack([xx.flatten(), yy.flatten()], dim=1)
        super().__init__(centres, std, n_train, data_seed)
