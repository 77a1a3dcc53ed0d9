"""Plan a run: load and render every item of every task x language before any model loads, so
bad input fails first; lay generative prompts out as text once the backend (and its chat
template) is known."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.records import (
    GenerationPrompt,
    GenerationRequest,
    MultipleChoicePrompt,
)
from glotbench.harness.models.protocol import Backend
from glotbench.harness.run.cache import request_key
from glotbench.harness.run.config import CHAT_MODES, FEWSHOT_AS, RunConfig
from glotbench.harness.taskapi import data as data_mod
from glotbench.harness.taskapi.registry import get_task


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

    def item_samples(self) -> list:
        return self.samples if self.samples is not None else list(self.loaded.samples[:len(self.prompts)])


def plan(cfg: RunConfig) -> list[Unit]:
    units = []
    data_dir = Path(cfg.data_dir) if cfg.data_dir else None
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
    tasks = [get_task(name) for name in cfg.tasks]
    if cfg.xcomet:
        from glotbench.harness.metrics import comet

        if not any(t.source_field for t in tasks):
            raise GlotbenchError("--xcomet was given but no selected task is a translation task",
                                 "add --tasks flores, or drop --xcomet")
        if cfg.xcomet_batch_size < 1:
            raise GlotbenchError(f"--xcomet-batch-size must be >= 1, got {cfg.xcomet_batch_size}")
        comet.model_identity(cfg.xcomet)  # a missing checkpoint fails here, before any model loads
    if cfg.langs is not None:
        # A language must exist in at least one selected task; each task keeps its own.
        for lang in cfg.langs:
            if not any(t.supports(lang) for t in tasks):
                tasks[0].check_langs([lang])  # raises with the close match
    for task in tasks:
        if cfg.langs is not None:
            langs = [x for x in cfg.langs if task.supports(x)]
        else:
            langs = list(cfg.task_langs.get(task.name, task.languages))
        for lang in langs:
            loaded = data_mod.load(task, lang, cfg.data, data_dir)
            limit = cfg.limit or cfg.task_limits.get(task.name)
            samples = loaded.samples[:limit] if limit else loaded.samples
            prompts = [task.prompt(s, loaded.fewshot) for s in samples]
            unit = Unit(task, lang, loaded, prompts)
            if task.output_type == "multiple_choice":
                unit.requests = [list(p.pairs) for p in prompts]
                unit.keys = [[request_key(r) for r in reqs] for reqs in unit.requests]
            units.append(unit)
    if not units:
        raise GlotbenchError("the selected tasks have none of the selected languages",
                             "check --langs against 'glotbench tasks'")
    return units


def subset(unit: Unit, positions: list[int]) -> Unit:
    """The unit restricted to some of its items (positions in item order), requests included."""
    samples = unit.item_samples()
    return Unit(unit.task, unit.lang, unit.loaded, [unit.prompts[i] for i in positions],
                [unit.keys[i] for i in positions], [unit.requests[i] for i in positions], unit.chat,
                [samples[i] for i in positions])


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
