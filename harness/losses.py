"""Adversarial losses as pure functions of discriminator logits.

``logits`` are the discriminator's raw outputs (pre-sigmoid). Implementations must be
numerically stable: work on logits (``softplus``, ``logsigmoid``), never take the log
of a sigmoid output.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch


class Loss(ABC):
    """A GAN objective: what D minimises and what G minimises."""

    @abstractmethod
    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """Scalar loss the discriminator minimises; called once per discriminator step."""

    @abstractmethod
    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """Scalar loss the generator minimises; called once per generator step."""

    def d_prob(self, logits: torch.Tensor) -> torch.Tensor:
        """D's output on the scale 0 = "fake", 1 = "real" (for ``d_real``/``d_fake``).

        The default is the sigmoid, right for every loss built on a Bernoulli
        discriminator; losses with other targets (least squares) rescale.
        """
        return torch.sigmoid(logits)
