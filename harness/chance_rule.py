"""The "clearly above chance" rule, in one place (the reports use it too).

:class:`harness.metrics.Chance` explains the rule; :func:`bound` makes a value's bound from
its data-ignoring draws and :func:`beats` judges a result against it, in the value's
direction (its :class:`~harness.value_specs.ValueSpec`, which the first lookup loads the
installed plugins for; ``max`` for a value without a direction).
"""

from __future__ import annotations

from collections.abc import Sequence

from harness import value_specs

#: how many times better than the chance mean a result must be
CHANCE_FACTOR = 10.0


def lower_is_better(name: str) -> bool:
    return value_specs.direction(name) == "min"


def bound(name: str, draws: Sequence[float]) -> float:
    """What a result must beat: the best draw and ``CHANCE_FACTOR`` times the draws' mean."""
    mean = sum(draws) / len(draws)
    if lower_is_better(name):
        return min(min(draws), mean / CHANCE_FACTOR)
    return max(max(draws), mean * CHANCE_FACTOR)


def beats(name: str, value: float, bound_value: float) -> bool:
    """Whether ``value`` of ``name`` is strictly better than ``bound_value`` (a tie is not)."""
    return value < bound_value if lower_is_better(name) else value > bound_value
