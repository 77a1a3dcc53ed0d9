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
restored), and only with a ``cascade_prefix`` or ``cascade_segments`` argument; without
either it is plain SDPA.
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

    @classmethod
    def one_row(cls, layers: list, device) -> CascadePrefix:
        """One prefix seen by every query of a single (packed) row."""
        import torch

        return cls([torch.zeros(1, dtype=torch.long, device=device)], [layers])

    def covers(self, n: int) -> bool:
        """Whether one group holds all ``n`` rows of the batch."""
        return len(self.rows) == 1 and self.rows[0].numel() == n

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
    restoring would flatten them). Not thread-safe: the config is shared; a backend answers
    one batch at a time."""
    register()
    config = model.config
    before = config._attn_implementation_internal
    config._attn_implementation_internal = NAME
    try:
        yield
    finally:
        config._attn_implementation_internal = before


def register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)


def attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
              cascade_prefix: CascadePrefix | None = None, cascade_segments=None, **kwargs):
    """(rows, heads, q, dim) queries; the cache's keys and values; a boolean 4-D mask over
    them. Returns (rows, q, heads, dim) as transformers' attention functions do.

    ``cascade_segments`` (from :func:`packed_segments`): one packed row of independent
    segments (several prompts' suffixes in a prefill without padding; several questions'
    blocks in a scoring pass). Each segment attends only to itself: causally, or under its
    own mask; ``attention_mask`` is then ignored, and a 1024-token row costs the attention of
    its segments instead of 1024 x 1024."""
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
        mask = None
        if attention_mask is not None:  # the same mask for the g heads folded into each row
            mask = additive(attention_mask.expand(n, 1, q, key.shape[2]), query.dtype).repeat(1, 1, g, 1)
        out_b, lse_b = flash(q_own, key, value, 0.0, False, attn_mask=mask, scale=scale)
        out_b = out_b.reshape(n, heads, q, dim)
        lse_b = lse_b.reshape(n, heads, q)
    if cascade_prefix is None:
        return out_b.to(query.dtype).transpose(1, 2).contiguous(), None
    # Prefix part: all of a group's queries in one call against its keys and values.
    whole = cascade_prefix.covers(n)
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


def packed_segments(ends: list[int], allowed=None, dtype=None) -> list:
    """``cascade_segments`` for a packed row whose segments end at ``ends`` (cumulative):
    causal within each segment, or, with ``allowed`` (the row's (width, width) booleans),
    under its diagonal block, made additive in ``dtype`` once for every layer."""
    starts = [0] + ends[:-1]
    if allowed is None:
        return [(s, e, None) for s, e in zip(starts, ends)]
    return [(s, e, additive(allowed[s:e, s:e], dtype)[None, None]) for s, e in zip(starts, ends)]


def additive(allowed, dtype):
    """A boolean mask as the flash kernel takes it: 0 where allowed, -inf elsewhere."""
    import torch

    if allowed.dtype != torch.bool:
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, float("-inf"))


def _segments(query, key, value, segments, g: int, scale: float):
    """Attention within each segment of one packed row: (1, heads, q, dim) outputs and
    (1, heads, q) log-sum-exps."""
    import torch

    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    outs, lses = [], []
    for s, e, mask in segments:
        k = key[:, :, s:e].repeat_interleave(g, dim=1)
        v = value[:, :, s:e].repeat_interleave(g, dim=1)
        o, lse = flash(query[:, :, s:e], k, v, 0.0, mask is None, attn_mask=mask, scale=scale)
        outs.append(o)
        lses.append(lse)
    return torch.cat(outs, dim=2), torch.cat(lses, dim=2)
