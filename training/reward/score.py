"""A reward model as a scorer of candidates: ``RewardModelScorer(path).score(prompts, candidates)``.

Scores follow the convention of :mod:`glotbench.training.reward.encode` (chat template,
no special tokens added twice, ``logits[:, 0]`` at the last real token). Rows are batched
longest-first and padded on the right by this module whatever the tokenizer's
``padding_side``: the classification head reads the rightmost non-pad token, and with causal
attention a right-padded row's score equals the unpadded row's. Scores are cached in the
request cache under a model key holding the RM's weights hash (tokenizer and chat template
included), dtype, device, max_length and the library versions, so a rerun computes nothing
it already has and a changed model never reuses a stale score. The model loads on the first
cache miss only. A non-finite logit (NaN or ±inf: a diverged or broken head) is no score at
all: it would win or lose every argmax, so it becomes None and is counted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError, ModelError
from glotbench.harness.core.hashing import dir_sha256, json_sha256
from glotbench.harness.core.versions import ANSWER_LIBRARIES, library_versions
from glotbench.harness.models.hf import HASHED_FILES
from glotbench.harness.run.cache import RequestCache
from glotbench.training.core.records import Candidate, Prompt
from glotbench.training.core.stage import MANIFEST
from glotbench.training.reward.encode import encode

SCORE_VERSION = 1
"""Bump when a change can alter a score for the same model and input (cache key)."""
RM_FILES = HASHED_FILES + ("chat_template.jinja", "chat_template.json")
DTYPES = ("float32", "bfloat16", "float16")


def trained_max_length(path: Path) -> int | None:
    """The ``max_length`` a glotbench-trained RM was trained with (its manifest), else None."""
    try:
        data = json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = (data.get("reward") or {}).get("max_length") if isinstance(data, dict) else None
    return value if isinstance(value, int) else None


class RewardModelScorer:
    """Scores (prompt, completion) pairs with a sequence-classification reward model.

    ``max_length`` None: the length the RM was trained with when its manifest says so (the
    sequences it knows), else no limit. A candidate whose prompt alone fills ``max_length``
    scores None (counted in ``stats["unscorable"]``), and so does a NaN or infinite output
    (``stats["non_finite"]``, counted per candidate scored, from the cache too)."""

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

    def score(self, prompts: Mapping[str, Prompt], candidates: Sequence[Candidate]) -> list[float | None]:
        """One score per candidate, in order (None: could not be scored)."""
        missing = sorted({c.prompt_id for c in candidates} - set(prompts))
        if missing:
            raise GlotbenchError(f"{len(missing)} candidate(s) have no prompt (e.g. {missing[0]!r})",
                                 "pass the prompts every candidate answers")
        keys = [json_sha256(["rm-score", [[m.role, m.content] for m in prompts[c.prompt_id].messages],
                             c.completion]) for c in candidates]
        found = self.cache.get_many(self.model_key, list(dict.fromkeys(keys)))
        self.stats["cached"] += sum(k in found for k in keys)
        todo = {k: c for k, c in zip(keys, candidates) if k not in found}
        if todo:
            found.update(self._compute(prompts, todo))
        scores = []
        for k in keys:
            value = found[k]["score"]
            # A cache written before non-finite outputs were refused may still hold one.
            if found[k].get("non_finite") or (value is not None and not math.isfinite(value)):
                self.stats["non_finite"] += 1
                value = None
            scores.append(value)
        return scores

    def _compute(self, prompts: Mapping[str, Prompt], todo: dict[str, Candidate]) -> dict[str, dict]:
        import torch

        model, tok = self._load()
        rows: list[tuple[str, tuple[int, ...]]] = []
        out: dict[str, dict] = {}
        for key, cand in todo.items():
            enc = encode(tok, prompts[cand.prompt_id].messages, cand.completion, self.max_length)
            if enc.ids is None:
                out[key] = {"score": None, "why": f"prompt of {enc.prompt_length} tokens fills max_length"}
                self.stats["unscorable"] += 1
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
