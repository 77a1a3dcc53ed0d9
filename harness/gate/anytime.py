"""Anytime-valid sequential non-inferiority tests on paired per-example differences.

``glotbench gate --sequential`` evaluates the candidate in seeded random-order batches and
stops a task × language as soon as an anytime-valid test settles the fixed gate's question
(``harness/gate/fixed.py``) about Δ = E[d], d_i = candidate_i − baseline_i: pass (Δ > −margin) or
regression (Δ < −margin). Everything runs on x_i = (d_i − lo) / (hi − lo) ∈ [0, 1]
(accuracy differences: bounds [−1, 1]; chrF++ sentence differences: [−100, 100]; win
outcomes: [0, 1] with ``reference=0.5``, "no change" being a win rate of 1/2);
m = (reference − margin − lo) / (hi − lo) is the threshold on that scale. Both pieces
below are from Waudby-Smith & Ramdas, "Estimating means of bounded random variables by
betting" (JRSS-B 2023), with the prior-smoothed running estimates
μ̂_t = (1/2 + Σ_{i≤t} x_i) / (t + 1) and σ̂²_t = (1/4 + Σ_{i≤t} (x_i − μ̂_i)²) / (t + 1).

The decision: testing by betting (Sec. 4 of the paper; the nonparametric analogue of an
SPRT). Two capital processes bet on the next x with predictable aGRAPA bets (a Kelly bet
from the running estimates), capped at c = ``truncation`` so no bet risks all the capital:

    pass:       K⁺_t = Π (1 + λ⁺_i (x_i − m)),  λ⁺_i = clip(g / (σ̂² + g²), 0, c/m)
    regression: K⁻_t = Π (1 − λ⁻_i (x_i − m)),  λ⁻_i = clip(−g / (σ̂² + g²), 0, c/(1−m))

with g = μ̂_{i−1} − m and σ̂² = σ̂²_{i−1}. If Δ ≤ −margin, K⁺ is a nonnegative
supermartingale starting at 1, so by Ville's inequality P(∃t: K⁺_t ≥ 1/α) ≤ α: declaring
pass when K⁺ reaches 1/α is wrong with probability ≤ α whatever the stopping rule; likewise
regression when K⁻ reaches 1/α, if Δ ≥ −margin. ``alpha`` is thus the rate of *each* wrong
decision, as the fixed gate's one-sided test at α (only one of the two can be wrong for a
given Δ, both only at Δ = −margin exactly; the pair is a two-sided test at 2α). A test at
the single point −margin is what the gate needs, and it spends far fewer examples than
waiting for a whole confidence sequence to clear the margin (``bench/bench_gate.py``).

The interval reported: the predictable plug-in empirical-Bernstein (PrPl-EB) confidence
sequence (Theorem 2 of the paper), one-sided bounds at α each, as running intersections:

    λ_t = min(sqrt(2 log(1/α) / (σ̂²_{t−1} t log(1 + t))), c),   v_t = 4 (x_t − μ̂_{t−1})²,
    ψ_E(λ) = (−log(1 − λ) − λ) / 4,
    L_t, U_t = Σ λ_i x_i / Σ λ_i ∓ (log(1/α) + Σ v_i ψ_E(λ_i)) / Σ λ_i.

It is closed-form and valid at all times, but wider than the betting test at −margin, so a
stream may pass while L_t is still below −margin; the verdict is the test's, the interval
is for display. Bets only use x_1 … x_{t−1}: a batch is processed example by example in its
random order, and the evidence may be read at any time; here at batch ends, with the running
maximum of the capital inside the batch.

Estimand and sampling. Examples arrive in a seeded random order (:func:`batch_order`), so for
a suite drawn i.i.d. from a population of examples the stream is i.i.d. and the test is about
the same population mean Δ that the fixed gate tests. With ``population=N`` both pieces are
instead about the *suite's own* mean (the number a full run would report), sampled without
replacement (Waudby-Smith & Ramdas, "Confidence sequences for sampling without replacement",
NeurIPS 2020): under the null, E[x_t | past] is the mean of the N − t + 1 unseen values,
m_t = (N m − S_{t−1}) / (N − t + 1), which replaces m in the bets; the CS replaces x_i by
x_i + S_{i−1}/(N−i+1) and λ_i by λ_i (1 + (i−1)/(N−i+1)); and both are combined with the
bounds that hold surely because the unseen values lie in [lo, hi], so at t = N the interval
is the suite mean. That is a different question (does the full-suite score drop by more than
the margin?): at Δ = −margin the suite mean exceeds −margin half the time, so the WoR gate
passes far more often than α against the population effect. Keep the default
(``population=None``) to mirror the fixed gate.

Several tasks × languages: :func:`bonferroni` gives each stream α/k, so the probability of any
wrong decision in the suite is ≤ α (the fixed gate's Benjamini–Hochberg controls the weaker
false-discovery rate; e-BH on these capital processes would be the anytime analogue).
A stream that runs out of examples unsettled ends ``inconclusive`` with ``exhausted=True``;
the caller may then apply the fixed gate to its full data, which by a union bound can add up
to the fixed gate's α to the error rate (``bench/bench_gate.py`` measures it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

Step = Literal["pass", "regression", "continue"]
Verdict = Literal["pass", "regression", "inconclusive"]
_TIE = 1e-9
"""A sure WoR bound equal to the threshold up to rounding decides nothing (at t = N it is
the suite mean, which can equal −margin exactly)."""
_STEPS: tuple[Step, Step, Step] = ("continue", "pass", "regression")


@dataclass(frozen=True)
class _Sums:
    """Running sums on the [0, 1] scale."""

    s: float = 0.0
    """Σ x_i."""
    q: float = 0.0
    """Σ (x_i − μ̂_i)², for σ̂²."""
    a: float = 0.0
    """CS numerator Σ λ_i (x_i + Z_i)."""
    b: float = 0.0
    """CS denominator Σ λ_i (1 + W_i)."""
    p: float = 0.0
    """CS penalty Σ v_i ψ_E(λ_i)."""
    log_pass: float = 0.0
    """log K⁺ (evidence for pass)."""
    log_regression: float = 0.0
    """log K⁻ (evidence for regression)."""


@dataclass(frozen=True)
class SequentialState:
    """Where one stream stands: the decision, its evidence and the current CS for Δ."""

    decision: Step
    """Final once it is ``pass`` or ``regression``."""
    lower: float
    """CS lower bound for Δ (one-sided at alpha), in the units of the differences."""
    upper: float
    """CS upper bound for Δ (one-sided at alpha)."""
    n: int
    """Differences seen so far."""
    mean: float | None
    """Plain mean of the differences seen (None before any)."""
    e_pass: float
    """Capital K⁺_t of the pass bet (an e-value; pass at ≥ 1/alpha)."""
    e_regression: float
    """Capital K⁻_t of the regression bet."""
    population: int | None
    sums: _Sums = field(repr=False)
    """Running sums the next update continues from."""
    xbounds: tuple[float, float] = field(repr=False)
    """The running-intersection CS on the [0, 1] scale."""


@dataclass(frozen=True)
class SequentialTest:
    """Policy of one stream: H0 Δ ≤ −margin vs H1 Δ > −margin, anytime-valid (with
    ``reference`` r ≠ 0: H0 Δ ≤ r − margin)."""

    margin: float
    """Non-inferiority margin in the units of the differences (≥ 0)."""
    alpha: float = 0.05
    """Rate of each wrong decision (wrong pass, wrong regression); in (0, 0.5)."""
    bounds: tuple[float, float] = (-1.0, 1.0)
    """Range (lo, hi) every difference lies in; values outside raise ValueError."""
    population: int | None = None
    """Suite size N to test the suite's own mean (without replacement); None = population mean."""
    reference: float = 0.0
    """The value of Δ meaning "no change": 0 for differences, 1/2 for win outcomes in [0, 1];
    pass means Δ > reference − margin."""
    truncation: float = 0.5
    """Cap c on the bets (λ ≤ c/m for the tests, λ ≤ c for the CS; the paper uses 1/2 or 3/4)."""

    def __post_init__(self) -> None:
        lo, hi = self.bounds
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"bounds must be finite with lo < hi, got {self.bounds!r}")
        if not (0.0 < self.alpha < 0.5):
            raise ValueError(f"alpha must be in (0, 0.5), got {self.alpha!r}")
        if not (math.isfinite(self.margin) and self.margin >= 0.0):
            raise ValueError(f"margin must be a finite number >= 0, got {self.margin!r}")
        if not (lo < self.reference - self.margin < hi and self.reference <= hi):
            raise ValueError(f"reference - margin must lie strictly inside bounds {self.bounds}, got "
                             f"reference={self.reference!r}, margin={self.margin!r}")
        if self.population is not None and (isinstance(self.population, bool) or self.population < 1):
            raise ValueError(f"population must be a positive suite size or None, got {self.population!r}")
        if not (0.0 < self.truncation < 1.0):
            raise ValueError(f"truncation must be in (0, 1), got {self.truncation!r}")

    @property
    def threshold(self) -> float:
        """The capital at which a bet settles: 1/alpha."""
        return 1.0 / self.alpha

    def start(self) -> SequentialState:
        """The state before any example: the CS is the whole range, decision ``continue``."""
        lo, hi = self.bounds
        return SequentialState(decision="continue", lower=lo, upper=hi, n=0, mean=None, e_pass=1.0,
                               e_regression=1.0, population=self.population, sums=_Sums(),
                               xbounds=(0.0, 1.0))

    def update(self, state: SequentialState, batch: Sequence[float] | np.ndarray) -> SequentialState:
        """The state after ``batch`` (differences in their stream order); pure.

        A settled decision is kept (the evidence and the CS still move)."""
        d = _checked(batch, self.bounds)
        n_new = state.n + len(d)
        if self.population is not None and n_new > self.population:
            raise ValueError(f"{n_new} differences seen but population is {self.population}")
        if len(d) == 0:
            return state
        lo, hi = self.bounds
        path = _paths(self._scaled(d), state.n, state.sums, self._m, self.alpha, self.truncation,
                      self.population)
        sums = path.sums
        # Running intersection with every time inside the batch, then the sure WoR bounds.
        latest = (max(0.0, float(path.lower[-1])), min(1.0, float(path.upper[-1])))
        low, up = _intersect((state.xbounds[0], float(path.lower.max())),
                             (state.xbounds[1], float(path.upper.min())), latest)
        sure = _sure(sums.s, n_new, self.population)
        low, up = _intersect((low, sure[0]), (up, sure[1]), sure)
        decision = state.decision
        if decision == "continue":
            code = _step(np.array([sure[0]]), np.array([sure[1]]), np.array([path.log_pass.max()]),
                         np.array([path.log_regression.max()]), self._m, math.log(self.threshold))
            decision = _STEPS[int(code[0])]
        return SequentialState(
            decision=decision, lower=lo + (hi - lo) * low, upper=lo + (hi - lo) * up, n=n_new,
            mean=lo + (hi - lo) * sums.s / n_new, e_pass=math.exp(sums.log_pass),
            e_regression=math.exp(sums.log_regression), population=self.population, sums=sums,
            xbounds=(low, up))

    @property
    def _m(self) -> float:
        """reference − margin on the [0, 1] scale."""
        lo, hi = self.bounds
        return (self.reference - self.margin - lo) / (hi - lo)

    def _scaled(self, d: np.ndarray) -> np.ndarray:
        lo, hi = self.bounds
        return (d - lo) / (hi - lo)


