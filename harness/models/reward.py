"""A scalar reward model as a scorer of (prompt turns, completion) conversations: the one
tokenisation convention and the one batched, cached scorer, shared by the judge
(``glotbench judge --judge rm:<dir>``) and by training (reward-model training, arbitrage,
held-out accuracy), which imports it from here: the harness never imports training/.

Convention (shared by trl's RewardTrainer, OpenRLHF and verl): the RM tokenizer's chat
template applied to ``[*prompt messages, {assistant: completion}]``, the rendered text
tokenized *without* adding special tokens again (the template already holds BOS/EOS where
the model expects them; a second BOS would shift every score), and the score is
``logits[:, 0]`` of ``AutoModelForSequenceClassification`` at the last real token.

Rows are batched longest-first and padded on the right by this module whatever the
tokenizer's ``padding_side``: the classification head reads the rightmost non-pad token, and
with causal attention a right-padded row's score equals the unpadded row's. Scores are
cached in the request cache under a model key holding the RM's weights hash (tokenizer and
chat template included), dtype, device, max_length and the library versions, so a rerun
computes nothing it already has and a changed model never reuses a stale score; the model
loads on the first cache miss only. A non-finite logit (NaN or ±inf: a diverged or broken
head) is no score at all: it becomes None and is counted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError, ModelError
from glotbench.harness.core.hashing import dir_sha256, json_sha256
from glotbench.harness.core.records import ChatMessage
from glotbench.harness.core.versions import ANSWER_LIBRARIES, library_versions
from glotbench.harness.models.hf import HASHED_FILES
from glotbench.harness.run.cache import RequestCache
from glotbench.harness.run.provenance import TRAINING_MANIFEST

SCORE_VERSION = 1
"""Bump when a change can alter a score for the same model and input (cache key)."""
RM_FILES = HASHED_FILES + ("chat_template.jinja", "chat_template.json")
DTYPES = ("float32", "bfloat16", "float16")
Conversation = tuple[Sequence[ChatMessage], str]
"""What is scored: the prompt's turns and the completion (the assistant turn)."""


@dataclass(frozen=True)
class Encoded:
    """A conversation's token ids, fitted to a length limit."""

    ids: tuple[int, ...] | None
    """The ids to score; None when the prompt alone fills the limit (no completion token left)."""
    full_length: int
    """Tokens before any truncation."""
    prompt_length: int
    """Tokens of the prompt part (the template up to where the completion starts)."""

    @property
    def truncated(self) -> bool:
        return self.ids is not None and len(self.ids) < self.full_length


def conversation(messages: Sequence[ChatMessage], completion: str) -> list[dict[str, str]]:
    """The chat-template input: the prompt's turns and the completion as the assistant turn."""
    return [{"role": m.role, "content": m.content} for m in messages] + [{"role": "assistant",
                                                                           "content": completion}]


def token_ids(tokenizer, messages: Sequence[ChatMessage], completion: str) -> list[int]:
    """Token ids of the whole conversation by the convention (no special tokens added twice)."""
    text = tokenizer.apply_chat_template(conversation(messages, completion), tokenize=False)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def prompt_length(tokenizer, messages: Sequence[ChatMessage], ids: Sequence[int]) -> int:
    """How many leading ``ids`` the prompt accounts for: the longest common prefix with the
    prompt rendered with the generation prompt (some templates render the assistant header
    differently once the answer follows, so the prefix is measured, not assumed)."""
    text = tokenizer.apply_chat_template([{"role": m.role, "content": m.content} for m in messages],
                                         tokenize=False, add_generation_prompt=True)
    prompt = tokenizer(text, add_special_tokens=False)["input_ids"]
    n = 0
    for a, b in zip(prompt, ids):
        if a != b:
            break
        n += 1
    return n


