"""Turn a trial's histories and evaluations into a status and stability numbers.

Definitions (all documented in the README too):

``status`` -- the first that applies, in this order:

* ``diverged``: a logged loss was NaN/inf or its magnitude exceeded
  ``diagnostics.diverge_loss`` (training stops at that point);
* ``d_overpowers``: over the last ``tail_fraction`` of the history, mean D(x) >= 1 - m,
  mean D(G(z)) <= m (m = ``overpower_margin``) and mean ``grad_g`` <= ``vanishing_grad``:
  the discriminator wins and the generator's gradient has vanished. The rule needs
  probabilities: a critic loss (``Loss.critic``: ``wgan``, ``wgan_gp``, ``hinge``) logs
  unbounded scores as ``critic_real``/``critic_fake``/``critic_gap`` instead of ``d_real``/
  ``d_fake``, so for its trials the inputs are absent and the rule never holds;
* ``collapsed``: each of the last ``collapse_patience`` evaluations covered at most
  ``max(1, floor(collapse_fraction * n_modes))`` modes;
* ``ok`` otherwise.

Early stop (``diagnostics.stop_early``): after every evaluation before the budget is spent,
the training loop applies the same rules (:func:`early_stop_reason`) for the listed
statuses -- ``collapsed`` only once ``collapse_patience`` evaluations exist -- and ends
training at the first one that holds; that reason is then the trial's status.

``mode_hops`` -- how many times the *set* of covered modes changed between consecutive
evaluations (a generator hopping from mode to mode has many).

``stability_score`` -- the fraction of all modes that stayed covered at *every*
evaluation in the second half of training (steps > budget/2): 1.0 means all modes were
found and held, 0.0 means none was held throughout (or the trial diverged or was stopped
early: it did not hold its modes to the end of its budget).

``steps_to_full_coverage`` -- the first evaluation step at which every mode was covered
(absent when that never happened).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
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


def divergence_reason(row: dict[str, float], keys: Iterable[str], limit: float,
                      step: int) -> str | None:
    """Why the logged ``row`` of ``step`` ends a trial as ``diverged`` (the first of ``keys``
    that is NaN/inf or beyond ``diverge_loss``), e.g. ``"loss_d = nan at step 12"``; None
    when none is. Recorded on the run as the ``diverged_reason`` tag."""
    for key in keys:
        if key in row and is_bad(row[key], limit):
            value = row[key]
            why = "" if not math.isfinite(value) else f", beyond diverge_loss {limit:g}"
            return f"{key} = {value:.6g} at step {step}{why}"
    return None


def summarize(
    evals: list[EvalRecord],
    history: list[tuple[int, dict[str, float]]],
    n_modes: int | None,
    steps: int,
    diag: DiagnosticSettings,
    diverged: bool,
    stopped: str | None = None,
) -> Summary:
    """The trial's status and summary metrics. ``stopped`` is the reason training was
    stopped early (:func:`early_stop_reason`); it is then the status."""
    metrics: dict[str, float] = {}
    covered = [e.covered for e in evals if e.covered is not None]
    if n_modes and covered:
        metrics[names.MODE_HOPS] = float(sum(a != b for a, b in itertools.pairwise(covered)))
        late = [e.covered for e in evals if e.covered is not None and e.step > steps / 2]
        late = late or covered[-1:]
        held = frozenset.intersection(*late) if late else frozenset()
        metrics[names.STABILITY_SCORE] = 0.0 if diverged or stopped else len(held) / n_modes
        full = [e.step for e in evals if e.covered is not None and len(e.covered) >= n_modes]
        if full:
            metrics[names.STEPS_TO_FULL_COVERAGE] = float(full[0])

    if diverged:
        return Summary(names.STATUS_DIVERGED, metrics)
    if stopped is not None:
        return Summary(stopped, metrics)
    reason = early_stop_reason(evals, history, n_modes, diag, names.EARLY_STOP_REASONS,
                               full_window=False)
    return Summary(reason or names.STATUS_OK, metrics)


def d_overpowers(history: list[tuple[int, dict[str, float]]], diag: DiagnosticSettings) -> bool:
    """The ``d_overpowers`` rule on the history so far (module docstring); false when the
    history has no ``d_real``/``d_fake`` (critic losses): a mean of nothing is NaN, and
    every comparison with NaN is false."""
    if not history:
        return False
    tail = history[-max(1, math.ceil(diag.tail_fraction * len(history))):]

    def mean(key: str) -> float:
        vals = [row[key] for _, row in tail if key in row]
        return sum(vals) / len(vals) if vals else float("nan")

    m = diag.overpower_margin
    return (mean(names.D_REAL) >= 1 - m and mean(names.D_FAKE) <= m
            and mean(names.GRAD_G) <= diag.vanishing_grad)


def collapsed(evals: list[EvalRecord], n_modes: int | None, diag: DiagnosticSettings,
              full_window: bool) -> bool:
    """The ``collapsed`` rule on the evaluations so far (module docstring). With
    ``full_window`` it needs ``collapse_patience`` evaluations that counted modes (the early
    stop); without, fewer are judged as they are (the status of a short trial)."""
    covered = [e.covered for e in evals if e.covered is not None]
    if not n_modes or not covered or (full_window and len(covered) < diag.collapse_patience):
        return False
    limit = max(1, math.floor(diag.collapse_fraction * n_modes))
    return all(len(c) <= limit for c in covered[-diag.collapse_patience:])


def early_stop_reason(evals: list[EvalRecord], history: list[tuple[int, dict[str, float]]],
                      n_modes: int | None, diag: DiagnosticSettings, reasons: Iterable[str],
                      full_window: bool = True) -> str | None:
    """The first of ``d_overpowers``, ``collapsed`` (that order) among ``reasons`` whose rule
    holds now, else None. The training loop calls it after every evaluation with
    ``diagnostics.stop_early``; :func:`summarize` once at the end with both."""
    reasons = set(reasons)
    if names.STATUS_D_OVERPOWERS in reasons and d_overpowers(history, diag):
        return names.STATUS_D_OVERPOWERS
    if names.STATUS_COLLAPSED in reasons and collapsed(evals, n_modes, diag, full_window):
        return names.STATUS_COLLAPSED
    return None
