"""Arbitrage scorers: the pairwise judge as a ranking (against the scripted OpenAI-compatible
server on loopback: the real client, engine and cache, no mocks), the callable scorer and
build_scorer's one-line config errors."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.records import ChatMessage
from glotbench.training.arbitrage.scorers import CallableScorer, JudgeScorer, Scorer, build_scorer
from glotbench.training.core.records import Candidate, Prompt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from openai_server import OpenAIServer  # noqa: E402

QUALITY = {"excellent answer": 3, "good answer": 2, "fair answer": 1, "poor answer": 0}
_ANSWERS = re.compile(r"Answer \(A\): (.*)\nAnswer \(B\): (.*)\nFIRST")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GLOTBENCH_REQUEST_CACHE", str(tmp_path / "cache.sqlite"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def prompt(pid: str, lang: str = "en", text: str = "Say something.") -> Prompt:
    return Prompt(pid, lang, (ChatMessage("user", text),))


def cand(pid: str, teacher: str, completion: str, sample: int = 0, lang: str = "en") -> Candidate:
    return Candidate(pid, lang, teacher, sample, completion, "stop")


class QualityJudge:
    """Prefers the shown answer of higher QUALITY; says nothing parseable for instructions
    containing 'UNJUDGEABLE'; records every (A, B) shown."""

    def __init__(self):
        self.shown: list[tuple[str, str]] = []

    def __call__(self, request: dict) -> str:
        user = request["messages"][-1]["content"]
        if "UNJUDGEABLE" in user:
            return "I would rather not say."
        a, b = _ANSWERS.search(user).groups()
        self.shown.append((a, b))
        qa, qb = QUALITY[a], QUALITY[b]
        choice = "TIE" if qa == qb else "Answer (A)" if qa > qb else "Answer (B)"
        return f"Comparison: scripted.\nPreferred: {choice}"


def judge_scorer(server: OpenAIServer, method: str = "bradley_terry") -> Scorer:
    block = {"judge": {"model": "scripted-judge", "base_url": server.base_url, "method": method,
                       "parse_attempts": 1, "concurrency": 4}}
    return build_scorer(block, None, progress=False)


def test_judge_ranks_candidates_in_both_orders_and_scores_follow_quality():
    judge = QualityJudge()
    prompts = {"p1": prompt("p1"), "p2": prompt("p2", "de")}
    cands = [cand("p1", "t1", "fair answer"), cand("p1", "t2", "excellent answer"),
             cand("p1", "t3", "poor answer"), cand("p2", "t1", "good answer"), cand("p2", "t2", "poor answer")]
    with OpenAIServer(responder=judge) as server:
        scorer = judge_scorer(server)
        assert isinstance(scorer, JudgeScorer) and isinstance(scorer, Scorer)
        scores = scorer.score(prompts, cands)
    # Every unordered pair of a prompt was shown in both orders: 3 pairs + 1 pair, × 2 orders.
    assert len(judge.shown) == 8
    for a, b in judge.shown:
        assert (b, a) in judge.shown
    assert scores[1] > scores[0] > scores[2]
    assert scores[3] > scores[4]
    assert abs(sum(scores[:3])) < 1e-6  # Elo scale, mean 0 within the prompt
    assert scorer.stats["judgments"] == 8 and scorer.stats["invalid"] == 0
    assert scorer.stats["unscored_candidates"] == 0


def test_wins_method_is_the_share_of_valid_games_won():
    with OpenAIServer(responder=QualityJudge()) as server:
        scorer = judge_scorer(server, method="wins")
        scores = scorer.score({"p": prompt("p")}, [cand("p", "a", "good answer"), cand("p", "b", "good answer "),
                                                   cand("p", "c", "poor answer")])
    # a and b: identical after stripping → a tie without a call (½ each way), and each beats c twice.
    assert scores == [pytest.approx(3 / 4), pytest.approx(3 / 4), 0.0]
    assert scorer.stats["identical"] == 2


def test_invalid_verdicts_are_counted_and_an_all_invalid_prompt_is_unscored():
    prompts = {"ok": prompt("ok"), "bad": prompt("bad", text="UNJUDGEABLE request"), "one": prompt("one")}
    cands = [cand("ok", "a", "good answer"), cand("ok", "b", "poor answer"),
             cand("bad", "a", "good answer"), cand("bad", "b", "poor answer"), cand("one", "a", "fair answer")]
    with OpenAIServer(responder=QualityJudge()) as server:
        scorer = judge_scorer(server)
        scores = scorer.score(prompts, cands)
    assert scores[0] > scores[1]
    assert scores[2:] == [None, None, None]
    s = scorer.stats
    assert (s["prompts"], s["judgments"], s["invalid"], s["unranked_prompts"], s["single_candidate"]) == (3, 4, 2, 1, 1)
    assert s["unscored_candidates"] == 3


def test_position_bias_cancels_across_both_orders():
    # A judge that always prefers the first answer shown: every pair is one win each, so all equal.
    with OpenAIServer(responder=lambda req: "Comparison: x\nPreferred: Answer (A)") as server:
        scores = judge_scorer(server).score({"p": prompt("p")}, [cand("p", "a", "good answer"),
                                                                  cand("p", "b", "poor answer")])
    assert scores[0] == pytest.approx(scores[1])


def test_a_second_scoring_is_served_from_the_request_cache():
    prompts = {"p": prompt("p")}
    cands = [cand("p", "a", "good answer"), cand("p", "b", "poor answer"), cand("p", "c", "fair answer")]
    with OpenAIServer(responder=QualityJudge()) as server:
        first = judge_scorer(server).score(prompts, cands)
        sent = server.stats()["requests"]
        again = judge_scorer(server).score(prompts, cands)
        assert server.stats()["requests"] == sent == 6
    assert again == first


def test_reward_model_path_must_be_a_directory(tmp_path):
    with pytest.raises(GlotbenchError, match="reward_model .*missing-rm is not a directory"):
        build_scorer({"reward_model": str(tmp_path / "missing-rm")}, None, progress=False)
    with pytest.raises(GlotbenchError, match="unknown key 'batchsize'"):
        build_scorer({"reward_model": str(tmp_path), "batchsize": 4}, None, progress=False)


def test_judge_config_errors_are_one_line():
    with pytest.raises(GlotbenchError, match="method 'elo' is not one of bradley_terry, wins"):
        build_scorer({"judge": {"model": "m", "base_url": "http://127.0.0.1:1/v1", "method": "elo"}}, None, progress=False)
    with pytest.raises(GlotbenchError, match="temperature must be at least 0, not -1"):
        build_scorer({"judge": {"model": "m", "temperature": -1}}, None, progress=False)
    with pytest.raises(GlotbenchError, match="parse_attempts must be positive, not 0"):
        build_scorer({"judge": {"model": "m", "parse_attempts": 0}}, None, progress=False)
    with pytest.raises(GlotbenchError, match="unknown key 'modle'"):
        build_scorer({"judge": {"modle": "m"}}, None, progress=False)
    with pytest.raises(GlotbenchError, match="exactly one of reward_model, judge, callable"):
        build_scorer({"judge": {"model": "m"}, "callable": "a:b"}, None, progress=False)


def test_unknown_language_name_is_one_line():
    with OpenAIServer(responder=QualityJudge()) as server:
        scorer = judge_scorer(server)
        with pytest.raises(GlotbenchError, match="no English name for language 'xx'.*language_names"):
            scorer.score({"p": prompt("p", "xx")}, [cand("p", "a", "good answer", lang="xx"),
                                                     cand("p", "b", "poor answer", lang="xx")])


# ------------------------------------------------------------------------------ callable
REWARDS = '''
import math

def length(prompt, completion):
    return float(len(completion))

def nan_for_empty(prompt, completion):
    return math.nan if not completion else 1.0

def text(prompt, completion):
    return "high"

def boom(prompt, completion):
    raise RuntimeError("reward server down")
'''


@pytest.fixture()
def rewards_config(tmp_path):
    (tmp_path / "my_rewards.py").write_text(REWARDS, encoding="utf-8")
    config = tmp_path / "arbitrage.yaml"
    config.write_text("scorer: {callable: 'my_rewards:length'}\n", encoding="utf-8")
    yield config
    sys.modules.pop("my_rewards", None)


def test_callable_scores_found_beside_the_config(rewards_config):
    scorer = build_scorer({"callable": "my_rewards:length"}, rewards_config, progress=False)
    assert isinstance(scorer, CallableScorer)
    assert scorer.score({"p": prompt("p")}, [cand("p", "a", "abc"), cand("p", "b", "")]) == [3.0, 0.0]
    assert scorer.identity["sha256"] and scorer.identity["callable"] == "my_rewards:length"


def test_callable_nan_is_unscored_and_counted(rewards_config):
    scorer = build_scorer({"callable": "my_rewards:nan_for_empty"}, rewards_config, progress=False)
    assert scorer.score({"p": prompt("p")}, [cand("p", "a", "x"), cand("p", "b", "")]) == [1.0, None]
    assert scorer.stats == {"candidates": 2, "scored": 1, "non_finite": 1}


@pytest.mark.parametrize(("spec", "message"), [
    ("my_rewards", "is not module:function"),
    ("my_rewards:", "is not module:function"),
    ("no_such_module_xyz:f", "no module named 'no_such_module_xyz'"),
    ("my_rewards:missing", "has no function 'missing'"),
])
def test_callable_spec_errors_are_one_line(rewards_config, spec, message):
    with pytest.raises(GlotbenchError, match=message) as err:
        build_scorer({"callable": spec}, rewards_config, progress=False)
    assert "\n" not in str(err.value)


def test_callable_import_failure_and_bad_returns(rewards_config, tmp_path):
    (tmp_path / "broken_rewards.py").write_text("import math\ndef f(:\n", encoding="utf-8")
    with pytest.raises(GlotbenchError, match="importing 'broken_rewards' failed: SyntaxError"):
        build_scorer({"callable": "broken_rewards:f"}, rewards_config, progress=False)
    p, c = {"p": prompt("p")}, [cand("p", "a", "x")]
    with pytest.raises(GlotbenchError, match="returned str 'high' on prompt p .*not a number"):
        build_scorer({"callable": "my_rewards:text"}, rewards_config, progress=False).score(p, c)
    with pytest.raises(GlotbenchError, match="failed on prompt p \\(teacher a, sample 0\\): RuntimeError: reward server down"):
        build_scorer({"callable": "my_rewards:boom"}, rewards_config, progress=False).score(p, c)


# ------------------------------------------------------------------------------ reward model
@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory, embedded_dir) -> Path:
    """A 2-layer random Llama reward model (one label) with the embedded model's tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    out = tmp_path_factory.mktemp("rm")
    tok = AutoTokenizer.from_pretrained(embedded_dir)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, num_labels=1, pad_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    LlamaForSequenceClassification(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_reward_model_block_builds_the_reward_helpers_scorer(tiny_rm, tmp_path):
    config = tmp_path / "arbitrage.yaml"
    config.write_text("scorer: {}\n", encoding="utf-8")
    (tmp_path / "rm").symlink_to(tiny_rm)  # relative to the config file
    scorer = build_scorer({"reward_model": "rm", "batch_size": 2, "max_length": 64}, config, progress=False)
    assert isinstance(scorer, Scorer)
    assert scorer.identity["kind"] == "reward_model" and scorer.identity["max_length"] == 64
    assert scorer.batch_size == 2
    scores = scorer.score({"p": prompt("p")}, [cand("p", "a", "good answer"), cand("p", "b", "poor answer"),
                                               cand("p", "c", "good answer")])
    assert all(isinstance(s, float) for s in scores) and scores[0] == scores[2] != scores[1]
