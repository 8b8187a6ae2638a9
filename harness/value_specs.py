"""What each value a run logs means: its label, its decimals and which way is better.

Every metric declares the values it provides (:attr:`harness.metrics.Metric.values`, a
:class:`ValueSpec` per name); registering the metric (:func:`harness.registry.register_metric`)
adds them here, and :data:`RUN_VALUES` declares the few values the harness computes itself.
From these declarations come the values a study may search (:func:`objectives`), the
direction the chance rule judges in (:mod:`harness.chance_rule`) and what the reports show,
so a plugin metric is searchable and shown without an edit anywhere else.

Lookups load the ``harness.plugins`` entry points first (once per process): a process that
never built a study (a report) still knows every installed metric's values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from harness import names
from harness.errors import RegistryError
from harness.plugins import load_entry_points

DIRECTIONS = ("max", "min")


@dataclass(frozen=True)
class ValueSpec:
    """How one value is shown and compared. ``direction``: ``"max"`` or ``"min"`` for a value
    a study may optimise (``search.metric``), None for one that is only shown (a standard
    deviation, a per-direction detail, a reference level). ``log_scale``: the value is the
    logarithm of a ratio (a KL divergence), which the chance rule reads on that scale
    (:mod:`harness.chance_rule`). ``bounds``: the lowest and highest value it can take
    (None: unbounded on that side), against which a study's ``published:`` numbers are
    checked (a fraction published as a percentage is refused)."""

    label: str
    decimals: int = 3
    direction: Literal["max", "min"] | None = None
    log_scale: bool = False
    bounds: tuple[float | None, float | None] = (None, None)

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label.strip():
            raise ValueError(f"a value's label is a non-empty text, got {self.label!r}")
        if isinstance(self.decimals, bool) or not isinstance(self.decimals, int) or not (
                0 <= self.decimals <= 12):
            raise ValueError(f"decimals must be a whole number 0..12, got {self.decimals!r}")
        if self.direction not in (*DIRECTIONS, None):
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)} or None, "
                             f"got {self.direction!r}")
        low, high = self.bounds
        if low is not None and high is not None and not low < high:
            raise ValueError(f"bounds must be (low, high) with low < high, got {self.bounds!r}")

    def outside(self, value: float) -> bool:
        """Whether ``value`` lies outside :attr:`bounds`."""
        low, high = self.bounds
        return (low is not None and value < low) or (high is not None and value > high)

    def bounds_text(self) -> str:
        """The bounds in words: ``0 to 1``, ``at least 0``."""
        low, high = self.bounds
        if low is not None and high is not None:
            return f"{low:g} to {high:g}"
        return f"at least {low:g}" if low is not None else (
            f"at most {high:g}" if high is not None else "any value")


#: values the harness computes itself from a trial's histories, not a metric
RUN_VALUES: dict[str, ValueSpec] = {
    names.STABILITY_SCORE: ValueSpec("stability score", 2, "max", bounds=(0, 1)),
}
#: the bounds of a fraction and of a count or divergence
FRACTION, NON_NEGATIVE = (0.0, 1.0), (0.0, None)
_RUN_OWNER = "(the harness)"

#: registered metric name -> the values it declares, in registration order
_declared: dict[str, dict[str, ValueSpec]] = {}
_entry_points_loaded = False


def declare(metric: str, values: Mapping[str, ValueSpec]) -> None:
    """Record the values of the metric registered as ``metric`` (called by the metric
    registry). A value name means one thing: declaring it unlike another metric (or the
    harness) does is a :class:`~harness.errors.RegistryError`, and nothing is recorded."""
    for value, spec in values.items():
        if not isinstance(spec, ValueSpec):
            raise RegistryError(f"cannot register metric {metric!r}: value {value!r} is declared "
                                f"as {spec!r}, not a harness.value_specs.ValueSpec")
        for owner, other in _owners(value):
            if owner != metric and other != spec:
                raise RegistryError(
                    f"cannot register metric {metric!r}: it declares {value!r} as {spec}, but "
                    f"{'metric ' + repr(owner) if owner != _RUN_OWNER else owner} declares it "
                    f"as {other}; every metric providing a value must declare it alike")
    _declared[metric] = dict(values)


def withdraw(metric: str) -> None:
    """Forget the values of ``metric`` (it was unregistered)."""
    _declared.pop(metric, None)


def _owners(value: str):
    if value in RUN_VALUES:
        yield _RUN_OWNER, RUN_VALUES[value]
    for owner, values in _declared.items():
        if value in values:
            yield owner, values[value]


def _load() -> None:
    global _entry_points_loaded
    if not _entry_points_loaded:
        _entry_points_loaded = True  # first: loading registers metrics, which lands in declare
        load_entry_points()


def declared() -> dict[str, ValueSpec]:
    """Every declared value: the harness's own, then each registered metric's."""
    _load()
    out = dict(RUN_VALUES)
    for values in _declared.values():
        for value, spec in values.items():
            out.setdefault(value, spec)
    return out


def spec(name: str) -> ValueSpec | None:
    """The declaration of ``name``; None when no metric (and not the harness) declares it."""
    return declared().get(name)


def direction(name: str) -> str | None:
    """``"max"`` / ``"min"`` for a value a study may optimise; None for any other name."""
    found = spec(name)
    return None if found is None else found.direction


def log_scale(name: str) -> bool:
    """Whether ``name`` is declared a logarithm (:attr:`ValueSpec.log_scale`)."""
    found = spec(name)
    return bool(found is not None and found.log_scale)


def objectives() -> dict[str, str]:
    """The values a study may search (``search.metric``), sorted by name, with the
    direction that is better."""
    return {n: s.direction for n, s in sorted(declared().items()) if s.direction is not None}
