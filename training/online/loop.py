"""``glotbench train online-dpo CONFIG.yaml -o DIR``: online iterative DPO (the Aya Expanse
recipe's last stage: three rounds of sample → score → best/worst pair → DPO → merge).

The order is the data flow: the config, the prompt set (with its evaluation-overlap check),
the held-out split and the output directory are checked before any model loads; then the
initial policy is measured on the held-out prompts (``iter-0``) and each iteration runs its
steps (training/online/steps.py), skipping every step a previous process finished
(training/online/state.py); the run's ``metrics.json``, figure and manifest come last. The
reward model (or judge, or callable) is the arbitrage stage's scorer. With
``--accelerate-config`` each DPO training phase runs under ``accelerate launch``.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import dir_sha256, file_sha256, json_sha256, write_json_atomic
from glotbench.harness.run.cache import RequestCache
from glotbench.training.core.launch import check_accelerate_config, refuse_inside_launch
from glotbench.training.core.records import Prompt
from glotbench.training.core.stage import manifest, write_manifest
from glotbench.training.data.overlap import describe
from glotbench.training.data.prompts import load_prompts, source_id
from glotbench.training.online import metrics, steps
from glotbench.training.online.config import OnlineConfig, load_config
from glotbench.training.online.state import RunDir, read_jsonl
from glotbench.training.sft.train import WEIGHT_PATTERNS

ITERATION_STEPS = ("sample", "pairs", "train", "merge", "evaluate")


def run_stage(config: Path, out: Path, *, overwrite: bool = False, progress: bool = False,
              accelerate_config: Path | None = None) -> str:
    """Run (or resume) the online-DPO loop of ``config`` in ``out``; a few lines of summary."""
    refuse_inside_launch("online-dpo")
    started = time.time()
    cfg = load_config(config)
    out = Path(out)
    from glotbench.training.merge.engine import resolve_model

    initial = resolve_model(cfg.policy)
    if out.exists() and out.resolve() in (initial.resolve(), *initial.resolve().parents):
        raise GlotbenchError(f"output {out} holds the starting policy", "write to another directory")
    if accelerate_config is not None:
        check_accelerate_config(accelerate_config)
    prompt_set = load_prompts(cfg.prompts, cfg.path)
    train, held = split(prompt_set.prompts, cfg.held_out, cfg.seed)
    from glotbench.training.arbitrage.scorers import build_scorer

    scorer = build_scorer(cfg.scorer, cfg.path, progress=progress)  # checked before DIR is touched
    check_inputs(out, scorer, cfg)
    # What DIR computes: a rerun resumes only the same computation (a retrained reward model at
    # the same path, an edited config or prompt file is a different one).
    identity = {"config_sha256": json_sha256(cfg.raw), "policy_sha256": dir_sha256(initial, WEIGHT_PATTERNS),
                "prompts_sha256": prompt_set.sha256, "scorer_sha256": json_sha256(scorer.identity)}
    run = RunDir.open(out, identity, overwrite=overwrite)
    if run.finished:
        return summary(run.root, json.loads((run.root / "metrics.json").read_text()), resumed="already complete")
    resumed = any(run.root.glob("iter-*/steps.json"))
    cache = RequestCache(run.root / "requests.sqlite")
    ctx = steps.Context(cfg, run, prompt_set.by_id(), train, held, initial, scorer, cache, progress, accelerate_config,
                        inputs=[{"role": "prompts", "path": prompt_set.source, "sha256": prompt_set.sha256,
                                 "train": len(train), "held_out": len(held), "overlap": prompt_set.overlap.to_json()},
                                {"role": "scorer", **scorer.identity}])
    try:
        if not run.done(0, "evaluate"):
            run.mark(0, "evaluate", steps.evaluate(ctx, 0))
        records = [iterate(ctx, n) for n in range(1, cfg.iterations + 1)]
    finally:
        cache.close()
    initial_summary = metrics.held_out(read_jsonl(run.root / "iter-0" / "eval.jsonl"), cfg.seed)
    result = metrics.run_metrics(initial_summary, records, cfg.betas)
    result["problems"] = list(prompt_set.problems)
    write_json_atomic(run.root / "metrics.json", result, indent=2)
    from glotbench.training.online.figure import online_figure

    online_figure(result, run.root / "metrics.png")
    final = run.root / f"iter-{cfg.iterations}" / "checkpoint"
    inputs = [{"role": "base", "model": cfg.policy, "path": str(initial), "sha256": identity["policy_sha256"]},
              *ctx.inputs]
    outputs = {"final_checkpoint": str(final), "final_checkpoint_sha256": records[-1]["checkpoint_sha256"],
               "iterations": [{"iteration": r["iteration"], "checkpoint_sha256": r["checkpoint_sha256"],
                               "manifest_sha256": file_sha256(run.root / f"iter-{r['iteration']}" / "training_manifest.json")}
                              for r in records],
               "metrics.json": {"sha256": file_sha256(run.root / "metrics.json")}}
    write_manifest(run.root, manifest("online-dpo", cfg.raw, inputs, outputs, started,
                                      accelerate_config=str(accelerate_config) if accelerate_config else None,
                                      scorer_stats=getattr(scorer, "stats", {})))
    return "\n".join([describe(prompt_set.overlap), *(f"prompt data: {p}" for p in prompt_set.problems),
                      summary(run.root, result, resumed="resumed" if resumed else "")])


def check_inputs(out: Path, scorer, cfg: OnlineConfig) -> None:
    """Refuse an output directory that holds an input (``--overwrite`` would delete it)."""
    paths = [Path(p) for p in (scorer.identity.get("path"), cfg.prompts.get("file")) if p]
    if cfg.path is not None:
        paths.append(cfg.path)
    root = out.resolve()
    for p in paths:
        if root == p.resolve() or root in p.resolve().parents:
            raise GlotbenchError(f"output {out} holds an input ({p})", "write to another directory")


def iterate(ctx: steps.Context, n: int) -> dict:
    """Iteration ``n``: its unfinished steps, then its metrics and manifest."""
    run = ctx.run
    manifest_path = run.root / f"iter-{n}" / "training_manifest.json"
    if manifest_path.is_file():
        return json.loads((run.root / f"iter-{n}" / "metrics.json").read_text())
    for step in ITERATION_STEPS:
        if step == "merge" and not ctx.cfg.merges:
            continue
        if not run.done(n, step):
            run.mark(n, step, getattr(steps, step)(ctx, n))
    return steps.finish(ctx, n)


def split(prompts: tuple[Prompt, ...], held_out: float, seed: int) -> tuple[list[Prompt], list[Prompt]]:
    """(training prompts, held-out prompts): a seeded shuffle of source ids, so a prompt's
    translations are all on one side and the held-out reward is measured on unseen prompts."""
    sources = sorted({source_id(p) for p in prompts})
    if len(sources) < 2:
        raise GlotbenchError(f"the prompt set has {len(sources)} source prompt(s): nothing to hold out",
                             "give at least 2 prompts (prompts.first)")
    random.Random(seed).shuffle(sources)
    n_held = min(len(sources) - 1, max(1, round(len(sources) * held_out)))
    held = set(sources[:n_held])
    return [p for p in prompts if source_id(p) not in held], [p for p in prompts if source_id(p) in held]


def summary(root: Path, m: dict, *, resumed: str) -> str:
    """One line per iteration: β, pairs, held-out reward and length before → after, KL, win-rate."""
    def v(x: float | None, fmt: str = ".3f") -> str:
        return "n/a" if x is None else format(x, fmt)

    lines = [f"online DPO{f' ({resumed})' if resumed else ''}: {len(m['iterations'])} iteration(s) → {root}"]
    for it in m["iterations"]:
        b, a = it["held_out"]["before"], it["held_out"]["after"]
        ci, sources = a["reward"]["ci95"], a["reward"].get("clusters")
        lines.append(
            f"  iter {it['iteration']}: β {it['beta']:g}, {it['pairs']['kept']} pairs of {it['pairs']['prompts']} prompts "
            f"({it['pairs']['tie']} ties, {it['pairs']['small_gap']} below min_gap); held-out reward "
            f"{v(b['reward']['value'])} → {v(a['reward']['value'])}"
            f"{f' [{ci[0]:.3f}, {ci[1]:.3f}] ({sources} held-out sources)' if ci else ''}, length {v(b['length_tokens']['value'], '.1f')} → "
            f"{v(a['length_tokens']['value'], '.1f')} tokens, KL to initial {v(a['kl_to_initial']['value'])}, "
            f"win-rate vs initial {v(it['win_rate']['vs_initial']['value'])}")
    last = m["iterations"][-1] if m["iterations"] else None
    if last:
        lines.append(f"  final policy: {last['checkpoint']} (glotbench run --model hf:{last['checkpoint']}); "
                     f"metrics: {root}/metrics.json, {root}/metrics.png")
    return "\n".join(lines)
