"""The scripted OpenAI-protocol server's deterministic faults and replies: which request content
fails how (429 / 500 / timeout / malformed) on which sighting, the default verdict, and the error
bodies in OpenAI's JSON shape (see tests/openai_server.py)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Literal

FaultKind = Literal["429", "500", "timeout", "malformed", "none"]

VERDICT_CHOICES = ("Answer (A)", "Answer (B)", "TIE")
MALFORMED_CONTENT = "I cannot decide between these answers."
RPM_WINDOW_S = 60.0


def sha256_json(obj: Any) -> str:
    """Hex sha256 of `obj` serialised as JSON with sorted keys (stable across runs)."""
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def default_verdict(request_json: dict) -> str:
    """A deterministic judge verdict for a chat request: a hash of its messages picks A, B or TIE.

    Only `messages` enter the hash, so the same prompt gets the same verdict whatever the model,
    temperature or token limit.
    """
    digest = sha256_json(request_json.get("messages", []))
    choice = VERDICT_CHOICES[int(digest, 16) % len(VERDICT_CHOICES)]
    return f"Comparison: scripted verdict.\nPreferred: {choice}"


def content_hash(request_json: dict) -> str:
    """The identity of a request for fault decisions: messages, model, max_tokens, temperature."""
    key = {
        name: request_json.get(name) for name in ("messages", "model", "max_tokens", "temperature")
    }
    return sha256_json(key)


def message_chars(messages: Any) -> int:
    """Total characters of all message contents (string contents or the text of content parts)."""
    total = 0
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(p.get("text") or "") for p in content if isinstance(p, dict))
    return total


def format_seconds(seconds: float) -> str:
    """A Retry-After value: seconds rounded up to the millisecond, without trailing zeros."""
    text = f"{math.ceil(max(seconds, 0.0) * 1000) / 1000:.3f}".rstrip("0").rstrip(".")
    return text or "0"


@dataclass(frozen=True)
class Faults:
    """Fault rates applied to the first `max_per_request` sightings of each request content."""

    rate_429: float = 0.0
    """Fraction of early attempts answered 429 with a `Retry-After: retry_after` header."""
    rate_500: float = 0.0
    """Fraction of early attempts answered 500 with an OpenAI error body."""
    rate_timeout: float = 0.0
    """Fraction of early attempts that sleep `timeout_sleep` s before answering (the client times out first)."""
    rate_malformed: float = 0.0
    """Fraction of early attempts answered 200 with content that is not a verdict."""
    max_per_request: int = 2
    """A given request content fails at most this many times, then is always served normally."""
    retry_after: float = 0.0
    """Seconds sent in the Retry-After header of fault 429s."""
    timeout_sleep: float = 3.0
    """Seconds a timeout fault stalls before it tries to send the normal reply."""
    seed: int = 0
    """Seed of the fault draws: same seed, same requests, same faults."""

    def __post_init__(self) -> None:
        """Reject rates outside [0, 1], rates summing past 1, and negative counts or durations."""
        rates = {
            "rate_429": self.rate_429,
            "rate_500": self.rate_500,
            "rate_timeout": self.rate_timeout,
            "rate_malformed": self.rate_malformed,
        }
        for name, value in rates.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Faults.{name} must lie in [0, 1], got {value}")
        if sum(rates.values()) > 1.0 + 1e-9:
            raise ValueError(
                f"Faults rates must sum to at most 1, got {sum(rates.values())} from {rates}"
            )
        if self.max_per_request < 0:
            raise ValueError(f"Faults.max_per_request must be >= 0, got {self.max_per_request}")
        if self.retry_after < 0 or self.timeout_sleep < 0:
            raise ValueError(
                f"Faults.retry_after and timeout_sleep must be >= 0, got {self.retry_after}, {self.timeout_sleep}"
            )

    def decide(self, request_hash: str, k: int) -> FaultKind:
        """The fault for the k-th sighting (0-based) of the content with hash `request_hash`."""
        if k >= self.max_per_request:
            return "none"
        digest = hashlib.sha256(f"{self.seed}:{request_hash}:{k}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2.0**64
        cumulative = 0.0
        for kind, rate in (
            ("429", self.rate_429),
            ("500", self.rate_500),
            ("timeout", self.rate_timeout),
            ("malformed", self.rate_malformed),
        ):
            cumulative += rate
            if u < cumulative:
                return kind  # type: ignore[return-value]
        return "none"


def error_body(message: str, type_: str, code: str | None) -> dict:
    """An error payload in the shape the OpenAI API (and so its client) uses."""
    return {"error": {"message": message, "type": type_, "code": code, "param": None}}
