"""``glotbench train arbitrage``: prompts → teachers → scores → routing → one directory.

The order is the data flow: the config, the prompt set (and its evaluation-overlap check)
and the output path are checked before any model loads; then every teacher answers the
prompts routed to it (through the request cache: a killed arbitrage reruns without
regenerating), the scorer scores every candidate (cached by its own identity), the routing
policy chooses, and the outputs are written into a hidden directory renamed into place last.

Policies: ``reward`` — every teacher answers every prompt of its languages, the best score
wins (the paper); ``fixed`` — only the language's teacher answers; ``learned`` — every
teacher answers the ``fit`` share (to fit the router) and the ``holdout`` share (to measure
it), the router alone picks the teacher for the rest, before generating. Wherever every
teacher answered, the chosen completion is the argmax: the router only decides where it
saves generations.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import replace
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import file_sha256
from glotbench.harness.core.progress import progress_bar
from glotbench.harness.run.cache import RequestCache
from glotbench.training.arbitrage import outputs
from glotbench.training.arbitrage.config import ArbitrageConfig, load_config
from glotbench.training.arbitrage.teachers import TeacherRun, build_teacher
from glotbench.training.core.config import resolve_path
from glotbench.training.core.records import Candidate, Prompt
from glotbench.training.core.stage import check_output, manifest, staged, write_manifest
from glotbench.training.data.overlap import describe
from glotbench.training.data.prompts import load_prompts, source_id


def run_stage(config: Path, out: Path, *, overwrite: bool = False, progress: bool = False) -> str:
    started = time.time()
    cfg = load_config(config)
    check_output(out, overwrite, inputs=_input_paths(cfg))
    prompt_set = load_prompts(cfg.prompts, cfg.path)
    prompts = {p.prompt_id: p for p in prompt_set.prompts}
    if not prompts:
        raise GlotbenchError(f"{config}: the prompt set is empty", "check prompts: (languages, first)")
    _check_fixed(cfg, prompts)
    from glotbench.training.arbitrage.scorers import build_scorer

    scorer = build_scorer(cfg.scorer, cfg.path, progress=progress)
    cache = RequestCache()
    try:
        result = _arbitrate(cfg, prompts, scorer, cache, progress)
    finally:
        cache.close()
    with staged(out) as tmp:
        files = _write(tmp, cfg, prompts, result)
        files["prompts.json"] = outputs.write_json(tmp / "prompts.json", {
            "source": prompt_set.source, "sha256": prompt_set.sha256, "prompts": len(prompts),
            "problems": prompt_set.problems, "overlap": prompt_set.overlap.to_json()})
        inputs = [{"role": "prompts", "path": prompt_set.source, "sha256": prompt_set.sha256},
                  *({"role": "teacher", **t} for t in result["teachers"].values()),
                  {"role": "scorer", **scorer.identity}]
        write_manifest(tmp, manifest("arbitrage", cfg.raw, inputs, files, started, counts=result["counts"],
                                     scorer_stats=getattr(scorer, "stats", {})))
    c = result["counts"]
    notes = [describe(prompt_set.overlap), *(f"prompt data: {p}" for p in prompt_set.problems)]
    if c["missing_published"]:
        notes.append("published answers missing (counted, not invented): "
                     + ", ".join(f"{n} {k}" for n, k in c["missing_published"].items()))
    if learned := result["learned"]:
        notes.append(f"learned router: {json.dumps(learned['split'])}; evaluation in {out}/routing.json")
    return "\n".join([*notes, f"arbitrage: {c['prompts']} prompts, {c['candidates']} candidates from "
                       f"{len(cfg.teachers)} teachers ({c['generated']} generated, {c['from_cache']} from cache), {c['unscored']} unscored; "
            f"{c['chosen']} chosen → {out}/sft.jsonl, {c['pairs']} pairs → {out}/pairs.jsonl "
            f"(skipped: {c['pairs_skipped_tie']} ties, {c['pairs_skipped_single_candidate']} single-candidate, "
            f"{c['pairs_skipped_too_few_scored']} with fewer than 2 scores)"])


def _input_paths(cfg: ArbitrageConfig) -> tuple[Path, ...]:
    """Paths the stage reads (published files, local teacher checkpoints, the reward model):
    none may be the output, which --overwrite would replace after reading it."""
    paths = [t.published for t in cfg.teachers if t.published]
    paths += [Path(t.model.removeprefix("hf:")) for t in cfg.teachers if t.model and t.model.startswith("hf:")]
    if isinstance(cfg.scorer.get("reward_model"), str):
        paths.append(resolve_path(cfg.scorer["reward_model"], cfg.path))
    return tuple(paths)


def _check_fixed(cfg: ArbitrageConfig, prompts: dict[str, Prompt]) -> None:
    if cfg.routing.policy != "fixed":
        return
    by_name = {t.name: t for t in cfg.teachers}
    for lang in sorted({p.language for p in prompts.values()}):
        name = cfg.routing.fixed.get(lang)
        if name is None:
            raise GlotbenchError(f"{cfg.path}: routing.fixed names no teacher for language {lang!r} of the prompts",
                                 f"add {lang}: <teacher> to routing.fixed, or drop {lang} from prompts.languages")
        if not by_name[name].serves(lang):
            raise GlotbenchError(f"{cfg.path}: routing.fixed.{lang} is {name!r}, whose languages exclude {lang}",
                                 f"pick a teacher that serves {lang}")


def split_learned(cfg: ArbitrageConfig, prompts: dict[str, Prompt]) -> tuple[list[str], list[str], list[str]]:
    """(fit, holdout, routed) prompt ids, a seeded shuffle of the source ids: a prompt's
    translations fall in the same share, so the router is never measured on the translation
    of a prompt it was fitted on."""
    ids = sorted(prompts)
    sources = sorted({source_id(prompts[i]) for i in ids})
    random.Random(cfg.seed).shuffle(sources)
    n_fit, n_hold = round(len(sources) * cfg.routing.fit), round(len(sources) * cfg.routing.holdout)
    share = {s: 0 if k < n_fit else 1 if k < n_fit + n_hold else 2 for k, s in enumerate(sources)}
    parts: tuple[list[str], list[str], list[str]] = ([], [], [])
    for i in ids:
        parts[share[source_id(prompts[i])]].append(i)
    return parts


def _arbitrate(cfg: ArbitrageConfig, prompts: dict[str, Prompt], scorer, cache: RequestCache, progress: bool) -> dict:
    from glotbench.training.arbitrage import routing

    ids = sorted(prompts)
    policy = cfg.routing.policy
    if policy == "fixed":
        assign = {t.name: [i for i in ids if cfg.routing.fixed.get(prompts[i].language) == t.name] for t in cfg.teachers}
    else:
        fit, holdout, routed = split_learned(cfg, prompts)
        everyone = fit + holdout if policy == "learned" else ids
        assign = {t.name: [i for i in sorted(everyone) if t.serves(prompts[i].language)] for t in cfg.teachers}
    runs = _generate(cfg, prompts, assign, cache, progress)
    candidates = _score(scorer, prompts, [c for r in runs.values() for c in r.candidates])
    learned = None
    if policy == "learned":
        from glotbench.training.arbitrage import router as router_mod

        fitted = router_mod.fit_router([prompts[i] for i in fit], [c for c in candidates if c.prompt_id in set(fit)],
                                       cfg.seed)
        serving = {t.name: t for t in cfg.teachers}
        picks = {i: _pick(fitted, prompts[i], serving) for i in routed}
        more = _generate(cfg, prompts, {t.name: [i for i in routed if picks[i] == t.name] for t in cfg.teachers},
                         cache, progress)
        candidates += _score(scorer, prompts, [c for r in more.values() for c in r.candidates])
        for name, r in more.items():
            runs[name] = _merged(runs[name], r)
        hold = set(holdout)
        learned = {"router": fitted.to_json(), "split": {"fit": len(fit), "holdout": len(holdout), "routed": len(routed)},
                   "evaluation": router_mod.evaluate_router(fitted, [prompts[i] for i in holdout],
                                                            [c for c in candidates if c.prompt_id in hold])}
    order = {t.name: k for k, t in enumerate(cfg.teachers)}
    candidates.sort(key=lambda c: (c.prompt_id, order[c.teacher], c.sample))
    chosen = routing.choose(candidates, "fixed" if policy == "fixed" else "reward", cfg.routing.fixed)
    pairs, pair_counts = routing.preference_pairs(candidates)
    stats = routing.routing_stats(candidates, chosen, cfg.seed)
    counts = {"prompts": len(prompts), "candidates": len(candidates),
              "generated": sum(r.computed for r in runs.values()), "from_cache": sum(r.from_cache for r in runs.values()),
              "unscored": sum(c.score is None for c in candidates), "chosen": len(chosen),
              "no_candidate": len(set(ids) - {c.prompt_id for c in candidates}),
              "pairs": len(pairs),
              **{f"pairs_skipped_{k}": pair_counts[k] for k in ("tie", "single_candidate", "too_few_scored")},
              "missing_published": {n: len(r.missing) for n, r in runs.items() if r.missing},
              "tokens_generated": {n: r.tokens for n, r in runs.items()}}
    return {"candidates": candidates, "chosen": chosen, "pairs": pairs, "stats": stats, "learned": learned,
            "counts": counts, "teachers": {n: r.identity for n, r in runs.items()}}


def _pick(fitted, prompt: Prompt, teachers: dict) -> str | None:
    """The router's teacher for ``prompt`` among those that serve its language (a language the
    fit share did not hold falls back to pooled values, which may name a teacher limited to
    other languages); None when no teacher serves it."""
    values = {t: v for t, v in fitted.predict(prompt).items() if teachers[t].serves(prompt.language)}
    if not values:
        return None
    best = max(values.values())
    return next(t for t in teachers if values.get(t) == best)


def _generate(cfg: ArbitrageConfig, prompts: dict[str, Prompt], assign: dict[str, list[str]], cache: RequestCache,
              progress: bool) -> dict[str, TeacherRun]:
    runs = {}
    for t in cfg.teachers:
        todo = [prompts[i] for i in assign.get(t.name, [])]
        if not todo:  # nothing routed to it (fixed routing, the learned router's second pass): load nothing
            runs[t.name] = TeacherRun([], {"name": t.name, "model": t.model,
                                           "published": str(t.published) if t.published else None, "answered": 0})
            continue
        teacher = build_teacher(t, device=cfg.device, dtype=cfg.dtype, batch_size=cfg.batch_size)
        bar = progress_bar(len(todo) * (1 if t.published else t.samples), f"teacher {t.name}", "completion",
                           progress)
        try:
            runs[t.name] = teacher.run(todo, cache, bar.update)
        finally:
            bar.close()
        del teacher  # one model in memory at a time
    return runs


def _merged(a: TeacherRun, b: TeacherRun) -> TeacherRun:
    return TeacherRun(a.candidates + b.candidates, a.identity, a.computed + b.computed, a.from_cache + b.from_cache,
                      a.missing + b.missing, a.tokens + b.tokens, a.lengths + b.lengths)


def _score(scorer, prompts: dict[str, Prompt], candidates: list[Candidate]) -> list[Candidate]:
    if not candidates:
        return []
    scores = scorer.score(prompts, candidates)
    if len(scores) != len(candidates):
        raise RuntimeError(f"scorer returned {len(scores)} scores for {len(candidates)} candidates")
    return [replace(c, score=s) for c, s in zip(candidates, scores)]


def _write(tmp: Path, cfg: ArbitrageConfig, prompts: dict[str, Prompt], result: dict) -> dict:
    from glotbench.training.arbitrage.figure import routing_figure

    files = {
        "candidates.jsonl": outputs.write_jsonl(tmp / "candidates.jsonl", outputs.candidate_rows(result["candidates"])),
        "sft.jsonl": outputs.write_jsonl(tmp / "sft.jsonl", outputs.sft_rows(prompts, result["chosen"])),
        "pairs.jsonl": outputs.write_jsonl(tmp / "pairs.jsonl", outputs.pair_rows(prompts, result["pairs"])),
        "routing.json": outputs.write_json(tmp / "routing.json", {**result["stats"], "policy": cfg.routing.policy,
                                                                 "learned": result["learned"]}),
    }
    routing_figure(result["stats"], tmp / "routing.png")
    files["routing.png"] = {"sha256": file_sha256(tmp / "routing.png")}
    return files
