"""The fast greedy generation path (hf_generate.py): a shared prompt prefix computed once,
suffixes fed per batch, finished rows dropped. Its outputs must equal ``model.generate``'s
(the plain path, which lm-eval's hf backend also uses) text for text, token count for token
count, on the tiny model and on the embedded model's MGSM prompts.
"""

from __future__ import annotations

import pytest

from glotbench.harness.core.records import GenerationRequest
from glotbench.harness.models import hf_generate
from glotbench.harness.models.hf import HFBackend
from glotbench.harness.models.prefix import plan_generation
from glotbench.harness.taskapi import data
from glotbench.harness.taskapi.registry import get_task

SHARED = "The following are worked examples of arithmetic in plain words, one per line. " * 3


def test_plan_groups_prompts_on_their_token_prefix():
    block_a, block_b = tuple(range(100, 160)), tuple(range(200, 240))
    prompts = [block_a + (1, 2), block_b + (5,), block_a + (3,), (7, 8, 9), block_b + (6, 7, 8), block_a + (4, 5, 6)]
    plan = plan_generation(prompts, batch_size=2)
    assert plan.group[0] == plan.group[2] == plan.group[5] != plan.group[1] == plan.group[4]
    assert plan.group[3] == -1 and plan.shared[3] == 0
    assert plan.shared[0] == len(block_a) and plan.shared[1] == len(block_b)
    assert sorted(m for b in plan.batches for m in b) == list(range(6))
    assert all(len(b) <= 2 for b in plan.batches)
    # the longer prefix first, each group's longest suffix first, the ungrouped last
    assert plan.batches[0] == (5, 0) and plan.batches[-1][-1] == 3


def test_plan_leaves_a_suffix_token_and_respects_min_shared():
    same = tuple(range(50))
    plan = plan_generation([same, same, same + (1,)], batch_size=8)
    assert all(s < len(p) for s, p in zip(plan.shared, [same, same, same + (1,)]))
    assert plan.shared[0] == 49
    short = plan_generation([(1, 2, 3, 4), (1, 2, 3, 5)], batch_size=8)
    assert short.group == (-1, -1) and short.shared == (0, 0)
    with pytest.raises(ValueError):
        plan_generation([(1,)], batch_size=0)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return HFBackend(str(tiny_model_dir), device="cpu", batch_size=4)


