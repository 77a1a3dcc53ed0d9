"""A reward model as a scorer of candidates: ``RewardModelScorer(path).score(prompts, candidates)``.

The scoring itself (the convention of :mod:`glotbench.training.reward.encode`, batching,
right padding, the request cache keyed by the RM's weights hash, non-finite outputs as None)
is the harness's :class:`glotbench.harness.models.reward.RewardScorer`, which the ``rm:``
judge shares; this module adapts it to training's records (a :class:`Prompt` per
``prompt_id``, :class:`Candidate` completions). The cache keys are the same, so a completion
scored by arbitrage is not scored again by the judge with the same model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.models.reward import (
    DTYPES,
    RM_FILES,
    SCORE_VERSION,
    RewardScorer,
    trained_max_length,
)
from glotbench.training.core.records import Candidate, Prompt

__all__ = ["DTYPES", "RM_FILES", "SCORE_VERSION", "RewardModelScorer", "trained_max_length"]


class RewardModelScorer(RewardScorer):
    """Scores candidates (their prompt's turns and their completion) with a reward model; see
    :class:`~glotbench.harness.models.reward.RewardScorer` for ``max_length``, ``stats`` and
    the cache."""

    def score(self, prompts: Mapping[str, Prompt], candidates: Sequence[Candidate]) -> list[float | None]:
        """One score per candidate, in order (None: could not be scored)."""
        missing = sorted({c.prompt_id for c in candidates} - set(prompts))
        if missing:
            raise GlotbenchError(f"{len(missing)} candidate(s) have no prompt (e.g. {missing[0]!r})",
                                 "pass the prompts every candidate answers")
        return super().score([(prompts[c.prompt_id].messages, c.completion) for c in candidates])
