"""The gate's paired statistics against hand computations and scipy: Benjamini–Hochberg,
exact McNemar, the MDE, the one-sided delta test (non-finite replicates named), the paired
bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as scipy_stats

from glotbench.harness.gate.paired_stats import (
    benjamini_hochberg,
    bootstrap_deltas,
    delta_test,
    mcnemar_exact,
    mde,
    paired_bootstrap_delta,
)


def test_benjamini_hochberg_by_hand_and_scipy():
    # sorted 0.005, 0.01, 0.03, 0.04 (m = 4): p·m/rank = 0.02, 0.02, 0.04, 0.04, already monotone.
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    # step-up: 0.04·2/1 = 0.08 is lowered to the larger p's 0.05·2/2 = 0.05.
    assert benjamini_hochberg([0.05, 0.04]) == pytest.approx([0.05, 0.05])
    rng = np.random.default_rng(7)
    for m in (1, 2, 5, 30):
        p = np.round(rng.random(m) ** 3, 3)  # rounding makes ties
        assert benjamini_hochberg(p) == pytest.approx(scipy_stats.false_discovery_control(p, method="bh"))
    with pytest.raises(ValueError):
        benjamini_hochberg([0.5, 1.5])


def test_mcnemar_exact_by_hand_and_scipy():
    # 12 pairs worse, 4 better: 2·P(X ≤ 4), X ~ Binomial(16, ½) = 2·(1+16+120+560+1820)/2^16.
    b = [1] * 12 + [0] * 4 + [1] * 30 + [0] * 10
    c = [0] * 12 + [1] * 4 + [1] * 30 + [0] * 10
    assert mcnemar_exact(b, c) == pytest.approx(2 * 2517 / 65536)
    assert mcnemar_exact(b, c) == pytest.approx(scipy_stats.binomtest(4, 16, 0.5).pvalue)
    assert mcnemar_exact([1, 0, 1], [1, 0, 1]) == 1.0
    rng = np.random.default_rng(3)
    for _ in range(5):
        x, y = rng.integers(0, 2, 300), rng.integers(0, 2, 300)
        worse, better = int(((x == 1) & (y == 0)).sum()), int(((x == 0) & (y == 1)).sum())
        assert mcnemar_exact(x, y) == pytest.approx(scipy_stats.binomtest(better, worse + better).pvalue)


def test_mde_matches_normal_quantiles():
    z = scipy_stats.norm.ppf
    assert mde(0.015) == pytest.approx((z(0.95) + z(0.8)) * 0.015)
    assert mde(2.0, alpha=0.01, power=0.9) == pytest.approx((z(0.99) + z(0.9)) * 2.0)


def test_delta_test_by_hand():
    reps = (np.arange(1000) - 500) / 1000  # -0.5, -0.499, ..., 0.499
    t = delta_test(0.01, reps, margin=0.1, alpha=0.05)
    assert t.p_noninferior == pytest.approx(402 / 1001)  # 401 replicates ≤ -0.1, plus one
    assert t.p_regression == pytest.approx(601 / 1001)  # 600 replicates ≥ -0.1, plus one
    assert t.ci == pytest.approx(((49.95 - 500) / 1000, (949.05 - 500) / 1000))  # linear quantiles
    assert t.se == pytest.approx(np.std(reps, ddof=1)) and t.resamples == 1000
    nan = delta_test(0.0, np.array([0.0, np.nan, 0.0]), margin=0.1, alpha=0.4)
    assert nan.resamples == 2 and nan.p_noninferior == pytest.approx(1 / 3)


def test_paired_bootstrap_reproducible_and_exact_counts():
    rng = np.random.default_rng(11)
    b = rng.integers(0, 2, 200)
    c = np.where(rng.random(200) < 0.1, 1 - b, b)
    first = paired_bootstrap_delta(b, c, margin=0.03, seed=5, resamples=500)
    assert first == paired_bootstrap_delta(b, c, margin=0.03, seed=5, resamples=500)
    assert first != paired_bootstrap_delta(b, c, margin=0.03, seed=6, resamples=500)
    assert first.delta == pytest.approx((c - b).mean())
    # the p-value is the +1-corrected fraction of the replicates, which resample indices
    draw = np.random.default_rng(5).integers(0, 200, size=(500, 200))
    reps = (c - b)[draw].mean(axis=1)
    assert np.allclose(bootstrap_deltas(b, c, 5, 500), reps)
    assert first.p_noninferior == pytest.approx((1 + (reps <= -0.03).sum()) / 501)
    assert first.ci == pytest.approx(tuple(np.quantile(reps, [0.05, 0.95])))


def test_delta_test_names_non_finite_replicates():
    some = delta_test(0.0, np.array([0.1, np.nan, -0.1, np.inf, 0.0]), margin=0.05, alpha=0.3)
    assert (some.resamples, some.dropped) == (3, 2) and some.ci is not None
    none = delta_test(0.02, np.full(50, np.nan), margin=0.05, alpha=0.05)
    assert (none.resamples, none.dropped) == (0, 50)
    assert none.ci is None and none.se is None and none.p_noninferior == none.p_regression == 1.0
    assert none.delta == 0.02
