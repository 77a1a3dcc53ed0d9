"""The transformers backend against a plain full forward pass and lm-eval's tokenisation."""

from __future__ import annotations

import pytest
import torch

from glotbench.harness.core.errors import ModelError
from glotbench.harness.core.records import ChatMessage, GenerationRequest
from glotbench.harness.core.records import LoglikelihoodRequest as R
from glotbench.harness.models.hf import HFBackend
from glotbench.harness.models.prefix import Sequence, cached_shared, plan_calls, plan_groups

PREMISE = "The man turned on the faucet so that"
REQUESTS = [
    R(PREMISE, " the toilet filled with water."),
    R(PREMISE, " water flowed from the spout."),
    R("Ese oli mullikilesse mässitud sest", " see oli õrn."),
    R("Ese oli mullikilesse mässitud sest", " see oli väike."),
    R("The trophy didn't fit in the suitcase because the trophy", " was too big."),
    R("The trophy didn't fit in the suitcase because the suitcase", " was too big."),
    R("Trailing spaces move to the continuation ", "like this"),
    R("", "An empty context scores from the BOS token."),
    R("我们去了", "公园。"),
    R("Ma tühjendasin oma taskud seetõttu", " ma leidsin pileti tüki."),  # choices that
    R("Ma tühjendasin oma taskud seetõttu", " ma leidsin relva."),  # start alike
    R("Same request twice", " scores twice."),
    R("Same request twice", " scores twice."),
]


def reference(backend: HFBackend, req: R) -> tuple[float, bool, int]:
    seq = backend.encode_pair(req.context, req.continuation)
    ids = torch.tensor([seq.tokens[:-1]])
    with torch.inference_mode():
        logp = torch.log_softmax(backend.model(ids).logits[0].float(), -1)
    targets = seq.tokens[seq.n_context:]
    rows = logp[seq.n_context - 1:]
    picked = [rows[i, t].item() for i, t in enumerate(targets)]
    greedy = all(int(rows[i].argmax()) == t for i, t in enumerate(targets))
    return sum(picked), greedy, len(targets)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir) -> HFBackend:
    return HFBackend(str(tiny_model_dir), device="cpu", batch_size=16)


@pytest.mark.parametrize("batch_size,row_tokens", [(1, 1024), (3, 1024), (16, 1024), (16, 24)])
def test_loglikelihood_matches_full_forward(tiny, batch_size, row_tokens):
    tiny.batch_size, tiny.row_tokens = batch_size, row_tokens
    try:
        got = tiny.loglikelihood(REQUESTS)
    finally:
        tiny.batch_size, tiny.row_tokens = 16, 1024
    for req, res in zip(REQUESTS, got):
        ll, greedy, n = reference(tiny, req)
        assert res.logprob == pytest.approx(ll, abs=1e-4), req
        assert (res.is_greedy, res.n_tokens) == (greedy, n)


def test_big_group_uses_cached_prefix(tiny):
    """More sharers than fit in one call: prefix computed once, suffixes attend via the cache."""
    prefix = "Question: which of the following is a prime number? " * 3
    reqs = [R(prefix, f" Answer {i}: {n}") for i, n in enumerate(range(20, 32))]
    tiny.batch_size = 4
    try:
        seqs = [tiny.encode_pair(r.context, r.continuation) for r in reqs]
        calls = plan_calls(seqs, plan_groups(seqs), row_tokens=tiny.row_tokens, max_rows=1, max_requests=4)
        assert all(c.cached_prefix is not None for c in calls) and len(calls) == 3
        got = tiny.loglikelihood(reqs)
    finally:
        tiny.batch_size = 16
    for req, res in zip(reqs, got):
        assert res.logprob == pytest.approx(reference(tiny, req)[0], abs=1e-4)


def test_tokenisation_matches_lm_eval(tiny_model_dir, tiny):
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=str(tiny_model_dir), device="cpu", batch_size=1)
    for req in REQUESTS:
        if not req.context:
            continue
        ctx, cont = lm._encode_pair(req.context, req.continuation)
        seq = tiny.encode_pair(req.context, req.continuation)
        assert seq.tokens == tuple(ctx + cont) and seq.n_context == len(ctx)


