"""The retry helper and the rate limiter, with a fake clock (no real waiting)."""

from __future__ import annotations

import asyncio
import random

import pytest

from glotbench.harness.core.retry import (
    RateLimiter,
    RetriesExhausted,
    RetryPolicy,
    is_transient,
    retry_after,
    retry_async,
)


class HTTPError(Exception):
    def __init__(self, status: int, headers: dict | None = None):
        super().__init__(f"HTTP {status}")
        self.status_code = status
        self.response = type("R", (), {"status_code": status, "headers": headers or {}})()


def run(coro):
    return asyncio.run(coro)


def flaky(errors: list[BaseException], value: str = "ok"):
    calls = []

    async def fn():
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return value
    return fn, calls


def test_transient_errors_are_retried_with_bounded_jittered_backoff():
    delays = []

    async def sleep(d):
        delays.append(d)

    fn, calls = flaky([HTTPError(429), HTTPError(503), TimeoutError()])
    policy = RetryPolicy(attempts=5, base=1.0, cap=3.0)
    assert run(retry_async(fn, policy, rng=random.Random(0), sleep=sleep)) == "ok"
    assert len(calls) == 4 and len(delays) == 3
    for attempt, d in enumerate(delays):
        assert 0 <= d <= min(3.0, 1.0 * 2 ** attempt)
    again = []

    async def sleep2(d):
        again.append(d)

    fn, _ = flaky([HTTPError(429), HTTPError(503), TimeoutError()])
    run(retry_async(fn, policy, rng=random.Random(0), sleep=sleep2))
    assert again == delays  # seeded jitter


def test_permanent_errors_propagate_as_themselves_and_exhaustion_is_its_own_type():
    fn, calls = flaky([HTTPError(400)])
    with pytest.raises(HTTPError, match="400"):
        run(retry_async(fn, RetryPolicy(attempts=5, base=0), sleep=_nosleep))
    assert len(calls) == 1
    fn, calls = flaky([HTTPError(500)] * 3)
    with pytest.raises(RetriesExhausted, match=r"HTTPError: HTTP 500 \(after 3 tries\)") as info:
        run(retry_async(fn, RetryPolicy(attempts=3, base=0), sleep=_nosleep))
    assert len(calls) == 3 and info.value.attempts == 3
    assert isinstance(info.value.last, HTTPError) and info.value.__cause__ is info.value.last
    fn, calls = flaky([HTTPError(503)])  # a single try: a transient failure is still "exhausted"
    with pytest.raises(RetriesExhausted):
        run(retry_async(fn, RetryPolicy(attempts=1), sleep=_nosleep))


def test_a_bug_is_never_retried_nor_wrapped():
    fn, calls = flaky([ZeroDivisionError("bug"), TypeError("bug")])
    with pytest.raises(ZeroDivisionError):
        run(retry_async(fn, RetryPolicy(attempts=5, base=0), sleep=_nosleep))
    assert len(calls) == 1


def test_retry_after_is_honoured_up_to_the_cap():
    delays = []

    async def sleep(d):
        delays.append(d)

    fn, _ = flaky([HTTPError(429, {"retry-after": "7"}), HTTPError(429, {"retry-after": "99"})])
    seen = []
    run(retry_async(fn, RetryPolicy(attempts=3, base=0.01, cap=20), sleep=sleep,
                    on_retry=lambda n, e, d: seen.append((n, d))))
    assert delays == [7.0, 20.0] and seen == [(1, 7.0), (2, 20.0)]
    assert retry_after(HTTPError(429, {"retry-after": "soon"})) is None


@pytest.mark.parametrize(("exc", "transient"), [
    (HTTPError(429), True), (HTTPError(500), True), (HTTPError(599), True), (HTTPError(408), True),
    (HTTPError(400), False), (HTTPError(401), False), (HTTPError(404), False),
    (TimeoutError(), True), (ConnectionResetError(), True), (ValueError("bad"), False),
])
def test_is_transient(exc, transient):
    assert is_transient(exc) is transient


async def _nosleep(d):
    return None


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    async def sleep(self, d):
        self.now += d


def test_rate_limiter_keeps_requests_per_minute():
    clock = FakeClock()
    limiter = RateLimiter(rpm=60, clock=clock, sleep=clock.sleep)

    async def go():
        for _ in range(180):
            await limiter.acquire()
    run(go())
    # one request per second from the start: no opening burst
    assert clock.now == pytest.approx(179.0)


def test_rate_limiter_keeps_tokens_per_minute():
    clock = FakeClock()
    limiter = RateLimiter(tpm=1000, clock=clock, sleep=clock.sleep)

    async def go():
        for _ in range(5):
            await limiter.acquire(500)
    run(go())
    assert clock.now == pytest.approx(120.0)  # 500 tokens = 30 s of budget
    run(limiter.acquire(5000))  # larger than a minute's budget: admitted, then the budget waits
    assert clock.now == pytest.approx(150.0)


def test_rate_limiter_never_exceeds_the_budget_over_a_window():
    clock = FakeClock()
    limiter = RateLimiter(rpm=600, tpm=60_000, burst=1.0, clock=clock, sleep=clock.sleep)
    times = []

    async def go():
        for _ in range(2000):
            await limiter.acquire(50)
            times.append(clock.now)
    run(go())
    times = sorted(times)
    for i, t in enumerate(times):  # any 60 s window holds at most rpm * (60 + burst) / 60 calls
        j = next((k for k in range(i, len(times)) if times[k] >= t + 60), len(times))
        assert j - i <= 600 * 61 / 60 + 1
    assert sum(t < 60 for t in times) <= 601  # the first minute: the limit, plus one call
    assert len(times) / (times[-1] / 60) == pytest.approx(600, rel=0.01)
