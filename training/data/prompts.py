"""Training prompt sets: the ``prompts:`` block of a training config → a checked PromptSet.

One source per block::

    prompts: {file: prompts.jsonl}                       # {prompt_id, language, prompt|messages}
    prompts: {hub: ID, config: C, split: train,          # a hub dataset (or a local directory
              fields: {prompt_id: id, prompt: text},     #   laid out like its repository)
              language: en}                              # or fields: {language: column}
    prompts: {alpaca_eval_multilingual: DIR}             # line-aligned <lang>.jsonl
    prompts: {oasst_hplt: DIR}                           # test_<lang>.jsonl, parallel by id

and the common keys ``languages: [de, fr]`` (keep these), ``first: N`` (the first N source
prompts of each language, in file order), ``allow_eval_overlap: false``, ``eval_data_dir:
DIR`` and ``eval_data: local|auto`` (where the evaluation sets for the overlap check come
from, see :mod:`glotbench.training.data.overlap`). Rules for real-file defects are in
:mod:`glotbench.training.data.parallel`; a user's own file is strict (:mod:`.sources`).
Every prompt id must be unique in the set; the set's hash covers the loaded records (ids,
languages, turns), not where they were read from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from glotbench.harness.core.errors import DataError
from glotbench.harness.core.hashing import json_sha256
from glotbench.training.core.config import ConfigError, check_keys, resolve_path, typed
from glotbench.training.core.records import Prompt
from glotbench.training.data import parallel, sources
from glotbench.training.data.overlap import EvalData, OverlapReport, check_overlap

KINDS = ("file", "hub", "alpaca_eval_multilingual", "oasst_hplt")
COMMON = ("languages", "first", "allow_eval_overlap", "eval_data_dir", "eval_data")
HUB_ONLY = ("config", "split", "fields", "language")
FIELD_KEYS = ("prompt_id", "language", "prompt", "messages")


@dataclass(frozen=True)
class PromptSet:
    """The prompts a training stage works on, with what was checked about them."""

    prompts: tuple[Prompt, ...]
    """In source order (per language for parallel collections)."""
    sha256: str
    """Hash of the prompt records (see :func:`prompts_sha256`): the data hash in manifests."""
    source: str
    """Where they came from (``file:<path>``, ``hub:<id>/<config>/<split>``, …)."""
    problems: tuple[str, ...]
    """Real-file defects and how each was handled, one line each."""
    overlap: OverlapReport
    """The evaluation-overlap check's findings."""

    def by_id(self) -> dict[str, Prompt]:
        """prompt_id → prompt (what scorers take)."""
        return {p.prompt_id: p for p in self.prompts}

    def languages(self) -> list[str]:
        """The languages present, in order of first appearance."""
        return list(dict.fromkeys(p.language for p in self.prompts))


def prompts_sha256(prompts: tuple[Prompt, ...] | list[Prompt]) -> str:
    """Hash of ids, languages and turns in order; independent of file paths."""
    return json_sha256([[p.prompt_id, p.language, [[m.role, m.content] for m in p.messages]] for p in prompts])


def source_id(prompt: Prompt) -> str:
    """The id a prompt shares with its translations: ``alpaca-12`` for ``alpaca-12/de``; the
    prompt id itself when it does not end with ``/<its language>``."""
    return source_of(prompt.prompt_id, prompt.language)


def source_of(prompt_id: str, language: str | None) -> str:
    """:func:`source_id` for a bare id and language (SFT rows, preference pairs): ``prompt_id``
    without a trailing ``/<language>``; unchanged when it has none or the language is unknown."""
    suffix = f"/{language}" if language else None
    return prompt_id[: -len(suffix)] if suffix and prompt_id.endswith(suffix) else prompt_id


