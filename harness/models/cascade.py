"""Cascade attention for greedy decoding against shared prompt prefixes (CPU).

A batch of generation rows that share a few-shot block used to hold one copy of the block's
keys and values per row, and every decode step read all of them: on MGSM's ~1,000-token
blocks that was ~40 % of a 16-row step on CPU (memory traffic, not arithmetic). Here the
rows' cache holds only their own tokens; the block's keys and values are kept once per
group, and attention is computed in two parts merged by their log-sum-exp:

- every query of a group's rows against the group's prefix, as one attention call whose
  queries are all those rows' queries (no mask: a prefix is visible to all of them);
- each row's queries against its own cache under the row's mask.

``softmax([a; b]) V = (e^{lse_a} out_a + e^{lse_b} out_b) / (e^{lse_a} + e^{lse_b})``: the same
attention as over the concatenated keys, up to float rounding.

Registered in transformers' attention interface as ``glotbench_cascade``; the model uses it
only inside :func:`cascade` (its config's implementation is switched for the call and
restored), and only with a ``cascade_prefix`` argument; without one it is plain SDPA.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

NAME = "glotbench_cascade"


@dataclass
class CascadePrefix:
    """Per group: the batch rows it holds and its per-layer prefix (keys, values), each
    shaped (1, kv_heads, prefix_len, head_dim). Rows of no group see no prefix."""

    rows: list  # one LongTensor of batch positions per group
    kv: list  # one per group: [(keys, values) per layer]

    def select(self, keep: list[int]) -> CascadePrefix:
        """The same prefixes after the batch kept only positions ``keep`` (in order)."""
        import torch

        where = {old: new for new, old in enumerate(keep)}
        rows, kv = [], []
        for r, layers in zip(self.rows, self.kv):
            mine = [where[int(i)] for i in r.tolist() if int(i) in where]
            if mine:
                rows.append(torch.tensor(mine, dtype=torch.long, device=r.device))
                kv.append(layers)
        return CascadePrefix(rows, kv)


# Model families whose attention module calls transformers' attention interface with the
# standard arguments, equal query/key/value head sizes, plain softmax (no soft-capping or
# sinks) and the same grouping at every layer (checked on tiny models of each: texts equal to
# the per-row copy's, log-likelihoods within 1e-6). Any other family keeps the plain path: a
# model that tests the implementation's name itself (Falcon, several MoE/MLA families) would
# silently ignore the prefix passed here.
FAMILIES = frozenset({"llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3_moe", "gemma", "phi3",
                      "granite", "gpt_neox"})


def supported(model) -> bool:
    """CPU models of :data:`FAMILIES` running SDPA (the flash kernel that returns the
    log-sum-exp is the CPU one)."""
    config = model.config
    head_dim = getattr(config, "head_dim", None)
    return (model.device.type == "cpu" and config._attn_implementation == "sdpa"
            and config.model_type in FAMILIES
            and getattr(config, "v_head_dim", head_dim) == head_dim)


@contextmanager
def cascade(model):
    """Within the block, ``model`` attends through :func:`attention` (plain SDPA unless a
    call passes ``cascade_prefix`` or ``cascade_segments``). The switch is the config's own
    field only (the public setter would also rewrite every sub-config's implementation, and
    restoring would flatten them). Not thread-safe: the config and the mask memo are shared;
    a backend answers one batch at a time."""
    register()
    config = model.config
    before = config._attn_implementation_internal
    config._attn_implementation_internal = NAME
    try:
        yield
    finally:
        config._attn_implementation_internal = before
        _MEMO.clear()


def register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)


def attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
              cascade_prefix: CascadePrefix | None = None, cascade_segments=None, **kwargs):
    """(rows, heads, q, dim) queries; the cache's keys and values; a boolean 4-D mask over
    them. Returns (rows, q, heads, dim) as transformers' attention functions do.

    ``cascade_segments`` [(start, end, mask), ...]: one packed row of independent segments
    (several prompts' suffixes in a prefill without padding; several questions' blocks in a
    scoring pass). Each segment attends only to itself: causally, or under its own (len, len)
    boolean ``mask``; ``attention_mask`` is then ignored, and a 1024-token row costs the
    attention of its segments instead of 1024 x 1024."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if cascade_prefix is None and cascade_segments is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    n, heads, q, dim = query.shape
    kv_heads = key.shape[1]
    g = heads // kv_heads
    scale = scaling if scaling is not None else dim ** -0.5
    # Own part: each row against its cache; grouped-query heads folded into the query axis
    # (head h reads kv head h // g), so the keys are never repeated.
    if cascade_segments is not None:
        out_b, lse_b = _segments(query, key, value, cascade_segments, g, scale)
    else:
        q_own = query.reshape(n, kv_heads, g * q, dim)
        mask = None if attention_mask is None else _additive(attention_mask, n, q, key.shape[2], g, query.dtype)
        out_b, lse_b = flash(q_own, key, value, 0.0, False, attn_mask=mask, scale=scale)
        out_b = out_b.reshape(n, heads, q, dim)
        lse_b = lse_b.reshape(n, heads, q)
    if cascade_prefix is None:
        return out_b.to(query.dtype).transpose(1, 2).contiguous(), None
    # Prefix part: all of a group's queries in one call against its keys and values.
    whole = len(cascade_prefix.rows) == 1 and cascade_prefix.rows[0].numel() == n
    out_a = None if whole else torch.zeros_like(out_b)
    lse_a = None if whole else torch.full_like(lse_b, float("-inf"))
    for rows, layers in zip(cascade_prefix.rows, cascade_prefix.kv):
        pk, pv = layers[module.layer_idx]
        m = rows.numel()
        qa = (query if whole else query.index_select(0, rows)).reshape(m, kv_heads, g * q, dim)
        qa = qa.transpose(0, 1).reshape(1, kv_heads, m * g * q, dim)
        o, lse = flash(qa, pk, pv, 0.0, False, scale=scale)
        o = o.reshape(kv_heads, m, g * q, dim).transpose(0, 1).reshape(m, heads, q, dim)
        lse = lse.reshape(kv_heads, m, g * q).transpose(0, 1).reshape(m, heads, q)
        if whole:
            out_a, lse_a = o, lse
        else:
            out_a[rows], lse_a[rows] = o, lse
    # The kernel's log-sum-exps are float32 whatever the inputs: merge in float32, return the
    # model's dtype (a bfloat16 model's output projection takes bfloat16).
    top = torch.maximum(lse_a, lse_b)
    wa, wb = torch.exp(lse_a - top), torch.exp(lse_b - top)
    out = (out_a.float() * wa[..., None] + out_b.float() * wb[..., None]) / (wa + wb)[..., None]
    return out.to(query.dtype).transpose(1, 2).contiguous(), None