@dataclass(frozen=True)
class TracePoint:
    """A stream after one batch."""

    n: int
    lower: float
    upper: float
    mean: float
    e_pass: float
    e_regression: float


@dataclass(frozen=True)
class SequentialRun:
    """Outcome of one stream: the verdict, examples used and the state after every batch."""

    verdict: Verdict
    n_used: int
    exhausted: bool
    """True when the stream ended unsettled (verdict ``inconclusive``): the caller may fall
    back to the fixed gate on the full data."""
    state: SequentialState
    trace: tuple[TracePoint, ...]


def batch_order(n: int, batch_size: int, seed: int) -> list[np.ndarray]:
    """Example indices 0 … n−1 in a seeded random order, cut into batches (the last may be short)."""
    if n < 0 or batch_size < 1:
        raise ValueError(f"need n >= 0 and batch_size >= 1, got n={n}, batch_size={batch_size}")
    order = np.random.default_rng(seed).permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def run_sequential(test: SequentialTest, batches: Iterable[Sequence[float] | np.ndarray]) -> SequentialRun:
    """Feed ``batches`` (already in random order) until the test settles or they run out."""
    state, trace = test.start(), []
    for batch in batches:
        state = test.update(state, batch)
        trace.append(TracePoint(state.n, state.lower, state.upper, float(state.mean or 0.0),
                                state.e_pass, state.e_regression))
        if state.decision != "continue":
            return SequentialRun(state.decision, state.n, False, state, tuple(trace))
    return SequentialRun("inconclusive", state.n, True, state, tuple(trace))


