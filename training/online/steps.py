"""The steps of one online-DPO iteration, in order: sample → pairs → train → merge → evaluate →
finish. Each reads what the previous steps wrote in ``iter-<n>/`` and writes its own output
whole (training/online/state.py), so the loop can start at any unfinished step.

The iteration's start is the initial policy (n = 1) or iteration n − 1's ``checkpoint/``;
DPO trains from it with the start itself as the reference, loaded explicitly
(training/dpo/trainer.py). Pairs: the best and the worst scored sample of each prompt
(training/arbitrage/routing.py's rule: ties to the earlier sample), kept when the score gap
reaches ``min_gap``; every other prompt is counted under its reason.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import dir_sha256, file_sha256, json_sha256
from glotbench.harness.core.progress import progress_bar
from glotbench.harness.run.cache import RequestCache
from glotbench.training.arbitrage import outputs
from glotbench.training.arbitrage.routing import preference_pairs
from glotbench.training.core.records import Candidate, Prompt
from glotbench.training.core.stage import MANIFEST, manifest, write_manifest
from glotbench.training.online import metrics, sampling
from glotbench.training.online.config import OnlineConfig
from glotbench.training.online.state import RunDir, read_jsonl, write_jsonl_atomic
from glotbench.training.sft.train import WEIGHT_PATTERNS

EVAL_SEED = 100_000
"""Offset of the held-out sampling seeds: every policy is measured with the same seeds."""


@dataclass
class Context:
    """What every step of every iteration reads."""

    cfg: OnlineConfig
    run: RunDir
    prompts: dict[str, Prompt]
    train: list[Prompt]
    held_out: list[Prompt]
    initial: Path
    scorer: object
    cache: RequestCache
    progress: bool
    accelerate_config: Path | None
    inputs: list[dict]
    """The run's lineage entries (initial policy, prompts, scorer) for every manifest."""

    def start(self, n: int) -> Path:
        return self.initial if n == 1 else self.run.root / f"iter-{n - 1}" / "checkpoint"

    def bar(self, total: int, what: str):
        return progress_bar(total, what, "completion", self.progress)


def sample(ctx: Context, n: int) -> dict:
    """K scored samples of the start policy per training prompt → ``samples.jsonl``."""
    k = ctx.cfg.samples_per_prompt
    t0 = time.perf_counter()
    bar = ctx.bar(len(ctx.train) * k, f"iteration {n}: sampling")
    try:  # seeds of iteration n: seed + (n-1)K + k, so no two iterations share a sample's seed
        samples, gen = sampling.generate(ctx.cfg, ctx.start(n), ctx.train, k, ctx.cfg.sampling.seed + (n - 1) * k,
                                         ctx.cache, bar.update)
    finally:
        bar.close()
    del gen
    t1 = time.perf_counter()
    samples = sampling.score(ctx.scorer, ctx.prompts, samples)
    rows = [{**row, "tokens": length} for row, length in zip(outputs.candidate_rows(samples.candidates), samples.lengths)]
    write_jsonl_atomic(ctx.run.iteration(n) / "samples.jsonl", rows)
    return {"seconds": {"generate": t1 - t0, "score": time.perf_counter() - t1},
            "counts": {"prompts": len(ctx.train), "completions": len(samples.candidates),
                       "generated": samples.generated, "from_cache": samples.from_cache, "tokens": samples.tokens,
                       "unscored": samples.unscored}}


def pairs(ctx: Context, n: int) -> dict:
    """Best vs worst sample per prompt, filtered by ``min_gap`` → ``pairs.jsonl``."""
    t0 = time.perf_counter()
    rows = read_jsonl(ctx.run.iteration(n) / "samples.jsonl")
    cands = [Candidate(r["prompt_id"], r["language"], r["teacher"], r["sample"], r["completion"], r["finish"],
                       r["score"]) for r in rows]
    found, counts = preference_pairs(cands)
    kept = [p for p in found if p["chosen_score"] - p["rejected_score"] >= ctx.cfg.min_gap]
    counts = {"prompts": counts["prompts"], "kept": len(kept), "single_candidate": counts["single_candidate"],
              "too_few_scored": counts["too_few_scored"], "tie": counts["tie"],
              "small_gap": len(found) - len(kept), "min_gap": ctx.cfg.min_gap}
    if not kept:
        raise GlotbenchError(f"iteration {n}: no preference pair is left of {counts['prompts']} prompts ({counts})",
                             "raise samples_per_prompt or sampling.temperature, or lower min_gap, and rerun "
                             "with --overwrite (a changed config does not resume)")
    write_jsonl_atomic(ctx.run.iteration(n) / "pairs.jsonl", list(outputs.pair_rows(ctx.prompts, kept)))
    return {"seconds": {"pairs": time.perf_counter() - t0}, "counts": counts}


