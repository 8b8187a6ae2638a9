"""Stabilisation tricks: hooks the trainer calls, never copies of the training step.

A trick declares what it changes (:attr:`Trick.changes`), which model families it
applies to (:attr:`Trick.applies_to`), what it needs (:attr:`Trick.requires`) and what of
a loss it cannot be combined with (:attr:`Trick.excludes`); the study file is refused when
two tricks change the same exclusive thing, a trick is paired with a family it does not
support, or it meets a loss that provides something it excludes.
"""

from __future__ import annotations

from abc import ABC
from typing import Any, ClassVar

import torch

from harness.data import Dataset
from harness.losses import Loss, StepContext  # StepContext: also imported from here by plugins
from harness.models import GANPair, Model

#: what a trick may change; a combination changing the same one twice is refused
CHANGES = frozenset({"d_body", "targets", "g_loss", "penalty", "g_normalisation",
                     "d_normalisation"})
#: changes that more than one trick may make at once (penalties add up)
STACKABLE = frozenset({"penalty"})


class Trick(ABC):
    """Base of every trick; every hook defaults to "change nothing"."""

    changes: ClassVar[frozenset[str]] = frozenset()
    #: model families this trick works with; ``None`` means every family
    applies_to: ClassVar[frozenset[str] | None] = None
    #: model capabilities it needs (see ``Model.capabilities``), plus ``"loss_targets"``
    #: for a loss implementing ``Loss.d_loss_targets``
    requires: ClassVar[frozenset[str]] = frozenset()
    #: what of the loss this trick cannot be combined with: a variant whose loss lists one
    #: of these in ``Loss.provides`` is refused (e.g. spectral norm excludes the
    #: ``"weight_clipping"`` of ``wgan``)
    excludes: ClassVar[frozenset[str]] = frozenset()
    #: True for a trick that changes only the networks, in :meth:`setup` (no :meth:`start`,
    #: no step hook, no state): the vectorized engine (:mod:`harness.vector.engine`) calls
    #: its ``setup`` for every copy and stacks the networks it leaves. Any other trick must
    #: leave it False
    vectorizable: ClassVar[bool] = False

    def check_train(self, train: Any) -> None:
        """Called when a study is validated, once per variant, with the variant's
        :class:`harness.config.TrainSettings`; raises ValueError saying what does not fit
        this trick and what would (the study then exits 2 before anything runs)."""

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
        """Called in every D step; returns the loss to minimise. A trick that changes the
        targets (``"targets"`` in ``changes``) is called first, with the bare adversarial
        loss, and may recompute it; the others are called in their order after InfoGAN's
        term and the loss's ``penalty`` were added, and add to ``value`` (penalties)."""
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
