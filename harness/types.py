"""Typed, frozen records that flow between tasks, backends, the runner and the store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal


@dataclass(frozen=True)
class Sample:
    """One benchmark item, exactly as loaded from its data source."""

    doc_id: int
    """Position of the row in its source file/split (stable across runs)."""
    lang: str
    """Language code as the task spells it (e.g. ``et``, ``jp``)."""
    fields: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """The raw row; read-only."""


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """Score ``continuation`` given ``context``.

    Spacing convention (lm-eval's): a word-boundary space belongs to the continuation.
    Backends move any trailing whitespace of the context onto the continuation before
    tokenising, then tokenise ``context + continuation`` as a whole and split it after
    the tokens of ``context`` alone.
    """

    context: str
    continuation: str


@dataclass(frozen=True)
class LoglikelihoodResult:
    """Sum of log-probabilities of the continuation's tokens."""

    logprob: float
    is_greedy: bool
    """True when every continuation token is the argmax of its position."""
    n_tokens: int
    """Number of continuation tokens scored."""


@dataclass(frozen=True)
class GenerationRequest:
    """Generate from ``prompt`` (already rendered, chat template included if any)."""

    prompt: str
    stop: tuple[str, ...] = ()
    """Generation ends at the first occurrence of any of these; the stop string is cut."""
    max_new_tokens: int = 256
    temperature: float = 0.0
    """0 means greedy decoding."""
    seed: int = 0
    """Seed for sampled decoding (ignored when greedy)."""


@dataclass(frozen=True)
class GenerationResult:
    text: str
    n_tokens: int
    finish: Literal["stop", "length", "eos"]


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class MultipleChoicePrompt:
    """A rendered multiple-choice item: one (context, continuation) pair per choice."""

    pairs: tuple[LoglikelihoodRequest, ...]
    gold: int
    """Index of the correct choice."""

    @property
    def target(self) -> str:
        """The gold choice, as shown in per-example records."""
        req = self.pairs[self.gold]
        return req.continuation if len({p.context for p in self.pairs}) == 1 else req.context
