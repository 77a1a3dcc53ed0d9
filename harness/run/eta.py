"""Expected cost of requests, in forward-token units, for the run's ETA and the default run's
time estimate.

One unit is the cost of one token through one forward pass. A log-likelihood request costs
its tokens (context + continuation). A generation costs its prompt's tokens (the prefill)
plus ``max_new_tokens`` decode steps, each worth ``DECODE_FACTOR`` units for one row of a
full batch and dearer with a longer context (attention and the key/value cache grow with it:
``1 + prompt_tokens / DECODE_CONTEXT``). Budgeting every generation at its full
``max_new_tokens`` is not pessimism: a batch decodes until its last row stops, and a small
model nearly always has a row that never does.

The constants are measurements of the embedded model (SmolLM2-135M-Instruct, float32) on this
project's 2-core CPU, in docs/running.md ("The default run"):

- ``SECONDS_PER_UNIT`` 0.002 s: the full XCOPA + XWinograd log-likelihood part, 18,922
  requests of ~38 tokens, took 24 minutes on the idle machine (0.076 s per request);
- ``DECODE_FACTOR`` 10: idle greedy decoding ran at ~11 tokens/s for one sequence and ~40
  for a batch of 8, i.e. a decode step of 0.09 s + ~0.016 s per row: 0.02 s per row in a
  batch of 16 = 10 forward tokens;
- ``DECODE_CONTEXT`` 1,130 tokens: a decode step cost 0.48 s after MGSM's 676-token English
  prompt and 1.94 s after its 6,177-token Telugu one (same load): linear, doubling at ~1,130.

The run's ETA (:class:`~glotbench.harness.core.progress.WorkEta`) starts from these and
replaces them with the seconds per unit it observes for each kind as the run goes, so a GPU
or a busier CPU is priced correctly after its first chunk.
"""

from __future__ import annotations

from collections.abc import Callable

from glotbench.harness.core.records import GenerationRequest, LoglikelihoodRequest

SECONDS_PER_UNIT = 0.002
DECODE_FACTOR = 10.0
DECODE_CONTEXT = 1130.0
BYTES_PER_TOKEN = 3.0
"""Token count when no tokenizer is at hand: UTF-8 bytes / 3 (SmolLM2's tokenizer: 3.3
bytes per token on English MGSM, 1.0 on Telugu; only ratios within a run matter to the ETA)."""

KINDS = ("loglikelihood", "generate")
PRIOR = {"loglikelihood": SECONDS_PER_UNIT, "generate": SECONDS_PER_UNIT}
"""Seconds per unit before anything ran: one unit costs the same for both kinds by construction."""

Counter = Callable[[str], int]


def approx_tokens(text: str) -> int:
    return max(1, round(len(text.encode("utf-8")) / BYTES_PER_TOKEN))


def generation_units(prompt_tokens: int, max_new_tokens: int) -> float:
    """Expected cost of one generation: prefill + every decode step at its context length."""
    return prompt_tokens + max_new_tokens * DECODE_FACTOR * (1.0 + prompt_tokens / DECODE_CONTEXT)


def request_units(request: LoglikelihoodRequest | GenerationRequest, count: Counter = approx_tokens) -> float:
    """Expected cost of one request in forward-token units."""
    if isinstance(request, GenerationRequest):
        return generation_units(count(request.prompt), request.max_new_tokens)
    return float(count(request.context + request.continuation))


def request_kind(request: LoglikelihoodRequest | GenerationRequest) -> str:
    return "generate" if isinstance(request, GenerationRequest) else "loglikelihood"


def token_counter(backend) -> Counter:
    """The backend's own tokenizer when it exposes one (HF backends), else :func:`approx_tokens`."""
    tokenizer = getattr(backend, "tokenizer", None)
    if tokenizer is None or not callable(getattr(tokenizer, "encode", None)):
        return approx_tokens

    def count(text: str) -> int:
        return max(1, len(tokenizer.encode(text, add_special_tokens=False)))

    return count
