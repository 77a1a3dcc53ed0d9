"""transformers backend: log-likelihoods with shared-prefix KV reuse, batched generation.

Tokenisation reproduces lm-eval 0.4.13's ``HFLM`` exactly (tokens.py, shared with the vLLM
backend), so per-example log-likelihoods match lm-eval's to float precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError, ModelError
from glotbench.harness.core.hashing import dir_sha256
from glotbench.harness.core.paths import hub_offline
from glotbench.harness.core.records import (
    ChatMessage,
    GenerationRequest,
    GenerationResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
)
from glotbench.harness.core.versions import ANSWER_LIBRARIES, library_versions
from glotbench.harness.models.cascade import CascadePrefix, cascade, packed_segments
from glotbench.harness.models.cascade import supported as cascade_supported
from glotbench.harness.models.prefix import Call, Group, cached_shared, plan_calls, plan_groups
from glotbench.harness.models.prefix import Sequence as TokSeq
from glotbench.harness.models.protocol import ModelIdentity
from glotbench.harness.models.tokens import PairEncoder

# Every file that can change an answer: weights, the model config, the tokenizer (fast, slow
# and sentencepiece forms, special and added tokens) and the generation defaults.
HASHED_FILES = ("*.safetensors", "*.bin", "config.json", "generation_config.json", "tokenizer*",
                "special_tokens_map.json", "added_tokens.json", "vocab.*", "merges.txt", "*.model",
                "*.tiktoken")
DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise GlotbenchError("--device cuda was asked for but no CUDA device is visible",
                             "use --device cpu, or check CUDA_VISIBLE_DEVICES and the torch build")
    if device not in ("cpu", "cuda"):
        raise GlotbenchError(f"unknown device {device!r}", "use --device cpu, cuda or auto")
    return device


def hardware(device: str) -> str:
    """The compute class answers depend on: the GPU's name, or the vector instruction set
    torch's CPU kernels dispatch to."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu:{torch.backends.cpu.get_cpu_capability()}"


def hub_snapshot(repo_id: str, commit: str | None) -> Path:
    """The local directory a hub model was just loaded from (its snapshot in the Hugging Face
    cache), so that its files are hashed like a local model's.

    Identified by content, not by name and commit: a hub id is mutable, and a snapshot whose
    commit cannot be resolved (``commit`` None) would otherwise share cache entries across
    revisions. The blobs are hashed once (memoised on path, size and mtime)."""
    from transformers.utils.hub import cached_file

    try:
        config = cached_file(repo_id, "config.json", revision=commit, local_files_only=True)
    except (OSError, ValueError):  # huggingface_hub's "not in the local cache" errors
        config = None
    if not config:
        raise ModelError(f"cannot find the files of hub model {repo_id!r} in the local Hugging Face "
                         "cache to identify them", f"download it (hf download {repo_id} --local-dir DIR) "
                         "and pass --model hf:DIR")
    return Path(config).parent


