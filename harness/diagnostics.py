"""Turn a trial's histories and evaluations into a status and stability numbers.

Definitions (all documented in the README too):

``status`` -- the first that applies, in this order:

* ``diverged``: a logged loss was NaN/inf or its magnitude exceeded
  ``diagnostics.diverge_loss`` (training stops at that point);
* ``d_overpowers``: over the last ``tail_fraction`` of the history, mean D(x) >= 1 - m,
  mean D(G(z)) <= m (m = ``overpower_margin``) and mean ``grad_g`` <= ``vanishing_grad``:
  the discriminator wins and the generator's gradient has vanished;
* ``collapsed``: each of the last ``collapse_patience`` evaluations covered at most
  ``max(1, floor(collapse_fraction * n_modes))`` modes;
* ``ok`` otherwise.

``mode_hops`` -- how many times the *set* of covered modes changed between consecutive
evaluations (a generator hopping from mode to mode has many).

``stability_score`` -- the fraction of all modes that stayed covered at *every*
evaluation in the second half of training (steps > budget/2): 1.0 means all modes were
found and held, 0.0 means none was held throughout (or the trial diverged).

``steps_to_full_coverage`` -- the first evaluation step at which every mode was covered
(absent when that never happened).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from harness import names
from harness.config import DiagnosticSettings


@dataclass
class EvalRecord:
    step: int
    values: dict[str, float]
    covered: frozenset[int] | None = None


@dataclass
class Summary:
    status: str
    metrics: dict[str, float] = field(default_factory=dict)


def is_bad(value: float, limit: float) -> bool:
    return not math.isfinite(value) or abs(value) > limit


def summarize(
    evals: list[EvalRecord],
    history: list[tuple[int, dict[str, float]]],
    n_modes: int | None,
    steps: int,
    diag: DiagnosticSettings,
    diverged: bool,
) -> Summary:
    metrics: dict[str, float] = {}
    covered = [e.covered for e in evals if e.covered is not None]
    if n_modes and covered:
        metrics[names.MODE_HOPS] = float(sum(a != b for a, b in zip(covered, covered[1:])))
        late = [e.covered for e in evals if e.covered is not None and e.step > steps / 2]
        late = late or covered[-1:]
        held = frozenset.intersection(*late) if late else frozenset()
        metrics[names.STABILITY_SCORE] = 0.0 if diverged else len(held) / n_modes
        full = [e.step for e in evals if e.covered is not None and len(e.covered) >= n_modes]
        if full:
            metrics[names.STEPS_TO_FULL_COVERAGE] = float(full[0])

    if diverged:
        return Summary(names.STATUS_DIVERGED, metrics)
    if history:
        tail = history[-max(1, math.ceil(diag.tail_fraction * len(history))):]

        def mean(key: str) -> float:
            vals = [row[key] for _, row in tail if key in row]
            return sum(vals) / len(vals) if vals else float("nan")

        m = diag.overpower_margin
        if (mean(names.D_REAL) >= 1 - m and mean(names.D_FAKE) <= m
                and mean(names.GRAD_G) <= diag.vanishing_grad):
            return Summary(names.STATUS_D_OVERPOWERS, metrics)
    if n_modes and covered:
        limit = max(1, math.floor(diag.collapse_fraction * n_modes))
        recent = [len(c) for c in covered[-diag.collapse_patience:]]
        if all(c <= limit for c in recent):
            return Summary(names.STATUS_COLLAPSED, metrics)
    return Summary(names.STATUS_OK, metrics)
