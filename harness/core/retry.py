"""The one retry helper of the project, and a requests/tokens-per-minute limiter.

Calls to remote services (LLM judges, OpenAI-compatible servers) fail transiently: rate
limits (429), server errors (5xx), timeouts, dropped connections. :func:`retry_async` retries
such failures with exponential backoff and full jitter (delay drawn uniformly from
[0, min(cap, base * 2**attempt)]), honours a server's ``Retry-After`` when the error carries
one, and raises :class:`RetriesExhausted` (the last error attached) once the attempts are
spent, so the caller records it — nothing is retried forever, nothing is swallowed. What
counts as transient is the caller's ``retryable`` predicate (:func:`is_transient` covers
HTTP-status and timeout errors by shape, without importing any client library); an error it
does not accept propagates unchanged on the first try. So a caller can tell the two apart:
``RetriesExhausted`` is a service failing (record it), anything else is not the service's
transient failure (a refusal to classify, or a bug to show).
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


class RetriesExhausted(Exception):
    """A transient failure that persisted through every try of a :class:`RetryPolicy`."""

    def __init__(self, last: BaseException, attempts: int):
        self.last = last
        """The error of the final try (also the ``__cause__``)."""
        self.attempts = attempts
        first = (str(last).splitlines() or [""])[0][:200]
        super().__init__(f"{type(last).__name__}: {first} (after {attempts} tries)")


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
    """``await fn()``, retrying transient failures per ``policy``.

    An error ``retryable`` rejects propagates as it is, at once; a retryable one still failing
    at the last try is raised as :class:`RetriesExhausted` from it."""
    rng = rng or random.Random()
    for attempt in range(policy.attempts):
        try:
            return await fn()
        except Exception as exc:  # every error is classified here; none is swallowed
            if not retryable(exc):
                raise
            if attempt == policy.attempts - 1:
                raise RetriesExhausted(exc, policy.attempts) from exc
            delay = rng.uniform(0, min(policy.cap, policy.base * 2 ** attempt))
            asked = retry_after(exc)
            if asked is not None:
                delay = max(delay, min(asked, policy.cap))
            if on_retry is not None:
                on_retry(attempt + 1, exc, delay)
            await sleep(delay)
    raise AssertionError("unreachable")  # the loop returns or raises


class RateLimiter:
    """Requests-per-minute and tokens-per-minute budgets, kept by the generic cell rate
    algorithm (a "virtual scheduling" leaky bucket): each budget has a theoretical arrival
    time that advances by ``cost * 60 / limit`` seconds per call, and a call may start once
    that time is at most ``burst`` seconds ahead of the clock. Over any window of W seconds
    at most ``limit * (W + burst) / 60`` is spent (plus one call's cost), and the budgets
    start empty, so no minute of a run — the first included — exceeds the limit by more than
    one call; a run never opens with a whole minute's budget at once (providers enforce
    per-minute limits over shorter windows too). A call costing more tokens than ``burst``
    seconds' worth simply waits longer afterwards. ``None`` disables a budget.
    Waiters are served first come, first served."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None, burst: float = 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        for name, v in (("rpm", rpm), ("tpm", tpm)):
            if v is not None and v <= 0:
                raise ValueError(f"{name} must be > 0, got {v}")
        if burst < 0:
            raise ValueError(f"burst must be >= 0, got {burst}")
        self.rpm, self.tpm, self.burst, self._clock, self._sleep = rpm, tpm, burst, clock, sleep
        # Starting a burst ahead: the opening burst is the one a quiet spell would have earned,
        # so even the first minute of a run holds at most one minute's budget (+ one call).
        start = clock() + burst
        self._tat = {"rpm": start, "tpm": start}
        self._lock = asyncio.Lock()

    async def acquire(self, tokens: int = 0) -> None:
        costs = {k: c for k, c, limit in (("rpm", 1, self.rpm), ("tpm", tokens, self.tpm)) if limit}
        if not costs:
            return
        async with self._lock:
            while True:
                now = self._clock()
                wait = max(self._tat[k] - self.burst - now for k in costs)
                if wait <= 0:
                    for k, c in costs.items():
                        limit = self.rpm if k == "rpm" else self.tpm
                        self._tat[k] = max(self._tat[k], now) + c * 60 / limit
                    return
                await self._sleep(wait)