def run_shuffled(test: SequentialTest, differences: Sequence[float] | np.ndarray, batch_size: int,
                 seed: int) -> SequentialRun:
    """:func:`run_sequential` over a whole suite of differences in seeded random order."""
    d = np.asarray(differences, dtype=float)
    return run_sequential(test, (d[idx] for idx in batch_order(len(d), batch_size, seed)))


@dataclass(frozen=True)
class Settlement:
    """Where a stream known in advance settles (simulations): verdict and examples used."""

    verdict: Verdict
    n_used: int
    exhausted: bool


def settle(test: SequentialTest, differences: Sequence[float] | np.ndarray, batch_size: int) -> Settlement:
    """The verdict and n_used that :func:`run_sequential` reaches on ``differences`` (already
    in stream order) cut into batches of ``batch_size``, from one vectorised pass over the
    whole stream: for simulations, where all the data exist up front."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    d = _checked(differences, test.bounds)
    n = len(d)
    if test.population is not None and n > test.population:
        raise ValueError(f"{n} differences but population is {test.population}")
    if n == 0:
        return Settlement("inconclusive", 0, True)
    path = _paths(test._scaled(d), 0, _Sums(), test._m, test.alpha, test.truncation, test.population)
    starts = np.arange(0, n, batch_size)
    ends = np.minimum(starts + batch_size, n)
    cum_s = np.cumsum(test._scaled(d))[ends - 1]
    sure_lo, sure_hi = _sure(cum_s, ends, test.population)
    codes = _step(np.broadcast_to(sure_lo, ends.shape), np.broadcast_to(sure_hi, ends.shape),
                  np.maximum.reduceat(path.log_pass, starts), np.maximum.reduceat(path.log_regression, starts),
                  test._m, math.log(test.threshold))
    hit = np.flatnonzero(codes)
    if len(hit) == 0:
        return Settlement("inconclusive", n, True)
    first = int(hit[0])
    return Settlement(_STEPS[int(codes[first])], int(ends[first]), False)


def bonferroni(test: SequentialTest, keys: Sequence[str],
               populations: Mapping[str, int] | None = None) -> dict[str, SequentialTest]:
    """One test per stream (task × language) at alpha / k: any wrong decision has prob ≤ alpha.

    ``populations`` (key → suite size) switches those streams to the WoR test."""
    if not keys:
        raise ValueError("bonferroni needs at least one stream key")
    if len(set(keys)) != len(keys):
        raise ValueError(f"stream keys must be unique, got {list(keys)}")
    unknown = sorted(set(populations or {}) - set(keys))
    if unknown:
        raise ValueError(f"populations for unknown streams {unknown}; streams are {list(keys)}")
    alpha = test.alpha / len(keys)
    return {k: replace(test, alpha=alpha, population=(populations or {}).get(k, test.population))
            for k in keys}


@dataclass(frozen=True)
class SuiteRun:
    """Several streams settled together; the suite stops when every one has settled or run out."""

    runs: Mapping[str, Settlement]
    n_used: int
    n_total: int

    @property
    def fraction(self) -> float:
        """Share of the suite's examples evaluated."""
        return self.n_used / self.n_total if self.n_total else 0.0


