"""Held-out pairwise accuracy of a reward model, with a seeded bootstrap CI over instructions.

A pair is won when the RM scores the chosen answer above the rejected one, tied (½) when the
scores are equal or either could not be scored (the model expresses no preference; both are
counted, never dropped). Pairs of one instruction are not independent (AlpacaEval holds up to
five per instruction), so the bootstrap resamples instructions, not pairs. Chance is 50 %.
Two references put the number in context: the same accuracy split by who wrote the chosen
answer (AlpacaEval's judge prefers the gpt4 baseline in most pairs, so a model that learnt
"sounds like gpt4" scores well on those alone), and the "longer answer wins" rule.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from glotbench.training.core.records import Candidate, Prompt
from glotbench.training.reward.data import PreferencePair

RESAMPLES = 1000


def outcomes(chosen: Sequence[float | None], rejected: Sequence[float | None]) -> list[float]:
    """1 (chosen above rejected), ½ (equal, or either unscored), 0 (below), per pair."""
    out = []
    for c, r in zip(chosen, rejected, strict=True):
        out.append(0.5 if c is None or r is None or c == r else float(c > r))
    return out


def pairwise_accuracy(values: Sequence[float], groups: Sequence[str], seed: int,
                      resamples: int = RESAMPLES) -> dict:
    """Mean of per-pair ``values`` (1, ½, 0) with a 95 % percentile bootstrap CI that
    resamples ``groups`` (instructions) with replacement, seeded."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return {"accuracy": None, "n_pairs": 0, "n_instructions": 0, "ci95": None, "chance": 0.5}
    index: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        index[g].append(i)
    sums = np.array([x[ix].sum() for ix in index.values()])
    sizes = np.array([len(ix) for ix in index.values()], dtype=float)
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, len(sums), size=(resamples, len(sums)))
    means = sums[draw].sum(axis=1) / sizes[draw].sum(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return {"accuracy": float(x.mean()), "n_pairs": n, "n_instructions": len(sums),
            "wins": int((x == 1).sum()), "ties": int((x == 0.5).sum()), "losses": int((x == 0).sum()),
            "ci95": [float(lo), float(hi)], "chance": 0.5,
            "bootstrap": {"unit": "instruction", "resamples": resamples, "seed": seed}}


def records(pairs: Sequence[PreferencePair]) -> tuple[dict[str, Prompt], list[Candidate]]:
    """The pairs as scorer input: one prompt per pair, its chosen then its rejected candidate."""
    prompts = {p.pair_id: Prompt(p.pair_id, "", p.messages, p.pair_id) for p in pairs}
    cands = []
    for p in pairs:
        cands.append(Candidate(p.pair_id, "", p.chosen_by or "chosen", 0, p.chosen, None))
        cands.append(Candidate(p.pair_id, "", p.rejected_by or "rejected", 0, p.rejected, None))
    return prompts, cands


def evaluate_pairs(scorer, pairs: Sequence[PreferencePair], seed: int) -> dict:
    """Score both answers of every pair with ``scorer`` (a RewardModelScorer or any object with
    ``score(prompts, candidates)``) and summarise: accuracy with CI, per chosen author, and the
    length reference."""
    prompts, cands = records(pairs)
    scores = scorer.score(prompts, cands)
    chosen, rejected = scores[0::2], scores[1::2]
    values = outcomes(chosen, rejected)
    groups = [p.group for p in pairs]
    result = pairwise_accuracy(values, groups, seed)
    result["unscored_pairs"] = sum(c is None or r is None for c, r in zip(chosen, rejected))
    by_author: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(pairs):
        by_author[p.chosen_by or "unknown"].append(i)
    result["by_chosen_author"] = {
        a: pairwise_accuracy([values[i] for i in ix], [groups[i] for i in ix], seed)
        for a, ix in sorted(by_author.items())}
    longer = outcomes([len(p.chosen) for p in pairs], [len(p.rejected) for p in pairs])
    result["reference_longer_wins"] = pairwise_accuracy(longer, groups, seed)
    result["scores"] = [{"pair_id": p.pair_id, "chosen": c, "rejected": r}
                        for p, c, r in zip(pairs, chosen, rejected)]
    return result
