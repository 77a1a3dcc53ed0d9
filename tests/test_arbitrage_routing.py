"""Routing policies, preference pairs, routing.json statistics, the routing figure and the
learned router (fit on synthetic scores with a language- and prompt-dependent signal)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.records import ChatMessage
from glotbench.training.arbitrage.figure import routing_figure, write_routing_figure
from glotbench.training.arbitrage.router import Router, evaluate_router, fit_router
from glotbench.training.arbitrage.routing import (
    check_fixed,
    choose,
    preference_pairs,
    routing_stats,
)
from glotbench.training.core.records import Candidate, Prompt


def C(pid, teacher, score, sample=0, lang="en", text=None) -> Candidate:
    return Candidate(pid, lang, teacher, sample, text or f"{teacher}-{sample} on {pid}", "stop", score)


def P(pid, lang="en", text="Tell me about rivers.") -> Prompt:
    return Prompt(pid, lang, (ChatMessage("user", text),))


MIXED = [C("p1", "a", 0.2), C("p1", "b", 0.9), C("p1", "b", 0.5, sample=1),          # b wins
         C("p2", "a", 0.7), C("p2", "b", 0.7),                                         # tie → a (listed first)
         C("p3", "a", None), C("p3", "b", -1.0),                                       # None never chosen
         C("p4", "a", None, lang="de"), C("p4", "b", None, lang="de"),                 # all unscored
         C("p5", "b", 3.0, lang="de")]                                                 # single candidate


def test_reward_policy_is_the_exact_argmax_and_never_chooses_none():
    chosen = choose(MIXED, "reward")
    assert {p: (c.teacher, c.sample) for p, c in chosen.items()} == {
        "p1": ("b", 0), "p2": ("a", 0), "p3": ("b", 0), "p5": ("b", 0)}
    assert "p4" not in chosen
    rng = np.random.default_rng(0)
    many = [C(f"q{i}", t, float(rng.normal()), sample=s) for i in range(50) for t in "xyz" for s in range(2)]
    for pid, c in choose(many, "reward").items():
        assert c.score == max(x.score for x in many if x.prompt_id == pid)


def test_fixed_policy_takes_the_language_teacher_and_its_best_sample():
    chosen = choose(MIXED, "fixed", {"en": "a", "de": "b"})
    assert chosen["p1"].teacher == "a" and chosen["p3"].teacher == "a"  # p3: a is unscored, still a's sample
    assert chosen["p4"].teacher == "b" and chosen["p5"].teacher == "b"
    assert choose(MIXED, "fixed", {"en": "b", "de": "b"})["p1"].sample == 0  # best of b's two samples
    with pytest.raises(GlotbenchError, match="no teacher for language\\(s\\) de .*routing.fixed.de"):
        choose(MIXED, "fixed", {"en": "a"})
    with pytest.raises(GlotbenchError, match="language\\(s\\) fr"):
        check_fixed({"en": "a"}, ["en", "fr"])


def test_learned_policy_uses_the_router_picks():
    chosen = choose(MIXED, "learned", picks={"p1": "a", "p2": "b"})
    assert (chosen["p1"].teacher, chosen["p2"].teacher) == ("a", "b")
    assert set(chosen) == {"p1", "p2"}


def test_preference_pairs_skip_and_count_ties_singles_and_unscored():
    pairs, counts = preference_pairs(MIXED)
    assert counts == {"prompts": 5, "pairs": 1, "single_candidate": 1, "too_few_scored": 2, "tie": 1}
    assert counts["pairs"] + counts["single_candidate"] + counts["too_few_scored"] + counts["tie"] == counts["prompts"]
    p1 = next(p for p in pairs if p["prompt_id"] == "p1")
    assert (p1["chosen_teacher"], p1["chosen_score"], p1["rejected_teacher"], p1["rejected_score"]) == ("b", 0.9, "a", 0.2)
    assert [p["prompt_id"] for p in pairs] == ["p1"]


def test_routing_stats_add_up():
    chosen = choose(MIXED, "reward")
    stats = routing_stats(MIXED, chosen, seed=1)
    assert json.loads(json.dumps(stats)) == stats
    for block in stats["languages"].values():
        assert sum(t["wins"] for t in block["teachers"].values()) == block["routed"]
        assert block["routed"] + block["unrouted"] == block["prompts"]
    en = stats["languages"]["en"]["teachers"]
    assert (en["a"]["wins"], en["b"]["wins"]) == (1, 2)
    assert (en["a"]["candidates"], en["a"]["unscored"], en["b"]["candidates"]) == (3, 1, 4)
    assert en["b"]["score"]["value"] == pytest.approx((0.9 + 0.5 + 0.7 - 1.0) / 4)
    assert en["b"]["score"]["ci95"][0] <= en["b"]["score"]["value"] <= en["b"]["score"]["ci95"][1]
    assert stats["totals"] == {"prompts": 5, "routed": 4, "unrouted": 1, "candidates": 10, "scored": 7, "unscored": 3}
    assert sum(t["wins"] for t in stats["per_teacher"].values()) == 4
    assert routing_stats(MIXED, chosen, seed=1) == stats  # seeded


def test_routing_figure_is_written_and_deterministic(tmp_path):
    stats = routing_stats(MIXED, choose(MIXED, "reward"), seed=0)
    first = write_routing_figure(stats, tmp_path / "a" / "routing")
    second = write_routing_figure(stats, tmp_path / "b" / "routing")
    assert [p.name for p in first] == ["routing.png", "routing.svg"]
    assert all(p.stat().st_size > 1000 for p in first)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    assert first[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    single = routing_figure(stats, tmp_path / "c" / "routing.png")
    assert single.read_bytes() == first[0].read_bytes()
    with pytest.raises(ValueError, match="must end in .png or .svg"):
        routing_figure(stats, tmp_path / "routing.pdf")


# ------------------------------------------------------------------------------ learned router
TEACHERS = ("alpha", "beta", "gamma")


def synthetic(n: int, seed: int) -> tuple[dict[str, Prompt], list[Candidate]]:
    """alpha is best in English, beta in German; gamma is best on code prompts in any language."""
    rng = np.random.default_rng(seed)
    prompts, cands = {}, []
    for i in range(n):
        lang = ("en", "de")[i % 2]
        code = rng.random() < 0.3
        text = ("Fix this function:\n```python\ndef f(x): return x[0]\n```" if code else
                "Explain why the sky is blue?" if lang == "en" else "Warum ist der Himmel blau?")
        pid = f"{lang}-{i}"
        prompts[pid] = P(pid, lang, text + f" ({i})")
        difficulty = rng.normal(0, 2)
        for t in TEACHERS:
            mean = {"alpha": 1.0 if lang == "en" else 0.0, "beta": 1.0 if lang == "de" else 0.0,
                    "gamma": 0.2}[t] + (2.0 if code and t == "gamma" else 0.0)
            cands.append(C(pid, t, difficulty + mean + float(rng.normal(0, 0.3)), lang=lang))
    return prompts, cands


def test_learned_router_beats_random_and_the_prior_on_a_feature_signal():
    prompts, cands = synthetic(240, seed=0)
    held_p, held_c = synthetic(120, seed=1)
    router = fit_router(list(prompts.values()), cands, seed=0)  # a sequence, as the engine passes them
    assert router.ridge is not None  # cross-validation found the code signal worth the features
    report = evaluate_router(router, held_p, held_c, seed=0)
    assert report["prompts"] == 120 and report["skipped"] == 0
    assert report["vs_random"]["ci95"][0] > 0
    assert report["vs_prior"]["value"] > 0 and report["vs_best_single"]["ci95"][0] > 0
    assert report["oracle_gain_kept"]["router"]["value"] > 0.8 > report["oracle_gain_kept"]["prior"]["value"]
    assert report["compute"]["generations_saved"] == pytest.approx(2 / 3)
    # The prior alone picks the language's teacher.
    assert router.prior_pick(P("x", "de", "Hallo?")) == "beta" and router.prior_pick(P("y", "en", "Hi?")) == "alpha"
    again = Router.from_json(json.loads(json.dumps(router.to_json())))
    assert [again.pick(p) for p in held_p.values()] == [router.pick(p) for p in held_p.values()]


def test_learned_router_without_a_feature_signal_falls_back_to_the_prior():
    prompts, cands = synthetic(200, seed=2)
    flat = [C(c.prompt_id, c.teacher, (1.0 if (c.teacher == "alpha") == (c.language == "en") else 0.0)
              + 0.01 * (int(c.prompt_id.split("-")[1]) % 7), lang=c.language) for c in cands if c.teacher != "gamma"]
    router = fit_router(prompts, flat, seed=0)
    assert router.teachers == ("alpha", "beta")
    picks = {p.language: router.pick(p) for p in prompts.values()}
    assert picks == {"en": "alpha", "de": "beta"}


def test_evaluate_router_arithmetic_by_hand():
    # Two teachers, both pickable in en; a router that always picks b (prior b > a, no features).
    router = Router(teachers=("a", "b"), prior={"en": {"a": -0.5, "b": 0.5}}, pooled={"a": -0.5, "b": 0.5},
                    ridge=None, weights={}, mean=[], scale=[], buckets=8, seed=0, n_fit=2, cv={})
    prompts = {"p1": P("p1"), "p2": P("p2"), "p3": P("p3")}
    cands = [C("p1", "a", 1.0), C("p1", "a", 3.0, sample=1, text="xxxx"), C("p1", "b", 2.0),
             C("p2", "a", 1.0), C("p2", "b", 4.0),
             C("p3", "a", 5.0)]  # p3: b did not answer → skipped
    report = evaluate_router(router, prompts, cands, seed=0)
    assert (report["prompts"], report["skipped"]) == (2, 1)
    # per prompt values: p1 a=3 (best of 2 samples) b=2; p2 a=1 b=4.
    assert report["mean"]["router"]["value"] == pytest.approx((2 + 4) / 2)
    assert report["mean"]["oracle"]["value"] == pytest.approx((3 + 4) / 2)
    assert report["mean"]["random"]["value"] == pytest.approx((2.5 + 2.5) / 2)
    assert report["vs_oracle"]["value"] == pytest.approx(-0.5)
    assert report["reward_kept"] == pytest.approx(3 / 3.5)
    assert report["oracle_gain_kept"]["router"]["value"] == pytest.approx((3 - 2.5) / (3.5 - 2.5))
    assert report["agreement_with_oracle"] == 0.5
    c = report["compute"]
    # Full arbitrage: p1 3 generations, p2 2 → 5; router: b once per prompt → 2.
    assert (c["generations_all_teachers"], c["generations_router"]) == (5, 2)
    assert c["generations_saved"] == pytest.approx(1 - 2 / 5)
    chars = {x: len(x.completion) for x in cands if x.prompt_id != "p3"}
    used = sum(n for x, n in chars.items() if x.teacher == "b")
    assert c["completion_chars_saved"] == pytest.approx(1 - used / sum(chars.values()))
    tokens = {(x.prompt_id, x.teacher, x.sample): 10 for x in cands}
    assert evaluate_router(router, prompts, cands, tokens=tokens)["compute"]["tokens_saved"] == pytest.approx(1 - 20 / 50)


def test_router_errors_are_one_line():
    with pytest.raises(GlotbenchError, match="none of the 1 fit prompts has a scored candidate"):
        fit_router({"p": P("p")}, [C("p", "a", None)], seed=0)
