"""Paired-comparison statistics of the regression gate, as small pure functions: the
minimum detectable effect, the exact McNemar test, Benjamini–Hochberg, and seeded paired
bootstrap non-inferiority tests of per-example scores or of corpus metrics (chrF++ from
summed segment statistics). Used by :mod:`glotbench.harness.gate.fixed` and :mod:`glotbench.harness.gate.sequential`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from glotbench.harness.metrics import chrf as mt_metrics

_CHUNK = 256
"""Bootstrap resamples drawn per block (bounds memory on large languages)."""


@dataclass(frozen=True)
class DeltaTest:
    """A non-inferiority test of one paired difference against a margin."""

    delta: float
    """Point estimate of Δ = candidate − baseline."""
    ci: tuple[float, float] | None
    """Two-sided (1 − 2·alpha) percentile bootstrap interval of Δ; None without a finite replicate."""
    se: float | None
    """Bootstrap standard deviation of Δ (ddof=1; 0 with one finite replicate, None with none)."""
    margin: float
    alpha: float
    p_noninferior: float
    """H0: Δ ≤ −margin; (1 + #{Δ* ≤ −margin}) / (B + 1) over the B finite replicates (1 when B = 0)."""
    p_regression: float
    """H0: Δ ≥ −margin; (1 + #{Δ* ≥ −margin}) / (B + 1)."""
    resamples: int
    """B: the finite replicates the test rests on."""
    dropped: int = 0
    """Replicates left out because Δ* was not finite (a win-rate resample without a valid verdict)."""


def mde(se: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Minimum detectable effect of a one-sided level-``alpha`` test: (z_{1−α} + z_power)·se."""
    z = NormalDist()
    return (z.inv_cdf(1 - alpha) + z.inv_cdf(power)) * se


def mcnemar_exact(baseline: Sequence[float], candidate: Sequence[float]) -> float:
    """Two-sided exact McNemar p-value of paired 0/1 outcomes: a binomial(½) test on the
    discordant pairs (equal to ``scipy.stats.binomtest(k, n, 0.5).pvalue``), 1 when none."""
    b, c = np.asarray(baseline), np.asarray(candidate)
    worse, better = int(np.sum((b == 1) & (c == 0))), int(np.sum((b == 0) & (c == 1)))
    n = worse + better
    if n == 0:
        return 1.0
    term = tail = 1  # exact integers: C(n, 0) + ... + C(n, min), term by term
    for i in range(min(worse, better)):
        term = term * (n - i) // (i + 1)
        tail += term
    return min(1.0, 2 * tail / 2**n)


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (step-up, monotone, capped at 1), in input order;
    as ``scipy.stats.false_discovery_control(p, method="bh")``."""
    p = np.asarray(p_values, dtype=float)
    if np.any((p < 0) | (p > 1) | np.isnan(p)):
        raise ValueError(f"p-values must lie in [0, 1], got {p_values}")
    m = len(p)
    order = np.argsort(p, kind="stable")
    ranked = np.minimum.accumulate((p[order] * m / np.arange(1, m + 1))[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    return [float(x) for x in out]


def bootstrap_deltas(baseline: np.ndarray, candidate: np.ndarray, seed: int | Sequence[int],
                     resamples: int, corpus: Callable[[np.ndarray], float] | None = None) -> np.ndarray:
    """Paired bootstrap replicates of Δ: example indices resampled with replacement (the same
    draw for both runs). Values are (n,) per-example scores (Δ of means) or (n, k) sufficient
    statistics with ``corpus`` mapping a (k,) column sum to the corpus score."""
    b, c = np.asarray(baseline, dtype=float), np.asarray(candidate, dtype=float)
    if b.shape != c.shape or len(b) == 0:
        raise ValueError(f"paired values need equal, non-empty shapes, got {b.shape} and {c.shape}")
    n, rng, out = len(b), np.random.default_rng(seed), np.empty(resamples)
    for start in range(0, resamples, _CHUNK):
        k = min(_CHUNK, resamples - start)
        idx = rng.integers(0, n, size=(k, n))
        if corpus is None:
            out[start:start + k] = (c - b)[idx].mean(axis=1)
        else:  # counts per example, then weighted sums of the statistics
            w = np.bincount((idx + n * np.arange(k)[:, None]).ravel(), minlength=k * n).reshape(k, n)
            out[start:start + k] = [corpus(tc) - corpus(tb) for tb, tc in zip(w @ b, w @ c)]
    return out


def delta_test(delta: float, replicates: np.ndarray, margin: float, alpha: float) -> DeltaTest:
    """Non-inferiority and regression p-values and the CI from bootstrap replicates of Δ.
    Non-finite replicates (resamples without a valid verdict) are left out and counted in
    ``dropped``; with none finite, both p-values are 1 (no evidence either way) and the CI is
    None, so a caller cannot mistake the result for a test."""
    r = np.asarray(replicates, dtype=float)
    finite = r[np.isfinite(r)]
    b, dropped = len(finite), len(r) - len(finite)
    if b == 0:
        return DeltaTest(float(delta), None, None, float(margin), alpha, 1.0, 1.0, 0, dropped)
    lo, hi = np.quantile(finite, [alpha, 1 - alpha])
    return DeltaTest(float(delta), (float(lo), float(hi)), float(finite.std(ddof=1)) if b > 1 else 0.0,
                     float(margin), alpha, float((1 + np.sum(finite <= -margin)) / (b + 1)),
                     float((1 + np.sum(finite >= -margin)) / (b + 1)), b, dropped)


def paired_bootstrap_delta(baseline: Sequence[float] | np.ndarray, candidate: Sequence[float] | np.ndarray,
                           margin: float, alpha: float = 0.05, seed: int | Sequence[int] = 1234,
                           resamples: int = 1000,
                           corpus: Callable[[np.ndarray], float] | None = None) -> DeltaTest:
    """:func:`delta_test` of paired values (see :func:`bootstrap_deltas`)."""
    b, c = np.asarray(baseline, dtype=float), np.asarray(candidate, dtype=float)
    point = corpus(c.sum(axis=0)) - corpus(b.sum(axis=0)) if corpus else float(np.mean(c - b))
    return delta_test(point, bootstrap_deltas(b, c, seed, resamples, corpus), margin, alpha)


def chrf_corpus(totals: np.ndarray) -> float:
    """Corpus chrF++ of summed sufficient statistics (a ``corpus`` for the bootstrap)."""
    return mt_metrics.chrf_from_stats([totals])
