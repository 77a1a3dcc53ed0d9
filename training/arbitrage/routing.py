"""Routing: which candidate of each prompt becomes training data, the preference pairs, and the
per-language × teacher statistics of ``routing.json``.

Policies (:data:`POLICIES`):

- ``reward`` (Odumakinde et al. 2024, the Aya Expanse recipe): the candidate with the highest
  score among every candidate of the prompt.
- ``fixed``: the paper's baseline, one teacher per language from the config; among that
  teacher's samples the best scored one (sample 0 when none is scored).
- ``learned``: a router (:mod:`glotbench.training.arbitrage.router`) picked one teacher per
  prompt *before* generating; among that teacher's samples the best scored one.

Ties. Candidates are compared by score, then by their position in the input sequence: the
earliest wins. The arbitrage engine lists candidates in the config's teacher order, then by
sample index, so a tie goes to the teacher listed first, then to the lower sample index. The
worst candidate of a pair is the lowest score, ties again to the earliest.

Failures are data: a candidate whose score is None is never chosen; a prompt whose candidates
are all unscored is not routed (``reward``) and counted under ``unrouted`` in the statistics.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, get_args

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.metrics.stats import summarize
from glotbench.training.core.records import Candidate

Policy = Literal["reward", "fixed", "learned"]
POLICIES: tuple[str, ...] = get_args(Policy)


def by_prompt(candidates: Iterable[Candidate]) -> dict[str, list[Candidate]]:
    """prompt_id → its candidates, in input order (prompts in order of first appearance)."""
    out: dict[str, list[Candidate]] = {}
    for c in candidates:
        out.setdefault(c.prompt_id, []).append(c)
    return out


def best(cands: Sequence[Candidate]) -> Candidate | None:
    """The highest-scored candidate (earliest on a tie); None when none is scored."""
    scored = [c for c in cands if c.score is not None]
    # max() returns the first maximal element, which is the documented tie-break.
    return max(scored, key=lambda c: c.score) if scored else None  # type: ignore[arg-type, return-value]


def worst(cands: Sequence[Candidate]) -> Candidate | None:
    """The lowest-scored candidate (earliest on a tie); None when none is scored."""
    scored = [c for c in cands if c.score is not None]
    return min(scored, key=lambda c: c.score) if scored else None  # type: ignore[arg-type, return-value]


def check_fixed(fixed: Mapping[str, str], languages: Iterable[str]) -> None:
    """Raise the one-line error of the ``fixed`` policy when a prompt language has no teacher
    (the arbitrage stage calls it once the prompts are loaded, before any generation)."""
    missing = sorted(set(languages) - set(fixed))
    if missing:
        raise GlotbenchError(
            f"routing policy fixed has no teacher for language(s) {', '.join(missing)} "
            f"(fixed covers {', '.join(sorted(fixed)) or 'none'})",
            f"add routing.fixed.{missing[0]}: <teacher name> for every prompt language")


def choose(candidates: Sequence[Candidate], policy: Policy, fixed: Mapping[str, str] | None = None,
           *, picks: Mapping[str, str] | None = None) -> dict[str, Candidate]:
    """prompt_id → the chosen candidate under ``policy``.

    ``fixed``: language → teacher (policy ``fixed``); ``picks``: prompt_id → teacher the
    router picked (policy ``learned``). A prompt whose policy teacher has no candidate, or
    (policy ``reward``) whose candidates are all unscored, is left out: the caller counts
    it via :func:`routing_stats` (``unrouted``)."""
    if policy not in POLICIES:
        raise GlotbenchError(f"unknown routing policy {policy!r}", f"use one of {', '.join(POLICIES)}")
    groups = by_prompt(candidates)
    if policy == "fixed":
        if fixed is None:
            raise GlotbenchError("routing policy fixed needs a teacher per language", "set routing.fixed")
        check_fixed(fixed, {c.language for c in candidates})
    if policy == "learned" and picks is None:
        raise GlotbenchError("routing policy learned needs the router's picks", "fit a router first (router.py)")
    chosen: dict[str, Candidate] = {}
    for pid, cands in groups.items():
        if policy == "reward":
            pick = best(cands)
        else:
            teacher = fixed[cands[0].language] if policy == "fixed" else picks.get(pid)  # type: ignore[union-attr]
            mine = [c for c in cands if c.teacher == teacher]
            pick = (best(mine) or mine[0]) if mine else None
        if pick is not None:
            chosen[pid] = pick
    return chosen


def preference_pairs(candidates: Sequence[Candidate]) -> tuple[list[dict], dict]:
    """The best and worst scored candidate of every prompt, as ``pairs.jsonl`` records.

    Skipped and counted (``counts`` keys add up to ``prompts``): ``single_candidate`` (the
    prompt has one candidate), ``too_few_scored`` (two or more candidates, fewer than two
    scored), ``tie`` (best score == worst score: no preference to learn); ``pairs`` the rest."""
    pairs: list[dict] = []
    counts = {"prompts": 0, "pairs": 0, "single_candidate": 0, "too_few_scored": 0, "tie": 0}
    for pid, cands in by_prompt(candidates).items():
        counts["prompts"] += 1
        if len(cands) == 1:
            counts["single_candidate"] += 1
            continue
        if sum(c.score is not None for c in cands) < 2:
            counts["too_few_scored"] += 1
            continue
        hi, lo = best(cands), worst(cands)
        assert hi is not None and lo is not None  # two scored candidates exist
        if hi.score == lo.score:
            counts["tie"] += 1
            continue
        counts["pairs"] += 1
        pairs.append({"prompt_id": pid, "language": hi.language,
                      "chosen": hi.completion, "chosen_teacher": hi.teacher, "chosen_sample": hi.sample,
                      "chosen_score": hi.score,
                      "rejected": lo.completion, "rejected_teacher": lo.teacher, "rejected_sample": lo.sample,
                      "rejected_score": lo.score})
    return pairs, counts


def routing_stats(candidates: Sequence[Candidate], chosen: Mapping[str, Candidate], seed: int) -> dict:
    """``routing.json``: per language × teacher the wins (prompts routed to it), win share,
    candidates, scored / unscored candidates and the mean score with a seeded bootstrap 95 %
    CI (:func:`glotbench.harness.metrics.stats.summarize`); the same per teacher over all
    languages; totals. Invariants: the wins of a language sum to its ``routed`` prompts,
    ``routed + unrouted == prompts``, ``scored + unscored == candidates``."""
    groups = by_prompt(candidates)
    teachers = list(dict.fromkeys(c.teacher for c in candidates))
    langs = sorted({c.language for c in candidates})
    unknown = set(chosen) - set(groups)
    if unknown:
        raise ValueError(f"chosen names {len(unknown)} prompt(s) without candidates, e.g. {sorted(unknown)[0]!r}")

    def cell(cands: list[Candidate], wins: int, routed: int) -> dict:
        scores = [c.score for c in cands if c.score is not None]
        return {"wins": wins, "win_share": wins / routed if routed else None, "candidates": len(cands),
                "scored": len(scores), "unscored": len(cands) - len(scores), "score": summarize(scores, seed)}

    languages: dict[str, dict] = {}
    for lang in langs:
        pids = [pid for pid, cs in groups.items() if cs[0].language == lang]
        won = [chosen[p].teacher for p in pids if p in chosen]
        mine = [c for p in pids for c in groups[p]]
        languages[lang] = {"prompts": len(pids), "routed": len(won), "unrouted": len(pids) - len(won),
                           "teachers": {t: cell([c for c in mine if c.teacher == t], won.count(t), len(won))
                                        for t in teachers if any(c.teacher == t for c in mine)}}
    all_won = [c.teacher for c in chosen.values()]
    per_teacher = {t: cell([c for c in candidates if c.teacher == t], all_won.count(t), len(all_won))
                   for t in teachers}
    scored = sum(c.score is not None for c in candidates)
    totals = {"prompts": len(groups), "routed": len(chosen), "unrouted": len(groups) - len(chosen),
              "candidates": len(candidates), "scored": scored, "unscored": len(candidates) - scored}
    return {"seed": seed, "teachers": teachers, "languages": languages, "per_teacher": per_teacher,
            "totals": totals}