def dpo_dirs(ctx: Context, n: int) -> dict[int, Path]:
    """seed → the DPO output directory (``checkpoint/`` itself when nothing is merged)."""
    it = ctx.run.root / f"iter-{n}"
    if not ctx.cfg.merges:
        return {ctx.cfg.seeds[0]: it / "checkpoint"}
    return {s: it / f"dpo-seed-{s}" for s in ctx.cfg.seeds}


def train(ctx: Context, n: int) -> dict:
    """One trl DPOTrainer run per seed, reference = the start (glotbench train dpo's stage)."""
    from glotbench.training.dpo.train import run_stage as dpo_stage

    it, start = ctx.run.iteration(n), ctx.start(n)
    allow = bool(ctx.cfg.prompts.get("allow_eval_overlap", False))
    t0, summaries = time.perf_counter(), {}
    for seed, out in dpo_dirs(ctx, n).items():
        if (out / MANIFEST).is_file():  # this seed finished before a kill
            continue
        raw = {**(ctx.cfg.dpo or {}), "policy": f"hf:{start}", "reference": f"hf:{start}",
               "data": {"file": str(it / "pairs.jsonl")}, "seed": seed, "beta": ctx.cfg.betas[n - 1],
               "min_gap": 0.0, "eval_fraction": 0.0, "allow_eval_overlap": allow}
        config = it / f"dpo-seed-{seed}.yaml"
        config.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        summaries[seed] = dpo_stage(config, out, overwrite=True, progress=ctx.progress,
                                    accelerate_config=ctx.accelerate_config)
    return {"seconds": {"train": time.perf_counter() - t0}, "summaries": summaries}


def merge(ctx: Context, n: int) -> dict:
    """The iteration's checkpoint: a linear average of the seeds' checkpoints (equal weights)
    and, with ``merge.previous`` w > 0, the start at weight w (training.merge)."""
    from glotbench.training.merge.engine import merge as run_merge

    t0 = time.perf_counter()
    it, start = ctx.run.iteration(n), ctx.start(n)
    if (it / "checkpoint" / MANIFEST).is_file():  # merged and renamed into place before a kill
        return {"seconds": {"merge": 0.0}}
    dirs = dpo_dirs(ctx, n)
    share = (1 - ctx.cfg.previous) / len(dirs)
    models = [{"model": str(d), "parameters": {"weight": share}} for d in dirs.values()]
    if ctx.cfg.previous > 0:
        models.append({"model": str(start), "parameters": {"weight": ctx.cfg.previous}})
    config = {"merge_method": "linear", "models": models, "dtype": "float32", "tokenizer_source": str(dirs[ctx.cfg.seeds[0]]),
              "parameters": {"normalize": False}}
    tmp = it / f".checkpoint.merging-{os.getpid()}"
    for stale in it.glob(".checkpoint.merging-*"):
        shutil.rmtree(stale, ignore_errors=True)
    run_merge(config, tmp)
    inputs = [*({"role": "dpo", "seed": s, "path": str(d), "sha256": dir_sha256(d, WEIGHT_PATTERNS), "weight": share}
                for s, d in dirs.items())]
    if ctx.cfg.previous > 0:
        inputs.append({"role": "previous", "path": str(start), "sha256": dir_sha256(start, WEIGHT_PATTERNS),
                       "weight": ctx.cfg.previous})
    write_manifest(tmp, manifest("online-dpo-merge", config, inputs, {"weights_sha256": dir_sha256(tmp, WEIGHT_PATTERNS)},
                                 time.time() - (time.perf_counter() - t0), iteration=n))
    os.replace(tmp, it / "checkpoint")
    return {"seconds": {"merge": time.perf_counter() - t0}}


