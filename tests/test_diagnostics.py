"""Status and stability numbers computed from hand-made histories."""

import math

import pytest

from harness import names
from harness.config import DiagnosticSettings
from harness.diagnostics import EvalRecord, is_bad, summarize

DIAG = DiagnosticSettings()
ALL8 = frozenset(range(8))


def ev(step, covered):
    covered = frozenset(covered) if covered is not None else None
    values = {names.MODES_COVERED: float(len(covered))} if covered is not None else {}
    return EvalRecord(step, values, covered)


def row(d_real=0.6, d_fake=0.4, grad_g=0.5, **extra):
    r = {names.LOSS_D: 1.3, names.LOSS_G: 0.7, names.D_REAL: d_real, names.D_FAKE: d_fake,
         names.D_FAKE_AFTER: d_fake, names.GRAD_D: 0.3, names.GRAD_G: grad_g}
    r.update(extra)
    return r


def healthy_history(n=20, every=5):
    return [(every * (i + 1), row()) for i in range(n)]


def run(evals, history=None, n_modes=8, steps=100, diag=DIAG, diverged=False):
    return summarize(evals, healthy_history() if history is None else history, n_modes, steps,
                     diag, diverged)


def test_is_bad():
    assert is_bad(float("nan"), 1e6) and is_bad(float("inf"), 1e6) and is_bad(-float("inf"), 1e6)
    assert is_bad(2e6, 1e6) and is_bad(-2e6, 1e6)
    assert not is_bad(1e6, 1e6) and not is_bad(-3.0, 1e6) and not is_bad(0.0, 1e6)


# --- status ---------------------------------------------------------------------------


def test_ok():
    s = run([ev(25, ALL8), ev(50, ALL8), ev(75, ALL8), ev(100, ALL8)])
    assert s.status == names.STATUS_OK
    assert s.metrics == {names.MODE_HOPS: 0.0, names.STABILITY_SCORE: 1.0,
                         names.STEPS_TO_FULL_COVERAGE: 25.0}


def test_diverged_takes_precedence():
    # even though the history also looks like D overpowers and coverage collapsed
    hist = [(5 * (i + 1), row(d_real=1.0, d_fake=0.0, grad_g=0.0)) for i in range(10)]
    s = run([ev(25, {0}), ev(50, {0})], history=hist, diverged=True)
    assert s.status == names.STATUS_DIVERGED
    assert s.metrics[names.STABILITY_SCORE] == 0.0


def test_diverged_with_full_coverage_scores_zero_stability():
    s = run([ev(25, ALL8), ev(50, ALL8), ev(75, ALL8)], steps=100, diverged=True)
    assert s.status == names.STATUS_DIVERGED
    assert s.metrics[names.STABILITY_SCORE] == 0.0
    assert s.metrics[names.STEPS_TO_FULL_COVERAGE] == 25.0
    assert s.metrics[names.MODE_HOPS] == 0.0


def test_diverged_without_evals_or_history():
    s = summarize([], [], 8, 100, DIAG, True)
    assert s.status == names.STATUS_DIVERGED and s.metrics == {}


def test_d_overpowers():
    # 20 rows; tail_fraction 0.1 -> last 2 rows decide
    hist = healthy_history(18) + [(95, row(d_real=0.99, d_fake=0.01, grad_g=1e-5)),
                                  (100, row(d_real=0.97, d_fake=0.03, grad_g=2e-4))]
    s = run([ev(50, ALL8), ev(100, ALL8)], history=hist)
    assert s.status == names.STATUS_D_OVERPOWERS


def test_d_overpowers_takes_precedence_over_collapse():
    hist = [(5 * (i + 1), row(d_real=1.0, d_fake=0.0, grad_g=0.0)) for i in range(20)]
    s = run([ev(50, {1}), ev(100, {1})], history=hist)
    assert s.status == names.STATUS_D_OVERPOWERS


@pytest.mark.parametrize("d_real, d_fake, grad_g", [
    (0.90, 0.01, 0.0),   # D(x) not >= 0.95
    (0.99, 0.10, 0.0),   # D(G(z)) not <= 0.05
    (0.99, 0.01, 0.01),  # generator's gradient has not vanished (> 1e-3)
])
def test_d_overpowers_needs_all_three(d_real, d_fake, grad_g):
    hist = healthy_history(18) + [(95 + 5 * i, row(d_real, d_fake, grad_g)) for i in range(2)]
    assert run([ev(50, ALL8), ev(100, ALL8)], history=hist).status == names.STATUS_OK


def test_d_overpowers_looks_only_at_the_tail():
    # overpowering early, healthy at the end -> ok
    hist = [(5 * (i + 1), row(1.0, 0.0, 0.0)) for i in range(18)] + healthy_history(2)
    assert run([ev(50, ALL8), ev(100, ALL8)], history=hist).status == names.STATUS_OK
    # tail_fraction 1.0 -> whole history averaged: mean grad_g = 0.05 > 1e-3 -> ok
    diag = DiagnosticSettings(tail_fraction=1.0)
    assert run([ev(50, ALL8)], history=hist, diag=diag).status == names.STATUS_OK


def test_d_overpowers_margins_are_inclusive():
    hist = [(5, row(d_real=0.95, d_fake=0.05, grad_g=1e-3))]
    assert run([ev(5, ALL8)], history=hist, steps=5).status == names.STATUS_D_OVERPOWERS


def test_collapsed():
    # floor(0.25 * 8) = 2 modes or fewer at each of the last 2 evaluations
    s = run([ev(25, ALL8), ev(50, ALL8), ev(75, {0, 1}), ev(100, {3})])
    assert s.status == names.STATUS_COLLAPSED