def _segments(query, key, value, segments, g: int, scale: float):
    """Attention within each segment of one packed row (causal, or under the segment's own
    boolean mask): (1, heads, q, dim) outputs and (1, heads, q) log-sum-exps."""
    import torch

    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    outs, lses = [], []
    for s, e, allowed in segments:
        k = key[:, :, s:e].repeat_interleave(g, dim=1)
        v = value[:, :, s:e].repeat_interleave(g, dim=1)
        if allowed is None:
            o, lse = flash(query[:, :, s:e], k, v, 0.0, True, scale=scale)
        else:
            mask = torch.zeros(allowed.shape, dtype=query.dtype, device=query.device).masked_fill(~allowed, float("-inf"))
            o, lse = flash(query[:, :, s:e], k, v, 0.0, False, attn_mask=mask[None, None], scale=scale)
        outs.append(o)
        lses.append(lse)
    return torch.cat(outs, dim=2), torch.cat(lses, dim=2)


_MEMO: list = []  # [(the mask it was built from, g, its additive form)]: one per forward pass


def _additive(mask, n: int, q: int, keys: int, g: int, dtype):
    """The boolean (rows, 1, q, keys) mask as the kernel takes it: additive, in the query's
    dtype, repeated for the g query heads folded into the query axis. Built once per forward
    pass (every layer gets the same mask object; the memo holds it, so its id stays unique)."""
    import torch

    if _MEMO and _MEMO[0][0] is mask and _MEMO[0][1] == g and _MEMO[0][2].dtype == dtype:
        return _MEMO[0][2]
    out = mask.expand(n, 1, q, keys).repeat(1, 1, g, 1)
    if out.dtype == torch.bool:
        out = torch.zeros(out.shape, dtype=dtype, device=out.device).masked_fill(~out, float("-inf"))
    _MEMO[:] = [(mask, g, out)]
    return out