def tiny_requests(n_tokens: int = 24) -> list[GenerationRequest]:
    questions = ["What is two plus two?", "Name a colour.", "Count to five, please, slowly and loudly.",
                 "Why?", "How many legs has a spider?", "Spell cat."]
    reqs = [GenerationRequest(SHARED + q, (), n_tokens) for q in questions]
    return reqs + [GenerationRequest("A short unrelated prompt.", (), n_tokens),
                   GenerationRequest(SHARED + "Shorter budget here.", (), n_tokens // 2)]


def same(a, b) -> bool:
    return [(r.text, r.n_tokens, r.finish) for r in a] == [(r.text, r.n_tokens, r.finish) for r in b]


def test_fast_path_equals_model_generate_on_the_tiny_model(tiny):
    reqs = tiny_requests()
    fast = hf_generate.generate(tiny, reqs)
    assert same(fast, hf_generate.generate(tiny, reqs, fast=False))
    assert same(fast, hf_generate.generate(tiny, reqs, reuse_prefix=False))
    assert [r.n_tokens for r in fast][-1] <= 12


def test_rows_finish_at_different_steps_on_their_own_stop_strings(tiny):
    reqs = tiny_requests()
    free = hf_generate.generate(tiny, reqs)
    # the random model repeats one character: row k stops once it has written k + 2 of them
    # (every third row has no stop string and runs to its budget)
    stopped = []
    for k, (req, res) in enumerate(zip(reqs, free)):
        stop = (res.text[0] * (k + 2),) if k % 3 else ()
        stopped.append(GenerationRequest(req.prompt, stop, req.max_new_tokens))
    fast = hf_generate.generate(tiny, stopped)
    assert same(fast, hf_generate.generate(tiny, stopped, fast=False))
    finishes = [r.finish for r in fast]
    assert "stop" in finishes and "length" in finishes
    assert len({r.n_tokens for r in fast if r.finish == "stop"}) > 1
    for req, res in zip(stopped, fast):
        assert not any(s in res.text for s in req.stop)


def test_finished_rows_leave_the_batch(tiny):
    reqs = tiny_requests()[:4]
    free = hf_generate.generate(tiny, reqs)
    early = GenerationRequest(reqs[0].prompt, (free[0].text[2:5],), reqs[0].max_new_tokens)
    rows = []
    model = tiny.model
    hook = model.register_forward_pre_hook(lambda mod, args, kw: rows.append(kw["input_ids"].shape[0]),
                                           with_kwargs=True)
    try:
        res = hf_generate.generate(tiny, [early] + reqs[1:])
    finally:
        hook.remove()
    assert res[0].finish == "stop" and res[0].n_tokens < reqs[0].max_new_tokens
    decode_rows = rows[2:]  # after the prefix pass and the suffix pass
    assert decode_rows[0] == 4 and decode_rows[-1] == 3


def test_sampled_requests_keep_the_plain_path(tiny):
    reqs = [GenerationRequest(SHARED + q, (), 16, temperature=0.8, seed=3) for q in ("One.", "Two.")]
    enc = [tiny.encoder.encode(r.prompt) for r in reqs]
    assert same(hf_generate.generate(tiny, reqs), hf_generate.generate_plain(tiny, reqs, enc))


@pytest.mark.slow
def test_fast_path_equals_model_generate_on_mgsm(embedded_dir):
    task = get_task("mgsm")
    reqs = []
    for lang in ("en", "de"):
        loaded = data.load(task, lang, "bundled")
        for s in loaded.samples[:3]:
            p = task.prompt(s, loaded.fewshot)
            reqs.append(GenerationRequest(p.plain(), p.stop, 32))
    backend = HFBackend(str(embedded_dir), device="cpu", batch_size=4)
    fast = hf_generate.generate(backend, reqs)
    assert same(fast, hf_generate.generate(backend, reqs, fast=False))
    assert same(fast, hf_generate.generate(backend, reqs, reuse_prefix=False))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cascade_attention_equals_attention_over_the_concatenated_keys(dtype):
    """Two groups with their own prefixes and one row with none; grouped-query heads; left
    padding in the rows' own keys. The merged two-part attention must equal one attention
    over [prefix; own keys] with the prefix visible to its group's rows only, in the
    model's dtype (the kernel's log-sum-exps are float32 even for bfloat16 inputs)."""
    import torch

    from glotbench.harness.models.cascade import CascadePrefix, attention

    torch.manual_seed(0)
    dt = getattr(torch, dtype)
    tol = 1e-5 if dtype == "float32" else 2e-2
    rows, heads, kv_heads, q, dim, own, layer = 5, 6, 2, 3, 8, 7, 1
    query = torch.randn(rows, heads, q, dim).to(dt)
    key, value = torch.randn(rows, kv_heads, own, dim).to(dt), torch.randn(rows, kv_heads, own, dim).to(dt)
    mask = torch.ones(rows, 1, q, own, dtype=torch.bool).tril(own - q)
    mask[1, :, :, :2] = False  # row 1 is left-padded by two slots
    groups = {0: [0, 3], 1: [1, 2]}  # row 4 has no prefix
    prefixes = {g: [(torch.randn(1, kv_heads, n, dim).to(dt), torch.randn(1, kv_heads, n, dim).to(dt))
                    for _ in range(2)] for g, n in ((0, 11), (1, 4))}
    spec = CascadePrefix([torch.tensor(r) for r in groups.values()], [prefixes[g] for g in groups])
    module = type("Attn", (), {"layer_idx": layer})()
    got, _ = attention(module, query, key, value, mask, scaling=dim ** -0.5, cascade_prefix=spec)
    assert got.dtype == dt
    for r in range(rows):
        g = next((g for g, members in groups.items() if r in members), None)
        pk, pv = prefixes[g][layer] if g is not None else (torch.zeros(1, kv_heads, 0, dim, dtype=dt),) * 2
        k = torch.cat([pk[0], key[r]], 1).repeat_interleave(heads // kv_heads, 0)
        v = torch.cat([pv[0], value[r]], 1).repeat_interleave(heads // kv_heads, 0)
        m = torch.cat([torch.ones(q, pk.shape[2], dtype=torch.bool), mask[r, 0]], 1)
        want = torch.nn.functional.scaled_dot_product_attention(query[r], k, v, attn_mask=m)
        torch.testing.assert_close(got[r].transpose(0, 1), want, rtol=tol, atol=tol)
    # The batch after rows 0 and 2 finished: the groups follow their rows.
    kept = spec.select([1, 3, 4])
    assert [r.tolist() for r in kept.rows] == [[1], [0]] and kept.kv == [prefixes[0], prefixes[1]]


def test_decoding_uses_cascade_attention_on_cpu_and_restores_the_model(tiny, monkeypatch):
    from glotbench.harness.models import cascade

    calls = []
    real = cascade.attention

    def counting(*args, cascade_prefix=None, cascade_segments=None, **kwargs):
        calls.append((cascade_prefix is not None, cascade_segments is not None))
        return real(*args, cascade_prefix=cascade_prefix, cascade_segments=cascade_segments, **kwargs)

    monkeypatch.setattr(cascade, "attention", counting)
    reqs = tiny_requests()
    hf_generate.generate(tiny, reqs)
    assert calls and all(with_prefix for with_prefix, _ in calls)
    assert any(packed for _, packed in calls)  # the packed prefill ran
    assert tiny.model.config._attn_implementation == "sdpa"
    calls.clear()
    hf_generate.generate(tiny, reqs, reuse_prefix=False)  # no shared prefix: plain SDPA throughout
    assert not calls


@pytest.mark.parametrize("masked", [False, True])
def test_packed_segments_attend_only_within_themselves(masked):
    """One packed row of three segments, causal or under their own masks, with and without
    a prefix every segment sees: equal to attention over [prefix; segment] per segment."""
    import torch

    from glotbench.harness.models.cascade import CascadePrefix, attention, packed_segments

    torch.manual_seed(1)
    heads, kv_heads, dim, width = 4, 2, 8, 12
    query = torch.randn(1, heads, width, dim)
    key, value = torch.randn(1, kv_heads, width, dim), torch.randn(1, kv_heads, width, dim)
    prefix = [(torch.randn(1, kv_heads, 5, dim), torch.randn(1, kv_heads, 5, dim))]
    bounds = [(0, 3), (3, 7), (7, 12)]
    allowed = torch.zeros(width, width, dtype=torch.bool)
    for s, e in bounds:
        allowed[s:e, s:e] = torch.ones(e - s, e - s, dtype=torch.bool).tril()
    if masked:
        allowed[6, 4] = False  # a second member that does not see the first one's token
    segments = packed_segments([e for _, e in bounds], allowed if masked else None, torch.float32)
    module = type("Attn", (), {"layer_idx": 0})()
    for spec in (None, CascadePrefix.one_row(prefix, "cpu")):
        got, _ = attention(module, query, key, value, None, scaling=dim ** -0.5, cascade_prefix=spec,
                           cascade_segments=segments)
        for s, e in bounds:
            m = allowed[s:e, s:e]
            k, v = key[0, :, s:e], value[0, :, s:e]
            if spec is not None:
                k, v = torch.cat([prefix[0][0][0], k], 1), torch.cat([prefix[0][1][0], v], 1)
                m = torch.cat([torch.ones(e - s, 5, dtype=torch.bool), m], 1)
            want = torch.nn.functional.scaled_dot_product_attention(
                query[0, :, s:e], k.repeat_interleave(2, 0), v.repeat_interleave(2, 0), attn_mask=m)
            torch.testing.assert_close(got[0, s:e].transpose(0, 1), want, rtol=1e-5, atol=1e-5)


def test_scoring_with_block_attention_equals_the_full_width_mask(tiny, monkeypatch):
    """Log-likelihoods of packed rows (groups in one row, and a big group's cached prefix)
    with attention block by block against the previous full-width masked attention."""
    from glotbench.harness.core.records import LoglikelihoodRequest
    from glotbench.harness.models import hf

    reqs = [LoglikelihoodRequest(SHARED + q, c) for q in ("One.", "Two and three.", "Four?")
            for c in (" yes", " no, never")] + [LoglikelihoodRequest("Short premise", " then"),
                                                 LoglikelihoodRequest("Short premise", " else")]
    tiny.batch_size = 2  # the shared block's group exceeds a call: its prefix is cached
    blocks = tiny.loglikelihood(reqs)
    monkeypatch.setattr(hf, "cascade_supported", lambda model: False)
    full = tiny.loglikelihood(reqs)
    assert [r.logprob for r in blocks] == pytest.approx([r.logprob for r in full], abs=1e-5)
    assert [r.is_greedy for r in blocks] == [r.is_greedy for r in full]


def test_cascade_is_limited_to_families_whose_attention_it_replaces(tiny):
    from glotbench.harness.models.cascade import supported

    assert supported(tiny.model)
    fake = type("M", (), {"device": tiny.model.device, "config": type("C", (), {
        "_attn_implementation": "sdpa", "model_type": "falcon", "head_dim": 8})()})()
    assert not supported(fake)  # Falcon tests the implementation's name itself
    fake.config.model_type, fake.config.v_head_dim = "llama", 16
    assert not supported(fake)  # query/key and value head sizes differ (MLA)
