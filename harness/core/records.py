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


@dataclass(frozen=True)
class Shot:
    """One few-shot example: a rendered question and its answer."""

    question: str
    answer: str


@dataclass(frozen=True)
class GenerationPrompt:
    """A rendered generative item, kept in parts so that the runner can lay it out as plain
    text or through a chat template (few-shot examples as turns or inside one user turn).

    Plain text is ``shot.question + delimiter + shot.answer + separator`` for every shot,
    then ``question`` — lm-eval's layout, where the delimiter sits between a prompt and its
    answer and the separator between examples.
    """

    question: str
    """The scored item as the last (user) turn, answer cue included."""
    target: str
    """The gold answer, as the scorer compares it."""
    shots: tuple[Shot, ...] = ()
    system: str | None = None
    """Task instruction; in plain text it opens the prompt, followed by ``separator``."""
    delimiter: str = " "
    separator: str = "\n\n"
    stop: tuple[str, ...] = ()
    max_new_tokens: int = 512

    def plain(self) -> str:
        head = self.system + self.separator if self.system else ""
        shots = "".join(s.question + self.delimiter + s.answer + self.separator for s in self.shots)
        return head + shots + self.question

    def messages(self, fewshot_as: Literal["multiturn", "single-turn"]) -> tuple[ChatMessage, ...]:
        """Chat messages; the system instruction, if any, is a system message."""
        msgs: list[ChatMessage] = [ChatMessage("system", self.system)] if self.system else []
        if fewshot_as == "multiturn":
            for s in self.shots:
                msgs += [ChatMessage("user", s.question), ChatMessage("assistant", s.answer)]
            msgs.append(ChatMessage("user", self.question))
        elif fewshot_as == "single-turn":
            body = "".join(s.question + self.delimiter + s.answer + self.separator for s in self.shots)
            msgs.append(ChatMessage("user", body + self.question))
        else:
            raise ValueError(f"fewshot_as must be 'multiturn' or 'single-turn', got {fewshot_as!r}")
        return tuple(msgs)
