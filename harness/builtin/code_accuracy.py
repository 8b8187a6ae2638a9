"""``code_accuracy``: how well an InfoGAN's categorical code separates the digit classes.

The code is unsupervised, so code value ``c`` may stand for any digit. The score is the
accuracy of the codes (``context.codes``: each sample's first categorical code value) as
digit labels under the best one-to-one matching of code values to the classes the
harness's classifier predicts: the confusion matrix ``M[code, class]`` is counted and
``scipy.optimize.linear_sum_assignment`` picks the matching with the largest matched total
(the Hungarian algorithm; the usual "unsupervised clustering accuracy").
``accuracy = matched total / samples``. Codes that are a relabelling of the true digits
score the classifier's accuracy (1.0 against its own predictions); codes unrelated to the
digits score little more than ``1 / n_classes``. Code values without a partner (more
code values than classes) and unclassifiable samples count as wrong.
"""

from __future__ import annotations

import numpy as np
import torch

from harness import names
from harness.classifier import ClassifierMetric
from harness.data import Dataset
from harness.metrics import EvalContext, Evaluation, eval_device
from harness.registry import register_metric
from harness.value_specs import ValueSpec


def matched_accuracy(codes: torch.Tensor, predicted: torch.Tensor, n_classes: int) -> float:
    """Accuracy of ``codes`` as labels of ``predicted`` under the best one-to-one matching."""
    from scipy.optimize import linear_sum_assignment

    codes = codes.detach().cpu()
    if codes.ndim == 2:  # one-hot codes
        codes = codes.argmax(dim=1)
    codes, predicted = codes.long(), predicted.detach().cpu().long()
    if codes.shape != predicted.shape:
        raise ValueError(f"{codes.shape[0]} codes for {predicted.shape[0]} samples")
    if codes.numel() == 0:
        raise ValueError("no samples to score")
    if int(codes.min()) < 0:
        raise ValueError("code values must be >= 0")
    n_codes = int(codes.max()) + 1
    valid = predicted >= 0
    confusion = np.zeros((n_codes, n_classes), dtype=np.int64)
    np.add.at(confusion, (codes[valid].numpy(), predicted[valid].numpy()), 1)
    rows, cols = linear_sum_assignment(confusion, maximize=True)
    return float(confusion[rows, cols].sum()) / codes.shape[0]


class CodeAccuracy(ClassifierMetric):
    """Accuracy of an InfoGAN's categorical code as digit labels, under the best matching."""

    values = {names.CODE_ACCURACY: ValueSpec("code accuracy", 3, "max")}
    requires = frozenset({"categorical_code"})

    def evaluate(self, samples: torch.Tensor, dataset: Dataset,
                 context: EvalContext | None = None) -> Evaluation:
        if context is None or context.codes is None:
            raise ValueError("code_accuracy needs each sample's categorical code (context.codes); "
                             "the model must have a categorical code")
        clf = self.classifier(dataset)
        acc = matched_accuracy(context.codes, clf.predict(samples, eval_device(context)),
                               clf.n_classes)
        return Evaluation(values={names.CODE_ACCURACY: acc})


register_metric("code_accuracy", CodeAccuracy)