def test_not_collapsed_when_only_the_last_eval_is_low():
    s = run([ev(25, ALL8), ev(50, ALL8), ev(75, {0, 1, 2}), ev(100, {3})])
    assert s.status == names.STATUS_OK


def test_collapse_threshold_is_floor_of_fraction():
    # 8 modes: limit 2 -> 3 modes is not collapsed
    assert run([ev(50, {0, 1, 2}), ev(100, {0, 1, 2})]).status == names.STATUS_OK
    assert run([ev(50, {0, 1}), ev(100, {4, 5})]).status == names.STATUS_COLLAPSED
    # 25 modes: floor(6.25) = 6
    six, seven = frozenset(range(6)), frozenset(range(7))
    assert run([ev(50, six), ev(100, six)], n_modes=25).status == names.STATUS_COLLAPSED
    assert run([ev(50, seven), ev(100, seven)], n_modes=25).status == names.STATUS_OK
    # 3 modes: floor(0.75) = 0, but the limit is at least 1
    assert run([ev(50, {0}), ev(100, {2})], n_modes=3).status == names.STATUS_COLLAPSED
    assert run([ev(50, {0, 1}), ev(100, {0, 1})], n_modes=3).status == names.STATUS_OK


def test_collapse_patience_and_fraction_settings():
    evals = [ev(25, {0}), ev(50, ALL8), ev(75, {0}), ev(100, {0})]
    assert run(evals).status == names.STATUS_COLLAPSED  # patience 2
    assert run(evals, diag=DiagnosticSettings(collapse_patience=3)).status == names.STATUS_OK
    four = [ev(50, {0, 1, 2, 3}), ev(100, {0, 1, 2, 3})]
    assert run(four).status == names.STATUS_OK
    assert run(four, diag=DiagnosticSettings(collapse_fraction=0.5)).status == names.STATUS_COLLAPSED


def test_zero_modes_collapsed():
    assert run([ev(50, set()), ev(100, set())]).status == names.STATUS_COLLAPSED


def test_no_modes_known_is_ok():
    s = run([ev(50, None), ev(100, None)], n_modes=None)
    assert s.status == names.STATUS_OK and s.metrics == {}
    assert summarize([], [], None, 100, DIAG, False).status == names.STATUS_OK


# --- mode hops, stability, steps to full coverage --------------------------------------


def test_mode_hops_counts_set_changes():
    evals = [ev(10, {0}), ev(20, {1}), ev(30, {1}), ev(40, {0, 1}), ev(50, {1, 0}), ev(60, {2})]
    s = run(evals, steps=60)
    assert s.metrics[names.MODE_HOPS] == 3.0  # {0}->{1}, {1}->{0,1}, {0,1}->{2}


def test_mode_hops_same_size_different_set_counts():
    s = run([ev(50, {0, 1}), ev(100, {2, 3})])
    assert s.metrics[names.MODE_HOPS] == 1.0


def test_mode_hops_single_eval_is_zero():
    assert run([ev(100, ALL8)]).metrics[names.MODE_HOPS] == 0.0


def test_stability_score_is_fraction_held_through_the_second_half():
    evals = [
        ev(20, {7}),               # first half: ignored
        ev(40, ALL8),              # first half: ignored
        ev(60, {0, 1, 2, 3, 4}),   # step > 50
        ev(80, {0, 1, 2, 5, 6}),
        ev(100, {0, 1, 2, 3, 7}),
    ]
    s = run(evals, steps=100)
    assert s.metrics[names.STABILITY_SCORE] == pytest.approx(3 / 8)  # {0,1,2}


def test_stability_score_half_boundary_is_exclusive():
    # the eval at exactly steps/2 belongs to the first half
    evals = [ev(50, {0}), ev(100, {0, 1, 2, 3})]
    assert run(evals, steps=100).metrics[names.STABILITY_SCORE] == pytest.approx(4 / 8)
    evals = [ev(51, {0}), ev(100, {0, 1, 2, 3})]
    assert run(evals, steps=100).metrics[names.STABILITY_SCORE] == pytest.approx(1 / 8)


def test_stability_score_falls_back_to_the_last_eval():
    # stopped early: no eval in the second half (and not diverged) -> the last eval counts
    evals = [ev(10, {0, 1}), ev(20, {0, 1, 2, 3})]
    assert run(evals, steps=100).metrics[names.STABILITY_SCORE] == pytest.approx(0.5)


def test_stability_score_zero_when_nothing_held():
    evals = [ev(60, {0, 1}), ev(80, {2, 3}), ev(100, {4, 5})]
    assert run(evals, steps=100).metrics[names.STABILITY_SCORE] == 0.0


def test_steps_to_full_coverage():
    evals = [ev(25, {0}), ev(50, set(range(7))), ev(75, ALL8), ev(100, {0}), ev(125, ALL8)]
    s = run(evals, steps=125)
    assert s.metrics[names.STEPS_TO_FULL_COVERAGE] == 75.0
    s = run([ev(50, set(range(7))), ev(100, set(range(7)))])
    assert names.STEPS_TO_FULL_COVERAGE not in s.metrics


def test_evals_without_coverage_are_skipped():
    evals = [ev(25, {0}), ev(50, None), ev(75, {0}), ev(100, {1})]
    s = run(evals, steps=100)
    assert s.metrics[names.MODE_HOPS] == 1.0  # None entries do not count as changes
    assert s.metrics[names.STABILITY_SCORE] == 0.0  # {0} & {1}


def test_summary_values_are_floats():
    s = run([ev(50, ALL8), ev(100, ALL8)])
    assert all(isinstance(v, float) and math.isfinite(v) for v in s.metrics.values())
