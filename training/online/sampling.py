"""The policy's side of an online iteration: sample K completions per prompt, score them, and
(held-out prompts) measure their log-probabilities under the policy and the initial policy.

Generation is the arbitrage stage's generating teacher (training/arbitrage/teachers.py): the
config's backend (transformers, or vLLM with ``backend: vllm``) through a request cache keyed by the checkpoint's weights hash and the
full request, committed in fixed chunks, so a loop killed mid-generation resumes without
regenerating and gives the completions an uninterrupted run gives. Sample ``k`` of a prompt
uses seed ``seed + k``.

KL estimate. For a held-out completion y of prompt x sampled from the policy π, the
sequence log-ratio ``log π(y|x) − log π₀(y|x)`` against the initial policy π₀ (both summed
over the completion's tokens as the tokenizer splits the text; the end-of-sequence token is
not counted). Its mean is the usual Monte-Carlo (k1) estimate of KL(π‖π₀) when sampling at
temperature 1; at another temperature it estimates the divergence of the sampled
distribution, still the drift signal to watch (docs/training.md#online-dpo).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from glotbench.harness.core.records import LoglikelihoodRequest
from glotbench.harness.run.cache import RequestCache
from glotbench.training.arbitrage.config import TeacherConfig
from glotbench.training.arbitrage.teachers import Generating
from glotbench.training.core.records import Candidate, Prompt
from glotbench.training.online.config import OnlineConfig

POLICY = "policy"
"""The teacher name of the policy's candidates (``teacher`` in samples.jsonl and pairs.jsonl)."""


@dataclass
class Samples:
    """The scored samples of one policy on a set of prompts."""

    candidates: list[Candidate]
    lengths: list[int | None]
    """Completion tokens of each candidate, as generated."""
    identity: dict
    generated: int
    from_cache: int
    tokens: int
    unscored: int


def generate(cfg: OnlineConfig, policy: Path, prompts: Sequence[Prompt], k: int, seed: int, cache: RequestCache,
             progress: Callable[[int], None]) -> tuple[Samples, Generating]:
    """K samples per prompt from the checkpoint ``policy`` (unscored); the loaded generator too
    (its backend scores log-probabilities for the KL estimate)."""
    teacher = TeacherConfig(name=POLICY, model=f"{cfg.backend}:{policy}", samples=k, temperature=cfg.sampling.temperature,
                            max_new_tokens=cfg.sampling.max_new_tokens, seed=seed)
    gen = Generating(teacher, device=cfg.device, dtype=cfg.dtype, batch_size=cfg.batch_size)
    run = gen.run(prompts, cache, progress)
    return Samples(run.candidates, run.lengths, run.identity, run.computed, run.from_cache, run.tokens, 0), gen


def score(scorer, prompts: Mapping[str, Prompt], samples: Samples) -> Samples:
    """The samples with the scorer's scores (None where it could not score: counted)."""
    if not samples.candidates:
        return samples
    values = scorer.score(prompts, samples.candidates)
    if len(values) != len(samples.candidates):
        raise RuntimeError(f"scorer returned {len(values)} scores for {len(samples.candidates)} candidates")
    scored = [replace(c, score=s) for c, s in zip(samples.candidates, values)]
    return replace(samples, candidates=scored, unscored=sum(s is None for s in values))


def logprobs(backend, prompts: Mapping[str, Prompt], candidates: Sequence[Candidate]) -> list[tuple[float, int]]:
    """(summed log-probability, completion tokens) of each candidate under ``backend``."""
    requests = [LoglikelihoodRequest(backend.apply_chat_template(prompts[c.prompt_id].messages), c.completion)
                for c in candidates]
    return [(r.logprob, r.n_tokens) for r in backend.loglikelihood(requests)]


def load_scoring_backend(cfg: OnlineConfig, checkpoint: Path):
    """The config's backend of ``checkpoint`` for log-probabilities only."""
    from glotbench.harness.models.loader import load_backend

    return load_backend(f"{cfg.backend}:{checkpoint}", device=cfg.device, dtype=cfg.dtype, batch_size=cfg.batch_size)
