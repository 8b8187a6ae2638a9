"""Datasets: where real samples come from.

A dataset is built once per trial, in the trial's process, from its registered name
and parameters. The trainer draws minibatches from :meth:`Dataset.train_data`;
metrics read whatever else the dataset exposes (mixture centres, labels, ...).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from functools import cached_property

import torch


class Dataset(ABC):
    """A source of real samples for one trial."""

    #: metrics computed at every evaluation when a study names none
    default_metrics: tuple[str, ...] = ()

    @property
    @abstractmethod
    def shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. ``(2,)`` for points in the plane."""

    @abstractmethod
    def train_data(self) -> torch.Tensor:
        """The fixed training set, shape ``(N, *shape)``; called once when the trial starts."""

    #: number of classes when the data is labelled (conditional models need it), else None
    n_classes: int | None = None

    def train_labels(self) -> torch.Tensor | None:
        """Class index of every training sample, shape ``(N,)`` int64, or None when unlabelled."""
        return None

    def describe(self) -> dict[str, object]:
        """Facts about the data logged as MLflow params (``dataset.*``)."""
        return {}

    def tags(self) -> dict[str, str]:
        """Facts about the data logged as MLflow tags (e.g. how a split was made)."""
        return {}

    def plot_samples(self, samples: torch.Tensor, title: str) -> bytes | None:
        """A PNG picture of generated ``samples`` for the run's artifacts, or None."""
        return None

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(low, high)``, each of :attr:`shape`: the box a generator that ignores the data
        draws from uniformly, for chance levels (:meth:`harness.metrics.Metric.chance`).
        None (the default) when the dataset cannot say: chance levels are then unknown."""
        return None


class LabelledImages(Dataset):
    """Labelled images scaled to [-1, 1], with a held-out split of real images.

    Subclasses provide the tensors; this base provides the sample-grid pictures and the
    contract image metrics rely on:

    * :meth:`train_data` / :meth:`train_labels`: what the GAN trains on, ``(N, C, H, W)``
      float32 in [-1, 1] and ``(N,)`` int64;
    * :meth:`heldout_data` / :meth:`heldout_labels`: real images never used to train the
      GAN -- the harness's classifier is scored on them;
    * :meth:`reference_data`: the FID reference, real images the harness's classifier (the
      feature extractor) never trained on; :mod:`harness.fidelity` measures FID's
      real-data floor with the held-out images that are not in it (docs/fidelity.md);
    * :attr:`n_classes`: the number of modes a perfect generator covers;
    * :meth:`fingerprint`: a hex digest that changes whenever the images would (source
      files, split, size); caches and metric provenance key on it.
    """

    default_metrics = ("class_modes",)

    @abstractmethod
    def train_labels(self) -> torch.Tensor: ...

    @abstractmethod
    def heldout_data(self) -> torch.Tensor:
        """Held-out real images, ``(M, C, H, W)`` float32 in [-1, 1]."""

    @abstractmethod
    def heldout_labels(self) -> torch.Tensor:
        """Labels of :meth:`heldout_data`, ``(M,)`` int64."""

    @abstractmethod
    def fingerprint(self) -> str:
        """Hex digest identifying exactly these images and this split."""

    #: images whose channels are independent digits (Stacked MNIST): the classifier is
    #: trained on :meth:`classifier_source` and applied to every channel, and the class of
    #: an image is ``sum(digit_c * base ** (C - 1 - c))`` with ``base = source.n_classes``
    channels_stacked: bool = False

    def classifier_source(self) -> LabelledImages:
        """The labelled images a classifier for this dataset is trained and scored on."""
        return self

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every pixel in [-1, 1]: uniform noise images."""
        return torch.full(self.shape, -1.0), torch.full(self.shape, 1.0)

    def reference_data(self) -> torch.Tensor:
        """The FID reference, ``(R, C, H, W)`` in [-1, 1]: real images disjoint from the
        images the harness's classifier trains on (``classifier_source().train_data()``).

        Default: a random half (seeded, ``torch.randperm`` with seed 0) of the held-out
        images -- the only images a dataset with its own classifier split is known never to
        train the classifier on -- leaving the other half for the real-data floor. Datasets
        with a dedicated reference part (``mnist``: part of what the GAN trains on, kept
        from the classifier) override it."""
        held = self.heldout_data()
        perm = torch.randperm(held.shape[0], generator=torch.Generator().manual_seed(0))
        return held[perm[: held.shape[0] // 2].sort().values]

    def plot_samples(self, samples: torch.Tensor, title: str) -> bytes | None:
        from harness.plots import image_grid_png

        n = min(64, samples.shape[0])
        return image_grid_png(samples[:n], ncol=8, title=title)


class GaussianMixture(Dataset):
    """Equal-weight isotropic Gaussian mixture in the plane with known centres.

    The training set is ``n_train`` points drawn once from a generator seeded with
    ``data_seed``, so every trial of a study trains on the same points. Mode-coverage
    metrics read :attr:`centres` and :attr:`std`.
    """

    default_metrics = ("mode_coverage",)

    def __init__(self, centres: torch.Tensor, std: float, n_train: int, data_seed: int):
        if std <= 0 or not math.isfinite(std):
            raise ValueError(f"std must be a positive number, got {std}")
        if n_train < 1:
            raise ValueError(f"n_train must be >= 1, got {n_train}")
        self.centres = centres.to(torch.float32)
        self.std = float(std)
        self.n_train = int(n_train)
        self.data_seed = int(data_seed)

    @property
    def shape(self) -> tuple[int, ...]:
        return (int(self.centres.shape[1]),)

    @property
    def n_modes(self) -> int:
        return int(self.centres.shape[0])

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` points and the index of the centre each was drawn from."""
        modes = torch.randint(0, self.n_modes, (n,), generator=generator)
        noise = torch.randn(n, self.centres.shape[1], generator=generator)
        return self.centres[modes] + self.std * noise, modes

    @cached_property
    def _train(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.data_seed)
        return self.sample(self.n_train, g)[0]

    def train_data(self) -> torch.Tensor:
        return self._train

    def describe(self) -> dict[str, object]:
        return {"n_modes": self.n_modes, "std": self.std, "n_train": self.n_train}

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The bounding box of the training points (the mixture's extent plus its tails)."""
        data = self.train_data()
        return data.min(dim=0).values, data.max(dim=0).values

    def plot_samples(self, samples: torch.Tensor, title: str) -> bytes | None:
        from harness.plots import scatter_png

        centres = self.centres.numpy()
        limit = float(abs(centres).max()) + max(0.5, 10 * self.std)
        real = self.train_data()[:2000].numpy()
        return scatter_png(samples.detach().cpu().numpy(), real, centres, title, limit)
