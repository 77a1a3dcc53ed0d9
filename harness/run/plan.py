"""Plan a run: resolve the requested languages to each task's own codes, load and render every
item of every task x language before any model loads, so bad input fails first; lay
generative prompts out as text once the backend (and its chat template) is known."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from glotbench.harness.core.errors import DataError, GlotbenchError
from glotbench.harness.core.records import (
    GenerationPrompt,
    GenerationRequest,
    MultipleChoicePrompt,
)
from glotbench.harness.models.protocol import Backend
from glotbench.harness.run.cache import request_key
from glotbench.harness.run.config import CHAT_MODES, FEWSHOT_AS, RunConfig
from glotbench.harness.taskapi import data as data_mod
from glotbench.harness.taskapi.languages import select
from glotbench.harness.taskapi.registry import get_task
from glotbench.harness.taskapi.spec import Task


@dataclass
class Unit:
    """One task × language to evaluate."""

    task: object
    lang: str
    loaded: data_mod.LoadedData
    prompts: list[MultipleChoicePrompt | GenerationPrompt]
    keys: list[list[str]] = field(default_factory=list)
    requests: list[list] = field(default_factory=list)
    """Per item, the backend requests (log-likelihood pairs or one generation)."""
    chat: bool = False
    samples: list | None = None
    """The items' samples when not the first ``len(prompts)`` of the data (a subset)."""
    requested: tuple[str, ...] = ()
    """The ``--langs`` codes that selected this language (empty: the task's own default)."""
    fewshot_short: dict[str, int] = field(default_factory=dict)
    """Few-shot groups with fewer examples than the task asks for → how many they have."""

    def item_samples(self) -> list:
        return self.samples if self.samples is not None else list(self.loaded.samples[:len(self.prompts)])


def plan(cfg: RunConfig, notes: list[str] | None = None) -> list[Unit]:
    """Every task × language of the run, loaded and rendered. ``notes`` (when given) receives
    what the user should read before the run starts: how ``--langs`` maps onto each task's
    codes, tasks or languages not run, few-shot pools smaller than the task asks for."""
    notes = [] if notes is None else notes
    data_dir = Path(cfg.data_dir) if cfg.data_dir else None
    check(cfg, data_dir)
    tasks = [get_task(name) for name in cfg.tasks]
    if cfg.xcomet:
        from glotbench.harness.metrics import comet

        if not any(t.source_field for t in tasks):
            raise GlotbenchError("--xcomet was given but no selected task is a translation task",
                                 "add --tasks flores, or drop --xcomet")
        if cfg.xcomet_batch_size < 1:
            raise GlotbenchError(f"--xcomet-batch-size must be >= 1, got {cfg.xcomet_batch_size}")
        comet.model_identity(cfg.xcomet)  # a missing checkpoint fails here, before any model loads
    units: list[Unit] = []
    failed: list[tuple[str, DataError]] = []
    for task, langs in task_languages(cfg, tasks, notes):
        for lang, requested in langs:
            try:
                loaded = data_mod.load(task, lang, cfg.data, data_dir)
            except DataError as exc:  # gather them: the error names everything that cannot run
                failed.append((f"{task.name}/{lang}", exc))
                continue
            limit = cfg.limit or cfg.task_limits.get(task.name)
            samples = loaded.samples[:limit] if limit else loaded.samples
            prompts = [task.prompt(s, loaded.fewshot) for s in samples]
            unit = Unit(task, lang, loaded, prompts, requested=requested)
            if task.fewshot_shortfall is not None:
                unit.fewshot_short = task.fewshot_shortfall(tuple(samples), loaded.fewshot)
                if unit.fewshot_short:
                    want = task.data.fewshot.num if task.data.fewshot else 0
                    notes.append(f"{task.name}/{lang}: {len(unit.fewshot_short)} groups have fewer than {want} "
                                 f"few-shot examples ({_counts(unit.fewshot_short)}); their items get what "
                                 f"there is (recorded in provenance)")
            if task.output_type == "multiple_choice":
                unit.requests = [list(p.pairs) for p in prompts]
                unit.keys = [[request_key(r) for r in reqs] for reqs in unit.requests]
            units.append(unit)
    if failed:
        raise failed[0][1] if len(failed) == 1 else unloadable(failed)
    if not units:
        raise GlotbenchError(f"no task has any of the selected languages ({', '.join(cfg.langs or ())})",
                             "check --langs and --tasks against 'glotbench tasks'")
    return units


