"""The reward-model scorer: the trl/OpenRLHF/verl convention computed directly with
transformers and by trl itself, padding invariance, truncation, and the cache."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.records import ChatMessage
from glotbench.harness.run.cache import RequestCache
from glotbench.training.core.records import Candidate, Prompt
from glotbench.training.reward.score import RewardModelScorer

PROMPTS = {
    "p1": Prompt("p1", "en", (ChatMessage("user", "Name three rivers in Europe."),)),
    "p2": Prompt("p2", "de", (ChatMessage("system", "Antworte kurz."), ChatMessage("user", "Was ist 2+2?"))),
}
CANDS = [
    Candidate("p1", "en", "a", 0, "The Danube, the Rhine and the Loire.", "stop"),
    Candidate("p1", "en", "b", 0, "Rivers: " + "Seine, " * 40 + "and the Po.", "stop"),
    Candidate("p2", "de", "a", 0, "4", "stop"),
    Candidate("p2", "de", "b", 1, "Zwei plus zwei ist vier, denn 2+2=4.", None),
    Candidate("p1", "en", "c", 0, "I don't know.", "length"),
]


def make_rm(out: Path, tokenizer_dir: Path, *, seed: int = 0, pad_token: str | None = None) -> Path:
    """A 2-layer random Llama reward model (one label) with the embedded tokenizer; its score
    head scaled up so that different inputs get visibly different rewards."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    if pad_token is not None:
        tok.pad_token = pad_token
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, num_labels=1,
                      pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(cfg)
    with torch.no_grad():
        model.score.weight.mul_(50)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def rm(tmp_path_factory, embedded_dir) -> Path:
    return make_rm(tmp_path_factory.mktemp("rm") / "rm", embedded_dir)


@pytest.fixture
def cache(tmp_path) -> RequestCache:
    return RequestCache(tmp_path / "cache.sqlite")


def direct(rm: Path, prompt: Prompt, completion: str) -> float:
    """The convention, unbatched, with transformers alone."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(rm)
    model = AutoModelForSequenceClassification.from_pretrained(rm).eval()
    conv = [{"role": m.role, "content": m.content} for m in prompt.messages] + [
        {"role": "assistant", "content": completion}]
    ids = tok.apply_chat_template(conv, tokenize=True, return_dict=True)["input_ids"]
    with torch.no_grad():
        return float(model(input_ids=torch.tensor([ids])).logits[0, 0])


def test_scores_equal_a_direct_transformers_computation(rm, cache):
    scores = RewardModelScorer(rm, batch_size=4, cache=cache).score(PROMPTS, CANDS)
    want = [direct(rm, PROMPTS[c.prompt_id], c.completion) for c in CANDS]
    assert scores == pytest.approx(want, abs=1e-5)
    assert len(set(round(s, 4) for s in scores)) == len(scores)  # the head tells the inputs apart


def test_scores_equal_trl_reward_trainers_own_rewards(rm, cache, tmp_path):
    """trl's RewardTrainer tokenizes conversational pairs itself and reads its rewards from
    ``model(**batch).logits`` (compute_loss): the scorer must give the same numbers."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    p1 = [{"role": "user", "content": PROMPTS["p1"].text}]
    p2 = [{"role": m.role, "content": m.content} for m in PROMPTS["p2"].messages]
    rows = [{"prompt": p1, "chosen": [{"role": "assistant", "content": CANDS[0].completion}],
             "rejected": [{"role": "assistant", "content": CANDS[1].completion}]},
            {"prompt": p2, "chosen": [{"role": "assistant", "content": CANDS[2].completion}],
             "rejected": [{"role": "assistant", "content": CANDS[3].completion}]}]
    args = RewardConfig(output_dir=str(tmp_path / "t"), bf16=False, activation_checkpointing=False, use_cpu=True,
                        report_to="none", per_device_train_batch_size=2, disable_tqdm=True)
    trainer = RewardTrainer(model=AutoModelForSequenceClassification.from_pretrained(rm), args=args,
                            train_dataset=Dataset.from_list(rows), processing_class=AutoTokenizer.from_pretrained(rm))
    batch = trainer.data_collator([trainer.train_dataset[0], trainer.train_dataset[1]])
    trainer.model.eval()
    with torch.no_grad():
        _, outputs = trainer.compute_loss(trainer.model, dict(batch), return_outputs=True)
    chosen, rejected = torch.chunk(outputs.logits.squeeze(-1), 2)
    scores = RewardModelScorer(rm, cache=cache).score(PROMPTS, CANDS[:4])
    assert scores == pytest.approx([chosen[0].item(), rejected[0].item(), chosen[1].item(), rejected[1].item()],
                                   abs=1e-5)


