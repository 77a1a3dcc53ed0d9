"""Generation for the transformers backend.

Greedy requests take the fast path: prompts that share a token prefix (one language's
few-shot block) get that prefix computed once into a key/value cache, each batch feeds only
its members' suffixes against it, and a row leaves the batch as soon as it has finished
(EOS, one of its own stop strings, or its token budget), so it costs no more decode steps.
Sampled requests (temperature > 0) keep ``model.generate`` over whole left-padded prompts:
their random draws depend on the batch's shape, and users' seeded samples must not change.

Text is post-processed the same way on both paths (:func:`finish`), and the fast path's
stopping rule is the plain path's (:class:`RowStops`), so greedy outputs are the same text.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

from transformers.cache_utils import DynamicLayer

from glotbench.harness.core.records import GenerationRequest, GenerationResult
from glotbench.harness.models.cascade import CascadePrefix, cascade, packed_segments
from glotbench.harness.models.cascade import supported as cascade_supported
from glotbench.harness.models.prefix import GenPlan, plan_generation

# Generation-config fields that add a logits processor to ``model.generate``'s greedy search;
# the fast path's plain argmax reproduces it only when all are at their neutral values.
NEUTRAL_PROCESSORS = {"repetition_penalty": (None, 1.0), "no_repeat_ngram_size": (None, 0),
                      "bad_words_ids": (None,), "min_length": (None, 0), "min_new_tokens": (None, 0),
                      "suppress_tokens": (None,), "begin_suppress_tokens": (None,),
                      "forced_bos_token_id": (None,), "forced_eos_token_id": (None,),
                      "sequence_bias": (None,), "encoder_repetition_penalty": (None, 1.0)}
# Model families whose attention keeps more than plain per-layer keys and values.
SPECIAL_CACHES = {"mamba", "mamba2", "jamba", "falcon_h1", "zamba", "zamba2", "bamba", "granitemoehybrid",
                  "qwen3_next", "lfm2", "deepseek_v2", "deepseek_v3", "gemma3n", "recurrent_gemma"}


def generate(backend, requests: Sequence[GenerationRequest], *, reuse_prefix: bool = True,
             fast: bool = True) -> list[GenerationResult]:
    """Answer ``requests`` with ``backend`` (an HFBackend): greedy ones on the fast path
    (``reuse_prefix`` False runs whole prompts through it, for tests and benchmarks; ``fast``
    False sends everything through ``model.generate``), sampled ones through the plain path."""
    import torch

    enc = [backend.encoder.encode(r.prompt) for r in requests]
    out: list[GenerationResult | None] = [None] * len(requests)
    greedy = [i for i, r in enumerate(requests) if r.temperature <= 0]
    if not (fast and fast_path_applies(backend.model)):
        greedy = []
    plain = sorted(set(range(len(requests))) - set(greedy))
    with torch.inference_mode():
        if greedy:
            by_budget: dict[int, list[int]] = {}
            for i in greedy:
                by_budget.setdefault(requests[i].max_new_tokens, []).append(i)
            for budget, idx in sorted(by_budget.items(), reverse=True):
                prompts = [tuple(enc[i]) for i in idx]
                plan = plan_generation(prompts, backend.batch_size,
                                       min_shared=32 if reuse_prefix else 10**9)
                texts = FastDecoder(backend).run(prompts, [requests[i].stop for i in idx], budget, plan)
                for i, res in zip(idx, texts):
                    out[i] = res
        if plain:
            for i, res in zip(plain, generate_plain(backend, [requests[i] for i in plain],
                                                    [enc[i] for i in plain])):
                out[i] = res
    return out  # type: ignore[return-value]


def fast_path_applies(model) -> bool:
    """Whether plain argmax decoding over a full-attention cache equals ``model.generate``'s
    greedy search for ``model`` (no logits processors; no sliding-window or other layer kinds,
    which the preallocated cache would not reproduce)."""
    gen, cfg = model.generation_config, model.config
    layer_types = set(getattr(cfg, "layer_types", None) or ["full_attention"])
    return (all(getattr(gen, k, None) in ok for k, ok in NEUTRAL_PROCESSORS.items())
            and getattr(cfg, "sliding_window", None) is None and layer_types == {"full_attention"}
            and cfg.model_type not in SPECIAL_CACHES)


def eos_ids(model) -> set[int]:
    """The tokens ``model.generate`` stops a row at (the generation config's EOS, int or list)."""
    eos = model.generation_config.eos_token_id
    if eos is None:
        return set()
    return {int(eos)} if isinstance(eos, int) else {int(e) for e in eos}


def pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


class RowStops:
    """Stop test with one stop list per row: a row is done once the text it has generated so
    far contains one of its own stop strings. Only a tail window is decoded per step (enough
    tokens for the longest stop string even at one byte per token). Callable as a
    transformers stopping criterion over ``input_ids`` whose prompt part is ``prompt_width``
    wide; :meth:`hit` tests one row's generated tokens."""

    def __init__(self, tokenizer, stops: list[tuple[str, ...]], prompt_width: int = 0):
        self.tok, self.stops, self.width = tokenizer, stops, prompt_width
        self.window = 4 * max((len(s.encode()) for row in stops for s in row), default=1) + 4

    def hit(self, row: int, generated) -> bool:
        stops = self.stops[row]
        if not stops:
            return False
        tail = self.tok.decode(generated[-self.window:], skip_special_tokens=True)
        return any(s in tail for s in stops)

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for r in range(len(self.stops)):
            done[r] = self.hit(r, input_ids[r, self.width:])
        return done


def finish(tokenizer, new: list[int], stop: tuple[str, ...]) -> GenerationResult:
    """A row's result from the tokens it generated (stopping token included, no padding):
    cut at EOS, decoded, cut at the first stop string."""
    pad, eos = pad_id(tokenizer), tokenizer.eos_token_id
    new = list(new)
    while new and pad != eos and new[-1] == pad:  # padding after an early stop
        new.pop()
    reason = "length"
    if eos is not None and eos in new:
        new = new[:new.index(eos)]
        reason = "eos"
    text = tokenizer.decode(new, skip_special_tokens=True)
    cut = min((text.find(s) for s in stop if s in text), default=-1)
    if cut >= 0:
        text, reason = text[:cut], "stop"
    return GenerationResult(text, len(new), reason)


class SlabLayer(DynamicLayer):
    """A key/value cache layer preallocated for the whole decode: appending writes in place
    (transformers' DynamicLayer concatenates, copying the cache at every step)."""

    def __init__(self, keys, values, length: int):
        super().__init__()
        self.slab_keys, self.slab_values, self.length = keys, values, length
        self.is_initialized = True
        self.device = keys.device
        self.view()

    def view(self) -> None:
        self.keys = self.slab_keys[:, :, :self.length]
        self.values = self.slab_values[:, :, :self.length]

    def update(self, key_states, value_states, *args, **kwargs):
        end = self.length + key_states.shape[-2]
        self.slab_keys[:, :, self.length:end] = key_states
        self.slab_values[:, :, self.length:end] = value_states
        self.length = end
        self.view()
        return self.keys, self.values

    def batch_select_indices(self, indices) -> None:
        self.slab_keys, self.slab_values = self.slab_keys[indices], self.slab_values[indices]
        self.view()


class FastDecoder:
    """Greedy decoding against cached prompt prefixes, finished rows dropped each step."""

    def __init__(self, backend):
        self.model, self.tok, self.device = backend.model, backend.tokenizer, backend.device
        self.eos = eos_ids(self.model)
        self.pad = pad_id(self.tok)
        self.sdpa = self.model.config._attn_implementation == "sdpa"
        self.cascade = cascade_supported(self.model)

    def run(self, prompts: list[tuple[int, ...]], stops: list[tuple[str, ...]], budget: int,
            plan: GenPlan) -> list[GenerationResult]:
        out: list[GenerationResult | None] = [None] * len(prompts)
        last = {plan.group[m]: b for b, batch in enumerate(plan.batches) for m in batch}
        prefixes: dict[int, list] = {}  # group -> per layer (keys, values) of its prefix
        for b, batch in enumerate(plan.batches):
            for m in batch:
                g = plan.group[m]
                if g >= 0 and g not in prefixes:
                    prefixes[g] = self.prefix_kv(prompts[m][:plan.shared[m]])
            kv = [prefixes[plan.group[m]] if plan.group[m] >= 0 else None for m in batch]
            row_stops = RowStops(self.tok, [stops[m] for m in batch])
            rows = [prompts[m][plan.shared[m]:] for m in batch]
            for m, new in zip(batch, self.decode(rows, [plan.shared[m] for m in batch], kv, row_stops, budget)):
                out[m] = finish(self.tok, new, stops[m])
            for g in [g for g in prefixes if last[g] == b]:  # free a prefix after its last batch
                del prefixes[g]
        return out  # type: ignore[return-value]

    def prefix_kv(self, tokens: tuple[int, ...]) -> list:
        import torch

        ids = torch.tensor([tokens], device=self.device)
        res = self.model(input_ids=ids, use_cache=True, logits_to_keep=1)
        return [(layer.keys, layer.values) for layer in res.cache.layers]

    def decode(self, rows: list[tuple[int, ...]], shared: list[int], kv: list, stops: RowStops,
               budget: int) -> list[list[int]]:
        """Generated tokens per row (stopping token included). Each row's cache holds
        ``[padding][its prefix][padding][its suffix][generated...]``: prefixes and suffixes
        left-padded so every row's last prompt token sits in the same slot; padding is masked
        out, and positions count as in the row's own unpadded prompt.

        With cascade attention (CPU), the prefixes stay out of the rows' cache, one copy per
        group, and attention reads them once per step for all the group's rows (cascade.py):
        each row's cache holds ``[padding][its suffix][generated...]``."""
        prefix = self.cascade_prefix(kv) if self.cascade else None
        stored = [0] * len(rows) if prefix else shared  # prefix tokens held in the rows' own cache
        with cascade(self.model) if prefix else nullcontext():
            return self._decode(rows, shared, stored, kv, prefix, stops, budget)

    def _decode(self, rows, shared, stored, kv, prefix, stops, budget) -> list[list[int]]:
        import torch

        n, width, pmax = len(rows), max(len(r) for r in rows), max(stored)
        extra = {"cascade_prefix": prefix} if prefix else {}
        valid = torch.zeros((n, pmax + width), dtype=torch.bool)
        for r, row in enumerate(rows):
            valid[r, pmax - stored[r]:pmax] = True
            valid[r, pmax + width - len(row):] = True
        next_pos = torch.tensor([shared[r] + len(row) for r, row in enumerate(rows)])
        cache = self.slab_cache(kv if not prefix else [None] * n, stored, pmax + width + budget)
        if prefix and prefix.covers(n):
            logits = self.packed_prefill(rows, shared, prefix, cache, width)
        else:
            logits = self.padded_prefill(rows, shared, valid, cache, extra)
        generated: list[list[int]] = [[] for _ in rows]
        alive = list(range(n))  # row index of each batch position
        for step in range(budget):
            token = logits.argmax(-1).tolist()
            keep = []
            for b, r in enumerate(alive):
                generated[r].append(token[b])
                if not (token[b] in self.eos or step + 1 == budget or stops.hit(r, generated[r])):
                    keep.append(b)
            if not keep:
                break
            if len(keep) < len(alive):  # finished rows leave: no more decode steps for them
                index = torch.tensor(keep, device=self.device)
                for layer in cache.layers:
                    layer.batch_select_indices(index)
                valid, next_pos = valid[keep], next_pos[keep]
                if prefix:
                    extra["cascade_prefix"] = prefix = prefix.select(keep)
                alive = [alive[b] for b in keep]
            valid = torch.cat([valid, torch.ones((len(alive), 1), dtype=torch.bool)], dim=1)
            step_ids = torch.tensor([[generated[r][-1]] for r in alive], device=self.device)
            logits = self.model(input_ids=step_ids, position_ids=next_pos[:, None].to(self.device),
                                attention_mask=self.mask(valid[:, None, :]), cache=cache, use_cache=True,
                                **extra).logits[:, -1]
            next_pos = next_pos + 1
        return generated

    def padded_prefill(self, rows, shared, valid, cache, extra: dict):
        """Feed the rows' suffixes left-padded to a common width, every row's last prompt
        token in the same slot; positions count as in the row's own unpadded prompt.
        Returns each row's last-position logits."""
        import torch

        n, width = len(rows), max(len(r) for r in rows)
        pmax = valid.shape[1] - width
        ids = torch.full((n, width), self.pad, dtype=torch.long)
        pos = torch.zeros((n, width), dtype=torch.long)
        for r, row in enumerate(rows):
            ids[r, width - len(row):] = torch.tensor(row)
            pos[r, width - len(row):] = torch.arange(shared[r], shared[r] + len(row))
        slots = torch.arange(pmax + width)
        query_slots = torch.arange(pmax, pmax + width)
        causal = slots[None, :] <= query_slots[:, None]
        # A padding query sees itself, so no softmax row is empty (NaN would reach the values).
        allowed = causal[None] & (valid[:, None, :] | (slots[None, :] == query_slots[:, None])[None])
        return self.model(input_ids=ids.to(self.device), position_ids=pos.to(self.device),
                          attention_mask=self.mask(allowed), cache=cache, use_cache=True, logits_to_keep=1,
                          **extra).logits[:, -1]

    def packed_prefill(self, rows, shared, prefix: CascadePrefix, cache, width: int):
        """Feed the rows' suffixes as one packed row, no padding (MGSM's questions vary
        2-4x in length: a left-padded batch fed ~40 % padding), each attending causally to
        itself and to the group's prefix; then lay each row's keys and values into its slab
        right-aligned at ``width``, as the padded pass would have. Returns each row's
        last-position logits."""
        import torch
        from transformers import DynamicCache

        ends = torch.tensor([len(r) for r in rows]).cumsum(0).tolist()
        segments = packed_segments(ends)
        ids = torch.tensor([[t for row in rows for t in row]], device=self.device)
        pos = torch.tensor([[p for r, row in enumerate(rows) for p in range(shared[r], shared[r] + len(row))]],
                           device=self.device)
        packed = DynamicCache()
        res = self.model(input_ids=ids, position_ids=pos, cache=packed, use_cache=True,
                         logits_to_keep=torch.tensor([e - 1 for e in ends], device=self.device),
                         cascade_prefix=CascadePrefix.one_row(prefix.kv[0], self.device),
                         cascade_segments=segments)
        for mine, theirs in zip(cache.layers, packed.layers):
            for r, (s, e, _) in enumerate(segments):
                mine.slab_keys[r, :, width - (e - s):width] = theirs.keys[0, :, s:e]
                mine.slab_values[r, :, width - (e - s):width] = theirs.values[0, :, s:e]
            mine.length = width
            mine.view()
        return res.logits[0]

    def cascade_prefix(self, kv: list) -> CascadePrefix | None:
        """The batch's prefixes, one per group of rows sharing one (None: no row has one)."""
        import torch

        groups: dict[int, list[int]] = {}
        for r, k in enumerate(kv):
            if k is not None:
                groups.setdefault(id(k), []).append(r)
        if not groups:
            return None
        return CascadePrefix([torch.tensor(rs, dtype=torch.long, device=self.device) for rs in groups.values()],
                             [kv[rs[0]] for rs in groups.values()])

    def slab_cache(self, kv: list, shared: list[int], capacity: int):
        """A cache for the batch, preallocated to ``capacity`` slots, holding each row's
        prefix right-aligned before the suffix area."""
        import torch
        from transformers.cache_utils import Cache

        cfg = self.model.config
        heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        pmax = max(shared)
        layers = []
        for i in range(cfg.num_hidden_layers):
            keys = torch.zeros((len(shared), heads, capacity, dim), dtype=self.model.dtype, device=self.device)
            values = torch.zeros_like(keys)
            for r, k in enumerate(kv):
                if k is not None:
                    keys[r, :, pmax - shared[r]:pmax] = k[i][0][0]
                    values[r, :, pmax - shared[r]:pmax] = k[i][1][0]
            layers.append(SlabLayer(keys, values, pmax))
        return Cache(layers=layers)

    def mask(self, allowed):
        """(rows, queries, keys) booleans → the 4-D mask the attention implementation takes."""
        import torch

        allowed = allowed[:, None].to(self.device)
        if self.sdpa:
            return allowed
        dtype = self.model.dtype
        return torch.zeros(allowed.shape, dtype=dtype, device=self.device).masked_fill(~allowed, torch.finfo(dtype).min)


def generate_plain(backend, requests: Sequence[GenerationRequest], enc: list[list[int]]) -> list[GenerationResult]:
    """``model.generate`` over whole prompts, left-padded; each sequence stops at its own stop
    strings (or EOS) and the batch ends when every sequence has. Batches mix requests with
    different stop strings; only the length, temperature and seed must agree."""
    import torch

    tok = backend.tokenizer
    pad = pad_id(tok)
    out: list[GenerationResult | None] = [None] * len(requests)
    # Group by decoding settings; longest prompts first.
    order = sorted(range(len(requests)), key=lambda i: (
        requests[i].max_new_tokens, requests[i].temperature, requests[i].seed, -len(enc[i]), i))
    i = 0
    while i < len(order):
        head = requests[order[i]]
        batch = [order[i]]
        while (len(batch) < backend.batch_size and i + len(batch) < len(order)
               and same_settings(requests[order[i + len(batch)]], head)):
            batch.append(order[i + len(batch)])
        i += len(batch)
        width = max(len(enc[j]) for j in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, j in enumerate(batch):  # left padding
            ids[r, width - len(enc[j]):] = torch.tensor(enc[j])
            mask[r, width - len(enc[j]):] = 1
        gen_kwargs = dict(max_new_tokens=head.max_new_tokens, pad_token_id=pad)
        if head.temperature > 0:
            torch.manual_seed(head.seed)
            gen_kwargs.update(do_sample=True, temperature=head.temperature, top_k=0, top_p=1.0)
        else:
            gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        stops = [requests[j].stop for j in batch]
        if any(stops):
            from transformers import StoppingCriteriaList

            gen_kwargs["stopping_criteria"] = StoppingCriteriaList([RowStops(tok, stops, width)])
        res = backend.model.generate(input_ids=ids.to(backend.device),
                                     attention_mask=mask.to(backend.device), **gen_kwargs)
        for r, j in enumerate(batch):
            out[j] = finish(tok, res[r, width:].tolist(), requests[j].stop)
    return out  # type: ignore[return-value]


def same_settings(a: GenerationRequest, b: GenerationRequest) -> bool:
    return (a.max_new_tokens, a.temperature, a.seed) == (b.max_new_tokens, b.temperature, b.seed)