def run_suite(tests: Mapping[str, SequentialTest], differences: Mapping[str, Sequence[float] | np.ndarray],
              batch_size: int, seed: int) -> SuiteRun:
    """Settle every stream of a suite known in advance (simulations; tests from
    :func:`bonferroni`). Each test is valid under any stopping rule, so a stream stops as soon
    as it settles whatever the others do; stream i of the sorted keys is shuffled with
    seed + 1_000_003·i."""
    if set(tests) != set(differences):
        raise ValueError(f"tests and differences need the same keys, got {sorted(tests)} and {sorted(differences)}")
    runs = {}
    for i, k in enumerate(sorted(tests)):
        d = np.asarray(differences[k], dtype=float)
        runs[k] = settle(tests[k], d[np.random.default_rng(seed + 1_000_003 * i).permutation(len(d))], batch_size)
    total = sum(len(differences[k]) for k in tests)
    return SuiteRun(runs=runs, n_used=sum(r.n_used for r in runs.values()), n_total=total)


def _checked(batch: Sequence[float] | np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    d = np.asarray(batch, dtype=float).reshape(-1)
    lo, hi = bounds
    bad = ~np.isfinite(d) | (d < lo) | (d > hi)
    if bad.any():
        raise ValueError(f"differences must lie in [{lo}, {hi}], got {float(d[bad][0])!r} "
                         f"({int(bad.sum())} of {len(d)} outside)")
    return d


@dataclass(frozen=True)
class _Path:
    """Per-time values over one stretch of the stream (all on the [0, 1] scale)."""

    sums: _Sums
    """The running sums at its end."""
    lower: np.ndarray
    """CS lower bound at each time (before any intersection)."""
    upper: np.ndarray
    log_pass: np.ndarray
    """log K⁺ at each time."""
    log_regression: np.ndarray


def _paths(x: np.ndarray, n: int, old: _Sums, m: float, alpha: float, c: float,
           population: int | None) -> _Path:
    """The CS and both capitals at times n+1 … n+len(x), continuing from ``old``."""
    t = np.arange(n + 1, n + len(x) + 1, dtype=float)
    s = old.s + np.cumsum(x)
    s_prev = s - x
    mu = (0.5 + s) / (t + 1)
    mu_prev = (0.5 + s_prev) / t
    r2 = (x - mu) ** 2
    q = old.q + np.cumsum(r2)
    var_prev = (0.25 + q - r2) / t
    if population is None:
        z, w, m_t = 0.0, 0.0, m
    else:
        # Without replacement, E[x_t | past] is the mean of the N − t + 1 values not yet seen.
        left = population - t + 1
        z, w, m_t = s_prev / left, (t - 1) / left, (population * m - s_prev) / left
    # The CS (PrPl-EB); v_t ψ_E(λ_t) = 4 (x − μ̂)² (−log(1 − λ) − λ) / 4.
    log_a = math.log(1 / alpha)
    lam = np.minimum(np.sqrt(2 * log_a / (var_prev * t * np.log1p(t))), c)
    a = old.a + np.cumsum(lam * (x + z))
    b = old.b + np.cumsum(lam * (1 + w))
    p = old.p + np.cumsum((x - mu_prev) ** 2 * (-np.log1p(-lam) - lam))
    half = (log_a + p) / b
    # The two bets (aGRAPA). Where the WoR m_t leaves (0, 1) the verdict is already sure and
    # the sure bounds give it, so nothing is bet there.
    if population is None:
        inside, safe_m = True, m
    else:
        inside = (m_t > 0) & (m_t < 1)
        safe_m = np.where(inside, m_t, 0.5)
    g = mu_prev - safe_m
    kelly = g / (var_prev + g * g)
    lam_pass = np.where(inside, np.clip(kelly, 0, c / safe_m), 0.0)
    lam_regr = np.where(inside, np.clip(-kelly, 0, c / (1 - safe_m)), 0.0)
    k_pass = old.log_pass + np.cumsum(np.log1p(lam_pass * (x - safe_m)))
    k_regr = old.log_regression + np.cumsum(np.log1p(-lam_regr * (x - safe_m)))
    sums = _Sums(s=float(s[-1]), q=float(q[-1]), a=float(a[-1]), b=float(b[-1]), p=float(p[-1]),
                 log_pass=float(k_pass[-1]), log_regression=float(k_regr[-1]))
    return _Path(sums=sums, lower=a / b - half, upper=a / b + half, log_pass=k_pass, log_regression=k_regr)


def _sure(s, n, population: int | None):
    """Bounds on the suite mean (on [0, 1]) that hold surely after n values summing to s:
    the unseen N − n values lie in [0, 1]. Without a population, the trivial (0, 1)."""
    if population is None:
        return 0.0, 1.0
    return s / population, (s + population - n) / population


def _step(sure_lo: np.ndarray, sure_hi: np.ndarray, max_pass: np.ndarray, max_regr: np.ndarray,
          m: float, log_threshold: float) -> np.ndarray:
    """Decision code per batch (0 continue, 1 pass, 2 regression): sure bounds first, then
    the bets' capital; pass before regression (both at once needs a miscoverage event)."""
    return np.where(sure_lo > m + _TIE, 1, np.where(sure_hi < m - _TIE, 2, np.where(
        max_pass >= log_threshold, 1, np.where(max_regr >= log_threshold, 2, 0))))


def _intersect(lowers: Sequence[float], uppers: Sequence[float],
               fallback: tuple[float, float]) -> tuple[float, float]:
    """Intersection of intervals; if empty (only on a miscoverage event, prob ≤ 2α),
    ``fallback``: the latest CS, or the sure WoR bounds, which always hold."""
    low, up = max(lowers), min(uppers)
    return fallback if low > up else (low, up)
