"""``cycle_error``: how well a two-way translator's round trips reconstruct their inputs.

For the held-out images of the evaluation (``train.eval_samples`` of each domain):
``cycle_error_ab = mean |F(G(a)) - a|`` and ``cycle_error_ba = mean |G(F(b)) - b|``, the L1
distance per pixel on the [-1, 1] scale (0: perfect reconstruction; 2: every pixel
inverted), and ``cycle_error``, their mean. Training's ``loss_cycle`` is the same quantity
on training batches, summed over the two directions.
"""

from __future__ import annotations

import torch

from harness import names
from harness.data import Dataset
from harness.metrics import EvalContext, Evaluation, Metric
from harness.registry import register_metric
from harness.value_specs import ValueSpec

CYCLE_ERROR_AB = "cycle_error_ab"  # |F(G(a)) - a|, mean over pixels and images
CYCLE_ERROR_BA = "cycle_error_ba"  # |G(F(b)) - b|


def l1(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean absolute difference per pixel (float64 accumulation)."""
    return float((x.to(torch.float64) - y.to(torch.float64)).abs().mean())


class CycleError(Metric):
    """Round-trip L1 of both directions, and their mean (needs a two-way translator)."""

    values = {names.CYCLE_ERROR: ValueSpec("cycle error", 3, "min"),
              CYCLE_ERROR_AB: ValueSpec("cycle error A→B→A", 3),
              CYCLE_ERROR_BA: ValueSpec("cycle error B→A→B", 3)}
    requires = frozenset({"translation"})

    def applies_to(self, dataset: Dataset) -> bool:
        return hasattr(dataset, "domain_a") and hasattr(dataset, "domain_b")

    def evaluate(self, samples: torch.Tensor, dataset: Dataset,
                 context: EvalContext | None = None) -> Evaluation:
        t = None if context is None else context.translations
        if t is None:
            raise ValueError("cycle_error needs the evaluation's translations "
                             "(context.translations); the model must be a two-way translator")
        ab, ba = l1(t.aba, t.a), l1(t.bab, t.b)
        return Evaluation(values={CYCLE_ERROR_AB: ab, CYCLE_ERROR_BA: ba,
                                  names.CYCLE_ERROR: 0.5 * (ab + ba)})


register_metric("cycle_error", CycleError)
