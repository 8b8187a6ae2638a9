"""Adversarial losses as pure functions of discriminator logits.

``logits`` are the discriminator's raw outputs (pre-sigmoid). Implementations must be
numerically stable: work on logits (``softplus``, ``logsigmoid``), never take the log
of a sigmoid output.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from harness.models import GANPair


@dataclass
class StepContext:
    """What a loss hook sees: the batch, the generated samples and D's logits on both.

    ``real_y``/``fake_y`` are the class labels the batches were drawn/generated with (None
    for unconditional families), so a hook can call ``gan.discriminate(x, labels)`` itself
    (gradient penalties); ``rng`` is the trainer's generator, for reproducible draws."""

    step: int
    real: torch.Tensor
    fake: torch.Tensor
    real_logits: torch.Tensor | None  # None in the generator step
    fake_logits: torch.Tensor
    gan: GANPair
    loss: Loss
    real_y: torch.Tensor | None = None
    fake_y: torch.Tensor | None = None
    rng: torch.Generator | None = None


def bernoulli_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                     real_target: float = 1.0, fake_target: float = 0.0) -> torch.Tensor:
    """The discriminator's cross-entropy against targets, on logits.

    With the default targets this is -log D(x) - log(1 - D(G(z))); a target t costs
    ``t * softplus(-l) + (1 - t) * softplus(l)`` since ``-log sigmoid(l) = softplus(-l)``
    and ``-log(1 - sigmoid(l)) = softplus(l)``.
    """

    def bce(logits: torch.Tensor, t: float) -> torch.Tensor:
        if t == 1.0:
            return F.softplus(-logits).mean()
        if t == 0.0:
            return F.softplus(logits).mean()
        return (t * F.softplus(-logits) + (1 - t) * F.softplus(logits)).mean()

    return bce(real_logits, real_target) + bce(fake_logits, fake_target)


class Loss(ABC):
    """A GAN objective: what D minimises and what G minimises.

    :meth:`d_loss` and :meth:`g_loss` stay pure functions of D's outputs. A loss that needs
    more than the logits uses the two hooks the standard game
    (:meth:`harness.trainer.Trainer.train_step`) calls, which default to "nothing":

    * :meth:`penalty` -- a term added to the D loss of every D step (gradient penalties);
    * :meth:`after_d_step` -- called with D after every D optimizer step (weight clipping).

    Families that play their own game (CycleGAN) call neither, so a loss using a hook
    (:func:`hooks_of`) or a :attr:`critic` is refused for them when a study is validated;
    vectorized trials fall back to single ones for such losses
    (:func:`harness.vector.trial.fallback_reason`).
    """

    #: True when D's output is an unbounded score (a critic: WGAN, hinge), not the logit of
    #: a probability. The trainer then logs ``critic_real``/``critic_fake``/``critic_gap``
    #: instead of ``d_real``/``d_fake``/``d_fake_after`` (:mod:`harness.names`), so the
    #: ``d_overpowers`` rule, which reads those, never holds for a critic.
    critic: ClassVar[bool] = False

    @abstractmethod
    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """Scalar loss the discriminator minimises; called once per discriminator step."""

    @abstractmethod
    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """Scalar loss the generator minimises; called once per generator step."""

    def d_loss_targets(self, real_logits: torch.Tensor, fake_logits: torch.Tensor,
                       real_target: float, fake_target: float) -> torch.Tensor:
        """The D loss with other targets, on the ``d_prob`` scale (1 = real, 0 = fake).

        Called instead of :meth:`d_loss` by tricks that change the targets (one-sided
        label smoothing). Losses that have no notion of targets leave it unimplemented,
        and such tricks are refused for them when the study is validated.
        """
        raise NotImplementedError(f"{type(self).__name__} has no discriminator targets")

    @property
    def supports_targets(self) -> bool:
        return type(self).d_loss_targets is not Loss.d_loss_targets

    def penalty(self, ctx: StepContext) -> torch.Tensor | None:
        """A term added to the D loss in every D step (before the tricks' ``d_loss`` hooks),
        or None (the default) for none. ``ctx`` holds the step's real and generated batches,
        their labels, D's logits on both, the networks and the trainer's ``rng``."""
        return None

    def after_d_step(self, discriminator: torch.nn.Module) -> None:
        """Called with D after every D optimizer step, before the tricks' ``after_d_step``
        (WGAN's weight clipping lives here); does nothing by default."""

    @property
    def provides(self) -> frozenset[str]:
        """What this loss (as configured) does to D beyond its objective, e.g.
        ``"weight_clipping"``; a trick listing one of them in ``Trick.excludes`` is refused
        with it when a study is validated. Empty by default."""
        return frozenset()

    def d_prob(self, logits: torch.Tensor) -> torch.Tensor:
        """D's output on the scale 0 = "fake", 1 = "real" (for ``d_real``/``d_fake``).

        The default is the sigmoid, right for every loss built on a Bernoulli
        discriminator; losses with other targets (least squares) rescale.
        """
        return torch.sigmoid(logits)


def hooks_of(cls: type[Loss]) -> tuple[str, ...]:
    """The hooks (``"penalty"``, ``"after_d_step"``) a loss class overrides; read from the
    class, so validation and vectorization can ask before anything is built."""
    return tuple(h for h in ("penalty", "after_d_step")
                 if getattr(cls, h) is not getattr(Loss, h))


class BernoulliLoss(Loss):
    """Base of the losses whose D is a Bernoulli classifier trained with cross-entropy.

    Subclasses define only the generator's loss (minimax, non-saturating, maximum
    likelihood differ there alone).
    """

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return bernoulli_d_loss(real_logits, fake_logits)

    def d_loss_targets(self, real_logits, fake_logits, real_target, fake_target):
        return bernoulli_d_loss(real_logits, fake_logits, real_target, fake_target)
