"""Typed records that flow between training stages: prompts and the candidate completions
generated for them. Frozen: a stage reads them, never edits them in place."""

from __future__ import annotations

from dataclasses import dataclass

from glotbench.harness.core.records import ChatMessage


@dataclass(frozen=True)
class Prompt:
    """One training prompt in one language."""

    prompt_id: str
    """Unique within a prompt set (``<source id>`` or ``<source id>/<language>``)."""
    language: str
    """ISO 639-1/3 code as the prompt set states it (``de``, ``zh``, ``en``)."""
    messages: tuple[ChatMessage, ...]
    """The conversation so far, ending with a user turn."""
    source: str = ""
    """Where the prompt came from (file and line, or hub dataset and row): named in errors."""

    @property
    def text(self) -> str:
        """The last user turn: what the eval-overlap check and the learned router look at."""
        return self.messages[-1].content


@dataclass(frozen=True)
class Candidate:
    """One completion of one prompt by one teacher, with its score once scored."""

    prompt_id: str
    language: str
    teacher: str
    """The teacher's name in the arbitrage config."""
    sample: int
    """0..K-1 for a teacher with ``samples: K``; 0 for a published completion."""
    completion: str
    finish: str | None
    """``stop``, ``length`` (cut at max tokens), or None when unknown (published files)."""
    score: float | None = None
    """The scorer's value; None while unscored or when the scorer could not score it (counted)."""
