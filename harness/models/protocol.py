"""The backend protocol: two batched calls and a chat template.

Every backend takes *lists* of requests so it can batch and cache internally; results come
back in request order. Spacing convention: see :class:`glotbench.harness.core.records.LoglikelihoodRequest`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from glotbench.harness.core import versions
from glotbench.harness.core.records import (
    ChatMessage,
    GenerationRequest,
    GenerationResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
)


@dataclass(frozen=True)
class ModelIdentity:
    """What determines a backend's answers; the request cache key and the model's provenance.

    Everything that can change a log-likelihood or a generation for the same request is here
    (docs/reproducibility.md): glotbench's scoring code (its version), the weights, dtype,
    device and the hardware class it computes on, the attention kernel, and the versions of
    the libraries that compute the answers. Left out on purpose: batch size and packing,
    thread count. They only change the order of float additions (about 1e-4 nats on XCOPA;
    the parity tests require the same predictions at batch sizes 1 and 16), and leaving them
    out lets a run resumed with another ``--batch-size`` reuse what it already computed.
    """

    backend: str
    """e.g. ``hf``."""
    name: str
    """Human-readable model name (embedded name, directory or hub id)."""
    weights_sha256: str
    """Hash of the weight, config and tokenizer files the backend loaded."""
    dtype: str
    device: str
    """``cpu`` or ``cuda``."""
    hardware: str = ""
    """The compute class within the device: the GPU's name, or the CPU's vector instruction
    set torch dispatches to (``AVX512``, ``AVX2``, ...). Kernels and their rounding differ
    between them, so a cache shared between machines never mixes their answers."""
    attn_implementation: str = ""
    """The attention kernel actually in use (``sdpa`` or ``eager``)."""
    libraries: Mapping[str, str | None] = field(default_factory=dict, hash=False)
    """Versions of :data:`~glotbench.harness.core.versions.ANSWER_LIBRARIES`."""
    scoring_version: int = field(default_factory=lambda: versions.SCORING_VERSION)
    """:data:`~glotbench.harness.core.versions.SCORING_VERSION` of the code that answered."""

    @property
    def cache_key(self) -> str:
        """A deterministic, readable key, equal exactly when every field but ``name`` is equal
        (the same weights under another name answer the same)."""
        libs = ",".join(f"{k}={v}" for k, v in sorted(self.libraries.items()))
        return (f"{self.backend}|{self.weights_sha256}|{self.dtype}|{self.device}|{self.hardware}|"
                f"{self.attn_implementation}|scoring={self.scoring_version}|{libs}")


class Backend(Protocol):
    """Optional besides these: ``min_chunk``, the fewest requests per call at which the
    backend runs at full speed (a continuous-batching engine on a GPU fills its batch from
    one call); a run hands it chunks at least that big, but no bigger than an equal share of
    the pending requests for each of its ``replicas`` (a data-parallel pool; 1 if absent)."""

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
