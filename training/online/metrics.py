"""The numbers of an online-DPO run, from the files of its iterations (nothing is measured twice).

Per iteration (``iter-<n>/metrics.json``) and for the run (``metrics.json``), the signals the
report names as the reason to stop at three rounds — β drift and reward hacking:

- ``held_out``: the policy's completions on the held-out prompts, scored by the run's scorer:
  mean reward with a seeded 95 % CI, overall and per language; mean completion
  length in tokens and characters; the KL estimate to the initial policy (training/online/
  sampling.py) with its CI; unscored completions counted;
- ``win_rate``: the share of held-out completions scoring above the same prompt's and sample
  index's completion of another policy (ties ½), against the initial policy and against the
  iteration's start, with a CI. Same seeds for every policy: the pairs share their randomness;
- ``pairs``: prompts, pairs kept, and every drop by reason (single candidate, fewer than two
  scored, tie, gap below ``min_gap``);
- ``dpo``: trl's logged loss, reward accuracy and reward margin, first and last step, per seed;
- ``tokens`` generated and ``wall_seconds`` per phase.

Every CI is a seeded percentile bootstrap over *source prompts* (:func:`clustered`): a
prompt's samples and its translations are drawn together, since they are not independent
(``n`` counts completions, ``clusters`` the source prompts that make the CI).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from glotbench.harness.metrics.stats import BOOTSTRAP_RESAMPLES
from glotbench.training.data.prompts import source_of

TIMING = "wall_seconds"
"""The one key of the metrics that differs between identical runs (tests leave it out)."""


def clustered(values: Sequence[float], clusters: Sequence[str], seed: int,
              resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """Mean of ``values`` and a 95 % percentile bootstrap CI resampling whole clusters (the
    replicate mean is the pooled mean of the drawn clusters); no CI below two clusters or with
    a non-finite replicate. ``stderr`` is the bootstrap standard deviation."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return {"value": None, "n": 0, "clusters": 0, "stderr": None, "ci95": None}
    keys = sorted(set(clusters))
    index = np.array([keys.index(c) for c in clusters])
    sums, counts = np.bincount(index, weights=x, minlength=len(keys)), np.bincount(index, minlength=len(keys))
    out = {"value": float(x.mean()), "n": len(x), "clusters": len(keys), "stderr": None, "ci95": None}
    if len(keys) < 2:
        return out
    draws = np.random.default_rng(seed).integers(0, len(keys), size=(resamples, len(keys)))
    with np.errstate(invalid="ignore", over="ignore"):
        means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    if np.isfinite(means).all():
        lo, hi = np.quantile(means, [0.025, 0.975])
        out.update(stderr=float(means.std(ddof=1)), ci95=[float(lo), float(hi)])
    return out


def _source(row: dict) -> str:
    return source_of(row["prompt_id"], row["language"])


def _summary(rows: Sequence[dict], value, seed: int) -> dict:
    kept = [(value(r), _source(r)) for r in rows]
    kept = [(v, c) for v, c in kept if v is not None]
    return clustered([v for v, _ in kept], [c for _, c in kept], seed)


def held_out(rows: Sequence[dict], seed: int) -> dict:
    """The held-out summary of one policy's ``eval.jsonl`` rows."""
    langs = sorted({r["language"] for r in rows})
    scored = sum(r["score"] is not None for r in rows)
    return {
        "reward": _summary(rows, lambda r: r["score"], seed),
        "reward_by_language": {lang: _summary([r for r in rows if r["language"] == lang], lambda r: r["score"], seed)
                               for lang in langs},
        "length_tokens": _summary(rows, lambda r: r["tokens"], seed),
        "length_chars": _summary(rows, lambda r: len(r["completion"]), seed),
        "kl_to_initial": _summary(rows, lambda r: r["logp_policy"] - r["logp_initial"], seed),
        "completions": len(rows),
        "unscored": len(rows) - scored,
        "cut_at_max_tokens": sum(r["finish"] == "length" for r in rows),
    }


def win_rate(after: Sequence[dict], before: Sequence[dict], seed: int) -> dict:
    """How often ``after``'s completion outscores ``before``'s on the same prompt and sample."""
    theirs = {(r["prompt_id"], r["sample"]): r["score"] for r in before}
    outcomes, clusters = [], []
    for r in after:
        other = theirs.get((r["prompt_id"], r["sample"]))
        if r["score"] is None or other is None:
            continue
        outcomes.append(1.0 if r["score"] > other else 0.5 if r["score"] == other else 0.0)
        clusters.append(_source(r))
    return {**clustered(outcomes, clusters, seed), "compared": len(outcomes),
            "not_comparable": len(after) - len(outcomes)}


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
