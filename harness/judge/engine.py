"""The judge request engine: the judge requests of a plan, cache first, verdicts parsed and
re-asked, failures recorded.

Transport is the judge client's (:mod:`glotbench.harness.judge.judges`: the one
OpenAI-protocol client, with its concurrency, rate limit, retries and error classification,
or a local transformers judge); this module keeps what is judge-specific. A reply whose
verdict cannot be parsed is re-asked up to ``parse_attempts`` times (not for a deterministic
local judge, which would repeat itself) and then recorded as ``invalid``: never a tie, never
dropped. An *API error* — a transient failure still failing after its retries
(:class:`~glotbench.harness.core.retry.RetriesExhausted`) or a reply the service sent that
cannot be read (:class:`~glotbench.harness.models.openai_client.UnreadableReply`) — is
recorded on its judgment (outcome ``invalid``, counted apart) and the command exits 1;
rerunning it sends only those again. A failure no retry fixes (bad key, unknown model,
unreachable endpoint) stops the command with its one-line error; any other exception is a
bug and propagates as it is, never recorded as an API error. Under ``--max-cost`` the client
refuses requests past the budget: the requests in flight finish (and are cached), the rest
are not sent, and the command stops with one line (:func:`glotbench.harness.judge.spend.stopped`).

Cache. Every judge reply is committed to the SQLite request cache as it arrives, keyed by
the judge's identity, the exact messages, the decoding settings and the attempt number, so
a judging killed at any point (kill -9 included) resumes without paying again for finished
judgments, and :meth:`Engine.pending` knows before the first request what is left to send.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from glotbench.harness.core.hashing import json_sha256
from glotbench.harness.core.records import ChatMessage
from glotbench.harness.core.retry import RetriesExhausted
from glotbench.harness.judge.config import JudgeConfig
from glotbench.harness.judge.pairing import Item
from glotbench.harness.judge.prompt import JudgePrompt
from glotbench.harness.judge.spend import stopped
from glotbench.harness.models.openai_client import BudgetExhausted, ChatReply, UnreadableReply
from glotbench.harness.run.cache import RequestCache

API_ERRORS = (RetriesExhausted, UnreadableReply)
"""What a judgment records as an API error; every other exception propagates."""


@dataclass
class CacheUsage:
    """Judge replies reused from the cache by this invocation."""

    from_cache: int = 0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0


class Engine:
    """Sends the judge requests of a plan through a judge client, cache first."""

    def __init__(self, client, prompt: JudgePrompt, cache: RequestCache, cfg: JudgeConfig, bar=None):
        self.client, self.prompt, self.cache, self.cfg, self.bar = client, prompt, cache, cfg, bar
        self.usage = CacheUsage()

    def key(self, messages: tuple[ChatMessage, ...], attempt: int) -> str:
        return json_sha256(["judge", [[m.role, m.content] for m in messages], self.cfg.temperature,
                            self.cfg.max_tokens, attempt])

    def pending(self, items: Sequence[Item]) -> tuple[list[tuple[ChatMessage, ...]], int]:
        """The requests a run of ``items`` will send first (one per judgment whose replies are not
        all cached: the first uncached attempt), and the number of cached replies it will reuse.
        Re-asks of verdicts not yet seen cannot be known in advance."""
        judged = [item.messages for item in items if item.messages is not None]
        first = self.cache.get_many(self.client.identity, [self.key(m, 0) for m in judged])
        to_send, cached = [], 0
        for messages in judged:
            for attempt in range(self.cfg.parse_attempts):
                key = self.key(messages, attempt)
                hit = first.get(key) if attempt == 0 else self.cache.get_many(self.client.identity, [key]).get(key)
                if hit is None:
                    to_send.append(messages)
                    break
                cached += 1
                if self.prompt.parse(hit["text"]) is not None or self.client.deterministic:
                    break
        return to_send, cached

    async def run(self, items: list[Item]) -> list[dict]:
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self.one(item)) for item in items]
        except ExceptionGroup as eg:  # the first failure cancelled the rest: raise it as itself
            first: BaseException = eg
            while isinstance(first, ExceptionGroup):
                first = first.exceptions[0]
            raise first from None
        finally:
            await self.client.close()
        records = [t.result() for t in tasks]
        done = [r for r in records if r is not None]
        if len(done) < len(records):
            raise stopped(self.client, len(done), len(records))
        return done

    async def one(self, item: Item) -> dict | None:
        """The judgment of one item, or None when ``--max-cost`` stopped it before it finished."""
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
                reply = await self._reply(item.messages, attempt)
            except API_ERRORS as exc:  # recorded on the judgment and counted; the others go on
                error = _error_text(exc)
                break
            except BudgetExhausted:
                return None
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

    async def _reply(self, messages: tuple[ChatMessage, ...], attempt: int) -> ChatReply:
        key = self.key(messages, attempt)
        hit = self.cache.get_many(self.client.identity, [key]).get(key)
        if hit is not None:
            reply = ChatReply(**hit)
            self.usage.from_cache += 1
            self.usage.cached_prompt_tokens += reply.prompt_tokens
            self.usage.cached_completion_tokens += reply.completion_tokens
            return reply
        reply = await self.client.chat(messages, max_tokens=self.cfg.max_tokens, temperature=self.cfg.temperature)
        self.cache.put_many(self.client.identity, [(key, asdict(reply))])
        return reply

    def _tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)


def _error_text(exc: BaseException) -> str:
    """What a judgment records of its API error: the service's error type and first line."""
    cause = exc.last if isinstance(exc, RetriesExhausted) else exc
    return f"{type(cause).__name__}: {(str(cause).splitlines() or [''])[0][:200]}"
