"""Paired comparison statistics against known values and against scipy."""

from __future__ import annotations

import itertools
from fractions import Fraction
from math import comb

import numpy as np
import pytest
from scipy import stats

from harness import metrics


@pytest.mark.parametrize(
    "only_a, only_b, expected",
    [
        (7, 1, Fraction(2 * (1 + 8), 2**8)),  # 2 * P(X <= 1), X ~ Bin(8, 1/2) = 18/256
        (0, 5, Fraction(2, 2**5)),
        (5, 0, Fraction(2, 2**5)),
        (3, 3, Fraction(1)),  # the tail sum passes 1/2: capped at 1
        (0, 0, Fraction(1)),
        (1, 0, Fraction(1)),
        (10, 2, Fraction(2 * (comb(12, 0) + comb(12, 1) + comb(12, 2)), 2**12)),
    ],
)
def test_mcnemar_exact_known_values(only_a, only_b, expected):
    assert metrics.mcnemar_exact(only_a, only_b) == pytest.approx(float(expected), rel=1e-15)


def test_mcnemar_exact_equals_scipy_binomtest_on_a_grid():
    for b, c in itertools.product(range(0, 41, 3), range(0, 41, 4)):
        if b + c == 0:
            continue
        ref = stats.binomtest(b, b + c, 0.5, alternative="two-sided").pvalue
        assert metrics.mcnemar_exact(b, c) == pytest.approx(ref, rel=1e-9, abs=1e-300), (b, c)


def test_mcnemar_exact_large_and_tiny_p_values():
    # 59 vs 121 discordant tasks (the discordant cells of statsmodels' documented example table)
    assert metrics.mcnemar_exact(59, 121) == pytest.approx(stats.binomtest(59, 180).pvalue, rel=1e-9)
    # far in the tail: exact integers keep precision where floating-point sums would underflow
    p = metrics.mcnemar_exact(0, 1000)
    assert p == pytest.approx(2.0**-999, rel=1e-12) and p > 0


def test_mcnemar_rejects_negative_counts():
    with pytest.raises(ValueError):
        metrics.mcnemar_exact(-1, 3)


def test_paired_bootstrap_of_a_constant_difference_is_that_constant():
    a = [0.8, 0.6, 1.0, 0.4]
    b = [x - 0.25 for x in a]
    lo, hi = metrics.paired_bootstrap_ci(a, b, seed=7)
    assert lo == pytest.approx(0.25) and hi == pytest.approx(0.25)


def test_paired_bootstrap_matches_the_exact_bootstrap_distribution():
    # diffs 0, 0, 1, 1: a resample's mean is K/4 with K ~ Bin(4, 1/2); P(K = 0) = 1/16 > 2.5%, so the
    # exact percentile interval is [0, 1]; 10,000 resamples land on it.
    a, b = [1, 1, 1, 1], [1, 1, 0, 0]
    assert metrics.paired_bootstrap_ci(a, b, seed=3) == (0.0, 1.0)
    # Every one of the 6^6 equally likely resamples of 6 differences, enumerated: the interval's ends
    # are the 2.5% and 97.5% percentiles of that exact distribution (to within the 10,000-draw noise).
    d = np.array([-1.0, 0.0, 0.0, 0.5, 1.0, 1.0])
    means = np.array([d[list(i)].mean() for i in itertools.product(range(6), repeat=6)])
    lo, hi = metrics.paired_bootstrap_ci(d, np.zeros(6), seed=11)
    tol = 0.006  # about 3.5 standard errors of a 2.5% tail estimated from 10,000 resamples
    assert np.mean(means < lo - 1e-12) <= 0.025 + tol and np.mean(means <= lo + 1e-12) >= 0.025 - tol
    assert np.mean(means > hi + 1e-12) <= 0.025 + tol and np.mean(means >= hi - 1e-12) >= 0.025 - tol


def test_paired_bootstrap_agrees_with_scipy_percentile_bootstrap():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, 164).astype(float)
    b = np.where(rng.random(164) < 0.8, a, 1 - a)  # B agrees with A on ~80% of tasks
    ours = metrics.paired_bootstrap_ci(a, b, seed=5)
    ref = stats.bootstrap((a - b,), np.mean, n_resamples=10_000, method="percentile", random_state=5)
    assert ours[0] == pytest.approx(ref.confidence_interval.low, abs=0.01)
    assert ours[1] == pytest.approx(ref.confidence_interval.high, abs=0.01)


def test_pairing_narrows_the_interval_when_runs_agree():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2, 164).astype(float)
    b = np.where(rng.random(164) < 0.95, a, 1 - a)
    lo, hi = metrics.paired_bootstrap_ci(a, b, seed=2)
    # the same difference bootstrapped as if the runs were independent (each resampled on its own)
    gen = np.random.default_rng(2)
    i, j = gen.integers(0, 164, (2, 10_000, 164))
    unpaired = np.quantile(a[i].mean(axis=1) - b[j].mean(axis=1), [0.025, 0.975])
    assert hi - lo < (unpaired[1] - unpaired[0]) / 2


def test_paired_bootstrap_is_reproducible_and_checks_lengths():
    a, b = [1, 0, 1, 1, 0], [0, 0, 1, 0, 1]
    assert metrics.paired_bootstrap_ci(a, b, seed=9) == metrics.paired_bootstrap_ci(a, b, seed=9)
    with pytest.raises(ValueError):
        metrics.paired_bootstrap_ci([1, 0], [1], seed=1)