def test_plan_shares_context_and_common_continuation_tokens():
    seqs = [Sequence((1, 2, 3, 4, 5, 6, 8), 4), Sequence((1, 2, 3, 4, 5, 7), 4), Sequence((9, 8, 7), 2)]
    groups = plan_groups(seqs)
    assert {g.members: g.shared for g in groups} == {(0, 1): 5, (2,): 0}
    # Reused through the KV cache, a prefix stops before the first scored position.
    assert cached_shared(seqs, groups[0]) == 3


def test_plan_covers_every_request_once():
    import random

    rng = random.Random(0)
    seqs = []
    for _ in range(200):
        ctx = tuple(rng.randint(0, 5) for _ in range(rng.randint(1, 12)))
        seqs.append(Sequence(ctx + tuple(rng.randint(0, 5) for _ in range(rng.randint(1, 6))), len(ctx)))
    groups = plan_groups(seqs)
    for max_requests in (1, 2, 7, 64):
        calls = plan_calls(seqs, groups, row_tokens=40, max_rows=2, max_requests=max_requests)
        seen = [m for c in calls for row in c.rows for b in row for m in b.members]
        assert sorted(seen) == list(range(len(seqs)))
        assert all(sum(len(b.members) for row in c.rows for b in row) <= max_requests for c in calls)


def test_generate_stops_and_is_batch_invariant(tiny):
    reqs = [GenerationRequest(p, stop=("\n", "."), max_new_tokens=12)
            for p in ("Once upon a time", "The capital of France is", "1, 2, 3,", "Hola")]
    tiny.batch_size = 1
    one = tiny.generate(reqs)
    tiny.batch_size = 16
    many = tiny.generate(reqs)
    assert [r.text for r in one] == [r.text for r in many]
    for r in many:
        assert "\n" not in r.text and "." not in r.text
        assert r.finish in ("stop", "length", "eos") and 0 < r.n_tokens <= 12


def test_chat_template(tiny):
    text = tiny.apply_chat_template([ChatMessage("user", "Bonjour")])
    assert "Bonjour" in text and text.rstrip().endswith("assistant")


def test_missing_model_dir(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        HFBackend(str(tmp_path / "nope"), device="cpu")
    with pytest.raises(ModelError, match="no config.json"):
        HFBackend(str(tmp_path), device="cpu")


def test_eager_attention_gets_an_additive_mask(tiny):
    """Models without sdpa run eager attention, which takes an additive float mask."""
    tiny.model.config._attn_implementation = "eager"
    try:
        got = tiny.loglikelihood(REQUESTS)
    finally:
        tiny.model.config._attn_implementation = "sdpa"
    for req, res in zip(REQUESTS, got):
        assert res.logprob == pytest.approx(reference(tiny, req)[0], abs=1e-4)


def test_big_group_is_shared_on_two_levels():
    """A few-shot block shared by many questions goes to the KV cache once; each question's
    own text is laid out once for all its answer letters (Global-MMLU's shape)."""
    shots = tuple(range(100, 160))  # the five-shot block
    seqs = []
    for q in range(6):
        question = tuple(range(1000 + 50 * q, 1000 + 50 * q + 20))
        seqs += [Sequence(shots + question + (7, 900 + c), len(shots) + len(question) + 1) for c in range(4)]
    groups = plan_groups(seqs)
    assert [(len(g.members), g.shared) for g in groups] == [(24, 60)]
    calls = plan_calls(seqs, groups, row_tokens=1024, max_rows=1, max_requests=8)
    assert all(c.cached_prefix == 0 for c in calls) and len(calls) == 3
    blocks = [b for c in calls for row in c.rows for b in row]
    assert [len(b.members) for b in blocks] == [4] * 6
    # each block: the question (20 tokens) and the "7" before the letters, shared by its members
    assert all(b.shared == 60 + 21 for b in blocks)
    assert sorted(m for b in blocks for m in b.members) == list(range(24))
