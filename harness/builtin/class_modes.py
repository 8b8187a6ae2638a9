"""``class_modes``: modes covered on labelled images, counted by the harness's digit classifier.

The Stacked-MNIST protocol of VEEGAN (Srivastava et al. 2017), PacGAN (Lin et al. 2018)
and Unrolled GAN (Metz et al. 2017), for any :class:`~harness.data.LabelledImages`:

* every sample is classified by the harness's classifier (:mod:`harness.classifier`;
  per channel for stacked datasets, class ``d0 * 100 + d1 * 10 + d2``);
* ``modes_covered``: the classes predicted for at least ``min_count`` samples (default 1,
  as published);
* ``mode_kl``: KL(histogram of the predicted classes || uniform over ``n_classes``);
  ``log(n_classes)`` when no sample could be classified (all non-finite);
* ``hq_fraction``: the fraction of samples whose predicted class has probability at least
  ``confidence`` (default 0.5: the classifier prefers that class to all others together).
  It is reported beside the protocol, not used by it: every finite sample counts towards
  the modes and the KL, confident or not, as in the published protocol.

Samples: at the final evaluation ``final_samples`` (default 10,000; the Stacked-MNIST
papers count 26,000 -- a study sets ``final_samples: 26000`` to match) drawn through
``context.generate``, from the same fixed noise at every trial of a seed; at
intermediate evaluations the trainer's evaluation samples. The count matters: with 1,000
classes, 2,000 samples cannot cover more than ~865 of them even for a perfect generator
(expected distinct classes ``K (1 - (1 - 1/K)^n)``), and the KL's finite-sample bias is
about ``(K - 1) / (2 n)``; compare runs only at equal counts (the provenance tags say them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from harness import names
from harness.classifier import DEFAULT_MIN_ACCURACY, ClassifierMetric
from harness.data import Dataset
from harness.metrics import COVERAGE_VALUES, EvalContext, Evaluation, eval_device, kl_to_uniform
from harness.registry import register_metric


@dataclass(frozen=True)
class ClassCounts:
    """What :func:`class_coverage` found."""

    modes_covered: int
    mode_kl: float
    hq_fraction: float
    covered: frozenset[int]
    counts: torch.Tensor  # samples per class, (n_classes,)


def class_coverage(classes: torch.Tensor, confidence: torch.Tensor, n_classes: int,
                   min_count: int = 1, min_confidence: float = 0.5) -> ClassCounts:
    """Coverage of predicted ``classes`` (-1: unclassifiable) with their ``confidence``."""
    valid = classes >= 0
    counts = torch.bincount(classes[valid], minlength=n_classes)[:n_classes]
    covered = frozenset(int(i) for i in torch.nonzero(counts >= min_count).flatten())
    kl = kl_to_uniform(counts)
    hq = float((confidence >= min_confidence).sum()) / max(1, classes.shape[0])
    return ClassCounts(len(covered), kl, hq, covered, counts)


class ClassModes(ClassifierMetric):
    """Modes covered, mode KL and confident fraction, counted by the harness's digit classifier."""

    #: the coverage values, declared as ``mode_coverage`` declares them
    values = {n: COVERAGE_VALUES[n] for n in (names.MODES_COVERED, names.MODE_KL,
                                              names.HQ_FRACTION)}
    #: chance level: uniform noise images in [-1, 1] (the dataset's bounds), classified
    #: like any samples. The classifier reads noise as a few digits, confidently: on
    #: ``mnist`` noise covers 5-6/10 classes at hq_fraction 0.87 and mode_kl 1.52 (10,000
    #: samples), so only the KL tells digits from noise (docs/chance.md); the count and the
    #: confident fraction get a chance mean to be shown beside them, no bound.
    chance_values = tuple(values)
    chance_decides = (names.MODE_KL,)
    #: each draw is ``final_samples`` noise images through the classifier: 0.3-0.5 s per
    #: 10,000 on one thread of a 2-core Xeon, three channels' worth for Stacked MNIST
    #: (3.4-5.7 s for three draws). The bound is a tenth of the mean (every draw lies far
    #: above it), and single draws' KLs differ by ~3 %: three draws are enough.
    chance_draws = 3

    def __init__(self, min_count: int = 1, final_samples: int = 10_000, confidence: float = 0.5,
                 cache_dir: Path | None = None, min_accuracy: float = DEFAULT_MIN_ACCURACY):
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        if final_samples < 1:
            raise ValueError(f"final_samples must be >= 1, got {final_samples}")
        if not 0.0 <= confidence <= 1.0:
            raise ValueError(f"confidence must be in [0, 1], got {confidence}")
        self.min_count = int(min_count)
        self.final_samples = int(final_samples)
        self.confidence = float(confidence)
        super().__init__(cache_dir, min_accuracy)

    def chance_samples(self, eval_samples: int) -> int:
        """The final evaluation counts ``final_samples`` (drawn through ``context.generate``),
        whatever ``train.eval_samples`` is."""
        return self.final_samples

    def provenance(self, dataset: Dataset) -> dict[str, str]:
        return {
            **super().provenance(dataset),
            names.TAG_CLASS_MODES_SAMPLES_FINAL: str(self.final_samples),
            names.TAG_CLASS_MODES_MIN_COUNT: str(self.min_count),
            names.TAG_CLASS_MODES_CONFIDENCE: str(self.confidence),
        }

    def evaluate(self, samples: torch.Tensor, dataset: Dataset,
                 context: EvalContext | None = None) -> Evaluation:
        return self.evaluate_copies([samples], dataset, [context])[0]

    def evaluate_copies(self, samples: Sequence[torch.Tensor], dataset: Dataset,
                        contexts: Sequence[EvalContext | None]) -> list[Evaluation]:
        """Every copy's samples through the classifier in one pass, counted per copy."""
        samples = [context.generate(self.final_samples) if context is not None and context.final
                   else s for s, context in zip(samples, contexts)]
        clf = self.classifier(dataset)
        n_classes = int(dataset.n_classes)
        if clf.n_classes != n_classes:
            raise ValueError(f"the classifier predicts {clf.n_classes} classes but "
                             f"{type(dataset).__name__} has {n_classes}")
        classes, conf = clf.classify(torch.cat(samples), eval_device(contexts[0]))
        sizes = [int(s.shape[0]) for s in samples]
        out = []
        for c, p in zip(classes.split(sizes), conf.split(sizes)):
            cov = class_coverage(c, p, n_classes, self.min_count, self.confidence)
            out.append(Evaluation(
                values={
                    names.MODES_COVERED: float(cov.modes_covered),
                    names.MODE_KL: cov.mode_kl,
                    names.HQ_FRACTION: cov.hq_fraction,
                },
                extras={"covered_modes": cov.covered, names.N_MODES: n_classes},
            ))
        return out


register_metric("class_modes", ClassModes)
