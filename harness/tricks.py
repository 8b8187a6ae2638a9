"""Stabilisation tricks: hooks the trainer calls, never copies of the training step.

A trick declares what it changes (:attr:`Trick.changes`) and which model families it
applies to (:attr:`Trick.applies_to`); the study file is refused when two tricks change
the same exclusive thing or a trick is paired with a family it does not support.
"""

from __future__ import annotations

from abc import ABC
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from harness.data import Dataset
from harness.losses import Loss
from harness.models import GANPair, Model

#: what a trick may change; a combination changing the same one twice is refused
CHANGES = frozenset({"d_body", "targets", "g_loss", "penalty", "normalisation"})
#: changes that more than one trick may make at once (penalties add up)
STACKABLE = frozenset({"penalty"})


@dataclass
class StepContext:
    """What a loss hook sees: the batch, the generated samples and D's logits on both."""

    step: int
    real: torch.Tensor
    fake: torch.Tensor
    real_logits: torch.Tensor | None  # None in the generator step
    fake_logits: torch.Tensor
    gan: GANPair
    loss: Loss


class Trick(ABC):
    """Base of every trick; every hook defaults to "change nothing"."""

    changes: ClassVar[frozenset[str]] = frozenset()
    #: model families this trick works with; ``None`` means every family
    applies_to: ClassVar[frozenset[str] | None] = None
    #: model capabilities it needs (see ``Model.capabilities``), plus ``"loss_targets"``
    #: for a loss implementing ``Loss.d_loss_targets``
    requires: ClassVar[frozenset[str]] = frozenset()

    def setup(self, gan: GANPair, loss: Loss, dataset: Dataset, model: Model) -> None:
        """Called once per trial after the networks are built, before the optimizers exist.

        May replace ``gan.generator`` / ``gan.discriminator`` (e.g. wrap D's body, or build
        a D for other inputs with ``model``); the trainer builds the optimizers over
        whatever modules are there afterwards.
        """

    def start(self, gan: GANPair) -> None:
        """Called once after every trick's ``setup``, when the networks are final and on
        their device, before the optimizers exist and before a checkpoint is restored."""

    def d_loss(self, value: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """Called after the adversarial D loss of every D step; returns the loss to minimise."""
        return value

    def g_loss(self, value: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """Called after the adversarial G loss of every G step; returns the loss to minimise."""
        return value

    def after_d_step(self, gan: GANPair, step: int) -> None:
        """Called after every discriminator optimizer step."""

    def after_g_step(self, gan: GANPair, step: int) -> None:
        """Called after every generator optimizer step (running averages live here)."""

    def state_dict(self) -> dict[str, Any]:
        """State that must survive checkpoint/restore."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
