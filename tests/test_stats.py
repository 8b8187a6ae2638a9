"""Known answers for harness.reports.stats: bootstrap intervals, Mann–Whitney, Holm, pairwise,
best-of-k (score vs budget)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from harness.reports.stats import (
    PAIRWISE_COLUMNS,
    best_of_k,
    bootstrap_ci,
    diff_ci,
    holm,
    mann_whitney,
    min_mann_whitney_p,
    pairwise,
)


def test_bootstrap_ci_constant_sample_is_the_constant():
    assert bootstrap_ci([3.0] * 5) == (3.0, 3.0)
    assert bootstrap_ci([0.1] * 40, n_resamples=500, seed=7) == (0.1, 0.1)


def test_bootstrap_ci_drops_nan_and_needs_two_values():
    assert all(math.isnan(v) for v in bootstrap_ci([1.0]))
    assert all(math.isnan(v) for v in bootstrap_ci([]))
    assert all(math.isnan(v) for v in bootstrap_ci([np.nan, 2.0, np.nan]))
    assert bootstrap_ci([1.0, np.nan, 3.0, 2.0], seed=1) == bootstrap_ci([1.0, 3.0, 2.0], seed=1)


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    x = np.arange(10.0)
    a = bootstrap_ci(x, n_resamples=1000, seed=5)
    assert a == bootstrap_ci(x, n_resamples=1000, seed=5)
    assert a != bootstrap_ci(x, n_resamples=1000, seed=6)
    low, high = a
    assert 0 <= low < x.mean() < high <= 9
    with pytest.raises(ValueError):
        bootstrap_ci(x, level=1.5)


def test_bootstrap_ci_coverage_of_a_normal_mean():
    rng = np.random.default_rng(20240601)
    data = rng.standard_normal((400, 40))
    covered = 0
    for i, sample in enumerate(data):
        low, high = bootstrap_ci(sample, n_resamples=1000, seed=i)
        covered += low <= 0.0 <= high
    assert 0.90 <= covered / 400 <= 0.985, covered


def test_diff_ci_shifted_samples():
    a = np.array([1.0, 4.0, 2.0, 8.0, 5.0, 7.0, 3.0, 6.0])
    diff, low, high = diff_ci(a + 5.0, a, n_resamples=1000, seed=0)
    assert diff == 5.0
    assert 0.0 < low < 5.0 < high
    assert diff_ci(a + 5.0, a, n_resamples=1000, seed=0) == (diff, low, high)
    d, lo, hi = diff_ci([1.0], [2.0, 3.0])
    assert d == -1.5 and math.isnan(lo) and math.isnan(hi)
    assert all(math.isnan(v) for v in diff_ci([], [1.0, 2.0]))


def test_mann_whitney_known_answers():
    assert mann_whitney([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1)  # exact: 2 / C(6, 3)
    assert mann_whitney([4, 5, 6], [1, 2, 3]) == pytest.approx(0.1)
    assert mann_whitney([2, 2, 2], [2, 2, 2]) == 1.0
    assert math.isnan(mann_whitney([], [1, 2]))
    assert math.isnan(mann_whitney([np.nan], [1, 2]))
    # ties: the exact permutation distribution, never below 2 / C(6, 3)
    assert mann_whitney([8, 7, 8], [3, 5, 4]) == pytest.approx(0.1)
    assert mann_whitney([8, 8, 8], [4, 4, 4]) == pytest.approx(0.1)
    assert mann_whitney([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    # large groups: the normal approximation, a small p for a clear shift
    assert mann_whitney(np.arange(30.0), np.arange(30.0) + 40) < 1e-6
    assert min_mann_whitney_p(3, 3) == pytest.approx(0.1)
    assert min_mann_whitney_p(1, 1) == 1.0
    assert math.isnan(min_mann_whitney_p(0, 3))


def test_holm_known_answers():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])  # capped at 1
    out = holm([np.nan, 0.01, 0.02])
    assert math.isnan(out[0])
    np.testing.assert_allclose(out[1:], [0.02, 0.02])  # m counts the non-NaN p-values only
    assert len(holm([])) == 0


def test_pairwise_tiny_frame():
    df = pd.DataFrame({
        "variant": ["x"] * 3 + ["y"] * 3 + ["z"] * 6 + [None],
        "m": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 20.0, 21.0, 22.0, 23.0, 24.0, np.nan, 99.0],
    })
    out = pairwise(df, "m", n_resamples=500, seed=1)
    assert list(out.columns) == PAIRWISE_COLUMNS
    assert [(r.a, r.b) for r in out.itertuples()] == [("x", "y"), ("x", "z"), ("y", "z")]
    assert list(out["n_a"]) == [3, 3, 3] and list(out["n_b"]) == [3, 5, 5]
    assert list(out["mean_a"]) == [2.0, 2.0, 5.0] and list(out["mean_b"]) == [5.0, 22.0, 22.0]
    assert list(out["diff"]) == [-3.0, -20.0, -17.0]
    assert (out["diff_low"] <= out["diff"]).all() and (out["diff"] <= out["diff_high"]).all()
    p = 2 / math.comb(8, 3)  # 3 vs 5 fully separated: 2/56
    np.testing.assert_allclose(out["p"], [0.1, p, p])
    np.testing.assert_allclose(out["p_holm"], holm([0.1, p, p]))
    np.testing.assert_allclose(out["p_holm"], [3 * p, 3 * p, 3 * p])  # step-down, monotone
    assert list(out["distinguishable"]) == [False, False, False]  # 3/28 = 0.107 >= 0.05
    loose = pairwise(df, "m", n_resamples=500, seed=1, alpha=0.11)
    assert list(loose["distinguishable"]) == [True, True, True]
    # y identical to x: that pair has p = 1 and stays indistinguishable
    same = df.assign(m=[1.0, 2.0, 3.0, 1.0, 2.0, 3.0, *df["m"].iloc[6:]])
    mixed = pairwise(same, "m", n_resamples=500, seed=1, alpha=0.11)
    np.testing.assert_allclose(mixed["p"], [1.0, p, p])
    np.testing.assert_allclose(mixed["p_holm"], [1.0, 3 * p, 3 * p])
    assert list(mixed["distinguishable"]) == [False, True, True]
    assert mixed["diff"].iloc[0] == 0.0

def test_pairwise_one_group_or_empty():
    one = pd.DataFrame({"variant": ["x", "x"], "m": [1.0, 2.0]})
    assert pairwise(one, "m").empty
    assert list(pairwise(one.iloc[0:0], "m").columns) == PAIRWISE_COLUMNS


# --- best_of_k ---------------------------------------------------------------------------


def test_best_of_k_known_answers():
    curve = best_of_k([1, 2, 3, 4])
    assert list(curve.columns) == ["k", "expected", "low", "high"]
    assert list(curve["k"]) == [1, 2, 3, 4]
    assert curve["expected"].iloc[0] == pytest.approx(2.5)
    assert curve["expected"].iloc[1] == pytest.approx(20 / 6)
    assert curve["expected"].iloc[2] == pytest.approx(3.75)
    assert curve["expected"].iloc[3] == pytest.approx(4.0)
    assert curve["low"].iloc[3] == 4 and curve["high"].iloc[3] == 4
    # k = 1: uniform over the values; k = 2: P(max = 2, 3, 4) = 1/6, 2/6, 3/6
    assert (curve["low"].iloc[0], curve["high"].iloc[0]) == (1.0, 4.0)
    assert (curve["low"].iloc[1], curve["high"].iloc[1]) == (2.0, 4.0)
    # order and NaN do not matter; k_max cuts the curve
    same = best_of_k([4, np.nan, 2, 1, 3, np.inf])
    pd.testing.assert_frame_equal(same, curve)
    assert list(best_of_k([1, 2, 3, 4], k_max=2)["k"]) == [1, 2]


def test_best_of_k_flat_for_equal_values_and_empty():
    curve = best_of_k([5.0] * 6)
    assert len(curve) == 6
    assert (curve["expected"] == 5.0).all()
    assert (curve["low"] == 5.0).all() and (curve["high"] == 5.0).all()
    assert best_of_k([]).empty and best_of_k([np.nan]).empty
    assert list(best_of_k([]).columns) == ["k", "expected", "low", "high"]


def test_best_of_k_lower_is_better_mirrors():
    x = np.array([3.0, 1.0, 4.0, 1.5, 9.0, 2.6])
    up = best_of_k(x)
    down = best_of_k(-x, higher_is_better=False)
    np.testing.assert_allclose(down["expected"], -up["expected"])
    low = best_of_k([1, 2, 3, 4], higher_is_better=False)
    np.testing.assert_allclose(low["expected"], [2.5, 5 - 20 / 6, 1.25, 1.0])
    assert low["low"].iloc[-1] == 1 and low["high"].iloc[-1] == 1
    assert (np.diff(low["expected"]) <= 1e-12).all()


def test_best_of_k_monotone_and_matches_brute_force():
    rng = np.random.default_rng(7)
    x = np.round(rng.normal(size=7), 3)
    x[5] = x[2]  # a tie
    for higher in (True, False):
        curve = best_of_k(x, higher_is_better=higher)
        assert len(curve) == 7
        exp = curve["expected"].to_numpy()
        assert (np.diff(exp) >= -1e-12).all() if higher else (np.diff(exp) <= 1e-12).all()
        for k in range(1, 8):
            pick = max if higher else min
            best = np.sort([pick(c) for c in itertools.combinations(x, k)])
            row = curve.iloc[k - 1]
            assert row["expected"] == pytest.approx(best.mean(), abs=1e-12)
            # the smallest value whose empirical cdf reaches q
            m = len(best)
            for q, col in ((0.05, "low"), (0.95, "high")):
                idx = next(i for i in range(m) if (i + 1) / m >= q - 1e-12)
                assert row[col] == best[idx]
            assert row["low"] <= row["expected"] <= row["high"]
