"""``translation_accuracy``: does a translated digit stay the same digit?

Each domain of a two-domain dataset (e.g. ``mnist_pair``) gets the harness's classifier,
trained on that domain's real images (:func:`harness.classifier.load_or_train`, cached; for
``mnist_pair`` domain A's is the plain MNIST classifier, domain B's learns rotated or
inverted digits). For the evaluation's held-out images:

* ``translation_accuracy_ab``: B's classifier on G(a) against a's label;
* ``translation_accuracy_ba``: A's classifier on F(b) against b's label;
* ``translation_accuracy``: their mean.

A translator that maps every digit to a well-formed but different digit scores low even
though its cycle error may be small (it can hide the digit in the round trip); the
classifiers' own held-out accuracies bound what is reachable and are logged as tags.
"""

from __future__ import annotations

from pathlib import Path

import torch

from harness import names
from harness.classifier import DEFAULT_MIN_ACCURACY, TrainedClassifier, load_or_train
from harness.data import Dataset
from harness.metrics import EvalContext, Evaluation, Metric
from harness.registry import register_metric


class DomainClassifiers(Metric):
    """Base of the metrics that score translations with each domain's classifier.

    Parameters ``cache_dir`` and ``min_accuracy`` as for every classifier metric; both
    classifiers are trained or loaded in :meth:`prepare` and tagged in :meth:`provenance`.
    """

    requires = frozenset({"translation"})

    def __init__(self, cache_dir: Path | None = None,
                 min_accuracy: float = DEFAULT_MIN_ACCURACY):
        if not 0.0 <= min_accuracy <= 1.0:
            raise ValueError(f"min_accuracy must be in [0, 1], got {min_accuracy}")
        self.cache_dir, self.min_accuracy = cache_dir, float(min_accuracy)

    def applies_to(self, dataset: Dataset) -> bool:
        return all(getattr(getattr(dataset, d, None), "n_classes", None)
                   for d in ("domain_a", "domain_b"))

    def classifiers(self, dataset: Dataset) -> tuple[TrainedClassifier, TrainedClassifier]:
        """(A's classifier, B's classifier); memoised per process by ``load_or_train``."""
        return (load_or_train(dataset.domain_a, self.cache_dir, self.min_accuracy),
                load_or_train(dataset.domain_b, self.cache_dir, self.min_accuracy))

    def prepare(self, dataset: Dataset) -> None:
        self.classifiers(dataset)

    def provenance(self, dataset: Dataset) -> dict[str, str]:
        ca, cb = self.classifiers(dataset)
        return {names.TAG_CLASSIFIER_HASH_A: ca.hash,
                names.TAG_CLASSIFIER_ACCURACY_A: f"{ca.accuracy:.4f}",
                names.TAG_CLASSIFIER_HASH_B: cb.hash,
                names.TAG_CLASSIFIER_ACCURACY_B: f"{cb.accuracy:.4f}"}

    @staticmethod
    def translations(context: EvalContext | None, metric: str):
        t = None if context is None else context.translations
        if t is None:
            raise ValueError(f"{metric} needs the evaluation's translations "
                             "(context.translations); the model must be a two-way translator")
        return t


def accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    return float((predicted == labels).to(torch.float64).mean())


class TranslationAccuracy(DomainClassifiers):
    """The target domain's classifier recognises the source digit after translation."""

    provides = (names.TRANSLATION_ACCURACY, names.TRANSLATION_ACCURACY_AB,
                names.TRANSLATION_ACCURACY_BA)

    def evaluate(self, samples: torch.Tensor, dataset: Dataset,
                 context: EvalContext | None = None) -> Evaluation:
        t = self.translations(context, "translation_accuracy")
        ca, cb = self.classifiers(dataset)
        ab = accuracy(cb.predict(t.ab), t.a_labels)
        ba = accuracy(ca.predict(t.ba), t.b_labels)
        return Evaluation(values={names.TRANSLATION_ACCURACY_AB: ab,
                                  names.TRANSLATION_ACCURACY_BA: ba,
                                  names.TRANSLATION_ACCURACY: 0.5 * (ab + ba)})


register_metric("translation_accuracy", TranslationAccuracy)
