"""Teachers: who answers the prompts. Three kinds behind one call, ``candidates(prompts)``:

- a model glotbench generates with (``embedded``, ``hf:<dir>``): the transformers backend,
  through the runner's request cache (keyed by the model's identity and the full request),
  committed in chunks, so an interrupted arbitrage resumes without regenerating anything;
- an OpenAI-compatible endpoint (``openai:<model>``, ``base_url``): the one OpenAI-protocol
  client (its retries, concurrency and rpm/tpm limiter), every reply cached the same way;
- a file of published completions: AlpacaEval annotations or outputs (a JSON array with
  ``instruction`` and ``output``/``output_1``/``output_2`` per ``generator``), arena-hard
  ``model_answer`` lines or ``{prompt_id, response}`` lines (import-answers' reader).

Sample ``k`` of a sampled teacher uses seed ``seed + k``. A prompt a published file does not
answer is counted in ``missing``, never invented.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import file_sha256, json_sha256
from glotbench.harness.core.records import ChatMessage, GenerationRequest
from glotbench.harness.run.cache import RequestCache, request_key
from glotbench.harness.store.importers import read_answers
from glotbench.training.arbitrage.config import TeacherConfig
from glotbench.training.core.records import Candidate, Prompt
from glotbench.training.data.prompts import source_id

CHUNK = 16  # generations committed to the cache at a time: what a kill -9 loses at most


@dataclass
class TeacherRun:
    """What one teacher produced for a set of prompts."""

    candidates: list[Candidate]
    identity: dict
    computed: int = 0
    """Completions generated now (not from the cache, not published)."""
    from_cache: int = 0
    missing: list[str] = field(default_factory=list)
    """Prompt ids a published file does not answer."""
    tokens: int = 0
    """Completion tokens of the candidates (generated or cached; 0 for published)."""
    lengths: list[int | None] = field(default_factory=list)
    """Completion tokens of each candidate, in order (None: published, or a server that did not say)."""


class Published:
    """Completions from a file; matched to prompts by text, id or parallel source id."""

    def __init__(self, cfg: TeacherConfig):
        self.cfg = cfg
        path = Path(cfg.published)
        if not path.is_file():
            raise GlotbenchError(f"teacher {cfg.name}: published file {path} does not exist",
                                 "fix the path (relative to the working directory, the config or the repository)")
        self.by_id, self.by_text = _read_published(path, cfg)
        self.identity = {"kind": "published", "name": cfg.name, "file": str(path), "sha256": file_sha256(path),
                         "generator": cfg.generator, "match": cfg.match}

    def run(self, prompts: Sequence[Prompt], cache: RequestCache, progress: Callable[[int], None]) -> TeacherRun:
        out = TeacherRun([], self.identity)
        for p in prompts:
            if self.cfg.match == "text":
                text = self.by_text.get(p.text.strip())
            else:
                text = self.by_id.get(p.prompt_id if self.cfg.match == "id" else source_id(p))
            if text is None:
                out.missing.append(p.prompt_id)
            else:
                out.candidates.append(Candidate(p.prompt_id, p.language, self.cfg.name, 0, text, None))
                out.lengths.append(None)
            progress(1)
        return out


def _read_published(path: Path, cfg: TeacherConfig) -> tuple[dict[str, str], dict[str, str]]:
    """(answers by id, answers by prompt text) of a published file."""
    head = path.read_text(encoding="utf-8", errors="replace").lstrip()[:1]
    if head != "[":  # JSON lines: arena-hard model_answer or {prompt_id, response}
        answers, _, _ = read_answers(path)
        return ({pid: r for pid, (r, _) in answers.items()},
                {p.strip(): r for _, (r, p) in answers.items() if p is not None})
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise GlotbenchError(f"teacher {cfg.name}: {path} is not a JSON array ({exc})",
                             "give AlpacaEval annotations/outputs, arena-hard answers or {prompt_id, response} lines") from None
    by_id, by_text, generators = {}, {}, set()
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or "instruction" not in row:
            raise GlotbenchError(f"teacher {cfg.name}: {path} item {i} has no instruction",
                                 "give an AlpacaEval annotations or outputs file")
        found = [(row.get(f"generator{s}"), row.get(f"output{s}")) for s in ("", "_1", "_2") if f"output{s}" in row]
        generators.update(g for g, _ in found)
        pick = [o for g, o in found if cfg.generator in (None, g)]
        if cfg.generator is None and len(found) > 1:
            raise GlotbenchError(f"teacher {cfg.name}: {path} holds outputs of several models "
                                 f"({', '.join(sorted(map(str, generators)))})", "pick one with generator: NAME")
        if pick:
            by_id[f"alpaca-{i}"] = str(pick[0])
            by_text[str(row["instruction"]).strip()] = str(pick[0])
    if not by_id:
        raise GlotbenchError(f"teacher {cfg.name}: {path} has no outputs of generator {cfg.generator!r}",
                             f"use one of: {', '.join(sorted(map(str, generators)))}")
    return by_id, by_text


class Generating:
    """A model glotbench generates with, through the request cache."""

    def __init__(self, cfg: TeacherConfig, *, device: str, dtype: str, batch_size: int):
        from glotbench.harness.models.loader import load_backend

        self.cfg = cfg
        self.backend = load_backend(cfg.model, device=device, dtype=dtype, batch_size=batch_size)
        if self.backend.chat_template is None:
            raise GlotbenchError(f"teacher {cfg.name}: {cfg.model} has no chat template",
                                 "use an instruction-tuned model with a chat template")
        self.key = self.backend.identity.cache_key
        self.identity = {"kind": "model", "name": cfg.name, "model": cfg.model,
                         **{k: v for k, v in asdict(self.backend.identity).items() if k != "name"},
                         "decoding": _decoding(cfg)}

    def run(self, prompts: Sequence[Prompt], cache: RequestCache, progress: Callable[[int], None]) -> TeacherRun:
        jobs = [(p, k, GenerationRequest(self.backend.apply_chat_template(p.messages),
                                         max_new_tokens=self.cfg.max_new_tokens,
                                         temperature=self.cfg.temperature, seed=self.cfg.seed + k))
                for p in prompts for k in range(self.cfg.samples)]
        keys = [request_key(r) for _, _, r in jobs]
        found = cache.get_many(self.key, keys)
        out = TeacherRun([], self.identity, from_cache=sum(k in found for k in keys))
        progress(out.from_cache)
        # Chunks are fixed slices of the whole job list, committed whole: after a kill a chunk
        # is either cached or recomputed with the same batch mates, so a sampled completion
        # (seeded per batch by the backend) is the one an uninterrupted run gives.
        for c in range(0, len(jobs), CHUNK):
            chunk = list(range(c, min(c + CHUNK, len(jobs))))
            if all(keys[i] in found for i in chunk):
                continue
            results = self.backend.generate([jobs[i][2] for i in chunk])
            new = [(keys[i], asdict(r)) for i, r in zip(chunk, results) if keys[i] not in found]
            cache.put_many(self.key, new)
            found.update(new)
            out.computed += len(new)
            progress(len(new))
        for (p, k, _), key in zip(jobs, keys):
            res = found[key]
            out.tokens += res["n_tokens"]
            out.lengths.append(res["n_tokens"])
            out.candidates.append(Candidate(p.prompt_id, p.language, self.cfg.name, k, res["text"],
                                            "length" if res["finish"] == "length" else "stop"))
        return out


class Served:
    """An OpenAI-compatible endpoint, through the one OpenAI-protocol client."""

    def __init__(self, cfg: TeacherConfig):
        from glotbench.harness.models.openai_client import OpenAIClient

        self.cfg = cfg
        self.client = OpenAIClient(cfg.model.removeprefix("openai:"), base_url=cfg.base_url, rpm=cfg.rpm,
                                   tpm=cfg.tpm, concurrency=cfg.concurrency, price=cfg.price)
        self.identity = {"kind": "openai", "name": cfg.name, **self.client.describe(), "decoding": _decoding(cfg)}

    def run(self, prompts: Sequence[Prompt], cache: RequestCache, progress: Callable[[int], None]) -> TeacherRun:
        return asyncio.run(self._run(prompts, cache, progress))

    async def _run(self, prompts, cache, progress) -> TeacherRun:
        from glotbench.harness.core.retry import RetriesExhausted
        from glotbench.harness.models.openai_client import UnreadableReply

        who = self.client.identity
        jobs = [(p, k, json_sha256(["teacher", [[m.role, m.content] for m in p.messages], self.cfg.temperature,
                                    self.cfg.max_new_tokens, self.cfg.seed + k]))
                for p in prompts for k in range(self.cfg.samples)]
        found = cache.get_many(who, [key for _, _, key in jobs])
        out = TeacherRun([], self.identity, from_cache=len(found))
        progress(len(found))
        errors: list[str] = []

        async def one(p: Prompt, k: int, key: str) -> None:
            try:  # seed + k: sample k is its own request (reproducible where the server honours seeds)
                reply = await self.client.chat(p.messages, max_tokens=self.cfg.max_new_tokens,
                                               temperature=self.cfg.temperature, seed=self.cfg.seed + k)
            except (RetriesExhausted, UnreadableReply) as exc:  # counted; the rest goes on
                errors.append(f"{p.prompt_id}: {exc}")
                return
            value = {"text": reply.text, "n_tokens": reply.completion_tokens, "finish": reply.finish}
            cache.put_many(who, [(key, value)])
            found[key] = value
            out.computed += 1
            progress(1)

        try:
            await asyncio.gather(*(one(p, k, key) for p, k, key in jobs if key not in found))
        finally:
            await self.client.close()
        for p, k, key in jobs:
            if key in found:
                res = found[key]
                out.tokens += res["n_tokens"] or 0
                out.lengths.append(res["n_tokens"])
                out.candidates.append(Candidate(p.prompt_id, p.language, self.cfg.name, k, res["text"], res["finish"]))
            else:
                out.missing.append(f"{p.prompt_id}#{k}")
        out.identity = {**self.identity, "api_errors": errors}
        return out


def _decoding(cfg: TeacherConfig) -> dict:
    return {"samples": cfg.samples, "temperature": cfg.temperature, "max_new_tokens": cfg.max_new_tokens,
            "seed": cfg.seed}


def build_teacher(cfg: TeacherConfig, *, device: str, dtype: str, batch_size: int):
    """The teacher object for a config entry (models load here: call once per teacher)."""
    if cfg.published is not None:
        return Published(cfg)
    if cfg.model.startswith("openai:"):
        return Served(cfg)
    return Generating(cfg, device=device, dtype=dtype, batch_size=batch_size)


def chat(prompt: Prompt, completion: str) -> list[dict]:
    """The SFT example of a chosen completion: the prompt's turns and the assistant's answer."""
    return [{"role": m.role, "content": m.content} for m in prompt.messages] + \
        [asdict(ChatMessage("assistant", completion))]
