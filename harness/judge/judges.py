"""Who judges: the ``--judge`` spec turned into a chat client.

- ``openai:<model>``: the project's one OpenAI-protocol client
  (:class:`glotbench.harness.models.openai_client.OpenAIClient`), against the OpenAI API or
  any OpenAI-compatible server (``--judge-base-url``, e.g. ``vllm serve``).
- ``embedded`` / ``local`` (SmolLM2, offline) and ``hf:<dir or hub id>``: :class:`LocalJudge`,
  a transformers model through the harness's own backend; concurrent requests are gathered
  into batches.

Both answer ``await chat(messages, max_tokens=, temperature=)`` with a
:class:`~glotbench.harness.models.openai_client.ChatReply` and expose ``identity`` (part of
every judgment's cache key), ``describe()`` (provenance), ``deterministic`` (a re-asked
request returns the same text), ``paid``, ``price``, ``usage`` and ``close()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.records import ChatMessage, GenerationRequest
from glotbench.harness.judge.config import DEFAULT_JUDGE, JudgeConfig
from glotbench.harness.models.openai_client import ChatReply, Hints, OpenAIClient, Usage

JUDGE_HINTS = Hints(
    what="the judge endpoint", model="--judge", base_url="--judge-base-url", max_tokens="--judge-max-tokens",
    resume="; finished judgments are cached, so rerunning the command resumes",
    offline=" (or --judge embedded, offline)")


class LocalJudge:
    """A local transformers judge; greedy decoding, batched."""

    deterministic = True  # greedy decoding: a re-ask repeats the same text
    paid = False
    price = (0.0, 0.0)

    def __init__(self, spec: str, *, device: str, dtype: str, batch_size: int):
        from glotbench.harness.models.loader import load_backend

        self.backend = load_backend(spec, device=device, dtype=dtype, batch_size=batch_size)
        if self.backend.chat_template is None:
            raise GlotbenchError(f"judge model {spec!r} has no chat template",
                                 "use an instruction-tuned model as the judge")
        self.identity = "local|" + self.backend.identity.cache_key
        self.usage = Usage()
        self._queue: list[tuple[GenerationRequest, asyncio.Future]] = []
        self._worker: asyncio.Task | None = None

    def describe(self) -> dict:
        ident = self.backend.identity
        return {"backend": "transformers", "model": ident.name, "weights_sha256": ident.weights_sha256,
                "dtype": ident.dtype, "device": ident.device}

    async def chat(self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float) -> ChatReply:
        request = GenerationRequest(self.backend.apply_chat_template(tuple(messages)), (), max_tokens, temperature)
        future = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            await asyncio.sleep(0)  # let every ready coroutine enqueue before a batch is cut
            size = self.backend.batch_size
            batch, self._queue = self._queue[:size], self._queue[size:]
            try:
                replies = await asyncio.to_thread(self._generate, [r for r, _ in batch])
            except BaseException as exc:
                # Nobody awaits this worker: the waiting judgments are where its failure must
                # surface. Each gets the exception itself (a bug or an out-of-memory is no API
                # error; the engine lets it propagate), the queued ones too, and draining stops.
                waiting, self._queue = [*batch, *self._queue], []
                for _, fut in waiting:
                    if fut.done():
                        continue
                    if isinstance(exc, asyncio.CancelledError):
                        fut.cancel()
                    else:
                        fut.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                return
            for (_, fut), reply in zip(batch, replies):
                self.usage.requests += 1
                self.usage.replies += 1
                self.usage.prompt_tokens += reply.prompt_tokens
                self.usage.completion_tokens += reply.completion_tokens
                if not fut.done():
                    fut.set_result(reply)

    def _generate(self, requests: list[GenerationRequest]) -> list[ChatReply]:
        results = self.backend.generate(requests)
        counts = [len(self.backend.tokenizer(r.prompt, add_special_tokens=False).input_ids) for r in requests]
        return [ChatReply(res.text, n, res.n_tokens, res.finish) for res, n in zip(results, counts)]

    async def close(self) -> None:
        return None


def make_judge(cfg: JudgeConfig) -> OpenAIClient | LocalJudge:
    """``openai:<model>``, ``embedded`` / ``local`` (SmolLM2, offline) or ``hf:<dir or hub id>``."""
    spec = cfg.judge
    kind, sep, target = spec.partition(":")
    if spec in ("embedded", "local") or kind == "hf" and target:
        if cfg.base_url:
            raise GlotbenchError("--judge-base-url is for openai:<model> judges",
                                 f"drop it, or use --judge openai:<model> with that server instead of {spec!r}")
        return LocalJudge("embedded" if spec == "local" else spec, device=cfg.device, dtype=cfg.dtype,
                          batch_size=cfg.batch_size)
    if kind == "openai" and sep and target:
        return OpenAIClient(target, base_url=cfg.base_url, timeout=cfg.timeout, concurrency=cfg.concurrency,
                            rpm=cfg.rpm, tpm=cfg.tpm, attempts=cfg.attempts, price=cfg.price, hints=JUDGE_HINTS)
    raise GlotbenchError(f"cannot read judge spec {spec!r}",
                         f"use openai:<model> (default {DEFAULT_JUDGE}), embedded, hf:<model dir> or "
                         "rm:<reward model dir>")
