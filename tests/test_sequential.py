"""Sequential gate statistics: coverage of the confidence sequence, error rates of the bets,
hand-computed streams, the without-replacement version, and input validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from glotbench.harness.gate.anytime import (
    SequentialTest,
    batch_order,
    bonferroni,
    run_sequential,
    run_shuffled,
    run_suite,
    settle,
)


def _pairs(rng: np.random.Generator, n: int, delta: float, discordant: float = 0.1) -> np.ndarray:
    """Accuracy-like paired differences in {−1, 0, 1} with mean ``delta``."""
    win, loss = (discordant + delta) / 2, (discordant - delta) / 2
    return rng.choice([-1.0, 0.0, 1.0], p=[loss, 1 - win - loss, win], size=n)


def _batches(d: np.ndarray, size: int):
    return (d[i:i + size] for i in range(0, len(d), size))


def test_confidence_sequence_covers_the_mean_at_all_times():
    test = SequentialTest(margin=0.05, alpha=0.05)
    rng = np.random.default_rng(0)
    missed = 0
    for delta in (0.0, -0.06):
        for _ in range(100):
            state = test.start()
            covered = True
            for batch in _batches(_pairs(rng, 500, delta, discordant=0.2), 50):
                state = test.update(state, batch)
                covered &= state.lower <= delta <= state.upper
            missed += not covered
    # One-sided bounds at alpha each: a two-sided CS at 2·alpha, simultaneously over time.
    assert missed / 200 <= 2 * 0.05


def test_confidence_sequence_shrinks_like_one_over_root_n():
    test = SequentialTest(margin=0.05)
    d = _pairs(np.random.default_rng(1), 6400, 0.0, discordant=0.3)
    state, width = test.start(), {}
    for i, batch in enumerate(_batches(d, 400), 1):
        state = test.update(state, batch)
        width[400 * i] = state.upper - state.lower
    # 4× the data: half the width, up to the CS's slowly growing sqrt(log t) factor.
    for small, big in ((400, 1600), (1600, 6400)):
        assert 1.5 < width[small] / width[big] < 2.2, width


def test_identical_runs_pass_as_soon_as_the_bet_reaches_one_over_alpha():
    # All differences 0: x = 1/2 = μ̂ throughout, σ̂²_{t−1} = (1/4)/t, m = 0.475, so the
    # pass bet is λ_t = min(g / (σ̂² + g²), c/m) with g = 0.025 and wins log(1 + λ_t g) per step.
    margin, alpha, c, g, m = 0.05, 0.05, 0.5, 0.025, 0.475
    log_k, first = 0.0, None
    for t in range(1, 1000):
        log_k += math.log1p(min(g / (0.25 / t + g * g), c / m) * g)
        if first is None and log_k >= math.log(1 / alpha):
            first = t
        if t == 150:
            log_k_150 = log_k
    assert first == 121
    run = run_sequential(SequentialTest(margin=margin, alpha=alpha), _batches(np.zeros(1000), 50))
    assert (run.verdict, run.n_used, run.exhausted) == ("pass", 150, False)
    assert run.state.e_pass == pytest.approx(math.exp(log_k_150), rel=1e-9)
    assert run.state.e_regression == 1.0
    # The CS on the same stream: λ = c throughout and no variance penalty, so the bounds are
    # ∓ (hi − lo) log(1/alpha) / (c t).
    assert run.state.lower == pytest.approx(-2 * math.log(20) / (0.5 * 150), rel=1e-9)
    assert run.state.upper == pytest.approx(2 * math.log(20) / (0.5 * 150), rel=1e-9)
    assert [p.n for p in run.trace] == [50, 100, 150]


def test_large_regression_settles_early():
    d = _pairs(np.random.default_rng(2), 2000, -0.3, discordant=0.3)
    run = run_shuffled(SequentialTest(margin=0.05), d, batch_size=50, seed=0)
    assert run.verdict == "regression"
    assert run.n_used <= 200
    assert run.state.upper < 0


def test_clear_improvement_passes_and_stops_early():
    d = _pairs(np.random.default_rng(3), 2000, 0.03, discordant=0.08)
    run = run_shuffled(SequentialTest(margin=0.05), d, batch_size=50, seed=0)
    assert run.verdict == "pass"
    assert run.n_used <= 400


def test_boundary_effect_is_rarely_passed_or_called_a_regression():
    rng = np.random.default_rng(4)
    test = SequentialTest(margin=0.05, alpha=0.05)
    verdicts = [settle(test, _pairs(rng, 1000, -0.05, discordant=0.15), 50).verdict for _ in range(300)]
    # Each wrong decision at most alpha (loose: 300 streams).
    assert verdicts.count("pass") / 300 <= 0.05 + 0.03
    assert verdicts.count("regression") / 300 <= 0.05 + 0.03


def test_settle_matches_batch_by_batch_runs():
    rng = np.random.default_rng(5)
    for i in range(60):
        n = int(rng.integers(20, 600))
        d = _pairs(rng, n, float(rng.choice([0.0, -0.05, -0.12, 0.03])), discordant=0.15)
        test = SequentialTest(margin=0.05, alpha=(0.05, 0.01)[i % 2], population=n if i % 3 == 0 else None)
        size = int(rng.integers(1, 130))
        run = run_sequential(test, _batches(d, size))
        got = settle(test, d, size)
        assert (got.verdict, got.n_used, got.exhausted) == (run.verdict, run.n_used, run.exhausted)


def test_batching_does_not_change_the_state():
    d = _pairs(np.random.default_rng(6), 300, 0.0, discordant=0.2)
    test = SequentialTest(margin=0.05)
    one = test.update(test.start(), d)
    two = test.update(test.update(test.start(), d[:120]), d[120:])
    for a, b in ((one.lower, two.lower), (one.upper, two.upper), (one.e_pass, two.e_pass),
                 (one.e_regression, two.e_regression), (one.mean, two.mean)):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12)
    assert (one.n, one.decision) == (two.n, two.decision)


def test_update_is_pure_and_a_decision_is_final():
    test = SequentialTest(margin=0.05)
    start = test.start()
    state = test.update(start, np.zeros(200))
    assert (start.n, start.decision, state.n, state.decision) == (0, "continue", 200, "pass")
    later = test.update(state, -np.ones(100))
    assert later.decision == "pass"
    assert later.mean == pytest.approx(-1 / 3)


def test_without_replacement_is_the_suite_mean_at_n_equals_population():
    d = _pairs(np.random.default_rng(7), 300, -0.02, discordant=0.3)
    test = SequentialTest(margin=0.05, population=300)
    state = test.start()
    for batch in _batches(d, 50):
        state = test.update(state, batch)
    assert state.lower == pytest.approx(d.mean(), abs=1e-12)
    assert state.upper == pytest.approx(d.mean(), abs=1e-12)
    # Near the end of the suite the WoR interval is far narrower than the with-replacement one.
    wr, wor = SequentialTest(margin=0.05), SequentialTest(margin=0.05, population=300)
    s_wr, s_wor = wr.update(wr.start(), d[:270]), wor.update(wor.start(), d[:270])
    assert s_wor.upper - s_wor.lower < 0.5 * (s_wr.upper - s_wr.lower)
    assert s_wor.lower <= d.mean() <= s_wor.upper


def test_without_replacement_suite_mean_exactly_at_the_margin_decides_nothing():
    d = np.array([-1.0] * 5 + [0.0] * 95)  # suite mean −0.05 = −margin exactly
    run = run_shuffled(SequentialTest(margin=0.05, population=100), d, batch_size=10, seed=0)
    assert run.verdict == "inconclusive" and run.exhausted and run.n_used == 100


def test_win_outcomes_with_reference_one_half():
    rng = np.random.default_rng(8)
    wins = rng.choice([0.0, 0.5, 1.0], p=[0.25, 0.1, 0.65], size=1000)  # win rate 0.7
    run = run_shuffled(SequentialTest(margin=0.05, bounds=(0.0, 1.0), reference=0.5), wins, 50, seed=0)
    assert run.verdict == "pass"
    assert run.n_used < 500


def test_batch_order_is_a_seeded_permutation():
    batches = batch_order(103, 25, seed=3)
    assert [len(b) for b in batches] == [25, 25, 25, 25, 3]
    assert sorted(np.concatenate(batches).tolist()) == list(range(103))
    assert all((a == b).all() for a, b in zip(batches, batch_order(103, 25, seed=3)))
    assert not (np.concatenate(batches) == np.concatenate(batch_order(103, 25, seed=4))).all()
    assert batch_order(0, 5, seed=0) == []


def test_bonferroni_and_suite():
    rng = np.random.default_rng(9)
    keys = ["xnli/de", "xnli/sw", "mgsm/bn", "mgsm/ja"]
    tests = bonferroni(SequentialTest(margin=0.05, alpha=0.05), keys, populations={"mgsm/ja": 1500})
    assert {t.alpha for t in tests.values()} == {0.0125}
    assert tests["mgsm/ja"].population == 1500 and tests["xnli/de"].population is None
    diffs = {k: _pairs(rng, 1500, 0.03, discordant=0.08) for k in keys}
    diffs["mgsm/bn"] = _pairs(rng, 1500, -0.2, discordant=0.25)
    suite = run_suite(tests, diffs, batch_size=50, seed=0)
    assert {k: r.verdict for k, r in suite.runs.items()} == {
        "xnli/de": "pass", "xnli/sw": "pass", "mgsm/bn": "regression", "mgsm/ja": "pass"}
    assert suite.n_total == 6000
    assert suite.n_used == sum(r.n_used for r in suite.runs.values())
    assert suite.fraction < 0.5
    again = run_suite(tests, diffs, batch_size=50, seed=0)
    assert again == suite


@pytest.mark.parametrize("kwargs, message", [
    (dict(margin=-0.01), "margin"),
    (dict(margin=math.nan), "margin"),
    (dict(margin=0.05, alpha=0.0), "alpha"),
    (dict(margin=0.05, alpha=0.5), "alpha"),
    (dict(margin=0.05, bounds=(1.0, -1.0)), "bounds"),
    (dict(margin=0.05, bounds=(0.0, 1.0)), "reference - margin"),
    (dict(margin=1.0), "reference - margin"),
    (dict(margin=0.05, population=0), "population"),
    (dict(margin=0.05, truncation=1.0), "truncation"),
])
def test_invalid_policy_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SequentialTest(**kwargs)


def test_invalid_data_is_rejected():
    test = SequentialTest(margin=0.05)
    with pytest.raises(ValueError, match=r"\[-1.0, 1.0\], got 2.0"):
        test.update(test.start(), [0.0, 2.0])
    with pytest.raises(ValueError, match="must lie in"):
        test.update(test.start(), [math.nan])
    with pytest.raises(ValueError, match="must lie in"):
        settle(SequentialTest(margin=1.0, bounds=(-100.0, 100.0)), [150.0], 10)
    wor = SequentialTest(margin=0.05, population=3)
    with pytest.raises(ValueError, match="population is 3"):
        wor.update(wor.start(), [0.0] * 4)
    with pytest.raises(ValueError, match="batch_size"):
        batch_order(10, 0, seed=0)
    with pytest.raises(ValueError, match="unique"):
        bonferroni(test, ["a", "a"])
    with pytest.raises(ValueError, match="unknown streams"):
        bonferroni(test, ["a"], populations={"b": 10})
    with pytest.raises(ValueError, match="same keys"):
        run_suite({"a": test}, {"b": [0.0]}, batch_size=10, seed=0)
