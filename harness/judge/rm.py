"""``--judge rm:<dir>``: a scalar reward model as the pairwise judge.

Each distinct (instruction, completion) of the plan is scored once by
:class:`glotbench.harness.models.reward.RewardScorer` (the reward-model convention that
``glotbench train reward`` trains on: chat template over ``[user instruction, assistant
completion]``, ``logits[:, 0]`` at the last real token), cached in the request cache under
the RM's weights hash, so a completion that meets several opponents is scored once and a
rerun computes nothing. A pair is won by the higher score; ``|a − b| ≤ margin``
(``--rm-tie-margin``, default 0: a tie only on equal scores) is a tie. Identical completions
are a tie without scoring, as with the LLM judges (``identical``).

Orders. A scalar score does not depend on which answer is shown first, so both orders would
repeat one verdict: each prompt gets ONE judgment, recorded with order ``ab``. The win-rate
statistics (:mod:`glotbench.harness.judge.winrate`) and the gate read it as they read an LLM
judge's: the bootstrap resamples prompts, ``n`` counts prompts, nothing is counted twice.
The position-bias fields have no meaning here (``order_flip_rate`` is None: no prompt is
judged in both orders).

A score that is None (a non-finite output, or a prompt that fills ``max_length``) makes its
judgments ``invalid``: counted in ``counts.invalid`` and each language's ``invalid``, never a
tie, never dropped; the record says why.
"""

from __future__ import annotations

from glotbench.harness.core.records import ChatMessage
from glotbench.harness.judge.config import JudgeConfig, reward_model_dir
from glotbench.harness.judge.pairing import Item
from glotbench.harness.models.reward import SCORE_VERSION, RewardScorer
from glotbench.harness.run.cache import RequestCache


def make_scorer(cfg: JudgeConfig, cache: RequestCache) -> RewardScorer:
    """The scorer of an ``rm:<dir>`` judge, checked (config, one label, chat template) before any scoring."""
    path = reward_model_dir(cfg.judge)
    assert path is not None  # callers dispatch on reward_model_dir
    device = cfg.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    # float32 unless asked: the scores are compared against a margin, and a reduced precision
    # would turn near-ties into coin flips that differ between machines.
    dtype = "float32" if cfg.dtype == "auto" else cfg.dtype
    scorer = RewardScorer(path, batch_size=cfg.batch_size, device=device, dtype=dtype,
                          max_length=cfg.rm_max_length, cache=cache)
    scorer.check()
    return scorer


def outcome(score_a: float, score_b: float, margin: float) -> tuple[str, str]:
    """(outcome, verdict) of model A's score against model B's under the tie margin."""
    if abs(score_a - score_b) <= margin:
        return "tie", "within_margin"
    return ("a", "a_higher") if score_a > score_b else ("b", "b_higher")


def judge_with_reward_model(cfg: JudgeConfig, items: list[Item],
                            cache: RequestCache) -> tuple[list[dict], dict, dict]:
    """(judgment records in ``items`` order, usage, judge provenance) of an ``rm:<dir>`` judge."""
    if any(item.order != "ab" for item in items):
        raise ValueError("a reward-model judging takes one item per prompt (order ab); plan() makes them")
    scorer = make_scorer(cfg, cache)
    convs: dict[tuple[str, str], None] = {}  # each distinct (instruction, completion) once
    for item in items:
        if item.answers[0] != item.answers[1]:
            convs.update({(item.instruction, answer): None for answer in item.answers})
    todo = list(convs)
    values = scorer.score([((ChatMessage("user", instruction),), answer) for instruction, answer in todo])
    scores = dict(zip(todo, values))
    records = []
    for item in items:
        rec = {"prompt_id": item.prompt_id, "order": item.order, "first": item.pair[0], "position": None,
               "attempts": 0, "replies": [], "error": None}
        if item.answers[0] == item.answers[1]:
            records.append({**rec, "outcome": "tie", "verdict": "identical", "scores": None})
            continue
        a, b = (scores[(item.instruction, answer)] for answer in item.answers)
        rec["scores"] = {"a": a, "b": b}
        if a is None or b is None:
            whys = [scorer.why((ChatMessage("user", item.instruction),), answer) or "no score"
                    for answer, s in zip(item.answers, (a, b)) if s is None]
            records.append({**rec, "outcome": "invalid", "verdict": None, "why": "; ".join(whys)})
            continue
        result, verdict = outcome(a, b, cfg.rm_tie_margin)
        records.append({**rec, "outcome": result, "verdict": verdict, "difference": a - b})
    stats = scorer.stats
    usage = {
        "requests_sent": stats["computed"], "replies": stats["computed"], "from_cache": stats["cached"],
        "retries": {}, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0,
        "reward_model": {"completions": len(todo), **stats},
    }
    ident = scorer.identity
    judge = {"spec": cfg.judge, "kind": "reward_model", "path": str(scorer.path),
             "weights_sha256": ident["weights_sha256"], "tie_margin": cfg.rm_tie_margin,
             "max_length": scorer.max_length, "dtype": scorer.dtype, "device": scorer.device,
             "batch_size": scorer.batch_size, "score_version": SCORE_VERSION, "versions": ident["versions"],
             "orders": "one judgment per prompt (order ab): a scalar score has no position"}
    return records, usage, judge
