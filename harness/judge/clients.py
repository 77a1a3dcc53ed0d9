"""Judge backends: a model that reads a rendered judge prompt and answers with text.

- :class:`OpenAIJudge`: the official ``openai`` client (``AsyncOpenAI``) against OpenAI or any
  OpenAI-compatible server (``--judge-base-url``, e.g. ``vllm serve``). The client's own
  retries are off (``max_retries=0``): the project's one retry helper
  (:func:`glotbench.harness.core.retry.retry_async`) does them, so every retry is counted.
- :class:`LocalJudge`: a transformers model (``embedded`` or ``hf:<dir>``) through the
  harness's own backend; concurrent requests are gathered into batches.

Both expose ``identity`` (part of every judgment's cache key), ``describe()`` (provenance),
``deterministic`` (a re-asked request returns the same text) and ``async complete(messages)``.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.records import ChatMessage, GenerationRequest

DEFAULT_JUDGE = "openai:gpt-4o-2024-08-06"
OPENAI_URL = "https://api.openai.com/v1"
# USD per million tokens (input, output): OpenAI list prices (standard tier), for the cost
# estimate only; --judge-price overrides, unknown models report no cost.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-2024-08-06": (2.50, 10.00),
    "gpt-4o-2024-11-20": (2.50, 10.00),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-2024-05-13": (5.00, 15.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o-mini-2024-07-18": (0.15, 0.60),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4-1106-preview": (10.00, 30.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
}


@dataclass(frozen=True)
class Reply:
    """One judge answer and what it cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish: str | None = None


class OpenAIJudge:
    deterministic = False  # an API judge may answer a re-asked request differently

    def __init__(self, model: str, *, base_url: str | None, timeout: float, max_tokens: int,
                 temperature: float):
        try:
            import openai
        except ImportError:
            raise GlotbenchError("the openai judge needs the 'openai' package", "pip install openai") from None
        key = os.environ.get("OPENAI_API_KEY")
        if not key and base_url is None:
            raise GlotbenchError(f"the judge openai:{model} needs an API key and OPENAI_API_KEY is not set",
                                 "export OPENAI_API_KEY=..., or pass --judge-base-url URL for an "
                                 "OpenAI-compatible server (or --judge embedded, offline)")
        self.model, self.base_url = model, (base_url or OPENAI_URL).rstrip("/")
        self.max_tokens, self.temperature = max_tokens, temperature
        self.client = openai.AsyncOpenAI(api_key=key or "EMPTY", base_url=self.base_url, max_retries=0,
                                         timeout=timeout)
        self.identity = f"openai|{self.model}|{self.base_url}"
        self.price = PRICES.get(model)

    def describe(self) -> dict:
        return {"backend": "openai", "model": self.model, "base_url": self.base_url,
                "openai_client": _version("openai")}

    async def complete(self, messages: tuple[ChatMessage, ...]) -> Reply:
        r = await self.client.chat.completions.create(
            model=self.model, messages=[{"role": m.role, "content": m.content} for m in messages],
            temperature=self.temperature, max_tokens=self.max_tokens)
        if not r.choices:
            raise ValueError("the judge returned no choices")
        usage = r.usage
        return Reply(r.choices[0].message.content or "", usage.prompt_tokens if usage else 0,
                     usage.completion_tokens if usage else 0, r.choices[0].finish_reason)

    def fatal(self, exc: BaseException) -> GlotbenchError | None:
        """A failure no retry can fix, as the one-line error that stops the whole judging."""
        name = type(exc).__name__
        status = getattr(exc, "status_code", None)
        detail = _message(exc)
        where = f"the judge endpoint {self.base_url}"
        if status == 401:
            return GlotbenchError(f"{where} rejected the API key (401: {detail})",
                                  "set OPENAI_API_KEY to a valid key for this endpoint")
        if status == 403:
            return GlotbenchError(f"{where} refused access (403: {detail})",
                                  "check the key's permissions for model " + self.model)
        if status == 404:
            return GlotbenchError(f"{where} has no model {self.model!r} (404: {detail})",
                                  "check the model of --judge (an OpenAI-compatible server lists its models "
                                  "at /v1/models)")
        if status in (400, 422):
            return GlotbenchError(f"{where} refused the judge request ({status}: {detail})",
                                  "check --judge-max-tokens and the model of --judge")
        if name == "APIConnectionError":  # (a timeout is APITimeoutError, retried per judgment)
            return GlotbenchError(f"cannot reach {where} ({detail})",
                                  "start the server or check --judge-base-url; finished judgments are "
                                  "cached, so rerunning the command resumes")
        return None

    async def close(self) -> None:
        await self.client.close()


