"""Parallel prompt collections: the same prompts in several languages, one file per language.

Two published layouts are read (see ``../shared/data/*/README.md``):

* ``alpaca_eval_multilingual/<lang>.jsonl``: ``{"instruction": ...}`` per line, line *i* of
  every file being AlpacaEval instruction *i*. Source id ``alpaca-<i>`` (0-based line index);
  translated lines lose one surrounding pair of quotes (``"…"`` or ``“…”``, an echo of the
  translation request) and then outer whitespace. ``en.jsonl`` is kept verbatim: it is the
  AlpacaEval text itself, whose one quoted line (index 221) carries genuine quotes.
* ``oasst_hplt/test_<lang>.jsonl``: ``{"id": <uuid>, "prompt": ...}`` per line, parallel by id.
  Source id = the uuid.

A prompt's ``prompt_id`` is ``<source id>/<language>`` (unique in the set; the source id is
shared by a prompt's translations, see :func:`glotbench.training.data.prompts.source_id`). ``first: N`` reads the first N
lines of each language's file.

Real-file defects never vanish silently; each is one line in ``problems`` naming file:line:
a line that is not valid JSON, lacks its fields or has an empty prompt is **excluded from that
language** (the line says how many of the language's lines were kept); a line whose id is not
among ``test_en.jsonl``'s ids is **kept under its own id and reported as not parallel**. A file
whose line count differs from ``en.jsonl`` in the line-aligned layout is an error: ids come
from line numbers there, so no prompt of it could be trusted.
"""

from __future__ import annotations

import json
from pathlib import Path

from glotbench.harness.core.errors import DataError, close_match
from glotbench.harness.core.records import ChatMessage
from glotbench.training.core.records import Prompt
from glotbench.training.data.sources import Read

QUOTE_PAIRS = (('"', '"'), ("\u201c", "\u201d"))
REFERENCE = "en"


def strip_quotes(text: str) -> str:
    """Outer whitespace, then one surrounding pair of quotes, then whitespace again."""
    t = text.strip()
    if len(t) >= 2 and (t[0], t[-1]) in QUOTE_PAIRS:
        t = t[1:-1].strip()
    return t


def pick_languages(files: dict[str, Path], languages: list[str] | None, root: Path, kind: str) -> list[str]:
    """The languages to read (all files, sorted, when ``languages`` is None)."""
    if not files:
        raise DataError(f"{kind} directory {root} has no prompt files", f"point {kind} at the data directory")
    if languages is None:
        return sorted(files)
    for lang in languages:
        if lang not in files:
            raise DataError(f"{kind} {root} has no language {lang!r}{close_match(lang, list(files))}",
                            f"choose from {', '.join(sorted(files))}")
    return list(languages)


def _lines(path: Path, first: int | None) -> list[str]:
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    return lines if first is None else lines[:first]


def _parse(line: str, keys: tuple[str, ...]) -> tuple[dict | None, str]:
    """The line's object with text values at ``keys``, or None and what is wrong."""
    try:
        row = json.loads(line)
    except ValueError as exc:
        return None, f"not valid JSON ({getattr(exc, 'msg', exc)})"
    if not isinstance(row, dict) or any(not isinstance(row.get(k), str) for k in keys):
        return None, f"not an object with text {' and '.join(keys)}"
    return row, ""


def _excluded(problems: list[str], defects: list[tuple[str, str]], lang: str, kept: int) -> None:
    total = kept + len(defects)
    problems.extend(f"{where}: {what}; excluded from {lang} ({kept} of {total} lines kept)"
                    for where, what in defects)


def read_alpaca(root: Path, languages: list[str] | None, first: int | None) -> Read:
    """``alpaca_eval_multilingual``: line-aligned ``<lang>.jsonl`` files."""
    files = {p.stem: p for p in sorted(root.glob("*.jsonl"))} if root.is_dir() else {}
    langs = pick_languages(files, languages, root, "alpaca_eval_multilingual")
    ref = files.get(REFERENCE) or files[sorted(files)[0]]
    ref_count = len(_lines(ref, None))
    prompts: list[Prompt] = []
    problems: list[str] = []
    for lang in langs:
        count = len(_lines(files[lang], None))
        if count != ref_count:
            raise DataError(f"{files[lang]} has {count} lines, {ref.name} {ref_count}: the files are not "
                            "line-aligned", "use files with one instruction per line, in the same order")
        defects: list[tuple[str, str]] = []
        kept = 0
        for i, line in enumerate(_lines(files[lang], first)):
            where = f"{files[lang]}:{i + 1}"
            row, what = _parse(line, ("instruction",))
            text = "" if row is None else row["instruction"] if lang == REFERENCE else strip_quotes(row["instruction"])
            if row is not None and not text.strip():
                what = "empty instruction"
            if what:
                defects.append((where, what))
                continue
            prompts.append(Prompt(f"alpaca-{i}/{lang}", lang, (ChatMessage("user", text),), where))
            kept += 1
        _excluded(problems, defects, lang, kept)
    return Read(tuple(prompts), f"alpaca_eval_multilingual:{root} ({','.join(langs)})", tuple(problems))


def read_oasst(root: Path, languages: list[str] | None, first: int | None) -> Read:
    """``oasst_hplt``: ``test_<lang>.jsonl`` files, parallel by ``id``."""
    files = {p.stem.removeprefix("test_"): p for p in sorted(root.glob("test_*.jsonl"))} if root.is_dir() else {}
    langs = pick_languages(files, languages, root, "oasst_hplt")
    ref_ids: list[str | None] = []
    if REFERENCE in files:
        ref_ids = [row["id"] if row else None
                   for row, _ in (_parse(line, ("id",)) for line in _lines(files[REFERENCE], None))]
    known = set(ref_ids)
    prompts: list[Prompt] = []
    problems: list[str] = [] if REFERENCE in files else [f"{root}: no test_{REFERENCE}.jsonl, so ids were "
                                                         "not checked for alignment"]
    for lang in langs:
        defects: list[tuple[str, str]] = []
        seen: set[str] = set()
        kept = 0
        for i, line in enumerate(_lines(files[lang], first)):
            where = f"{files[lang]}:{i + 1}"
            row, what = _parse(line, ("id", "prompt"))
            if row is not None and not row["prompt"].strip():
                what = "empty prompt"
            elif row is not None and row["id"] in seen:
                what = f"id {row['id']} repeats an earlier line"
            if what:
                defects.append((where, what))
                continue
            seen.add(row["id"])
            if ref_ids and row["id"] not in known:
                there = ref_ids[i] if i < len(ref_ids) else None
                problems.append(f"{where}: id {row['id']} is on no line of test_{REFERENCE}.jsonl (its line "
                                f"{i + 1} has {there}); kept under its own id, not parallel")
            prompts.append(Prompt(f"{row['id']}/{lang}", lang, (ChatMessage("user", row["prompt"]),), where))
            kept += 1
        _excluded(problems, defects, lang, kept)
    return Read(tuple(prompts), f"oasst_hplt:{root} ({','.join(langs)})", tuple(problems))