class HFBackend:
    """A transformers causal LM on one device."""

    def __init__(self, path: str, *, name: str | None = None, device: str = "auto",
                 dtype: str = "auto", batch_size: int = 16, max_batch_tokens: int | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        if dtype not in DTYPES:
            raise GlotbenchError(f"unknown dtype {dtype!r}", f"use one of {', '.join(DTYPES)}")
        if batch_size < 1:
            raise GlotbenchError(f"batch size must be >= 1, got {batch_size}", "pass --batch-size 1 or more")
        self.device = resolve_device(device)
        self.batch_size = batch_size
        # Tokens per packed row, and rows per forward pass. On CPU one row of <= 1024 tokens
        # measured fastest (matmuls saturate near 500 tokens; padding several rows cost more
        # than the quadratic attention over one); on GPU, several rows per call pay off.
        self.row_tokens = max_batch_tokens or (1024 if self.device == "cpu" else 2048)
        self.max_rows = 1 if self.device == "cpu" else 8
        self._head_only: bool | None = None
        local = Path(path).expanduser()
        looks_local = path.startswith(("/", ".", "~")) or local.exists()
        if looks_local and not local.is_dir():
            raise ModelError(f"model directory {path!r} does not exist",
                             "pass an existing transformers model directory: --model hf:/path/to/model")
        if looks_local and not (local / "config.json").is_file():
            raise ModelError(f"{path!r} is not a transformers model directory (no config.json)",
                             "point --model hf: at the directory holding config.json and the weights")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(local) if local.exists() else path)
            source = str(local) if local.exists() else path
            # "auto" keeps the checkpoint's dtype, as lm-eval does.
            torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
            try:
                # Packed scoring passes custom 4-D masks: sdpa and eager accept them.
                self.model = AutoModelForCausalLM.from_pretrained(
                    source, dtype=torch_dtype, attn_implementation="sdpa")
            except ValueError as exc:
                if "sdpa" not in str(exc).lower():
                    raise
                self.model = AutoModelForCausalLM.from_pretrained(
                    source, dtype=torch_dtype, attn_implementation="eager")
        except (OSError, ValueError) as exc:
            offline = hub_offline() or "offline" in str(exc).lower() or "connect" in str(exc).lower()
            where = "a local directory" if local.exists() else (
                "not a local directory, and the hub could not be reached" if offline
                else "not a local directory, and not a loadable hub id")
            raise ModelError(f"cannot load model {path!r}: {where} ({_first_line(exc)})",
                             "pass a transformers model directory: --model hf:/path/to/model") from None
        self.model.to(self.device).eval()
        self.max_length = int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)
        files = local if local.exists() else hub_snapshot(path, getattr(self.model.config, "_commit_hash", None))
        self.identity = ModelIdentity(
            backend="hf", name=name or path, weights_sha256=dir_sha256(files, HASHED_FILES),
            dtype=str(self.model.dtype).removeprefix("torch."), device=self.device,
            hardware=hardware(self.device), attn_implementation=self.model.config._attn_implementation,
            libraries=library_versions(ANSWER_LIBRARIES),
        )
        self.encoder = PairEncoder(self.tokenizer, self.max_length)
        self.prefix_token_id = self.encoder.prefix_token_id

    def release(self) -> None:
        """Free the weights (the tokenizer stays): makes room on the GPU for a later stage
        such as xCOMET; the backend cannot score or generate afterwards."""
        import gc

        import torch

        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ---- tokenisation (lm-eval's conventions: tokens.py) ---------------------------
    def _encode(self, text: str) -> list[int]:
        return self.encoder.encode(text)

    def encode_pair(self, context: str, continuation: str) -> TokSeq:
        return self.encoder.encode_pair(context, continuation)

    # ---- log-likelihood ----------------------------------------------------------
    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        """Score requests in packed rows: each group's shared prefix appears once, followed by
        its members' suffixes; a 4-D mask lets every suffix see only the prefix and itself,
        and position ids restart so each token sits where it would in its own sequence."""
        import torch

        seqs = [self.encode_pair(r.context, r.continuation) for r in requests]
        groups = plan_groups(seqs)
        out: list[LoglikelihoodResult | None] = [None] * len(seqs)
        prefix_kv: tuple[int, list] | None = None
        with torch.inference_mode():
            for call in plan_calls(seqs, groups, row_tokens=self.row_tokens, max_rows=self.max_rows,
                                   max_requests=self.batch_size):
                kv = None
                if call.cached_prefix is not None:
                    # Calls of one big group come in a row: compute its prefix once.
                    if prefix_kv is None or prefix_kv[0] != call.cached_prefix:
                        prefix_kv = (call.cached_prefix, self._prefix_kv(seqs, groups[call.cached_prefix]))
                    kv = prefix_kv[1]
                self._run_call(seqs, groups, call, kv, out)
        return out  # type: ignore[return-value]

    def _prefix_kv(self, seqs: list[TokSeq], group: Group) -> list:
        import torch

        shared = cached_shared(seqs, group)
        ids = torch.tensor([seqs[group.members[0]].tokens[:shared]], device=self.device)
        res = self.model(input_ids=ids, use_cache=True, logits_to_keep=1)
        return [(layer.keys, layer.values) for layer in res.cache.layers]

    def _run_call(self, seqs: list[TokSeq], groups: list[Group], call: Call, kv, out: list) -> None:
        import torch

        rows = [self._layout_row(seqs, groups, row, cached=kv is not None) for row in call.rows]
        width = max(len(r["ids"]) for r in rows)
        n_rows = len(rows)
        ids = torch.zeros((n_rows, width), dtype=torch.long)
        pos = torch.zeros((n_rows, width), dtype=torch.long)
        allowed = torch.zeros((n_rows, width, width), dtype=torch.bool)
        for i, r in enumerate(rows):
            n = len(r["ids"])
            ids[i, :n] = torch.tensor(r["ids"])
            pos[i, :n] = torch.tensor(r["pos"])
            blk = torch.tensor(r["block"])
            mem = torch.tensor(r["member"])
            allowed[i, :n, :n] = torch.ones(n, n, dtype=torch.bool).tril() & (blk[:, None] == blk[None, :]) \
                & ((mem[None, :] == -1) | (mem[:, None] == mem[None, :]))
            allowed[i, n:, n:] = torch.eye(width - n, dtype=torch.bool)  # padding sees itself only
        kwargs = {}
        if n_rows == 1 and cascade_supported(self.model):
            # CPU: attention within each question's block only (cascade.py), the cached
            # prefix read once as the row's shared prefix instead of through the cache.
            blk = rows[0]["block"]
            ends = [i for i in range(1, len(blk)) if blk[i] != blk[i - 1]] + [len(blk)]
            kwargs["cascade_segments"] = packed_segments(ends, allowed[0].to(self.device), self.model.dtype)
            if kv is not None:
                kwargs["cascade_prefix"] = CascadePrefix.one_row(kv, self.device)
        elif kv is not None:
            from transformers import DynamicCache

            # A fresh cache per call (the model appends this call's keys to it), holding the
            # prefix's keys and values broadcast over the rows without a copy.
            kwargs["cache"] = DynamicCache(
                ddp_cache_data=[(k.expand(n_rows, -1, -1, -1), v.expand(n_rows, -1, -1, -1)) for k, v in kv])
            allowed = torch.cat([torch.ones(n_rows, width, kv[0][0].shape[2], dtype=torch.bool), allowed], dim=2)
        keep_rows = torch.tensor([i for i, r in enumerate(rows) for _ in r["keep"]], device=self.device)
        keep_cols = torch.tensor([c for r in rows for c in r["keep"]], device=self.device)
        logp = self._kept_logprobs(ids, pos, self._mask(allowed), keep_rows, keep_cols, kwargs)
        start = 0
        for r in rows:
            for m, n_targets in r["spans"]:
                seq = seqs[m]
                targets = torch.tensor(seq.tokens[seq.n_context:], device=self.device)
                lp = logp[start:start + n_targets]
                start += n_targets
                picked = lp.gather(1, targets[:, None]).squeeze(1)
                greedy = bool((lp.argmax(-1) == targets).all())
                # Summed in float32, like lm-eval, so the two agree to the last bits we can.
                out[m] = LoglikelihoodResult(float(picked.sum()), greedy, n_targets)

    @staticmethod
    def _layout_row(seqs, groups, blocks, cached: bool) -> dict:
        """Token ids, positions, block/member ids and scored positions of one packed row."""
        r = {"ids": [], "pos": [], "block": [], "member": [], "keep": [], "spans": []}
        for b, block in enumerate(blocks):
            g = groups[block.group]
            # Tokens before `base` are in the key/value cache; [base, shared) is this block's
            # own prefix, laid out once and seen by all its members.
            base = cached_shared(seqs, g) if cached else 0
            shared = block.shared if block.shared is not None else (base if cached else g.shared)
            prefix_at = len(r["ids"])
            if shared > base:
                r["ids"] += seqs[block.members[0]].tokens[base:shared]
                r["pos"] += range(base, shared)
                r["block"] += [b] * (shared - base)
                r["member"] += [-1] * (shared - base)
            for m in block.members:
                seq = seqs[m]
                suffix = seq.tokens[shared:-1]
                suffix_at = len(r["ids"])
                n_targets = len(seq.tokens) - seq.n_context
                r["spans"].append((m, n_targets))
                # Fed position q predicts token q + 1; it sits in the prefix or the suffix.
                r["keep"] += [prefix_at + q - base if q < shared else suffix_at + q - shared
                              for q in range(seq.n_context - 1, len(seq.tokens) - 1)]
                r["ids"] += suffix
                r["pos"] += range(shared, shared + len(suffix))
                r["block"] += [b] * len(suffix)
                r["member"] += [m] * len(suffix)
        return r

    def _kept_logprobs(self, ids, pos, mask, keep_rows, keep_cols, kwargs):
        """Log-softmax at the scored positions only.

        The LM head is applied to the kept hidden states alone when that reproduces the
        model's own logits (checked once: models that scale or soft-cap logits fail the
        check and take the full path)."""

        ids, pos = ids.to(self.device), pos.to(self.device)
        use_cache = "cache" in kwargs
        if self._head_only is None:
            self._head_only = self._check_head_only()
        with cascade(self.model) if "cascade_segments" in kwargs else nullcontext():
            return self._logprobs_at(ids, pos, mask, keep_rows, keep_cols, use_cache, kwargs)

    def _logprobs_at(self, ids, pos, mask, keep_rows, keep_cols, use_cache, kwargs):
        import torch

        if self._head_only:
            base = getattr(self.model, self.model.base_model_prefix)
            hidden = base(input_ids=ids, position_ids=pos, attention_mask=mask, use_cache=use_cache,
                          **kwargs).last_hidden_state
            logits = self.model.get_output_embeddings()(hidden[keep_rows, keep_cols])
        else:
            logits = self.model(input_ids=ids, position_ids=pos, attention_mask=mask,
                                use_cache=use_cache, **kwargs).logits[keep_rows, keep_cols]
        return torch.log_softmax(logits.float(), dim=-1)

    def _check_head_only(self) -> bool:
        import torch

        ids = torch.tensor([[self.prefix_token_id] * 4], device=self.device)
        full = self.model(input_ids=ids).logits[0, -1]
        try:
            base = getattr(self.model, self.model.base_model_prefix)
            head = self.model.get_output_embeddings()(base(input_ids=ids).last_hidden_state[0, -1])
        except Exception:  # noqa: BLE001 - any mismatch in structure means: use the full path
            return False
        # Equal up to float noise (the matmul shapes differ); a scaled or capped head is far off.
        return bool(torch.allclose(full, head, rtol=1e-4, atol=1e-4))

    def _mask(self, allowed):
        """4-D mask in the form the attention implementation expects."""
        import torch

        allowed = allowed[:, None].to(self.device)  # (rows, 1, queries, keys)
        if self.model.config._attn_implementation == "sdpa":
            return allowed
        additive = torch.zeros(allowed.shape, dtype=self.model.dtype, device=self.device)
        return additive.masked_fill(~allowed, torch.finfo(self.model.dtype).min)

    # ---- generation ---------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Batched generation; each sequence stops at its own stop strings (or EOS). Greedy
        requests reuse the key/value cache of a prompt prefix shared by many of them (a
        language's few-shot block) and drop finished rows from the batch; sampled ones run
        whole left-padded prompts through ``model.generate`` (hf_generate.py)."""
        from glotbench.harness.models.hf_generate import generate

        return generate(self, requests)

    @property
    def chat_template(self) -> str | None:
        """The model's chat template (None: a base model without one)."""
        return self.encoder.chat_template

    def apply_chat_template(self, messages: Sequence[ChatMessage]) -> str:
        return self.encoder.apply_chat_template(messages, self.identity.name)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
