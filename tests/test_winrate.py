"""Pairwise win-rates: hand-computed cases, prompt-clustered bootstrap, AlpacaEval 2.0's
published leaderboard reproduced from its real annotations, Bradley–Terry fits."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from glotbench.harness.judge.summary import format_summary
from glotbench.harness.judge.winrate import (
    BradleyTerryError,
    Judgment,
    Match,
    bradley_terry,
    elo_win_probability,
    per_language,
    preference_win_rates,
    summarize_pairwise,
)
from glotbench.harness.metrics.stats import averages

ALPACA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "alpaca_eval_2"
J = Judgment

# p1: A wins in both orders; p2: the orders disagree; p3: a tie and an invalid verdict;
# p4: judged in one order only.
SMALL = [J("p1", "en", "ab", "a"), J("p1", "en", "ba", "a"), J("p2", "en", "ab", "a"),
         J("p2", "en", "ba", "b"), J("p3", "en", "ab", "tie"), J("p3", "en", "ba", "invalid"),
         J("p4", "en", "ab", "b")]


def _mixed(n_prompts: int, lang: str = "en", seed: int = 0) -> list[Judgment]:
    rng = random.Random(seed)
    return [J(f"q{i}", lang, order, rng.choice(["a", "a", "b", "tie", "invalid"]))
            for i in range(n_prompts) for order in ("ab", "ba")]


def _plain(value) -> bool:
    """True when ``value`` is built of plain JSON types only (no numpy scalars)."""
    if isinstance(value, dict):
        return all(type(k) is str and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or type(value) in (int, float, str, bool)


def test_counts_rates_and_position_bias_by_hand():
    s = summarize_pairwise(SMALL, seed=0)
    assert (s["n_prompts"], s["n_judgments"], s["n"]) == (4, 7, 6)
    assert (s["wins"], s["ties"], s["losses"], s["invalid"]) == (3, 1, 2, 1)
    assert s["invalid_rate"] == 1 / 7
    assert s["win_rate"] == 3 / 6  # the invalid verdict is counted, not in the denominator
    assert s["win_rate_ties_half"] == 3.5 / 6
    assert (s["tie_rate"], s["loss_rate"]) == (1 / 6, 2 / 6)
    # Pairs with both orders valid: p1 (a, a) agrees, p2 (a, b) flips.
    assert (s["n_paired_prompts"], s["order_flip_rate"]) == (2, 0.5)
    # Shown first and won: p1/ab, p2/ab, p2/ba; of six valid verdicts.
    assert s["first_position_win_rate"] == 3 / 6
    lo, hi = s["win_rate_ci95"]
    assert 0 <= lo <= s["win_rate"] <= hi <= 1 and s["win_rate_stderr"] > 0
    assert _plain(s) and json.loads(json.dumps(s)) == s


def test_position_bias_of_a_judge_that_always_picks_answer_a():
    js = [J(f"p{i}", "de", order, "a" if order == "ab" else "b")
          for i in range(5) for order in ("ab", "ba")]
    s = summarize_pairwise(js, seed=0)
    assert (s["order_flip_rate"], s["first_position_win_rate"], s["win_rate"]) == (1.0, 1.0, 0.5)
    consistent = summarize_pairwise([J(j.prompt_id, j.lang, j.order, "a") for j in js], seed=0)
    assert (consistent["order_flip_rate"], consistent["first_position_win_rate"]) == (0.0, 0.5)


def test_ties_count_half_and_all_invalid_leaves_rates_undefined():
    s = summarize_pairwise([J("p", "fr", "ab", "tie"), J("p", "fr", "ba", "tie")], seed=1)
    assert (s["win_rate"], s["win_rate_ties_half"], s["tie_rate"]) == (0.0, 0.5, 1.0)
    bad = summarize_pairwise([J("p", "fr", "ab", "invalid"), J("q", "fr", "ba", "invalid")], 1)
    assert (bad["invalid"], bad["n"], bad["n_judgments"], bad["invalid_rate"]) == (2, 0, 2, 1.0)
    assert bad["win_rate"] is bad["win_rate_ci95"] is bad["win_rate_stderr"] is None
    assert bad["order_flip_rate"] is bad["first_position_win_rate"] is None
    empty = summarize_pairwise([], seed=1)
    assert empty["n_prompts"] == empty["n_judgments"] == 0 and empty["invalid_rate"] is None


def test_bootstrap_is_seeded_and_ignores_input_order():
    js = _mixed(40)
    a, b = summarize_pairwise(js, seed=7), summarize_pairwise(js, seed=7)
    assert a == b
    other = summarize_pairwise(js, seed=8)
    assert other["win_rate_ci95"] != a["win_rate_ci95"]
    assert {k: v for k, v in other.items() if "ci95" not in k and "stderr" not in k and
            k != "seed"} == {k: v for k, v in a.items() if "ci95" not in k and
                             "stderr" not in k and k != "seed"}
    shuffled = js[:]
    random.Random(3).shuffle(shuffled)
    assert summarize_pairwise(shuffled, seed=7) == a


def test_both_orders_of_a_prompt_are_resampled_together():
    # Every prompt: model A wins in one order, model B in the other. Any resample of prompts
    # then holds as many wins as losses, so the CI of win_rate_ties_half is exactly [0.5, 0.5].
    js = [J(f"p{i}", "sw", order, out) for i in range(30)
          for order, out in (("ab", "a"), ("ba", "b"))] + [J("p30", "sw", "ab", "invalid")]
    s = summarize_pairwise(js, seed=0)
    assert s["win_rate_ties_half_ci95"] == [0.5, 0.5] and s["win_rate_ties_half_stderr"] == 0.0
    assert s["win_rate_ci95"] == [0.5, 0.5]
    # Resampling verdicts one by one (each its own cluster) would not keep them balanced.
    apart = summarize_pairwise([J(f"{j.prompt_id}/{j.order}", j.lang, j.order, j.outcome)
                                for j in js], seed=0)
    lo, hi = apart["win_rate_ties_half_ci95"]
    assert lo < 0.45 and hi > 0.55


def test_bad_records_raise():
    with pytest.raises(ValueError, match="order"):
        J("p", "en", "AB", "a")
    with pytest.raises(ValueError, match="outcome"):
        J("p", "en", "ab", "A")
    with pytest.raises(ValueError, match="two verdicts"):
        summarize_pairwise([J("p", "en", "ab", "a"), J("p", "en", "ab", "b")], seed=0)


def test_per_language_macro_pooled_and_micro_agree():
    js = _mixed(20, "en", 1) + _mixed(35, "ja", 2) + [J("z", "qu", "ab", "invalid")]
    out = per_language(js, seed=5)
    langs = out["languages"]
    assert sorted(langs) == ["en", "ja", "qu"] and langs["en"] == summarize_pairwise(
        [j for j in js if j.lang == "en"], seed=5)
    macro = out["macro"]
    assert macro["n_languages"] == 2 and macro["languages_excluded"] == ["qu"]
    for name in ("win_rate", "win_rate_ties_half"):
        assert macro[name] == pytest.approx((langs["en"][name] + langs["ja"][name]) / 2)
        lo, hi = macro[f"{name}_ci95"]
        assert lo < macro[name] < hi and macro[f"{name}_stderr"] > 0
    pooled = out["pooled"]
    for key in ("wins", "ties", "losses", "invalid", "n_prompts", "n_judgments"):
        assert pooled[key] == sum(v[key] for v in langs.values())
    # The size-weighted (micro) average of the per-language rates is the pooled rate.
    assert averages(langs, "win_rate")["micro"] == pytest.approx(pooled["win_rate"])
    assert per_language(js, seed=5) == out and _plain(out)


def test_preference_win_rates_by_hand():
    s = preference_win_rates([1.0, 2.0, 1.5, 1.75, 1.5000001, 1.4999999, None, math.nan])
    q = np.array([0, 1, 0.5, 0.75, 0.5000001, 0.4999999])
    assert s["win_rate"] == pytest.approx(100 * q.mean(), abs=1e-12)
    assert s["standard_error"] == pytest.approx(100 * q.std(ddof=1) / math.sqrt(6), abs=1e-12)
    # Only an exact 1.5 is a draw; NaN/None leave n_total.
    assert (s["n_wins"], s["n_wins_base"], s["n_draws"], s["n_total"], s["n_missing"]) == (
        3, 2, 1, 6, 2)
    assert s["discrete_win_rate"] == 100 * 3.5 / 6
    legacy = preference_win_rates([0, 2])  # 0 is AlpacaEval's old code for a draw
    assert (legacy["n_draws"], legacy["win_rate"]) == (1, 75.0)
    assert preference_win_rates([2.0])["standard_error"] is None
    assert preference_win_rates([None])["win_rate"] is None
    with pytest.raises(ValueError, match=r"\[1, 2\]"):
        preference_win_rates([1.0, 2.5])


def _alpaca_models() -> list[str]:
    if not (ALPACA / "leaderboard.csv").is_file():
        return []
    with open(ALPACA / "leaderboard.csv", newline="") as f:
        names = [row[""] for row in csv.DictReader(f)]
    return [n for n in names if (ALPACA / "annotations" / f"{n}.json").is_file()]


ALPACA_MODELS = _alpaca_models()
NO_DATA = pytest.param(None, marks=pytest.mark.skip(
    reason=f"AlpacaEval 2.0 data not found at {ALPACA} (see shared/data/README.md)"))


@pytest.mark.parametrize("model", ALPACA_MODELS or [NO_DATA])
def test_alpaca_eval_leaderboard_is_reproduced(model):
    with open(ALPACA / "leaderboard.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r[""] == model)
    annotations = json.loads((ALPACA / "annotations" / f"{model}.json").read_text())
    got = preference_win_rates([a["preference"] for a in annotations])
    # The CSV holds full-precision floats; what differs is summation order (~1e-15).
    for key in ("win_rate", "discrete_win_rate", "standard_error"):
        assert got[key] == pytest.approx(float(row[key]), abs=1e-9), key
    for key in ("n_wins", "n_wins_base", "n_draws", "n_total"):
        assert got[key] == int(row[key]), key


def test_every_alpaca_annotation_file_is_on_the_leaderboard():
    if not ALPACA.is_dir():
        pytest.skip(f"AlpacaEval 2.0 data not found at {ALPACA}")
    files = sorted(p.stem for p in (ALPACA / "annotations").glob("*.json"))
    assert files and sorted(ALPACA_MODELS) == files


def test_bradley_terry_two_models_is_the_log_odds():
    matches = [("x", "y", "i")] * 6 + [("x", "y", "j")] * 2 + [("y", "x", "tie")] * 2
    bt = bradley_terry(matches, seed=0, resamples=50)
    # Ties are half a win each: 7 against 3.
    diff = 400 * math.log10(7 / 3)
    assert bt["scores"]["x"] == pytest.approx(diff / 2) and bt["scores"]["y"] == pytest.approx(
        -diff / 2)
    anchored = bradley_terry(matches, seed=0, resamples=50, anchor="y")
    assert anchored["scores"] == {"x": pytest.approx(diff), "y": 0.0}
    assert anchored["ci95"]["y"] == [0.0, 0.0]
    assert elo_win_probability(diff, 0) == pytest.approx(0.7)
    assert bradley_terry([Match(*m) for m in matches], seed=0, resamples=50) == bt
    assert _plain(bt)


def test_bradley_terry_recovers_three_generating_strengths():
    true = {"x": 0.0, "y": 120.0, "z": -200.0}
    rng = np.random.default_rng(1)
    matches = [(a, b, "i" if rng.random() < elo_win_probability(true[a], true[b]) else "j")
               for a, b in (("x", "y"), ("x", "z"), ("y", "z")) for _ in range(3000)]
    bt = bradley_terry(matches, seed=0, resamples=30, anchor="x")
    for m, s in true.items():
        assert bt["scores"][m] == pytest.approx(s, abs=20)
        assert bt["ci95"][m][0] - 1e-9 <= bt["scores"][m] <= bt["ci95"][m][1] + 1e-9
    assert 0 < bt["stderr"]["y"] < 15 and bt["resamples_skipped"] == 0
    # Maximum likelihood: each model's expected wins equal its observed wins.
    for m in true:
        won = sum((a == m and o == "i") or (b == m and o == "j") for a, b, o in matches)
        expected = sum(elo_win_probability(bt["scores"][m], bt["scores"][b if a == m else a])
                       for a, b, _ in matches if m in (a, b))
        assert expected == pytest.approx(won, rel=1e-6)


def test_bradley_terry_resamples_prompts_together():
    # Per prompt x beats y once and y beats x once: every prompt resample is balanced.
    matches = [("x", "y", out, f"p{i}") for i in range(20) for out in ("i", "j")]
    bt = bradley_terry(matches, seed=0, resamples=50)
    assert bt["scores"] == {"x": 0.0, "y": 0.0} and bt["n_clusters"] == 20
    assert bt["ci95"]["x"] == pytest.approx([0.0, 0.0], abs=1e-9)
    apart = bradley_terry([m[:3] for m in matches], seed=0, resamples=50)
    assert apart["n_clusters"] == 40 and apart["ci95"]["x"][1] > 10


def test_bradley_terry_ties_and_degenerate_data():
    ties = bradley_terry([("a", "b", "tie"), ("b", "c", "tie"), ("c", "a", "tie")], 0, 20)
    assert ties["scores"] == pytest.approx({"a": 0, "b": 0, "c": 0}, abs=1e-9)
    with pytest.raises(BradleyTerryError, match="never won or tied"):
        bradley_terry([("a", "b", "i"), ("a", "b", "i")], seed=0)
    with pytest.raises(BradleyTerryError, match="no valid judgment"):
        bradley_terry([], seed=0)
    with pytest.raises(ValueError, match="anchor"):
        bradley_terry([("a", "b", "i"), ("a", "b", "j")], seed=0, anchor="c")
    with pytest.raises(ValueError, match="two different models"):
        Match("a", "a", "i")
    with pytest.raises(ValueError, match="outcome"):
        Match("a", "b", "x")


def test_the_judge_summary_shows_a_failed_bradley_terry_fit_and_unranked_models():
    out = {"results": {}, "counts": {"judgments": 0},
           "usage": {"retries": {}, "cost_usd": None, "requests_sent": 0, "from_cache": 0,
                     "prompt_tokens": 0, "completion_tokens": 0},
           "bradley_terry": {
               "dolly": {"error": "no Bradley–Terry maximum: some set of models never won or tied"},
               "m_arenahard": {"models": ["a", "b"], "anchor": "a", "scores": {"a": 0.0, "b": -35.2},
                               "ci95": {"a": [0.0, 0.0], "b": [-60.0, -10.0]},
                               "not_ranked": {"c": "no valid judgment"}}}}
    lines = format_summary(out).splitlines()
    assert "Bradley–Terry (dolly): no strengths — no Bradley–Terry maximum: some set of models never won or tied" in lines
    assert "Bradley–Terry (m_arenahard, Elo scale, a = 0): a +0 [+0–+0], b -35 [-60–-10]" in lines
    assert "  c: not ranked — no valid judgment" in lines
