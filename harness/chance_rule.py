"""The "clearly above chance" rule, in one place (the reports use it too).

:class:`harness.metrics.Chance` explains the rule; :func:`bound` makes a value's bound from
its data-ignoring draws and :func:`beats` judges a result against it, in the value's
direction (its :class:`~harness.value_specs.ValueSpec`, which the first lookup loads the
installed plugins for; ``max`` for a value without a direction).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from harness import value_specs

#: how many times better than the chance mean a result must be
CHANCE_FACTOR = 10.0


def lower_is_better(name: str) -> bool:
    return value_specs.direction(name) == "min"


def bound(name: str, draws: Sequence[float]) -> float:
    """What a result must beat: the best draw and ``CHANCE_FACTOR`` times the draws' mean.

    A value declared ``log_scale`` (a KL divergence to uniform over K modes is
    ``ln K - ln N_eff``, N_eff the effective number of modes) is ten times better either as
    a ratio or by ``ln CHANCE_FACTOR`` -- ten times noise's effective modes --, whichever
    asks less: with 1,000 modes the ratio would ask a tenth of noise's KL (4.6 -> 0.46, which
    even real stacks miss on 1,000 samples) where ten times noise's effective modes is
    4.6 - 2.3; with 10 modes the shift is impossible (noise's KL is below ln 10) and the
    ratio decides, as for any other value."""
    mean = sum(draws) / len(draws)
    if lower_is_better(name):
        factor = mean / CHANCE_FACTOR
        if value_specs.log_scale(name):
            factor = max(factor, mean - math.log(CHANCE_FACTOR))
        return min(min(draws), factor)
    factor = mean * CHANCE_FACTOR
    if value_specs.log_scale(name):
        factor = min(factor, mean + math.log(CHANCE_FACTOR))
    return max(max(draws), factor)


def beats(name: str, value: float, bound_value: float) -> bool:
    """Whether ``value`` of ``name`` is strictly better than ``bound_value`` (a tie is not)."""
    return value < bound_value if lower_is_better(name) else value > bound_value
