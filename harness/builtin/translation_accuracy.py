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

import torch

from harness import names
from harness.builtin.cond_accuracy import conditional_accuracy
from harness.classifier import ClassifierMetric, TrainedClassifier, load_or_train
from harness.data import Dataset
from harness.metrics import EvalContext, Evaluation, eval_device
from harness.registry import register_metric
from harness.value_specs import ValueSpec

TRANSLATION_ACCURACY_AB = "translation_accuracy_ab"  # B's classifier on G(a) vs a's label
TRANSLATION_ACCURACY_BA = "translation_accuracy_ba"  # A's classifier on F(b) vs b's label
#: provenance tags: each domain's classifier
TAG_CLASSIFIER_HASH_A = "classifier.hash_a"
TAG_CLASSIFIER_ACCURACY_A = "classifier.accuracy_a"
TAG_CLASSIFIER_HASH_B = "classifier.hash_b"
TAG_CLASSIFIER_ACCURACY_B = "classifier.accuracy_b"


class DomainClassifiers(ClassifierMetric):
    """Base of the metrics that score translations with each domain's classifier.

    Parameters ``cache_dir`` and ``min_accuracy`` as for every classifier metric
    (:class:`~harness.classifier.ClassifierMetric`); the classifiers are one per domain:
    both are trained or loaded in :meth:`prepare` and tagged in :meth:`provenance`.
    """

    requires = frozenset({"translation"})

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
        return {TAG_CLASSIFIER_HASH_A: ca.hash,
                TAG_CLASSIFIER_ACCURACY_A: f"{ca.accuracy:.4f}",
                TAG_CLASSIFIER_HASH_B: cb.hash,
                TAG_CLASSIFIER_ACCURACY_B: f"{cb.accuracy:.4f}"}

    @staticmethod
    def translations(context: EvalContext | None, metric: str):
        t = None if context is None else context.translations
        if t is None:
            raise ValueError(f"{metric} needs the evaluation's translations "
                             "(context.translations); the model must be a two-way translator")
        return t


class TranslationAccuracy(DomainClassifiers):
    """The target domain's classifier recognises the source digit after translation."""

    values = {names.TRANSLATION_ACCURACY: ValueSpec("translation accuracy", 3, "max"),
              TRANSLATION_ACCURACY_AB: ValueSpec("translation accuracy A→B", 3),
              TRANSLATION_ACCURACY_BA: ValueSpec("translation accuracy B→A", 3)}

    def evaluate(self, samples: torch.Tensor, dataset: Dataset,
                 context: EvalContext | None = None) -> Evaluation:
        t = self.translations(context, "translation_accuracy")
        ca, cb = self.classifiers(dataset)
        device = eval_device(context)
        ab = conditional_accuracy(cb.predict(t.ab, device), t.a_labels)
        ba = conditional_accuracy(ca.predict(t.ba, device), t.b_labels)
        return Evaluation(values={TRANSLATION_ACCURACY_AB: ab,
                                  TRANSLATION_ACCURACY_BA: ba,
                                  names.TRANSLATION_ACCURACY: 0.5 * (ab + ba)})


register_metric("translation_accuracy", TranslationAccuracy)