def encode(tokenizer, messages: Sequence[ChatMessage], completion: str, max_length: int | None) -> Encoded:
    """The conversation's ids cut to ``max_length`` keeping the start (the prompt and the first
    tokens of the answer: what a judge reads first); ``ids`` None when the prompt leaves no room
    for a single completion token (scoring it would score the prompt alone)."""
    ids = token_ids(tokenizer, messages, completion)
    if max_length is None or len(ids) <= max_length:
        return Encoded(tuple(ids), len(ids), prompt_length(tokenizer, messages, ids))
    plen = prompt_length(tokenizer, messages, ids)
    if plen >= max_length:
        return Encoded(None, len(ids), plen)
    return Encoded(tuple(ids[:max_length]), len(ids), plen)


def trained_max_length(path: Path) -> int | None:
    """The ``max_length`` a glotbench-trained RM was trained with (its manifest), else None."""
    try:
        data = json.loads((Path(path) / TRAINING_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = (data.get("reward") or {}).get("max_length") if isinstance(data, dict) else None
    return value if isinstance(value, int) else None


class RewardScorer:
    """Scores (prompt turns, completion) conversations with a sequence-classification reward model.

    ``max_length`` None: the length the RM was trained with when its manifest says so (the
    sequences it knows), else no limit. A conversation whose prompt alone fills ``max_length``
    scores None (``stats["unscorable"]``), and so does a NaN or infinite output
    (``stats["non_finite"]``); both are counted per conversation scored, from the cache too.
    ``truncated`` counts the conversations cut to ``max_length`` among those computed now."""

    def __init__(self, path: Path, *, batch_size: int = 8, device: str = "cpu", dtype: str = "float32",
                 max_length: int | None = None, cache: RequestCache | None = None):
        self.path = Path(path)
        if not self.path.is_dir() or not (self.path / "config.json").is_file():
            raise ModelError(f"reward model {self.path} is not a checkpoint directory (no config.json)",
                             "train one with: glotbench train reward CONFIG.yaml -o DIR")
        if not any(self.path.glob("*.safetensors")) and not any(self.path.glob("*.bin")):
            raise ModelError(f"reward model {self.path} has no weights (*.safetensors)", "give a complete checkpoint")
        if dtype not in DTYPES:
            raise GlotbenchError(f"reward model dtype {dtype!r} is not supported", f"use one of {', '.join(DTYPES)}")
        if batch_size < 1:
            raise GlotbenchError(f"reward model batch_size must be positive, not {batch_size}", "e.g. 8")
        if max_length is not None and max_length < 1:
            raise GlotbenchError(f"reward model max_length must be positive, not {max_length}", "e.g. 1024")
        self.batch_size, self.device, self.dtype = batch_size, device, dtype
        self.max_length = max_length if max_length is not None else trained_max_length(self.path)
        versions = library_versions(ANSWER_LIBRARIES)
        self.identity = {"kind": "reward_model", "path": str(self.path),
                         "weights_sha256": dir_sha256(self.path, RM_FILES), "dtype": dtype, "device": device,
                         "max_length": self.max_length, "score_version": SCORE_VERSION, "versions": versions}
        self.model_key = "|".join(["rm", self.identity["weights_sha256"], dtype, device, f"max{self.max_length}",
                                   f"v{SCORE_VERSION}", *(f"{k}={v}" for k, v in sorted(versions.items()))])
        self.cache = cache if cache is not None else RequestCache()
        self.stats = {"cached": 0, "computed": 0, "unscorable": 0, "truncated": 0, "non_finite": 0}
        self._model = None
        self._tokenizer = None

    def check(self) -> None:
        """Refuse, before anything is scored, a checkpoint that cannot be a scalar reward model:
        an unreadable config, not exactly one label, a tokenizer without a chat template (the
        convention needs one). Cheap: reads the config and the tokenizer, never the weights."""
        from transformers import AutoConfig, AutoTokenizer

        fix = "give a sequence-classification checkpoint with one label and a chat template"
        try:
            config = AutoConfig.from_pretrained(self.path)
            tok = AutoTokenizer.from_pretrained(self.path)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ModelError(f"cannot read reward model {self.path}: {str(exc).splitlines()[0][:160]}", fix) from None
        if config.num_labels != 1:
            raise ModelError(f"reward model {self.path} has {config.num_labels} labels, not 1", fix)
        if not getattr(tok, "chat_template", None):
            raise ModelError(f"reward model {self.path} has no chat template", fix)

    def key(self, messages: Sequence[ChatMessage], completion: str) -> str:
        """The cache key of one conversation (the model is in the cache's model key)."""
        return json_sha256(["rm-score", [[m.role, m.content] for m in messages], completion])

    def score(self, conversations: Sequence[Conversation]) -> list[float | None]:
        """One score per conversation, in order (None: could not be scored). Repeated
        conversations are computed once."""
        keys = [self.key(messages, completion) for messages, completion in conversations]
        found = self.cache.get_many(self.model_key, list(dict.fromkeys(keys)))
        self.stats["cached"] += sum(k in found for k in keys)
        todo = {k: conv for k, conv in zip(keys, conversations) if k not in found}
        if todo:
            found.update(self._compute(todo))
        scores = []
        for k in keys:
            value = found[k]["score"]
            # A cache written before non-finite outputs were refused may still hold one.
            if found[k].get("non_finite") or (value is not None and not math.isfinite(value)):
                self.stats["non_finite"] += 1
                value = None
            elif value is None:  # the prompt fills max_length: counted from the cache too
                self.stats["unscorable"] += 1
            scores.append(value)
        return scores

    def why(self, messages: Sequence[ChatMessage], completion: str) -> str | None:
        """Why a conversation scored None (from the cache), or None when it has a score or none yet."""
        key = self.key(messages, completion)
        return self.cache.get_many(self.model_key, [key]).get(key, {}).get("why")

    def _compute(self, todo: dict[str, Conversation]) -> dict[str, dict]:
        import torch

        model, tok = self._load()
        rows: list[tuple[str, tuple[int, ...]]] = []
        out: dict[str, dict] = {}
        for key, (messages, completion) in todo.items():
            enc = encode(tok, messages, completion, self.max_length)
            if enc.ids is None:
                out[key] = {"score": None, "why": f"the prompt's {enc.prompt_length} tokens fill max_length "
                                                  f"{self.max_length}"}
            else:
                rows.append((key, enc.ids))
                self.stats["truncated"] += enc.truncated
        self.cache.put_many(self.model_key, list(out.items()))
        rows.sort(key=lambda r: -len(r[1]))  # similar lengths together: less padding
        pad = model.config.get_text_config().pad_token_id
        for i in range(0, len(rows), self.batch_size):
            batch = rows[i:i + self.batch_size]
            width = len(batch[0][1])
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for j, (_, seq) in enumerate(batch):
                ids[j, :len(seq)] = torch.tensor(seq)
                mask[j, :len(seq)] = 1
            with torch.inference_mode():
                logits = model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
            done = [(key, {"score": float(v)} if math.isfinite(v) else
                     {"score": None, "non_finite": True, "why": f"the model's output is {v}"})
                    for (key, _), v in zip(batch, logits[:, 0].float().cpu().tolist())]
            self.cache.put_many(self.model_key, done)  # per batch: an interrupted run keeps what it finished
            out.update(done)
            self.stats["computed"] += len(done)
        return out

    def _load(self):
        if self._model is None:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            try:
                tok = AutoTokenizer.from_pretrained(self.path)
                model = AutoModelForSequenceClassification.from_pretrained(self.path,
                                                                           dtype=getattr(torch, self.dtype))
            except (OSError, ValueError) as exc:
                raise ModelError(f"cannot load reward model {self.path}: {str(exc).splitlines()[0][:160]}",
                                 "give a sequence-classification checkpoint with its tokenizer") from None
            if model.config.num_labels != 1:
                raise ModelError(f"reward model {self.path} has {model.config.num_labels} labels, not 1",
                                 "give a reward model (one output)")
            text_config = model.config.get_text_config()
            if text_config.pad_token_id is None:  # as trl does: the pad token, else EOS
                text_config.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
            self._model, self._tokenizer = model.to(self.device).eval(), tok
        return self._model, self._tokenizer
