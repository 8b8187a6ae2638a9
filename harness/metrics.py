"""Evaluation metrics and the mode-coverage protocol for Gaussian mixtures.

A :class:`Metric` is called at every evaluation with generated samples and the
trial's dataset and returns named values, each declared in :attr:`Metric.values` (a
:class:`~harness.value_specs.ValueSpec`: label, decimals, direction).

Mode coverage follows the protocol of VEEGAN (Srivastava et al. 2017), PacGAN
(Lin et al. 2018) and Unrolled GAN (Metz et al. 2017):

* a sample is *high-quality* when it lies within ``3`` standard deviations of its
  nearest centre;
* a mode is *covered* when at least ``min_hq_per_mode`` (default 1) high-quality
  samples fall on it;
* ``mode_kl`` is KL(histogram of the high-quality samples over the centres || uniform).
  With no high-quality sample at all it is ``log K``, the value of a point mass: a
  generator that produces nothing usable is scored as badly as a fully collapsed one,
  instead of an undefined number.

Samples reach metrics on the CPU (the trainer generates them on the trial's device).
Mixture coverage stays there, in float64: a nearest-centre lookup of a few thousand 2-D
points costs less than moving them back to a GPU, and the counts are then identical on
every device. Metrics with networks (the classifier's, torch-fidelity's) run them on
``EvalContext.device``, see :func:`eval_device`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from harness import chance_rule, names
from harness.data import Dataset
from harness.value_specs import FRACTION, NON_NEGATIVE, ValueSpec


@dataclass
class Evaluation:
    """Named scalar values, plus structured extras diagnostics may read."""

    values: dict[str, float]
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalContext:
    """What an evaluation knows besides the samples; built by the trainer at every eval.

    ``labels`` and ``codes`` line up with the samples: the class each sample was
    generated for (conditional models) and the categorical code value of each sample
    (InfoGAN's first categorical code). ``generate(n)`` returns ``n`` samples from
    fixed, seeded noise -- the same ``n`` samples at every evaluation of a trial --
    for metrics that need more than ``train.eval_samples`` (FID at the end of a trial).
    """

    step: int
    final: bool
    generate: Callable[[int], torch.Tensor]
    labels: torch.Tensor | None = None
    codes: torch.Tensor | None = None
    #: two-way translators (CycleGAN): held-out images of both domains, translated
    translations: Translations | None = None
    #: the trial's device (set by the training loop): metrics run their networks there
    #: (classifier features, torch-fidelity's extractor); None means the CPU
    device: torch.device | None = None


def eval_device(context: EvalContext | None) -> torch.device:
    """The device a metric runs its networks on: the trial's, else the CPU."""
    if context is None or context.device is None:
        return torch.device("cpu")
    return torch.device(context.device)


@dataclass
class Translations:
    """Held-out images of domains A and B through a pair of translators G: A->B, F: B->A.

    ``ab = G(a)``, ``aba = F(G(a))``, ``ba = F(b)``, ``bab = G(F(b))``; ``a_labels`` /
    ``b_labels`` are the class of each original image. All on the CPU, in [-1, 1].
    """

    a: torch.Tensor
    ab: torch.Tensor
    aba: torch.Tensor
    a_labels: torch.Tensor
    b: torch.Tensor
    ba: torch.Tensor
    bab: torch.Tensor
    b_labels: torch.Tensor


@dataclass(frozen=True)
class Chance:
    """What a generator that ignores the data scores (:meth:`Metric.chance`).

    ``mean``: per value of :attr:`Metric.chance_values`, its mean over ``draws``
    data-ignoring sample sets of ``n_samples`` each -- shown beside a result's value.

    ``bound``: per value of :attr:`Metric.chance_decides` (the values that tell a
    generator from noise; ``hq_fraction`` for mode coverage), what a result must beat to
    be *clearly above chance*: both the best of the draws and a factor
    :data:`harness.chance_rule.CHANCE_FACTOR` (10) of the mean, in the value's direction
    (its :class:`~harness.value_specs.ValueSpec`; ``max`` for a value without one):
    ``max(best, 10 * mean)`` for a higher-is-better value, ``min(best, mean / 10)`` for a
    lower-is-better one; a value declared ``log_scale`` (``mode_kl``) may instead be
    ``ln 10`` better, whichever asks less (:func:`harness.chance_rule.bound`). Beating
    every draw alone is what a data-ignoring generator still does once in ``draws + 1``
    tries; the factor asks for a difference a researcher would
    call real (uniform noise on grid25 has hq_fraction 0.026, so a result needs 0.26). A
    result is *at chance* when it does not beat every bound of its metrics
    (:func:`above_chance`). A mode count is not a decider: noise nearly saturates it on
    ring8 and grid25 at 2,500 samples (6.7/8 and 23.4/25 modes), so it is shown beside its
    chance mean and read only for results above chance.
    """

    mean: dict[str, float]
    bound: dict[str, float]
    draws: int
    n_samples: int


def above_chance(name: str, value: float, chance: Chance | None) -> bool | None:
    """Whether ``value`` of ``name`` is clearly above ``chance`` (see :class:`Chance`);
    None when ``name`` has no bound (unknown, or not a deciding value) or ``value`` is not
    a number."""
    if chance is None or name not in chance.bound or not math.isfinite(value):
        return None
    return chance_rule.beats(name, value, chance.bound[name])


class Metric(ABC):
    """Scores generated samples against a dataset; called at every evaluation.

    :attr:`values` declares every value the metric may return, with its label, decimals and
    direction: that is what makes a value searchable (``search.metric``, when it has a
    direction) and shown by the reports. :attr:`provides` follows from it (set it only to
    narrow it per instance, as a metric whose parameters switch values off does);
    registration refuses a class whose two disagree.
    """

    #: value name -> how it is shown and compared, for every value :meth:`evaluate` may return
    values: ClassVar[dict[str, ValueSpec]] = {}
    #: the value names :meth:`evaluate` returns: the keys of :attr:`values` unless set
    provides: ClassVar[tuple[str, ...]] = ()
    #: model capabilities it needs (see ``Model.capabilities``), checked at validation
    requires: ClassVar[frozenset[str]] = frozenset()
    #: the values of :attr:`provides` with a chance level (coverage-type values: what a
    #: generator that ignores the data would score); empty: no chance level
    chance_values: ClassVar[tuple[str, ...]] = ()
    #: those of :attr:`chance_values` that decide whether a result is at chance
    #: (see :class:`Chance`); empty: every one of them decides
    chance_decides: ClassVar[tuple[str, ...]] = ()
    #: data-ignoring sample sets the default :meth:`chance` scores
    chance_draws: ClassVar[int] = 20

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # a class declaring its values provides them, unless it says otherwise (and is
        # then checked when registered)
        if "values" in cls.__dict__ and "provides" not in cls.__dict__:
            cls.provides = tuple(cls.values)

    def chance_samples(self, eval_samples: int) -> int:
        """How many samples the trial's final evaluation scores (``train.eval_samples``
        unless the metric draws its own): the chance level is measured at that count."""
        return eval_samples

    def chance(self, dataset: Dataset, n_samples: int) -> Chance | None:
        """What a generator that ignores the data scores with ``n_samples`` samples.

        Called through :func:`chance_level` (cached per metric, dataset and count) when a
        trial starts; the trial logs it as the metrics ``chance.<value>`` and
        ``chance_bound.<value>``. The default scores :attr:`chance_draws` sets of
        ``n_samples`` points drawn uniformly over ``dataset.bounds()`` (seeded 0, 1, ...)
        with this metric's own :meth:`evaluate`. None -- unknown, never 0 -- when the
        metric declares no :attr:`chance_values` or the dataset has no bounds. Override
        for another definition of "ignores the data"."""
        box = dataset.bounds() if self.chance_values else None
        if box is None:
            return None
        low, high = (t.to(torch.float32) for t in box)
        runs: dict[str, list[float]] = {name: [] for name in self.chance_values}
        for r in range(self.chance_draws):
            gen = torch.Generator().manual_seed(r)
            u = torch.rand((n_samples, *low.shape), generator=gen)
            values = self.evaluate(low + u * (high - low), dataset).values
            for name in self.chance_values:
                runs[name].append(float(values[name]))
        mean = {n: sum(v) / len(v) for n, v in runs.items()}
        decides = self.chance_decides or self.chance_values
        bound = {n: chance_rule.bound(n, v) for n, v in runs.items() if n in decides}
        return Chance(mean=mean, bound=bound, draws=self.chance_draws, n_samples=n_samples)

    def applies_to(self, dataset: Dataset) -> bool:
        """Whether this metric can score samples of ``dataset`` (checked when a study is validated)."""
        return True

    def prepare(self, dataset: Dataset) -> None:
        """Called once per study on the driver, after validation and before any trial
        starts (and once by ``harness run``): train or load what every trial will share
        (a feature extractor, the real data's statistics) into an on-disk cache, so that
        concurrent trials find it ready. Raise to refuse the study (exit 2)."""

    def provenance(self, dataset: Dataset) -> dict[str, str]:
        """Tags that identify how the numbers were made (extractor, reference data, sample
        counts); logged on the run once, when the trial starts. Reports refuse to rank
        runs whose provenance tags differ."""
        return {}

    @abstractmethod
    def evaluate(self, samples: torch.Tensor, dataset: Dataset,
                 context: EvalContext | None = None) -> Evaluation:
        """Score ``samples`` (shape ``(n, *dataset.shape)``); ``context`` is always given
        by the trainer (None only when a test calls the metric directly)."""

    def evaluate_copies(self, samples: Sequence[torch.Tensor], dataset: Dataset,
                        contexts: Sequence[EvalContext]) -> list[Evaluation]:
        """Called by a vectorized trial (:mod:`harness.vector.trial`) once per evaluation
        round, instead of :meth:`evaluate`, with the samples and context of every copy
        still training (each context's ``generate`` draws that copy's extra samples; all
        copies' are generated in one batch). Copy ``k``'s result must equal
        ``evaluate(samples[k], dataset, contexts[k])`` up to float rounding; the default
        is exactly that loop. Metrics override it to share work between the copies (one
        classifier pass over every copy's samples, one distance computation)."""
        return [self.evaluate(s, dataset, c) for s, c in zip(samples, contexts)]


@dataclass(frozen=True)
class Coverage:
    """The result of :func:`mode_coverage`."""

    modes_covered: int
    hq_fraction: float
    mode_kl: float
    covered: frozenset[int]
    counts: tuple[int, ...]  # high-quality samples per centre


def kl_to_uniform(counts: torch.Tensor) -> float:
    """KL(histogram ``counts`` normalised || uniform over its bins), >= 0; ``log K`` (a
    point mass's value) when the histogram is empty."""
    k = int(counts.shape[0])
    n = int(counts.sum())
    if n == 0:
        return math.log(k)
    p = counts.to(torch.float64) / n
    nz = p > 0
    return max(0.0, float((p[nz] * torch.log(p[nz] * k)).sum()))


def mode_coverage(
    samples: torch.Tensor,
    centres: torch.Tensor,
    std: float,
    n_std: float = 3.0,
    min_hq_per_mode: int = 1,
) -> Coverage:
    """Mode coverage of ``samples`` against a mixture with ``centres`` and isotropic ``std``."""
    if samples.ndim != 2 or samples.shape[1] != centres.shape[1]:
        raise ValueError(
            f"samples must have shape (n, {centres.shape[1]}), got {tuple(samples.shape)}"
        )
    k = int(centres.shape[0])
    samples = samples.detach().to(torch.float64).cpu()
    finite = torch.isfinite(samples).all(dim=1)
    dist = torch.cdist(samples[finite], centres.to(torch.float64).cpu())
    if dist.numel():
        nearest_d, nearest = dist.min(dim=1)
        hq = nearest_d <= n_std * std
        counts = torch.bincount(nearest[hq], minlength=k)
    else:
        counts = torch.zeros(k, dtype=torch.long)
    n_hq = int(counts.sum())
    covered = frozenset(int(i) for i in torch.nonzero(counts >= min_hq_per_mode).flatten())
    kl = kl_to_uniform(counts)
    return Coverage(
        modes_covered=len(covered),
        hq_fraction=n_hq / max(1, samples.shape[0]),
        mode_kl=kl,
        covered=covered,
        counts=tuple(int(c) for c in counts),
    )


def batched_mode_coverage(samples: torch.Tensor, centres: torch.Tensor, std: float,
                          n_std: float = 3.0, min_hq_per_mode: int = 1) -> list[Coverage]:
    """:func:`harness.metrics.mode_coverage` of every copy's samples ``[N, n, d]`` at once.

    Copy ``k``'s result equals ``mode_coverage(samples[k], ...)``: non-finite samples never
    count as high quality but still count in the denominator of ``hq_fraction``.
    """
    if samples.ndim != 3 or samples.shape[2] != centres.shape[1]:
        raise ValueError(f"samples must have shape (N, n, {centres.shape[1]}), "
                         f"got {tuple(samples.shape)}")
    n_copies, n, _ = samples.shape
    k = int(centres.shape[0])
    s = samples.detach().to(torch.float64).cpu()
    finite = torch.isfinite(s).all(dim=2)
    s = torch.where(finite.unsqueeze(-1), s, torch.zeros((), dtype=s.dtype))
    dist = torch.cdist(s, centres.to(torch.float64).cpu().expand(n_copies, k, -1))
    nearest_d, nearest = dist.min(dim=2)
    hq = (nearest_d <= n_std * std) & finite
    counts = torch.zeros(n_copies, k, dtype=torch.long).scatter_add_(1, nearest, hq.long())
    out = []
    for c in counts:
        covered = frozenset(int(i) for i in torch.nonzero(c >= min_hq_per_mode).flatten())
        out.append(Coverage(modes_covered=len(covered), hq_fraction=int(c.sum()) / max(1, n),
                            mode_kl=kl_to_uniform(c), covered=covered,
                            counts=tuple(int(x) for x in c)))
    return out


#: the coverage values, shared by every metric that counts modes (``class_modes`` too)
COVERAGE_VALUES = {
    names.MODES_COVERED: ValueSpec("modes covered", 2, "max", bounds=NON_NEGATIVE),
    names.HQ_FRACTION: ValueSpec("hq fraction", 2, "max", bounds=FRACTION),
    names.MODE_KL: ValueSpec("mode KL", 3, "min", log_scale=True, bounds=NON_NEGATIVE),
}


class ModeCoverage(Metric):
    """Modes covered, high-quality fraction and KL to uniform (VEEGAN/PacGAN protocol).

    Chance level: uniform points over the training data's bounding box (e.g. on grid25,
    2,500 of them cover 23.4/25 modes at hq_fraction 0.026 on average over 20 draws)."""

    values = COVERAGE_VALUES
    chance_values = tuple(COVERAGE_VALUES)
    chance_decides = (names.HQ_FRACTION,)

    def __init__(self, n_std: float = 3.0, min_hq_per_mode: int = 1):
        if n_std <= 0:
            raise ValueError(f"n_std must be > 0, got {n_std}")
        if min_hq_per_mode < 1:
            raise ValueError(f"min_hq_per_mode must be >= 1, got {min_hq_per_mode}")
        self.n_std = n_std
        self.min_hq_per_mode = min_hq_per_mode

    def applies_to(self, dataset: Dataset) -> bool:
        return hasattr(dataset, "centres") and hasattr(dataset, "std")

    @staticmethod
    def _evaluation(cov: Coverage, dataset: Dataset) -> Evaluation:
        return Evaluation(
            values={
                names.MODES_COVERED: float(cov.modes_covered),
                names.HQ_FRACTION: cov.hq_fraction,
                names.MODE_KL: cov.mode_kl,
            },
            extras={"covered_modes": cov.covered, names.N_MODES: int(dataset.centres.shape[0])},
        )

    def evaluate(self, samples: torch.Tensor, dataset: Dataset,
                 context: EvalContext | None = None) -> Evaluation:
        cov = mode_coverage(
            samples, dataset.centres, dataset.std, self.n_std, self.min_hq_per_mode
        )
        return self._evaluation(cov, dataset)

    def evaluate_copies(self, samples: Sequence[torch.Tensor], dataset: Dataset,
                        contexts: Sequence[EvalContext]) -> list[Evaluation]:
        """All copies' coverage in one distance computation (:func:`batched_mode_coverage`)."""
        if len({tuple(s.shape) for s in samples}) != 1:
            return super().evaluate_copies(samples, dataset, contexts)
        covs = batched_mode_coverage(torch.stack(list(samples)), dataset.centres, dataset.std,
                                     self.n_std, self.min_hq_per_mode)
        return [self._evaluation(c, dataset) for c in covs]


_CHANCE_CACHE: dict[tuple, Chance | None] = {}


def _dataset_key(dataset: Dataset) -> tuple:
    fingerprint = getattr(dataset, "fingerprint", None)
    if callable(fingerprint):
        return (type(dataset).__qualname__, fingerprint())
    box = dataset.bounds()
    box_key = None if box is None else tuple(tuple(t.flatten().tolist()) for t in box)
    return (type(dataset).__qualname__, repr(sorted(dataset.describe().items())), box_key)


def chance_level(metric: Metric, dataset: Dataset, eval_samples: int) -> Chance | None:
    """``metric.chance(dataset, metric.chance_samples(eval_samples))``, computed once per
    process for each metric class and parameters, dataset and sample count."""
    n = metric.chance_samples(eval_samples)
    params = sorted((k, v) for k, v in vars(metric).items() if not k.startswith("_"))
    key = (type(metric).__module__, type(metric).__qualname__, repr(params),
           _dataset_key(dataset), n)
    if key not in _CHANCE_CACHE:
        _CHANCE_CACHE[key] = metric.chance(dataset, n)
    return _CHANCE_CACHE[key]


def chance_metrics(metrics: Sequence[Metric], dataset: Dataset,
                   eval_samples: int) -> dict[str, float]:
    """The chance levels of a trial's metrics as run metrics: ``chance.<value>`` (the mean
    over the draws) and ``chance_bound.<value>`` (what a result must beat); values whose
    chance level is unknown are left out."""
    out: dict[str, float] = {}
    for metric in metrics:
        chance = chance_level(metric, dataset, eval_samples)
        if chance is None:
            continue
        out.update({names.CHANCE_PREFIX + n: v for n, v in chance.mean.items()})
        out.update({names.CHANCE_BOUND_PREFIX + n: v for n, v in chance.bound.items()})
    return out
