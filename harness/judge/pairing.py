"""Pair two or more runs prompt by prompt and render every judge prompt, so that any input error
surfaces before a single request is sent.

Run A and each run B must hold the same judged tasks, languages and prompts (``prompt_id`` and
instruction text equal). Every prompt is judged in both orders (model A shown first, then
model B first) so that position bias cancels — except by a scalar reward model
(``rm:<dir>``), whose score has no position: one item per prompt, order ``ab``
(:mod:`glotbench.harness.judge.rm`). Identical completions are a tie without a judge call
(as AlpacaEval does), recorded as ``identical``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.records import ChatMessage
from glotbench.harness.judge.config import JudgeConfig, check_options, reward_model_dir
from glotbench.harness.judge.prompt import JudgePrompt, load_prompt
from glotbench.harness.store.schema import RunRecord
from glotbench.harness.taskapi.registry import get_task


@dataclass(frozen=True)
class Item:
    """One judgment to make: a prompt, a pair of models, an order."""

    pair: tuple[str, str]
    task: str
    lang: str
    prompt_id: str
    order: str
    """``ab``: model A shown as Answer (A); ``ba``: model B shown first."""
    messages: tuple[ChatMessage, ...] | None
    """None when both completions are identical (a tie without a judge call)."""
    instruction: str = ""
    """The prompt both models answered (what a reward-model judge scores the answers against)."""
    answers: tuple[str, str] = ("", "")
    """Model A's and model B's completions, stripped, whatever the order."""


def plan(cfg: JudgeConfig) -> tuple[dict, list[Item], JudgePrompt]:
    """Read and pair the runs, render every judge prompt: all input errors surface here."""
    if not cfg.runs_b:
        raise GlotbenchError("no run to compare with --a", "pass --b RUN (one or more)")
    for name, value, lo in (("--limit", cfg.limit, 1), ("--concurrency", cfg.concurrency, 1),
                            ("--judge-max-tokens", cfg.max_tokens, 1), ("--attempts", cfg.attempts, 1),
                            ("--parse-attempts", cfg.parse_attempts, 1)):
        if value is not None and value < lo:
            raise GlotbenchError(f"{name} must be >= {lo}, got {value}")
    for name, value in (("--rpm", cfg.rpm), ("--tpm", cfg.tpm), ("--timeout", cfg.timeout)):
        if value is not None and value <= 0:
            raise GlotbenchError(f"{name} must be > 0, got {value}")
    check_options(cfg)
    orders = ("ab",) if reward_model_dir(cfg.judge) is not None else ("ab", "ba")
    prompt = load_prompt(cfg.prompt)
    paths = [Path(cfg.run_a), *map(Path, cfg.runs_b)]
    if len({p.resolve() for p in paths}) < len(paths):
        raise GlotbenchError("the same run is named twice among --a and --b", "compare different runs")
    records = {p: RunRecord.read(p) for p in paths}
    runs = {p: _completions(records[p]) for p in paths}
    names = _names(paths)
    a = paths[0]
    items: list[Item] = []
    units: dict[str, list[str]] = {}
    for b in paths[1:]:
        selected = _select(runs[a], runs[b], names[a], names[b], cfg)
        for task, lang in selected:
            units.setdefault(task, [])
            if lang not in units[task]:
                units[task].append(lang)
            items += _items((names[a], names[b]), task, lang, runs[a][task][lang], runs[b][task][lang],
                            prompt, cfg.limit, orders)
    meta = {"names": {names[p]: str(p) for p in paths}, "units": units,
            "runs": {names[p]: _run_info(records[p]) for p in paths}}
    return meta, items, prompt


def _completions(run: RunRecord) -> dict[str, dict[str, list[dict]]]:
    """task → lang → records of a run's open-ended tasks (the one definition, in the schema)."""
    out: dict[str, dict[str, list[dict]]] = {}
    for task in run.tasks():
        if not run.open_ended(task):
            continue
        for lang in run.languages(task):
            records = run.samples(task, lang)
            if any("prompt_id" not in r or "instruction" not in r for r in records):
                raise GlotbenchError(f"run {run.path} ({task}/{lang}) has no prompt ids in its records",
                                     "regenerate it with this version of glotbench run")
            out.setdefault(task, {})[lang] = records
    return out


