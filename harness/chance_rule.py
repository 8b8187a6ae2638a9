"""The "clearly above chance" rule, in one place and without torch (the reports use it too).

:class:`harness.metrics.Chance` explains the rule; :func:`bound` makes a value's bound from
its data-ignoring draws and :func:`beats` judges a result against it, in the value's
direction (:data:`harness.names.OBJECTIVES`; ``max`` for a name it does not list).
"""

from __future__ import annotations

from collections.abc import Sequence

from harness import names

#: how many times better than the chance mean a result must be
CHANCE_FACTOR = 10.0


def lower_is_better(name: str) -> bool:
    return names.OBJECTIVES.get(name, "max") == "min"


def bound(name: str, draws: Sequence[float]) -> float:
    """What a result must beat: the best draw and ``CHANCE_FACTOR`` times the draws' mean."""
    mean = sum(draws) / len(draws)
    if lower_is_better(name):
        return min(min(draws), mean / CHANCE_FACTOR)
    return max(max(draws), mean * CHANCE_FACTOR)


def beats(name: str, value: float, bound_value: float) -> bool:
    """Whether ``value`` of ``name`` is strictly better than ``bound_value`` (a tie is not)."""
    return value < bound_value if lower_is_better(name) else value > bound_value