def evaluate(ctx: Context, n: int) -> dict:
    """The policy after iteration ``n`` (the initial one for n = 0) on the held-out prompts →
    ``eval.jsonl``: score, tokens, log-probs under the policy and under the initial policy."""
    policy = ctx.initial if n == 0 else ctx.run.root / f"iter-{n}" / "checkpoint"
    t0 = time.perf_counter()
    k = ctx.cfg.eval_samples
    bar = ctx.bar(len(ctx.held_out) * k, f"iteration {n}: held-out")
    try:
        samples, gen = sampling.generate(ctx.cfg, policy, ctx.held_out, k, ctx.cfg.sampling.seed + EVAL_SEED,
                                         ctx.cache, bar.update)
    finally:
        bar.close()
    t1 = time.perf_counter()
    samples = sampling.score(ctx.scorer, ctx.prompts, samples)
    t2 = time.perf_counter()
    own = sampling.logprobs(gen.backend, ctx.prompts, samples.candidates)
    del gen
    initial = own if n == 0 else sampling.logprobs(sampling.load_scoring_backend(ctx.cfg, ctx.initial), ctx.prompts,
                                                   samples.candidates)
    rows = [{"prompt_id": c.prompt_id, "language": c.language, "sample": c.sample, "completion": c.completion,
             "finish": c.finish, "score": c.score, "tokens": length, "logp_policy": lp[0], "logp_initial": li[0],
             "logp_tokens": lp[1]}
            for c, length, lp, li in zip(samples.candidates, samples.lengths, own, initial)]
    write_jsonl_atomic(ctx.run.iteration(n) / "eval.jsonl", rows)
    return {"seconds": {"generate": t1 - t0, "score": t2 - t1, "logprobs": time.perf_counter() - t2},
            "counts": {"completions": len(rows), "generated": samples.generated, "from_cache": samples.from_cache,
                       "tokens": samples.tokens, "unscored": samples.unscored}}


def finish(ctx: Context, n: int) -> dict:
    """``metrics.json`` and ``training_manifest.json`` of iteration ``n`` (the latter last)."""
    import json

    it, seed = ctx.run.root / f"iter-{n}", ctx.cfg.seed
    steps = ctx.run.steps(n)
    after, before = read_jsonl(it / "eval.jsonl"), read_jsonl(ctx.run.root / f"iter-{n - 1}" / "eval.jsonl")
    initial = read_jsonl(ctx.run.root / "iter-0" / "eval.jsonl")
    h_after, h_before = metrics.held_out(after, seed), metrics.held_out(before, seed)
    dpo = {str(s): metrics.dpo_summary(json.loads((d / "metrics.json").read_text())) for s, d in dpo_dirs(ctx, n).items()}
    start, out = ctx.start(n), it / "checkpoint"
    record = {
        "iteration": n, "beta": ctx.cfg.betas[n - 1], "seeds": list(ctx.cfg.seeds), "previous": ctx.cfg.previous,
        "start": str(start), "start_sha256": dir_sha256(start, WEIGHT_PATTERNS),
        "checkpoint": str(out), "checkpoint_sha256": dir_sha256(out, WEIGHT_PATTERNS),
        # What was sampled; how much came from the cache is the process's history (steps.json), not a result.
        "samples": {k: v for k, v in steps["sample"]["counts"].items() if k not in ("generated", "from_cache")},
        "pairs": steps["pairs"]["counts"], "dpo": dpo,
        "held_out": {"before": h_before, "after": h_after, "change": metrics.change(h_before, h_after)},
        "win_rate": {"vs_initial": metrics.win_rate(after, initial, seed),
                     "vs_start": metrics.win_rate(after, before, seed)},
        "tokens": {"samples": steps["sample"]["counts"]["tokens"], "held_out": steps["evaluate"]["counts"]["tokens"]},
        metrics.TIMING: {f"{step}.{phase}": round(sec, 3) for step, rec in steps.items()
                         for phase, sec in rec.get("seconds", {}).items()},
    }
    (it / "metrics.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    files = {name: {"sha256": file_sha256(it / name)}
             for name in ("samples.jsonl", "pairs.jsonl", "eval.jsonl", "metrics.json")}
    inputs = [{"role": "base", "path": str(start), "sha256": record["start_sha256"]},
              {"role": "reference", "path": str(start), "sha256": record["start_sha256"]}, *ctx.inputs]
    write_manifest(it, manifest("online-dpo-iteration", ctx.cfg.raw, inputs,
                                {"files": files, "checkpoint": str(out), "checkpoint_sha256": record["checkpoint_sha256"],
                                 "pairs_sha256": json_sha256(read_jsonl(it / "pairs.jsonl"))},
                                time.time(), iteration=n))
    return record
