"""Model families: a generator/discriminator pair built for a dataset.

The trainer never calls the networks directly: it calls :meth:`GANPair.generate` and
:meth:`GANPair.discriminate`, so one training step serves every family:

* unconditional families: ``G(z)`` and ``D(x)`` returning one logit per sample;
* conditional families (``n_classes`` set): ``G(z, y)`` and ``D(x, y)`` with class labels;
* families with an auxiliary head (``aux`` set, e.g. InfoGAN's Q network): D returns
  ``(n, 1 + k)``, column 0 the adversarial logit, the rest what ``aux.loss`` scores
  against the latent that made the sample.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch
from torch import nn

from harness.data import Dataset

if TYPE_CHECKING:
    from harness.loop import TrainingLoop


class Auxiliary(Protocol):
    """An auxiliary objective on D's extra outputs (InfoGAN's mutual-information bound)."""

    def loss(self, aux: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Loss of the extra outputs ``aux`` for samples generated from latents ``z``;
        added to both the D loss and the G loss of every step."""

    def codes(self, z: torch.Tensor) -> torch.Tensor | None:
        """The categorical code value of each latent (for ``code_accuracy``), or None."""


@dataclass
class Grid:
    """A picture of samples in rows and columns: latents, labels, and axis captions."""

    name: str
    z: torch.Tensor
    ncol: int
    labels: torch.Tensor | None = None
    col_labels: list[str] = field(default_factory=list)
    row_labels: list[str] = field(default_factory=list)


@dataclass
class GANPair:
    """What a :class:`Model` builds: the two networks, the latent size and the calling
    convention (see the module docstring)."""

    generator: nn.Module
    discriminator: nn.Module
    z_dim: int
    n_classes: int | None = None
    aux: Auxiliary | None = None

    @property
    def conditional(self) -> bool:
        return self.n_classes is not None

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(z) if labels is None else self.generator(z, labels)

    def discriminate(self, x: torch.Tensor, labels: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits of shape (n,), auxiliary outputs or None)``."""
        out = self.discriminator(x) if labels is None else self.discriminator(x, labels)
        if self.aux is None:
            return out, None
        return out[:, 0], out[:, 1:]


class Model(ABC):
    """A family of generator/discriminator architectures.

    Subclasses take their architecture parameters as constructor keyword arguments
    (these are what a study file's ``model.params`` may set and search) and build the
    networks in :meth:`build`, which is called once per trial after the seed is set.
    """

    #: family name that tricks match in ``Trick.applies_to`` (e.g. "mlp", "dcgan")
    family: ClassVar[str] = ""
    #: whether a variant of this family names a loss (False for families whose game has
    #: its own objective, e.g. the xy game); checked when a study is validated
    uses_loss: ClassVar[bool] = True
    #: whether the family's game calls the trick hooks (:mod:`harness.tricks`); families
    #: with their own loop that does not are refused any trick when a study is validated
    accepts_tricks: ClassVar[bool] = True
    #: the loss a variant of this family gets when its study names none (None: one is required)
    default_loss: ClassVar[str | None] = None

    def capabilities(self) -> frozenset[str]:
        """What the built networks offer to tricks and metrics, checked when a study is validated.

        Known values:

        * ``"d_features"``: the discriminator has ``features(x, layer=-1)`` returning the
          activations of a hidden layer;
        * ``"g_batchnorm"``: the generator normalises with ``nn.BatchNorm1d/2d``;
        * ``"g_plain"`` / ``"d_plain"``: G is called as ``G(z)`` / D as ``D(x)`` returning
          one logit per sample (tricks that wrap a network need this);
        * ``"conditional"``: samples are generated for given class labels;
        * ``"categorical_code"``: the latent holds a categorical code (InfoGAN).
        """
        return frozenset()

    def derived_params(self) -> dict[str, Any]:
        """``{parameter: value used}`` for the constructor parameters left at ``None`` that
        this model derives itself (e.g. the ``mlp`` widths taken from its ``preset``);
        ``{}`` by default.

        Called once per trial when its MLflow run starts, after the model was constructed
        (:func:`harness.trial.recorded_params`): a parameter whose configured value is
        ``None`` is logged as ``model.<parameter>`` with the value given here, so the real
        architecture can be filtered and compared in MLflow. The trial's config (its
        ``config.json`` and ``config_digest``) keeps the ``None``, so a searched preset still
        decides. Keys that are not ``None`` in the config are ignored: a given value wins."""
        return {}

    def check(self, dataset: Dataset) -> None:
        """Raise ``ValueError`` when this model cannot be built for ``dataset`` (e.g. an
        image size the architecture does not support); called when a study is validated."""

    @abstractmethod
    def build(self, dataset: Dataset) -> GANPair:
        """Build freshly initialised networks whose outputs match ``dataset.shape``."""

    def loop_class(self) -> type[TrainingLoop] | None:
        """The :class:`~harness.loop.TrainingLoop` that plays this family's game; called
        once per trial. None (the default): the adversarial GAN game, which the runtime
        plays with :class:`harness.trainer.Trainer`; a family that plays another game
        (CycleGAN, the xy game) returns its own loop. The class is constructed as
        ``cls(model, gan, loss, dataset, metrics, settings, diagnostics, seed, tricks=...,
        device=..., title=...)``."""
        return None

    def noise(self, n: int, z_dim: int, generator: torch.Generator) -> torch.Tensor:
        """Latent noise for ``n`` samples; standard normal unless a family overrides it."""
        return torch.randn(n, z_dim, generator=generator, device=generator.device)

    def grids(self, gan: GANPair, generator: torch.Generator) -> list[Grid]:
        """Sample grids drawn at every evaluation of image models (rows are noise vectors,
        columns classes or code values); none by default, when the dataset's own picture
        of the samples is shown instead."""
        return []
