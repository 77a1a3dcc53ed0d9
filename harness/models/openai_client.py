"""The one client for OpenAI-compatible endpoints: the OpenAI API itself, ``vllm serve``,
or any server speaking the protocol. The pairwise judge, API teachers in training and the
served-model backend (:mod:`glotbench.harness.models.openai_backend`: chat completions, and
``/v1/completions`` with ``echo`` + ``logprobs`` for log-likelihoods) all use this class.

It owns everything between "send these messages" and "here is the reply":

- the official ``openai.AsyncOpenAI`` client with its own retries off (``max_retries=0``), so
  the project's one retry helper (:func:`glotbench.harness.core.retry.retry_async`) does them
  and every retry is counted;
- concurrency (requests in flight) and a requests/tokens-per-minute limiter
  (:class:`glotbench.harness.core.retry.RateLimiter`);
- what a failure means. A failure no retry fixes (bad key, unknown model, a refused request,
  no quota left, an endpoint that stays unreachable) is a one-line :class:`GlotbenchError`
  that stops the command. A transient failure (408/409/429/5xx, timeout, dropped connection)
  that outlives its retries is :class:`RetriesExhausted`, and a reply the service sent that
  cannot be read is :class:`UnreadableReply`: these two are the *API errors* a caller records
  and counts. Anything else is a bug and propagates unchanged.
- counting and estimation: requests sent (retries included), retries by kind, tokens; a
  request's tokens are estimated as its characters / 4 plus ``max_tokens`` (how providers
  count a request against a tokens-per-minute limit, and the most it can be billed for), its
  cost from list prices (:data:`PRICES`); an optional budget (:meth:`OpenAIClient.limit_cost`)
  refuses further requests once their estimated cost would exceed it (:class:`BudgetExhausted`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from glotbench.harness.core.errors import GlotbenchError, first_line
from glotbench.harness.core.records import ChatMessage
from glotbench.harness.core.retry import (
    RateLimiter,
    RetriesExhausted,
    RetryPolicy,
    is_transient,
    retry_async,
)

OPENAI_URL = "https://api.openai.com/v1"
"""The paid endpoint: a client without a ``base_url`` talks to it (and needs OPENAI_API_KEY)."""

# USD per million tokens (input, output): OpenAI list prices (standard tier), for estimates
# only; callers may pass their own price, and an unknown model has no cost estimate.
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
class ChatReply:
    """One assistant reply and what it cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish: str | None = None
    stop_reason: str | None = None
    """The stop string that ended the reply, where the server says so (vLLM does; ``None``
    after a ``stop`` finish there means the end-of-sequence token)."""


@dataclass(frozen=True)
class CompletionReply:
    """One ``/v1/completions`` reply: its text and, when ``logprobs`` was asked for, one entry
    per token (with ``echo``, the prompt's tokens first; the first has no log-probability)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish: str | None = None
    stop_reason: str | None = None
    tokens: tuple[str, ...] | None = None
    token_logprobs: tuple[float | None, ...] | None = None
    top_logprobs: tuple[dict[str, float] | None, ...] | None = None
    text_offset: tuple[int, ...] | None = None
    """Character offset of each token in the reply's text (the prompt's, with ``echo``)."""


class RequestRefused(GlotbenchError):
    """The service refused a request with a status no retry changes (the one-line error the
    command stops with); ``status`` lets a caller tell an unsupported feature apart."""

    def __init__(self, problem: str, fix: str | None = None, *, status: int | None = None, detail: str = ""):
        super().__init__(problem, fix)
        self.status, self.detail = status, detail
        """The HTTP status and the service's own message."""


class UnreadableReply(Exception):
    """The service answered, but not with a chat completion that can be read (a body that is
    not JSON, no choices, no message): an API error, never retried (a proxy that mangles one
    reply usually mangles the next)."""


class BudgetExhausted(Exception):
    """A request was not sent: its estimated cost would take the requests sent past the budget."""


