"""``glotbench train translated-pairs``: native completions vs completions translated from English.

Dang et al. 2024 ("RLHF can speak many languages"), as the Aya Expanse report uses it: for a
prompt that exists in English (the pivot) and in language L, **chosen** = a strong model's
completion of the L prompt, **rejected** = a weaker model's completion of the English prompt,
translated into L by a translator model with a recorded translation prompt.

The order is the data flow, cheapest refusal first: the config, the output path and the
prompt set (with its evaluation-overlap check) are checked before any model loads; then,
one model in memory at a time and every generation through the request cache (a killed run
reruns without regenerating): the translator translates missing L prompts (only with
``translate_prompts``), the strong model answers the L prompts, the language check keeps
the answers in L, the weak model answers the pivot prompts of the units still alive, and
the translator translates those answers (whose language is counted too). Units that fail
a step are not carried into the next one: a drop is recorded with its first reason.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.progress import progress_bar
from glotbench.harness.core.records import ChatMessage
from glotbench.harness.run.cache import RequestCache
from glotbench.training.arbitrage import outputs
from glotbench.training.arbitrage.config import TeacherConfig
from glotbench.training.arbitrage.teachers import TeacherRun, build_teacher
from glotbench.training.core.records import Prompt
from glotbench.training.core.stage import check_output, manifest, staged, write_manifest
from glotbench.training.data.overlap import describe
from glotbench.training.data.prompts import PromptSet, load_prompts
from glotbench.training.translate import language as lang_check
from glotbench.training.translate.config import TranslatedPairsConfig, load_config
from glotbench.training.translate.pairs import Results, Unit, collect, plan

PARALLEL_KINDS = ("alpaca_eval_multilingual", "oasst_hplt")


def run_stage(config: Path, out: Path, *, overwrite: bool = False, progress: bool = False) -> str:
    started = time.time()
    cfg = load_config(config)
    check_output(out, overwrite, inputs=_input_paths(cfg))
    prompt_set = _prompts(cfg)
    units, counts = plan(prompt_set.prompts, cfg.pivot, cfg.languages, cfg.translate_prompts)
    if not units:
        raise GlotbenchError(f"{config}: no source prompt has both a {cfg.pivot} prompt and one in "
                             f"{', '.join(cfg.languages)}", "check the prompt ids (<id>/<language>) and languages, "
                                                            "or set translate_prompts: true")
    cache = RequestCache()
    try:
        results, runs = _produce(cfg, units, cache, progress)
    finally:
        cache.close()
    rows, dropped, per_language = collect(units, results, cfg.check.drop_rejected, counts)
    totals = {k: sum(c.get(k, 0) for c in per_language.values())
              for k in dict.fromkeys(k for c in per_language.values() for k in c)}
    with staged(out) as tmp:
        files = {"pairs.jsonl": outputs.write_jsonl(tmp / "pairs.jsonl", rows),
                 "dropped.jsonl": outputs.write_jsonl(tmp / "dropped.jsonl", dropped),
                 "prompts.json": outputs.write_json(tmp / "prompts.json", {
                     "source": prompt_set.source, "sha256": prompt_set.sha256, "prompts": len(prompt_set.prompts),
                     "problems": prompt_set.problems, "overlap": prompt_set.overlap.to_json()})}
        models = {role: _identity(runs, role) for role in ("strong", "weak", "translator")}
        inputs = [{"role": "prompts", "path": prompt_set.source, "sha256": prompt_set.sha256},
                  *({"role": role, **ident} for role, ident in models.items())]
        write_manifest(tmp, manifest(
            "translated-pairs", cfg.raw, inputs, files, started, models=models,
            translation_prompt={"template": cfg.translation_prompt, "language_names": cfg.language_names},
            language_check={**lang_check.library(), "min_letters": cfg.check.min_letters,
                            "script_share": cfg.check.script_share, "drop_rejected": cfg.check.drop_rejected},
            counts={"per_language": per_language, "total": totals},
            generation={role: {"generated": sum(r.computed for r in rs), "from_cache": sum(r.from_cache for r in rs),
                               "tokens": sum(r.tokens for r in rs)} for role, rs in runs.items()}))
    notes = [describe(prompt_set.overlap), *(f"prompt data: {p}" for p in prompt_set.problems)]
    lines = [f"{lang}: {c['units']} units, {c['kept']} kept"
             + (", dropped " + ", ".join(f"{v} {k.removeprefix('dropped_')}" for k, v in c.items()
                                         if k.startswith("dropped_") and v) if c["units"] > c["kept"] else "")
             + f"; translated rejected in {lang}: {c.get('rejected_in_language', 0)} of "
               f"{c.get('rejected_in_language', 0) + c.get('rejected_not_in_language', 0)}"
             for lang, c in per_language.items()]
    return "\n".join([*notes, *lines, f"translated-pairs: {totals['kept']} pairs of {totals['units']} units "
                                      f"→ {out}/pairs.jsonl; {len(dropped)} dropped → {out}/dropped.jsonl"])


def _input_paths(cfg: TranslatedPairsConfig) -> tuple[Path, ...]:
    """Files and checkpoints the stage reads: none may be the output."""
    models = (cfg.strong, cfg.weak, cfg.translator)
    return tuple([t.published for t in models if t.published]
                 + [Path(t.model.removeprefix("hf:")) for t in models if t.model and t.model.startswith("hf:")])


def _prompts(cfg: TranslatedPairsConfig) -> PromptSet:
    """The prompt set; a parallel collection without ``languages`` reads the pivot and the
    targets only (a missing target is then an error, unless prompts are to be translated)."""
    block = dict(cfg.prompts)
    if "languages" in block:
        if cfg.pivot not in block["languages"]:
            raise GlotbenchError(f"{cfg.path}: prompts.languages {block['languages']} lacks the pivot {cfg.pivot!r}",
                                 f"add {cfg.pivot} or remove prompts.languages (the stage then reads "
                                 "the pivot and the target languages)")
    elif any(k in block for k in PARALLEL_KINDS) and not cfg.translate_prompts:
        block["languages"] = [cfg.pivot, *cfg.languages]
    prompt_set = load_prompts(block, cfg.path)
    if not any(p.language == cfg.pivot for p in prompt_set.prompts):
        raise GlotbenchError(f"{cfg.path}: the prompt set has no {cfg.pivot} prompts (the pivot)",
                             "give prompts in the pivot language, or set pivot: to the language they are in")
    return prompt_set


def _produce(cfg: TranslatedPairsConfig, units: list[Unit], cache: RequestCache,
             progress: bool) -> tuple[Results, dict[str, list[TeacherRun]]]:
    runs: dict[str, list[TeacherRun]] = {"strong": [], "weak": [], "translator": []}
    r = Results({u.key: u.native for u in units if u.native}, {}, {}, {}, {}, {})
    todo = [u for u in units if u.native is None]
    if todo:  # pivot prompts → L, one translation per turn (system and earlier turns too)
        jobs = [_translation(cfg, f"{u.key}#{t}", m.content, u.language)
                for u in todo for t, m in enumerate(u.pivot.messages)]
        run = _run(cfg, cfg.translator, "prompt translation", jobs, cache, progress)
        runs["translator"].append(run)
        got = {c.prompt_id: c for c in run.candidates}
        for u in todo:
            turns = [got.get(f"{u.key}#{t}") for t in range(len(u.pivot.messages))]
            if all(t is not None and t.completion.strip() for t in turns):
                r.prompts[u.key] = Prompt(u.key, u.language, tuple(
                    ChatMessage(m.role, t.completion.strip()) for m, t in zip(u.pivot.messages, turns)),
                    f"translation of {u.pivot.prompt_id} by {cfg.translator.name}")
    alive = [u for u in units if u.key in r.prompts]
    strong = _run(cfg, cfg.strong, "strong", [r.prompts[u.key] for u in alive], cache, progress)
    runs["strong"].append(strong)
    by_prompt = {c.prompt_id: c for c in strong.candidates}
    for u in alive:
        if (c := by_prompt.get(r.prompts[u.key].prompt_id)) is not None:
            r.chosen[u.key] = c
            r.chosen_check[u.key] = _check(cfg, c.completion, u.language)
    alive = [u for u in alive if u.key in r.chosen and r.chosen_check[u.key].ok]
    pivots = {u.source: u.pivot for u in alive}
    weak = _run(cfg, cfg.weak, "weak", [pivots[s] for s in sorted(pivots)], cache, progress)
    runs["weak"].append(weak)
    source = {p.prompt_id: s for s, p in pivots.items()}
    r.weak = {source[c.prompt_id]: c for c in weak.candidates}
    alive = [u for u in alive if u.source in r.weak and r.weak[u.source].completion.strip()]
    jobs = [_translation(cfg, u.key, r.weak[u.source].completion, u.language) for u in alive]
    run = _run(cfg, cfg.translator, "translator", jobs, cache, progress)
    runs["translator"].append(run)
    for c in run.candidates:
        r.translated[c.prompt_id] = c
        r.rejected_check[c.prompt_id] = _check(cfg, c.completion, c.language)
    return r, runs


def _translation(cfg: TranslatedPairsConfig, pid: str, text: str, language: str) -> Prompt:
    return Prompt(pid, language, (ChatMessage("user", cfg.translation_request(text, language)),), "translation")


def _check(cfg: TranslatedPairsConfig, text: str, language: str) -> lang_check.Verdict:
    return lang_check.check(text, language, min_letters=cfg.check.min_letters, script_share=cfg.check.script_share)


def _run(cfg: TranslatedPairsConfig, model: TeacherConfig, label: str, prompts: Sequence[Prompt],
         cache: RequestCache, progress: bool) -> TeacherRun:
    """One model over ``prompts``; nothing is loaded when there is nothing to do."""
    if not prompts:
        return TeacherRun([], {"name": model.name, "model": model.model,
                               "published": str(model.published) if model.published else None, "answered": 0})
    teacher = build_teacher(model, device=cfg.device, dtype=cfg.dtype, batch_size=cfg.batch_size)
    bar = progress_bar(len(prompts), f"{label} {model.name}", "completion", progress)
    try:
        return teacher.run(prompts, cache, bar.update)
    finally:
        bar.close()
        del teacher  # one model in memory at a time


def _identity(runs: dict[str, list[TeacherRun]], role: str) -> dict:
    """A role's model identity (the loaded model's when it ran) and what it did."""
    rs = runs[role]
    ident = next((r.identity for r in rs if "answered" not in r.identity), rs[0].identity if rs else {})
    return {**ident, "missing": sorted(m for r in rs for m in r.missing)}
