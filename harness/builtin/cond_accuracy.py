"""``cond_accuracy``: how often a conditional generator draws the class it was asked for.

The fraction of samples whose class, as the harness's digit classifier predicts it
(:mod:`harness.classifier`), equals the label the sample was generated for
(``context.labels``: the trainer's balanced evaluation labels). Real images with their
own labels score the classifier's accuracy (~0.97 on MNIST); a generator that ignores
its label scores ~1/n_classes. Non-finite samples count as wrong.
"""

from __future__ import annotations

import torch

from harness import names
from harness.classifier import ClassifierMetric
from harness.data import Dataset
from harness.metrics import EvalContext, Evaluation, eval_device
from harness.registry import register_metric
from harness.value_specs import ValueSpec


def conditional_accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``predicted`` classes equal to ``labels``."""
    if predicted.shape != labels.shape:
        raise ValueError(f"{predicted.shape[0]} predictions for {labels.shape[0]} labels")
    if predicted.numel() == 0:
        raise ValueError("no samples to score")
    return float((predicted == labels.to(predicted.device).long()).double().mean())


class CondAccuracy(ClassifierMetric):
    """Accuracy of a conditional generator's samples against the labels they were drawn for."""

    values = {names.COND_ACCURACY: ValueSpec("cond accuracy", 3, "max")}
    requires = frozenset({"conditional"})

    def evaluate(self, samples: torch.Tensor, dataset: Dataset,
                 context: EvalContext | None = None) -> Evaluation:
        if context is None or context.labels is None:
            raise ValueError("cond_accuracy needs the labels the samples were generated for "
                             "(context.labels); the model must be conditional")
        predicted = self.classifier(dataset).predict(samples, eval_device(context))
        return Evaluation(values={names.COND_ACCURACY:
                                  conditional_accuracy(predicted, context.labels.cpu())})


register_metric("cond_accuracy", CondAccuracy)
