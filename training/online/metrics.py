"""The numbers of an online-DPO run, from the files of its iterations (nothing is measured twice).

Per iteration (``iter-<n>/metrics.json``) and for the run (``metrics.json``), the signals the
report names as the reason to stop at three rounds — β drift and reward hacking:

- ``held_out``: the policy's completions on the held-out prompts, scored by the run's scorer:
  mean reward with a seeded bootstrap 95 % CI, overall and per language; mean completion
  length in tokens and characters; the KL estimate to the initial policy (training/online/
  sampling.py) with its CI; unscored completions counted;
- ``win_rate``: the share of held-out completions scoring above the same prompt's and sample
  index's completion of another policy (ties ½), against the initial policy and against the
  iteration's start, with a CI. Same seeds for every policy: the pairs share their randomness;
- ``pairs``: prompts, pairs kept, and every drop by reason (single candidate, fewer than two
  scored, tie, gap below ``min_gap``);
- ``dpo``: trl's logged loss, reward accuracy and reward margin, first and last step, per seed;
- ``tokens`` generated and ``wall_seconds`` per phase.
"""

from __future__ import annotations

from collections.abc import Sequence

from glotbench.harness.metrics.stats import summarize

TIMING = "wall_seconds"
"""The one key of the metrics that differs between identical runs (tests leave it out)."""


def held_out(rows: Sequence[dict], seed: int) -> dict:
    """The held-out summary of one policy's ``eval.jsonl`` rows."""
    scores = [r["score"] for r in rows if r["score"] is not None]
    langs = sorted({r["language"] for r in rows})
    return {
        "reward": summarize(scores, seed),
        "reward_by_language": {lang: summarize([r["score"] for r in rows if r["language"] == lang
                                                and r["score"] is not None], seed) for lang in langs},
        "length_tokens": summarize([r["tokens"] for r in rows], seed),
        "length_chars": summarize([len(r["completion"]) for r in rows], seed),
        "kl_to_initial": summarize([r["logp_policy"] - r["logp_initial"] for r in rows], seed),
        "completions": len(rows),
        "unscored": len(rows) - len(scores),
        "cut_at_max_tokens": sum(r["finish"] == "length" for r in rows),
    }


def win_rate(after: Sequence[dict], before: Sequence[dict], seed: int) -> dict:
    """How often ``after``'s completion outscores ``before``'s on the same prompt and sample."""
    theirs = {(r["prompt_id"], r["sample"]): r["score"] for r in before}
    outcomes = []
    for r in after:
        other = theirs.get((r["prompt_id"], r["sample"]))
        if r["score"] is None or other is None:
            continue
        outcomes.append(1.0 if r["score"] > other else 0.5 if r["score"] == other else 0.0)
    return {**summarize(outcomes, seed), "compared": len(outcomes), "not_comparable": len(after) - len(outcomes)}


def dpo_summary(metrics: dict) -> dict:
    """First and last logged loss, reward accuracy and margin of one DPO run's metrics.json."""
    def ends(curve: list[dict], key: str) -> dict:
        return {"first": curve[0][key], "last": curve[-1][key]} if curve else {"first": None, "last": None}

    return {"steps": metrics["steps"], "train_pairs": metrics["train_pairs"], "train_loss": metrics["train_loss"],
            "loss": ends(metrics["loss_curve"], "loss"),
            "reward_accuracy": ends(metrics["reward_accuracy_curve"], "rewards/accuracies"),
            "reward_margin": ends(metrics["reward_margin_curve"], "rewards/margins"),
            "processes": metrics["processes"], "device": metrics["device"]}


def change(before: dict, after: dict) -> dict:
    """after − before of the held-out means (reward, length, KL)."""
    def delta(key: str) -> float | None:
        a, b = after[key]["value"], before[key]["value"]
        return None if a is None or b is None else a - b

    return {key: delta(key) for key in ("reward", "length_tokens", "length_chars", "kl_to_initial")}


def run_metrics(initial: dict, iterations: Sequence[dict], betas: Sequence[float]) -> dict:
    """``metrics.json`` of the run: the initial policy's held-out summary, every iteration's
    metrics, and the series a plot or a gate reads (index 0 = the initial policy)."""
    series = [initial] + [it["held_out"]["after"] for it in iterations]
    langs = sorted({lang for s in series for lang in s["reward_by_language"]})
    return {
        "beta": list(betas),
        "initial": initial,
        "iterations": list(iterations),
        "series": {
            "held_out_reward": [s["reward"]["value"] for s in series],
            "held_out_reward_ci95": [s["reward"]["ci95"] for s in series],
            "held_out_reward_by_language": {lang: [s["reward_by_language"].get(lang, {}).get("value") for s in series]
                                            for lang in langs},
            "length_tokens": [s["length_tokens"]["value"] for s in series],
            "kl_to_initial": [s["kl_to_initial"]["value"] for s in series],
            "win_rate_vs_initial": [None] + [it["win_rate"]["vs_initial"]["value"] for it in iterations],
            "pairs_kept": [it["pairs"]["kept"] for it in iterations],
            "dpo_reward_accuracy_last": [_mean([s["reward_accuracy"]["last"] for s in it["dpo"].values()])
                                         for it in iterations],
        },
    }


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None
