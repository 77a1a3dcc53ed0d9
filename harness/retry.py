"""The one retry helper of the project, and a requests/tokens-per-minute limiter.

Calls to remote services (LLM judges, OpenAI-compatible servers) fail transiently: rate
limits (429), server errors (5xx), timeouts, dropped connections. :func:`retry_async` retries
such failures with exponential backoff and full jitter (delay drawn uniformly from
[0, min(cap, base * 2**attempt)]), honours a server's ``Retry-After`` when the error carries
one, and re-raises the last error once the attempts are spent, so the caller records it —
nothing is retried forever, nothing is swallowed. What counts as transient is the caller's
``retryable`` predicate (:func:`is_transient` covers HTTP-status and timeout errors by shape,
without importing any client library).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
TRANSIENT_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    """Tries in all (the first call included)."""
    base: float = 0.5
    """Seconds of the first backoff window."""
    cap: float = 30.0
    """Largest backoff window, seconds."""

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base < 0 or self.cap < 0:
            raise ValueError(f"invalid retry policy {self}")


def is_transient(exc: BaseException) -> bool:
    """Timeouts, connection errors and HTTP 408/409/429/5xx, recognised by shape (an exception
    with ``status_code`` or ``response.status_code``; built-in timeout/connection errors; the
    openai client's ``APITimeoutError``/``APIConnectionError`` by name)."""
    if isinstance(exc, TimeoutError | ConnectionError | asyncio.TimeoutError):
        return True
    if type(exc).__name__ in ("APITimeoutError", "APIConnectionError", "ReadTimeout", "ConnectTimeout"):
        return True
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return isinstance(status, int) and (status in TRANSIENT_STATUS or 500 <= status < 600)


def retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked to wait (``Retry-After`` header, seconds form), if any."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


async def retry_async(fn: Callable[[], Awaitable[T]], policy: RetryPolicy = RetryPolicy(), *,
                      retryable: Callable[[BaseException], bool] = is_transient,
                      rng: random.Random | None = None,
                      sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                      on_retry: Callable[[int, BaseException, float], None] | None = None) -> T:
    """``await fn()``, retrying transient failures per ``policy``; the last error is raised."""
    rng = rng or random.Random()
    for attempt in range(policy.attempts):
        try:
            return await fn()
        except Exception as exc:
            if attempt == policy.attempts - 1 or not retryable(exc):
                raise
            delay = rng.uniform(0, min(policy.cap, policy.base * 2 ** attempt))
            asked = retry_after(exc)
            if asked is not None:
                delay = max(delay, min(asked, policy.cap))
            if on_retry is not None:
                on_retry(attempt + 1, exc, delay)
            await sleep(delay)
    raise AssertionError("unreachable")  # the loop returns or raises


class RateLimiter:
    """Requests-per-minute and tokens-per-minute budgets as token buckets (a bucket holds at
    most one minute's budget and refills continuously). ``await acquire(tokens)`` waits until
    both budgets allow the call; ``None`` disables a budget."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        for name, v in (("rpm", rpm), ("tpm", tpm)):
            if v is not None and v <= 0:
                raise ValueError(f"{name} must be > 0, got {v}")
        self.rpm, self.tpm, self._clock, self._sleep = rpm, tpm, clock, sleep
        self._req, self._tok = float(rpm or 0), float(tpm or 0)
        self._last = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        dt, self._last = now - self._last, now
        if self.rpm:
            self._req = min(self.rpm, self._req + dt * self.rpm / 60)
        if self.tpm:
            self._tok = min(self.tpm, self._tok + dt * self.tpm / 60)

    async def acquire(self, tokens: int = 0) -> None:
        if self.tpm and tokens > self.tpm:
            raise ValueError(f"a call of {tokens} tokens can never fit a budget of {self.tpm} tokens/min")
        async with self._lock:  # first come, first served
            while True:
                self._refill()
                need_r = 0.0 if not self.rpm else max(0.0, 1 - self._req) * 60 / self.rpm
                need_t = 0.0 if not self.tpm else max(0.0, tokens - self._tok) * 60 / self.tpm
                wait = max(need_r, need_t)
                if wait <= 0:
                    if self.rpm:
                        self._req -= 1
                    if self.tpm:
                        self._tok -= tokens
                    return
                await self._sleep(wait)
