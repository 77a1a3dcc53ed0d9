"""The backend protocol: two batched calls and a chat template.

Every backend takes *lists* of requests so it can batch and cache internally; results come
back in request order. Spacing convention: see :class:`glotbench.harness.core.records.LoglikelihoodRequest`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from glotbench.harness.core.records import (
    ChatMessage,
    GenerationRequest,
    GenerationResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
)


@dataclass(frozen=True)
class ModelIdentity:
    """What determines a backend's outputs; part of every cache key and of provenance."""

    backend: str
    """e.g. ``hf``."""
    name: str
    """Human-readable model name (embedded name, directory or hub id)."""
    weights_sha256: str
    """Hash of weights, config and tokenizer files."""
    dtype: str
    device: str

    @property
    def cache_key(self) -> str:
        return f"{self.backend}|{self.weights_sha256}|{self.dtype}|{self.device}"


class Backend(Protocol):
    identity: ModelIdentity
    batch_size: int

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        """Log-probability of each continuation given its context."""
        ...

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Text generated for each prompt, cut at its first stop string."""
        ...

    @property
    def chat_template(self) -> str | None:
        """The model's chat template, None for a model without one."""
        ...

    def apply_chat_template(self, messages: Sequence[ChatMessage]) -> str:
        """Render messages with the model's chat template, ending with the assistant cue."""
        ...