@dataclass
class Usage:
    """What a client has sent and received."""

    requests: int = 0
    """HTTP requests sent (retries included)."""
    replies: int = 0
    """Replies read."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: Counter = field(default_factory=Counter)
    """Retries by kind: the HTTP status ("429", "500", ...), "timeout" or "connection"."""
    estimated_cost: float = 0.0
    """Estimated USD of the requests let through (each counted once, retries not again)."""


@dataclass(frozen=True)
class Hints:
    """How the caller's command line names what fixes an endpoint error (the client is shared,
    the flags are not)."""

    what: str = "the endpoint"
    model: str = "the model name"
    base_url: str = "the base URL"
    max_tokens: str = "the token limit"
    resume: str = ""
    """Appended to the fix of an unreachable endpoint (e.g. that finished work is cached)."""
    offline: str = ""
    """Appended to the fix of a missing API key (e.g. an offline alternative)."""


def estimate_prompt_tokens(messages: Sequence[ChatMessage]) -> int:
    """Input tokens of a request as estimated before sending it: characters / 4."""
    return sum(len(m.content) for m in messages) // 4


def cost_usd(price: tuple[float, float] | None, prompt_tokens: int, completion_tokens: int) -> float | None:
    """USD for the tokens at ``price`` (USD per million input, output tokens); None without a price."""
    if price is None:
        return None
    return round((prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6, 6)


def package_version(package: str) -> str | None:
    """The installed version of ``package`` (provenance), or None when it is not installed."""
    try:
        return version(package)
    except PackageNotFoundError:
        return None


class OpenAIClient:
    """Chat completions from one model at one OpenAI-compatible endpoint."""

    deterministic = False
    """An API may answer a repeated request differently (sampling, batching, model updates)."""

    def __init__(self, model: str, *, base_url: str | None = None, timeout: float = 120.0,
                 concurrency: int = 16, rpm: float | None = None, tpm: float | None = None,
                 attempts: int = 6, price: tuple[float, float] | None = None, hints: Hints = Hints()):
        try:
            import openai
        except ImportError:
            raise GlotbenchError("the OpenAI-protocol client needs the 'openai' package",
                                 "pip install openai") from None
        self._openai = openai
        self.model, self.hints = model, hints
        self.base_url = (base_url or OPENAI_URL).rstrip("/")
        self.paid = self.base_url == OPENAI_URL.rstrip("/")
        """The OpenAI API bills every request; a server of your own (``base_url``) is assumed not to."""
        key = os.environ.get("OPENAI_API_KEY")
        if not key and self.paid:
            raise GlotbenchError(
                f"openai:{model} at {self.base_url} needs an API key and OPENAI_API_KEY is not set",
                f"export OPENAI_API_KEY=..., or pass {hints.base_url} URL for an OpenAI-compatible "
                f"server{hints.offline}")
        self.identity = f"openai|{model}|{self.base_url}"
        """Who answers: the model at this endpoint (callers key their caches with it)."""
        self.price = price if price is not None else PRICES.get(model)
        """USD per million input / output tokens, or None when unknown."""
        self.max_cost: float | None = None
        self.usage = Usage()
        self._client = openai.AsyncOpenAI(api_key=key or "EMPTY", base_url=self.base_url, max_retries=0,
                                          timeout=timeout)
        self._policy = RetryPolicy(attempts=attempts)
        self._limiter = RateLimiter(rpm, tpm)
        self._sem = asyncio.Semaphore(concurrency)
        self._refusing = False

    def describe(self) -> dict:
        """Provenance of who answered."""
        return {"backend": "openai", "model": self.model, "base_url": self.base_url,
                "openai_client": package_version("openai")}

    def estimate_cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        return cost_usd(self.price, prompt_tokens, completion_tokens)

    def limit_cost(self, max_cost: float) -> None:
        """Refuse (:class:`BudgetExhausted`) every request from the first one whose estimated
        cost (input at characters / 4, output at ``max_tokens``) would take the requests let
        through past ``max_cost`` USD."""
        if self.price is None:
            raise ValueError(f"a cost limit needs a price for {self.model}")
        self.max_cost = max_cost

    async def chat(self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float,
                   seed: int | None = None, stop: Sequence[str] = ()) -> ChatReply:
        """One chat completion: budget, concurrency, rate limit, retries. Raises
        :class:`GlotbenchError` (fatal), :class:`RetriesExhausted` or :class:`UnreadableReply`
        (API errors), :class:`BudgetExhausted` (not sent); anything else is a bug."""
        body = [{"role": m.role, "content": m.content} for m in messages]
        extra: dict[str, Any] = {"seed": seed} if seed is not None else {}
        if stop:
            extra["stop"] = list(stop)
        return await self._send(
            lambda: self._client.chat.completions.create(
                model=self.model, messages=body, temperature=temperature, max_tokens=max_tokens, **extra),
            estimate_prompt_tokens(messages), max_tokens, _read, "a chat completion")

    async def complete(self, prompt: str, *, max_tokens: int, temperature: float = 0.0, echo: bool = False,
                       logprobs: int | None = None, seed: int | None = None,
                       stop: Sequence[str] = ()) -> CompletionReply:
        """One ``/v1/completions`` request (plain-text prompt), with the same budget,
        concurrency, rate limit, retries and errors as :meth:`chat`."""
        extra: dict[str, Any] = {"seed": seed} if seed is not None else {}
        if stop:
            extra["stop"] = list(stop)
        if logprobs is not None:
            extra["logprobs"] = logprobs
        return await self._send(
            lambda: self._client.completions.create(
                model=self.model, prompt=prompt, temperature=temperature, max_tokens=max_tokens, echo=echo,
                **extra),
            len(prompt) // 4, max_tokens, _read_completion, "a completion")

    async def _send(self, create: Callable[[], Awaitable[Any]], prompt_estimate: int, max_tokens: int,
                    read: Callable[[Any], Any], what: str) -> Any:
        """Send one request built by ``create`` and read its reply with ``read``."""
        self._reserve(prompt_estimate, max_tokens)

        async def call() -> Any:
            async with self._sem:
                await self._limiter.acquire(prompt_estimate + max_tokens)
                self.usage.requests += 1
                try:
                    response = await create()
                except (json.JSONDecodeError, self._openai.APIResponseValidationError) as exc:
                    # The request went out and a 2xx came back whose body is not a completion
                    # (the client decodes the body inside create(); nothing else there parses JSON).
                    raise UnreadableReply(f"the reply is not {what} ({first_line(exc)})") from exc
            return read(response)

        try:
            reply = await retry_async(call, self._policy, retryable=self._retryable, on_retry=self._count_retry)
        except RetriesExhausted as exc:
            # An endpoint still unreachable after every retry stops the command (the next
            # request would fail the same way); a timeout (a subclass) is this request's failure.
            if type(exc.last) is self._openai.APIConnectionError:
                raise self._unreachable(exc.last) from None
            raise
        except self._openai.APIStatusError as exc:  # not retryable: the service refused the request
            raise self._refused(exc) from None
        self.usage.replies += 1
        self.usage.prompt_tokens += reply.prompt_tokens
        self.usage.completion_tokens += reply.completion_tokens
        return reply

    async def served_models(self) -> list[dict]:
        """``GET /v1/models``: what the endpoint serves (vLLM adds ``root``, the weights'
        directory, and ``max_model_len``), with the same retries and errors."""
        async def call() -> list[dict]:
            async with self._sem:
                self.usage.requests += 1
                page = await self._client.models.list()
            return [m.model_dump() if hasattr(m, "model_dump") else dict(m) for m in page.data]

        try:
            return await retry_async(call, self._policy, retryable=self._retryable, on_retry=self._count_retry)
        except RetriesExhausted as exc:
            if type(exc.last) is self._openai.APIConnectionError:
                raise self._unreachable(exc.last) from None
            raise
        except self._openai.APIStatusError as exc:
            raise self._refused(exc) from None

    async def close(self) -> None:
        await self._client.close()

    # ------------------------------------------------------------------------ internals
    def _reserve(self, prompt_tokens: int, max_tokens: int) -> None:
        cost = self.estimate_cost(prompt_tokens, max_tokens)
        if cost is None:
            return
        if self.max_cost is not None and (self._refusing or self.usage.estimated_cost + cost > self.max_cost):
            self._refusing = True  # later, smaller requests are refused too: the stop is one point in time
            raise BudgetExhausted(f"estimated ${self.usage.estimated_cost + cost:.4f} > ${self.max_cost:g}")
        self.usage.estimated_cost += cost

    def _retryable(self, exc: BaseException) -> bool:
        # A 429 for an exhausted quota is not a rate limit: no wait makes it pass.
        return is_transient(exc) and _code(exc) != "insufficient_quota"

    def _count_retry(self, attempt: int, exc: BaseException, delay: float) -> None:
        self.usage.retries[_kind(exc)] += 1

    def _refused(self, exc: Any) -> RequestRefused:
        """The one-line error for a request the service refused (no retry can change it)."""
        status, detail, h = exc.status_code, _message(exc), self.hints
        refuse = functools.partial(RequestRefused, status=status, detail=detail)
        where = f"{h.what} {self.base_url}"
        if status == 401:
            return refuse(f"{where} rejected the API key (401: {detail})",
                          "set OPENAI_API_KEY to a valid key for this endpoint")
        if status == 403:
            return refuse(f"{where} refused access (403: {detail})",
                          f"check the key's permissions for model {self.model}")
        if status == 404:
            return refuse(f"{where} has no model {self.model!r} (404: {detail})",
                          f"check the model of {h.model} (an OpenAI-compatible server lists its "
                          "models at /v1/models)")
        if _code(exc) == "insufficient_quota":
            return refuse(f"{where} reports no quota left ({status}: {detail})",
                          "add credit to the account of OPENAI_API_KEY")
        if status in (400, 422):
            return refuse(f"{where} refused the request ({status}: {detail})",
                          f"check {h.max_tokens} and the model of {h.model}")
        return refuse(f"{where} refused the request ({status}: {detail})",
                      "this status is not transient, so it was not retried; check the endpoint")

    def _unreachable(self, exc: BaseException) -> GlotbenchError:
        return GlotbenchError(f"cannot reach {self.hints.what} {self.base_url} ({_message(exc)})",
                              f"start the server or check {self.hints.base_url}{self.hints.resume}")


def _read(response: Any) -> ChatReply:
    """The reply's text and usage; :class:`UnreadableReply` when it has no readable message.

    The openai client builds its response objects without validation, so a 200 with a body
    of another shape arrives here with fields of any type (or none)."""
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise UnreadableReply("the reply has no choices")
    message = getattr(choices[0], "message", None)
    if message is None:
        raise UnreadableReply("the reply's first choice has no message")
    content = getattr(message, "content", None)
    if content is not None and not isinstance(content, str):
        raise UnreadableReply(f"the reply's content is a {type(content).__name__}, not text")
    usage = getattr(response, "usage", None)
    tokens = [getattr(usage, name, None) for name in ("prompt_tokens", "completion_tokens")]
    finish = getattr(choices[0], "finish_reason", None)
    stop_reason = getattr(choices[0], "stop_reason", None)
    return ChatReply(content or "", *(t if isinstance(t, int) else 0 for t in tokens),
                     finish if isinstance(finish, str) else None,
                     stop_reason if isinstance(stop_reason, str) else None)


def _read_completion(response: Any) -> CompletionReply:
    """A ``/v1/completions`` reply; :class:`UnreadableReply` when it has no readable choice."""
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise UnreadableReply("the reply has no choices")
    choice = choices[0]
    text = getattr(choice, "text", None)
    if not isinstance(text, str):
        raise UnreadableReply("the reply's first choice has no text")
    usage = getattr(response, "usage", None)
    counts = [getattr(usage, name, None) for name in ("prompt_tokens", "completion_tokens")]
    finish, stop_reason = getattr(choice, "finish_reason", None), getattr(choice, "stop_reason", None)
    lp = getattr(choice, "logprobs", None)
    fields: dict[str, Any] = {}
    if lp is not None:
        for name in ("tokens", "token_logprobs", "top_logprobs", "text_offset"):
            value = getattr(lp, name, None)
            if value is not None and not isinstance(value, list):
                raise UnreadableReply(f"the reply's logprobs.{name} is a {type(value).__name__}, not a list")
            fields[name] = tuple(value) if value is not None else None
    return CompletionReply(text, *(t if isinstance(t, int) else 0 for t in counts),
                           finish if isinstance(finish, str) else None,
                           stop_reason if isinstance(stop_reason, str) else None, **fields)


def _kind(exc: BaseException) -> str:
    name = type(exc).__name__
    if "Timeout" in name:
        return "timeout"
    if "Connection" in name:
        return "connection"
    status = getattr(exc, "status_code", None)
    return str(status) if status is not None else name


def _code(exc: BaseException) -> str | None:
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) else None


def _message(exc: BaseException) -> str:
    body: Any = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:200]
    return first_line(exc)
