"""The judge request engine: sends the judge requests of a plan, cache first, then bounded,
rate-limited and retried.

Judging. Requests go out concurrently (``concurrency`` in flight) under a requests/tokens
per-minute limit (:class:`glotbench.harness.core.retry.RateLimiter`; a request's token cost is estimated as
its characters / 4 plus ``max_tokens``, as providers count it). API failures are retried by
:func:`glotbench.harness.core.retry.retry_async` (429, 5xx, timeouts: backoff with full jitter, Retry-After
honoured); failures no retry fixes (bad key, unknown model, unreachable endpoint) stop the
command with a one-line error. A reply whose verdict cannot be parsed is re-asked up to
``parse_attempts`` times (not for a deterministic local judge, which would repeat itself) and
then recorded as ``invalid``: never a tie, never dropped. A request still failing after its
retries is recorded as an API error (outcome ``invalid``, counted apart) and the command
exits 1; rerunning it sends only those again.

Cache. Every judge reply is committed to the SQLite request cache as it arrives, keyed by
the judge's identity, the exact messages, the decoding settings and the attempt number, so
a judging killed at any point (kill -9 included) resumes without paying again for finished
judgments. Usage and estimated cost are reported for this invocation and for the replies
reused from the cache.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import asdict, dataclass, field

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import json_sha256
from glotbench.harness.core.records import ChatMessage
from glotbench.harness.core.retry import RateLimiter, RetryPolicy, is_transient, retry_async
from glotbench.harness.judge.clients import Reply
from glotbench.harness.judge.config import JudgeConfig
from glotbench.harness.judge.pairing import Item
from glotbench.harness.judge.prompt import JudgePrompt
from glotbench.harness.run.cache import RequestCache


@dataclass
class Usage:
    calls: int = 0
    """HTTP requests / generations sent by this invocation (retries included)."""
    replies: int = 0
    from_cache: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    retries: Counter = field(default_factory=Counter)
















# ---------------------------------------------------------------------------- judging
class Engine:
    """Sends the judge requests of a plan: cache first, then bounded, rate-limited, retried."""

    def __init__(self, client, prompt: JudgePrompt, cache: RequestCache, cfg: JudgeConfig, bar=None):
        self.client, self.prompt, self.cache, self.cfg, self.bar = client, prompt, cache, cfg, bar
        self.usage = Usage()
        self.policy = RetryPolicy(attempts=cfg.attempts)
        self.limiter = RateLimiter(cfg.rpm, cfg.tpm)
        self.sem = asyncio.Semaphore(cfg.concurrency)

    def key(self, messages: tuple[ChatMessage, ...], attempt: int) -> str:
        return json_sha256(["judge", [[m.role, m.content] for m in messages], self.cfg.temperature,
                            self.cfg.max_tokens, attempt])

    async def run(self, items: list[Item]) -> list[dict]:
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self.one(item)) for item in items]
        except ExceptionGroup as eg:  # the first failure cancelled the rest; report it alone
            user = eg.subgroup(lambda e: isinstance(e, GlotbenchError))
            if user is None:
                raise
            first = user.exceptions[0]
            while isinstance(first, ExceptionGroup):
                first = first.exceptions[0]
            raise first from None
        finally:
            await self.client.close()
        return [t.result() for t in tasks]

    async def one(self, item: Item) -> dict:
        rec = {"prompt_id": item.prompt_id, "order": item.order,
               "first": item.pair[0] if item.order == "ab" else item.pair[1]}
        if item.messages is None:
            self._tick()
            return {**rec, "outcome": "tie", "verdict": "identical", "position": None, "attempts": 0,
                    "replies": [], "error": None}
        replies: list[str] = []
        verdict = None
        error = None
        tokens = [0, 0]
        for attempt in range(self.cfg.parse_attempts):
            try:
                reply, cached = await self._reply(item.messages, attempt)
            except GlotbenchError:
                raise
            except Exception as exc:  # retries spent, or a reply no retry could read: recorded, counted
                error = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
                break
            replies.append(reply.text)
            tokens[0] += reply.prompt_tokens
            tokens[1] += reply.completion_tokens
            verdict = self.prompt.parse(reply.text)
            if verdict is not None or self.client.deterministic:
                break
        self._tick()
        if verdict is None:
            outcome = "invalid"
        elif verdict.position == "tie":
            outcome = "tie"
        else:  # map the winning position back to the model shown there
            outcome = "a" if (verdict.position == "A") == (item.order == "ab") else "b"
        return {**rec, "outcome": outcome, "verdict": verdict.label if verdict else None,
                "position": verdict.position if verdict else None, "attempts": len(replies),
                "replies": replies, "error": error, "prompt_tokens": tokens[0], "completion_tokens": tokens[1]}

    async def _reply(self, messages: tuple[ChatMessage, ...], attempt: int) -> tuple[Reply, bool]:
        key = self.key(messages, attempt)
        hit = self.cache.get_many(self.client.identity, [key]).get(key)
        if hit is not None:
            reply = Reply(**hit)
            self.usage.from_cache += 1
            self.usage.cached_prompt_tokens += reply.prompt_tokens
            self.usage.cached_completion_tokens += reply.completion_tokens
            return reply, True
        estimate = sum(len(m.content) for m in messages) // 4 + self.cfg.max_tokens

        async def call() -> Reply:
            async with self.sem:
                await self.limiter.acquire(estimate)
                self.usage.calls += 1
                return await self.client.complete(messages)

        def on_retry(n: int, exc: BaseException, delay: float) -> None:
            self.usage.retries[_kind(exc)] += 1

        try:
            reply = await retry_async(call, self.policy, retryable=self._retryable, on_retry=on_retry)
        except Exception as exc:
            fatal = self.client.fatal(exc)
            if fatal is not None:
                raise fatal from None
            raise
        self.cache.put_many(self.client.identity, [(key, asdict(reply))])
        self.usage.replies += 1
        self.usage.prompt_tokens += reply.prompt_tokens
        self.usage.completion_tokens += reply.completion_tokens
        return reply, False

    def _retryable(self, exc: BaseException) -> bool:
        # An unreachable endpoint is retried too (a server restarting), then reported as fatal.
        if type(exc).__name__ == "APIConnectionError":
            return True
        return is_transient(exc) and self.client.fatal(exc) is None

    def _tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)


def _kind(exc: BaseException) -> str:
    name = type(exc).__name__
    if "Timeout" in name:
        return "timeout"
    if "Connection" in name:
        return "connection"
    status = getattr(exc, "status_code", None)
    return str(status) if status is not None else name