def _names(paths: list[Path]) -> dict[Path, str]:
    names = {p: p.resolve().name for p in paths}
    if len(set(names.values())) < len(paths):  # same directory name in different places
        names = {p: f"{i}:{p.resolve().name}" for i, p in enumerate(paths)}
    return names


def _select(ra: dict, rb: dict, na: str, nb: str, cfg: JudgeConfig) -> list[tuple[str, str]]:
    """The (task, language) units both runs must share; differences are errors."""
    if not ra:
        raise GlotbenchError(f"run {na} has no open-ended task to judge",
                             "generate completions first: glotbench run --tasks m_arenahard (or dolly)")
    if not rb:
        raise GlotbenchError(f"run {nb} has no open-ended task to judge",
                             "generate completions first: glotbench run --tasks m_arenahard (or dolly)")
    tasks = list(cfg.tasks) if cfg.tasks else sorted(set(ra) | set(rb))
    out = []
    for task in tasks:
        for name, r in ((na, ra), (nb, rb)):
            if task not in r:
                raise GlotbenchError(f"run {name} has no completions for task {task!r}",
                                     f"judge the tasks both runs share ({', '.join(sorted(set(ra) & set(rb))) or 'none'}) "
                                     "with --tasks, or generate the missing one")
        langs = list(cfg.langs) if cfg.langs else sorted(set(ra[task]) | set(rb[task]))
        for lang in langs:
            for name, r in ((na, ra), (nb, rb)):
                if lang not in r[task]:
                    shared = sorted(set(ra[task]) & set(rb[task]))
                    raise GlotbenchError(f"run {name} has no completions for {task}/{lang}",
                                         f"judge the languages both runs share with --langs {','.join(shared)}"
                                         if shared else "the runs share no language of this task")
            out.append((task, lang))
    return out


def _items(pair: tuple[str, str], task: str, lang: str, recs_a: list[dict], recs_b: list[dict],
           prompt: JudgePrompt, limit: int | None, orders: tuple[str, ...]) -> list[Item]:
    by_a = {r["prompt_id"]: r for r in recs_a}
    by_b = {r["prompt_id"]: r for r in recs_b}
    if set(by_a) != set(by_b):
        shared = len(set(by_a) & set(by_b))
        raise GlotbenchError(f"{task}/{lang}: the runs answered different prompts ({pair[0]}: {len(by_a)}, "
                             f"{pair[1]}: {len(by_b)}, {shared} shared)",
                             "generate both runs with the same data and --limit")
    language = get_task(task).language_name(lang)
    items = []
    for rec in recs_a[:limit] if limit else recs_a:
        pid = rec["prompt_id"]
        other = by_b[pid]
        if rec["instruction"] != other["instruction"]:
            raise GlotbenchError(f"{task}/{lang} prompt {pid}: the runs were given different instructions",
                                 "generate both runs from the same data (check data_sha256 in run.json)")
        ans_a, ans_b = rec["response"].strip(), other["response"].strip()
        for order, (first, second) in (("ab", (ans_a, ans_b)), ("ba", (ans_b, ans_a))):
            if order not in orders:
                continue
            messages = None if ans_a == ans_b else prompt.render(rec["instruction"], first, second, language)
            items.append(Item(pair, task, lang, pid, order, messages, rec["instruction"], (ans_a, ans_b)))
    return items


def _run_info(run: RunRecord) -> dict:
    """What judge.json keeps of a judged run: enough for the gate to check it judged these runs."""
    def lang_info(task: str, lang: str) -> dict:
        p = run.language_provenance(task, lang)
        return {"data_sha256": p.data_sha256, "prompt_sha256": p.prompt_sha256}

    return {"path": str(run.path), "created": run.created, "model": run.model or None, "run_sha256": run.sha256,
            "tasks": {t: {"version": run.version(t), "prompting": run.prompting(t) or None,
                          "languages": {lang: lang_info(t, lang) for lang in run.languages(t)}}
                      for t in run.tasks() if run.open_ended(t)}}
