"""The one OpenAI-protocol client (harness/models/openai_client.py) against the scripted server
(tests/openai_server.py) through the real ``openai`` package: what each failure becomes (fatal
one-line error, API error, or a bug that propagates), counting, and the cost budget."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.records import ChatMessage
from glotbench.harness.core.retry import RetriesExhausted
from glotbench.harness.models import openai_client
from glotbench.harness.models.openai_client import (
    BudgetExhausted,
    OpenAIClient,
    UnreadableReply,
    estimate_prompt_tokens,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from openai_server import Faults, OpenAIServer, default_verdict  # noqa: E402

MODEL = "scripted-judge"


def msgs(text: str) -> tuple[ChatMessage, ...]:
    return (ChatMessage("system", "You are a careful judge."), ChatMessage("user", text))


def ask(client: OpenAIClient, *texts: str, max_tokens: int = 64) -> list:
    """Send the texts concurrently; each result is a reply or the exception raised."""
    async def go():
        try:
            return await asyncio.gather(*(client.chat(msgs(t), max_tokens=max_tokens, temperature=0.0)
                                          for t in texts), return_exceptions=True)
        finally:
            await client.close()
    return asyncio.run(go())


def client_for(server: OpenAIServer, **kw) -> OpenAIClient:
    return OpenAIClient(MODEL, base_url=server.base_url, timeout=kw.pop("timeout", 5.0), **kw)


def verdict(text: str) -> str:
    return default_verdict({"messages": [{"role": m.role, "content": m.content} for m in msgs(text)]})


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def test_replies_usage_and_retries_are_counted():
    faults = Faults(rate_429=0.5, rate_500=0.5, max_per_request=1, seed=1)
    with OpenAIServer(faults=faults) as server:
        client = client_for(server)
        replies = ask(client, *(f"q{i}" for i in range(6)))
        stats = server.stats()
    assert [r.text for r in replies] == [verdict(f"q{i}") for i in range(6)]
    u = client.usage
    assert u.requests == stats["requests"] == 12 and u.replies == 6
    assert dict(u.retries) == {k: v for k, v in stats["status"].items() if k != "200"}
    assert u.prompt_tokens == stats["prompt_tokens"] and u.completion_tokens == stats["completion_tokens"]
    assert client.describe()["base_url"] == server.base_url and not client.paid


def test_a_transient_failure_outliving_its_retries_is_an_api_error():
    with OpenAIServer(faults=Faults(rate_500=1.0, max_per_request=10)) as server:
        client = client_for(server, attempts=3)
        [err] = ask(client, "q")
        assert server.stats()["status"] == {"500": 3}
    assert isinstance(err, RetriesExhausted) and err.attempts == 3
    assert type(err.last).__name__ == "InternalServerError" and client.usage.retries == {"500": 2}


def test_a_timeout_outliving_its_retries_is_an_api_error_not_fatal():
    faults = Faults(rate_timeout=1.0, max_per_request=10, timeout_sleep=2.0)
    with OpenAIServer(faults=faults) as server:
        [err] = ask(client_for(server, attempts=2, timeout=0.3), "slow")
    assert isinstance(err, RetriesExhausted) and type(err.last).__name__ == "APITimeoutError"


@pytest.mark.parametrize(("body", "why"), [
    (b"not json", "not a chat completion"), (b"{}", "no choices"), (b'{"choices": []}', "no choices"),
    (b'{"choices": [{"message": null}]}', "no message"), (b"[1, 2]", "no choices"),
    (b'{"choices": [{"message": {"content": 7}}]}', "is a int"),
])
def test_replies_that_cannot_be_read_are_unreadable_and_not_retried(body, why):
    with OpenAIServer(raw_reply=lambda req: (200, body)) as server:
        client = client_for(server)
        [err] = ask(client, "q")
        assert server.stats()["requests"] == 1
    assert isinstance(err, UnreadableReply) and why in str(err)


def test_refusals_are_one_line_errors_without_retries(monkeypatch):
    quota = {"error": {"message": "You exceeded your current quota.", "type": "insufficient_quota",
                       "code": "insufficient_quota", "param": None}}
    with OpenAIServer(raw_reply=lambda req: (429, json.dumps(quota).encode())) as server:
        [err] = ask(client_for(server), "q")
        assert server.stats()["requests"] == 1  # a 429 for quota is not a rate limit: not retried
    assert isinstance(err, GlotbenchError) and "no quota left" in str(err)
    monkeypatch.setenv("OPENAI_API_KEY", "wrong")
    with OpenAIServer(api_key="right") as server:
        [err] = ask(client_for(server), "q")
    assert isinstance(err, GlotbenchError) and "rejected the API key" in str(err)
    with OpenAIServer(model="other") as server:
        [err] = ask(client_for(server), "q")
    assert isinstance(err, GlotbenchError) and f"has no model {MODEL!r}" in str(err)


def test_an_unreachable_endpoint_is_fatal_after_its_retries():
    server = OpenAIServer().start()
    url = server.base_url
    server.stop()
    client = OpenAIClient(MODEL, base_url=url, attempts=2, timeout=5.0)
    [err] = ask(client, "q")
    assert isinstance(err, GlotbenchError) and "cannot reach the endpoint" in str(err)
    assert client.usage.requests == 2 and client.usage.retries == {"connection": 1}


def test_a_programming_error_inside_the_client_propagates_as_itself(monkeypatch):
    def broken(*args):  # building the reply record fails: a bug on the reading side of a real reply
        raise KeyError("a bug in reading replies")

    monkeypatch.setattr(openai_client, "ChatReply", broken)
    with OpenAIServer() as server:
        client = client_for(server)
        [err] = ask(client, "q")
    assert type(err) is KeyError and client.usage.retries == {} and client.usage.requests == 1


def test_the_budget_refuses_requests_past_the_limit():
    texts = [f"question number {i}" for i in range(10)]
    per = [(estimate_prompt_tokens(msgs(t)) * 1.0 + 64 * 2.0) / 1e6 for t in texts]
    with OpenAIServer() as server:
        client = client_for(server, price=(1.0, 2.0))
        client.limit_cost(sum(per[:4]) + per[4] / 2)
        results = ask(client, *texts)
        assert server.stats()["requests"] == 4
    assert [isinstance(r, BudgetExhausted) for r in results] == [False] * 4 + [True] * 6
    assert client.usage.estimated_cost == pytest.approx(sum(per[:4]))
    with pytest.raises(ValueError, match="needs a price"):
        OpenAIClient("unknown-model", base_url="http://127.0.0.1:9/v1").limit_cost(1.0)


def test_the_openai_api_is_paid_and_needs_a_key(monkeypatch):
    with pytest.raises(GlotbenchError, match="OPENAI_API_KEY is not set"):
        OpenAIClient("gpt-4o")
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    api = OpenAIClient("gpt-4o")
    assert api.paid and api.price == (2.50, 10.00) and api.identity == "openai|gpt-4o|https://api.openai.com/v1"
    assert api.estimate_cost(1_000_000, 100_000) == pytest.approx(3.5)
    own = OpenAIClient("gpt-4o", base_url="http://localhost:8000/v1/")
    assert not own.paid and own.base_url == "http://localhost:8000/v1"
    for c in (api, own):
        asyncio.run(c.close())