def check(cfg: RunConfig, data_dir: Path | None) -> None:
    """The run's flags, checked before anything is loaded."""
    if data_dir is not None and not data_dir.is_dir():
        raise GlotbenchError(f"--data-dir {data_dir} is not a directory", "pass the folder holding the data files")
    if cfg.limit is not None and cfg.limit < 1:
        raise GlotbenchError(f"--limit must be >= 1, got {cfg.limit}", "omit --limit to use all items")
    if cfg.chat not in CHAT_MODES:
        raise GlotbenchError(f"unknown --chat mode {cfg.chat!r}", f"use one of {', '.join(CHAT_MODES)}")
    if cfg.fewshot_as not in FEWSHOT_AS:
        raise GlotbenchError(f"unknown --fewshot-as {cfg.fewshot_as!r}", f"use one of {', '.join(FEWSHOT_AS)}")
    if cfg.max_new_tokens is not None and cfg.max_new_tokens < 1:
        raise GlotbenchError(f"--max-new-tokens must be >= 1, got {cfg.max_new_tokens}",
                             "omit it to use each task's generation length")


def task_languages(cfg: RunConfig, tasks: list[Task],
                   notes: list[str]) -> list[tuple[Task, list[tuple[str, tuple[str, ...]]]]]:
    """Each task's languages as (its own code, the requested codes that selected it)."""
    if cfg.langs is None:
        return [(t, [(lang, ()) for lang in cfg.task_langs.get(t.name, t.languages)]) for t in tasks]
    selection = select(tasks, tuple(cfg.langs))
    notes.extend(selection.notes)
    out = []
    for task in tasks:
        chosen = list(selection.codes[task.name].items())
        if task.name in cfg.task_langs:  # the default run: only languages with local data
            local = [(c, r) for c, r in chosen if c in cfg.task_langs[task.name]]
            if len(local) < len(chosen):
                hub = ", ".join(c for c, _ in chosen if c not in cfg.task_langs[task.name])
                notes.append(f"{task.name}: no local data for {hub}; it runs {', '.join(c for c, _ in local)}"
                             if local else f"not running {task.name}: no local data for {hub}"
                             f" (use --data hub or --data-dir)")
            chosen = local
        out.append((task, chosen))
    return out


def unloadable(failed: list[tuple[str, DataError]]) -> DataError:
    """One error naming every task × language whose data cannot be loaded."""
    names = [where for where, _ in failed]
    shown = ", ".join(names[:10]) + (f" … ({len(names)} in all)" if len(names) > 10 else "")
    first = failed[0][1]
    return DataError(f"cannot load the data of {shown} (first: {first.problem})",
                     (first.fix + "; " if first.fix else "")
                     + "or run only what has local data (marked in 'glotbench tasks') with --tasks/--langs")


def _counts(short: dict[str, int], keep: int = 6) -> str:
    items = [f"{k} {v}" for k, v in short.items()]
    return ", ".join(items[:keep]) + (f" … ({len(items)} in all)" if len(items) > keep else "")


def subset(unit: Unit, positions: list[int]) -> Unit:
    """The unit restricted to some of its items (positions in item order), requests included."""
    samples = unit.item_samples()
    return Unit(unit.task, unit.lang, unit.loaded, [unit.prompts[i] for i in positions],
                [unit.keys[i] for i in positions], [unit.requests[i] for i in positions], unit.chat,
                [samples[i] for i in positions], unit.requested, unit.fewshot_short)


def generation_requests(unit: Unit, cfg: RunConfig, backend: Backend) -> None:
    """Lay out each generative prompt as text (plain, or through the chat template)."""
    unit.chat = use_chat(cfg, backend)
    unit.requests = []
    for p in unit.prompts:
        text = backend.apply_chat_template(p.messages(cfg.fewshot_as)) if unit.chat else p.plain()
        length = cfg.max_new_tokens or cfg.task_max_new_tokens.get(unit.task.name) or p.max_new_tokens
        unit.requests.append([GenerationRequest(text, p.stop, length)])
    unit.keys = [[request_key(r) for r in reqs] for reqs in unit.requests]


def use_chat(cfg: RunConfig, backend: Backend) -> bool:
    if cfg.chat == "off":
        return False
    if backend.chat_template is None:
        if cfg.chat == "on":
            raise GlotbenchError(f"--chat on, but model {backend.identity.name!r} has no chat template",
                                 "use --chat off (or auto) for a base model")
        return False
    return True