class LocalJudge:
    deterministic = True  # greedy decoding: a re-ask repeats the same text

    def __init__(self, spec: str, *, device: str, dtype: str, batch_size: int, max_tokens: int,
                 temperature: float):
        from glotbench.harness.models.loader import load_backend

        self.backend = load_backend(spec, device=device, dtype=dtype, batch_size=batch_size)
        if self.backend.chat_template is None:
            raise GlotbenchError(f"judge model {spec!r} has no chat template",
                                 "use an instruction-tuned model as the judge")
        self.max_tokens, self.temperature = max_tokens, temperature
        self.identity = "local|" + self.backend.identity.cache_key
        self.price = (0.0, 0.0)
        self._queue: list[tuple[tuple[ChatMessage, ...], asyncio.Future]] = []
        self._worker: asyncio.Task | None = None

    def describe(self) -> dict:
        ident = self.backend.identity
        return {"backend": "transformers", "model": ident.name, "weights_sha256": ident.weights_sha256,
                "dtype": ident.dtype, "device": ident.device}

    async def complete(self, messages: tuple[ChatMessage, ...]) -> Reply:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((messages, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            await asyncio.sleep(0)  # let every ready coroutine enqueue before a batch is cut
            batch, self._queue = self._queue[:self.backend.batch_size], self._queue[self.backend.batch_size:]
            texts = [self.backend.apply_chat_template(m) for m, _ in batch]
            reqs = [GenerationRequest(t, (), self.max_tokens, self.temperature) for t in texts]
            try:
                results = await asyncio.to_thread(self.backend.generate, reqs)
                counts = [len(self.backend.tokenizer(t, add_special_tokens=False).input_ids) for t in texts]
            except Exception as exc:  # noqa: BLE001 - handed to every waiting judgment
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), res, n in zip(batch, results, counts):
                if not fut.done():
                    fut.set_result(Reply(res.text, n, res.n_tokens, res.finish))

    def fatal(self, exc: BaseException) -> GlotbenchError | None:
        return None

    async def close(self) -> None:
        return None


def make_judge(spec: str, *, base_url: str | None, timeout: float, max_tokens: int, temperature: float,
               device: str = "auto", dtype: str = "auto", batch_size: int = 8):
    """``openai:<model>``, ``embedded`` / ``local`` (SmolLM2, offline) or ``hf:<dir or hub id>``."""
    kind, sep, target = spec.partition(":")
    if spec in ("embedded", "local") or kind == "hf" and target:
        if base_url:
            raise GlotbenchError("--judge-base-url is for openai:<model> judges",
                                 f"drop it, or use --judge openai:<model> with that server instead of {spec!r}")
        return LocalJudge("embedded" if spec == "local" else spec, device=device, dtype=dtype,
                          batch_size=batch_size, max_tokens=max_tokens, temperature=temperature)
    if kind == "openai" and sep and target:
        return OpenAIJudge(target, base_url=base_url, timeout=timeout, max_tokens=max_tokens,
                           temperature=temperature)
    raise GlotbenchError(f"cannot read judge spec {spec!r}",
                         f"use openai:<model> (default {DEFAULT_JUDGE}), embedded, or hf:<model dir>")


def _message(exc: BaseException) -> str:
    body: Any = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:200]
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def _version(package: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(package)
    except Exception:  # noqa: BLE001
        return None