def load_prompts(block: dict, config_path: Path | None = None, *, where: str = "prompts") -> PromptSet:
    """Read, filter and check the prompt set a config's ``prompts:`` block describes."""
    if config_path is not None:
        where = f"{config_path}: {where}"
    check_keys(block, KINDS + COMMON + HUB_ONLY, where)
    kinds = [k for k in KINDS if k in block]
    if len(kinds) != 1:
        raise ConfigError(f"{where} must name exactly one source, not {len(kinds)} ({', '.join(kinds) or 'none'})",
                          f"use one of {', '.join(KINDS)}")
    kind = kinds[0]
    if kind != "hub" and (stray := [k for k in HUB_ONLY if k in block]):
        raise ConfigError(f"{where}: {stray[0]} only goes with hub", f"remove {stray[0]} (source is {kind})")
    languages = _languages(block, where)
    first = typed(block, "first", int, where)
    if first is not None and first < 1:
        raise ConfigError(f"{where}: first must be at least 1, not {first}", "set first: N with N >= 1, or remove it")
    allow = typed(block, "allow_eval_overlap", bool, where, False)
    eval_data = typed(block, "eval_data", str, where, "local")
    if eval_data not in get_args(EvalData):
        raise ConfigError(f"{where}: eval_data must be one of {', '.join(get_args(EvalData))}, not {eval_data!r}",
                          "local: bundled copy and eval_data_dir; auto: also try the hub")
    eval_dir = typed(block, "eval_data_dir", str, where)
    eval_root = resolve_path(eval_dir, config_path) if eval_dir is not None else None
    if eval_root is not None and not eval_root.is_dir():
        raise ConfigError(f"{where}: eval_data_dir {eval_dir} is not a directory",
                          "give the --data-dir of your evaluation data, or remove the key")

    read = _read(kind, block, config_path, where, languages, first)
    prompts = read.prompts
    if kind in ("file", "hub"):
        prompts = _filter(prompts, languages, first, read.source)
    _check_unique(prompts)
    report = check_overlap(prompts, read.source, allow=allow, data_dir=eval_root, eval_data=eval_data)
    return PromptSet(prompts, prompts_sha256(prompts), read.source, read.problems, report)


def _languages(block: dict, where: str) -> list[str] | None:
    langs = typed(block, "languages", list, where)
    if langs is None:
        return None
    if not langs or any(not isinstance(x, str) or not x for x in langs) or len(set(langs)) != len(langs):
        raise ConfigError(f"{where}: languages must be a non-empty list of distinct codes, not {langs!r}",
                          "write e.g. languages: [de, fr]")
    return langs


def _read(kind: str, block: dict, config_path: Path | None, where: str, languages: list[str] | None,
          first: int | None) -> sources.Read:
    value = typed(block, kind, str, where)
    if kind == "hub":
        # a local stand-in directory may be named relative to the config, like any path
        local = resolve_path(value, config_path)
        return _read_hub(block, str(local) if local.exists() else value, where)
    path = resolve_path(value, config_path)
    if kind == "file":
        return sources.read_file(path)
    if not path.is_dir():
        raise DataError(f"{where}: {kind} {value} is not a directory", f"give the {kind} data directory")
    reader = parallel.read_alpaca if kind == "alpaca_eval_multilingual" else parallel.read_oasst
    return reader(path, languages, first)


def _read_hub(block: dict, hub_id: str, where: str) -> sources.Read:
    fields = check_keys(typed(block, "fields", dict, where, {}), FIELD_KEYS, f"{where}.fields")
    for key, column in fields.items():
        if not isinstance(column, str) or not column:
            raise ConfigError(f"{where}.fields: {key} must name a column, not {column!r}", f"write {key}: <column>")
    if ("prompt" in fields) == ("messages" in fields):
        raise ConfigError(f"{where}.fields must map exactly one of prompt or messages",
                          "e.g. fields: {prompt: instruction} or fields: {messages: conversation}")
    language = typed(block, "language", str, where)
    if (language is not None) == ("language" in fields):
        raise ConfigError(f"{where} needs the language either as language: xx or as fields: {{language: column}}"
                          + (" (both given)" if language is not None else ""), "give exactly one of them")
    config = typed(block, "config", str, where)
    split = typed(block, "split", str, where, "train")
    return sources.read_hub(hub_id, config, split, fields, language)


def _filter(prompts: tuple[Prompt, ...], languages: list[str] | None, first: int | None,
            source: str) -> tuple[Prompt, ...]:
    """``languages`` and ``first`` for files and hub datasets (parallel readers apply them
    while reading, since defects on lines never read are not reported)."""
    if languages is not None:
        have = set(p.language for p in prompts)
        if missing := [lang for lang in languages if lang not in have]:
            raise DataError(f"{source} has no prompts in {', '.join(missing)}",
                            f"languages present: {', '.join(sorted(have))}")
        prompts = tuple(p for p in prompts if p.language in languages)
    if first is not None:
        taken: dict[str, int] = {}
        kept = []
        for p in prompts:
            taken[p.language] = taken.get(p.language, 0) + 1
            if taken[p.language] <= first:
                kept.append(p)
        prompts = tuple(kept)
    return prompts


def _check_unique(prompts: tuple[Prompt, ...]) -> None:
    seen: dict[str, Prompt] = {}
    for p in prompts:
        if p.prompt_id in seen:
            raise DataError(f"prompt_id {p.prompt_id!r} appears twice ({seen[p.prompt_id].source} and {p.source})",
                            "give every prompt its own id (e.g. <id>/<language> for translations)")
        seen[p.prompt_id] = p