def test_scores_equal_trls_get_reward(tmp_path, embedded_dir, cache):
    """trl's online-RL reward (experimental.utils.get_reward) finds the sequence end by the
    first pad token, so it needs a pad token that never occurs in the text (here
    <|endoftext|>, not the embedded tokenizer's <|im_end|>)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    with warnings.catch_warnings():  # trl warns that experimental APIs may change: this test pins one
        warnings.simplefilter("ignore")
        from trl.experimental.utils import get_reward

    rm = make_rm(tmp_path / "rm-pad", embedded_dir, seed=1, pad_token="<|endoftext|>")
    tok = AutoTokenizer.from_pretrained(rm)
    model = AutoModelForSequenceClassification.from_pretrained(rm).eval()
    seqs = []
    for c in CANDS:
        conv = [{"role": m.role, "content": m.content} for m in PROMPTS[c.prompt_id].messages] + [
            {"role": "assistant", "content": c.completion}]
        seqs.append(tok.apply_chat_template(conv, tokenize=True, return_dict=True)["input_ids"])
    width = max(map(len, seqs))
    batch = torch.tensor([s + [tok.pad_token_id] * (width - len(s)) for s in seqs])
    with torch.no_grad():
        _, rewards, _ = get_reward(model, batch, tok.pad_token_id, context_length=0)
    assert RewardModelScorer(rm, cache=cache).score(PROMPTS, CANDS) == pytest.approx(rewards.tolist(), abs=1e-5)


def test_a_padded_row_scores_as_the_same_row_alone_whatever_the_padding_side(rm, tmp_path):
    one = RewardModelScorer(rm, batch_size=1, cache=RequestCache(tmp_path / "a.sqlite")).score(PROMPTS, CANDS)
    many = RewardModelScorer(rm, batch_size=5, cache=RequestCache(tmp_path / "b.sqlite")).score(PROMPTS, CANDS)
    left = tmp_path / "rm-left"
    shutil.copytree(rm, left)
    from transformers import AutoTokenizer

    conf = json.loads((left / "tokenizer_config.json").read_text())
    (left / "tokenizer_config.json").write_text(json.dumps({**conf, "padding_side": "left"}))
    assert AutoTokenizer.from_pretrained(left).padding_side == "left"
    lefty = RewardModelScorer(left, batch_size=5, cache=RequestCache(tmp_path / "c.sqlite")).score(PROMPTS, CANDS)
    assert many == pytest.approx(one, abs=1e-5) and lefty == pytest.approx(one, abs=1e-5)


def test_a_rerun_computes_nothing_and_another_model_or_length_misses(rm, cache, tmp_path, embedded_dir):
    first = RewardModelScorer(rm, cache=cache)
    scores = first.score(PROMPTS, CANDS)
    assert first.stats["computed"] == len(CANDS) and first.stats["cached"] == 0
    again = RewardModelScorer(rm, cache=cache)
    assert again.score(PROMPTS, CANDS) == scores
    assert again.stats == {"cached": len(CANDS), "computed": 0, "unscorable": 0, "truncated": 0, "non_finite": 0}
    assert again.model_key == first.model_key and first.identity["weights_sha256"] in first.model_key
    other = RewardModelScorer(make_rm(tmp_path / "rm2", embedded_dir, seed=2), cache=cache)
    assert other.model_key != first.model_key
    other.score(PROMPTS, CANDS)
    assert other.stats["computed"] == len(CANDS)
    short = RewardModelScorer(rm, cache=cache, max_length=60)
    short.score(PROMPTS, CANDS)
    assert short.stats["cached"] == 0 and short.stats["truncated"] >= 1


def test_truncation_keeps_the_start_and_a_prompt_filling_the_limit_is_unscored(rm, cache):
    from transformers import AutoTokenizer

    from glotbench.training.reward.encode import encode, token_ids

    tok = AutoTokenizer.from_pretrained(rm)
    full = token_ids(tok, PROMPTS["p1"].messages, CANDS[1].completion)
    enc = encode(tok, PROMPTS["p1"].messages, CANDS[1].completion, 50)
    assert enc.truncated and enc.ids == tuple(full[:50]) and enc.full_length == len(full)
    assert 0 < enc.prompt_length < 50
    cut = RewardModelScorer(rm, cache=cache, max_length=50).score(PROMPTS, CANDS[1:2])
    assert cut[0] == pytest.approx(direct_ids(rm, full[:50]), abs=1e-5)
    scorer = RewardModelScorer(rm, cache=cache, max_length=enc.prompt_length)
    assert scorer.score(PROMPTS, CANDS[:1]) == [None] and scorer.stats["unscorable"] == 1


def direct_ids(rm: Path, ids: list[int]) -> float:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(rm).eval()
    with torch.no_grad():
        return float(model(input_ids=torch.tensor([ids])).logits[0, 0])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_scores_are_none_and_counted(rm, cache, tmp_path, bad):
    """A broken head (NaN or inf weights) must not produce a score that wins or loses every
    argmax: each such output is None, counted when computed and again when read from the cache."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    broken = tmp_path / "rm-broken"
    model = AutoModelForSequenceClassification.from_pretrained(rm)
    with torch.no_grad():
        model.score.weight[0, 0] = bad  # every logit: ±inf (or NaN), never a number
    model.save_pretrained(broken)
    AutoTokenizer.from_pretrained(rm).save_pretrained(broken)
    first = RewardModelScorer(broken, batch_size=2, cache=cache)
    assert first.score(PROMPTS, CANDS) == [None] * len(CANDS)
    assert first.stats["non_finite"] == len(CANDS) and first.stats["computed"] == len(CANDS)
    again = RewardModelScorer(broken, cache=cache)
    assert again.score(PROMPTS, CANDS) == [None] * len(CANDS)
    assert again.stats["non_finite"] == len(CANDS) and again.stats["cached"] == len(CANDS)
    assert RewardModelScorer(rm, cache=cache).score(PROMPTS, CANDS[:1])[0] is not None


def test_user_mistakes_are_one_line(rm, cache, tmp_path):
    with pytest.raises(GlotbenchError, match="no prompt"):
        RewardModelScorer(rm, cache=cache).score({}, CANDS[:1])
    with pytest.raises(GlotbenchError, match="not a checkpoint directory"):
        RewardModelScorer(tmp_path, cache=cache)
    with pytest.raises(GlotbenchError, match="dtype"):
        RewardModelScorer(rm, cache=cache, dtype="int8")
