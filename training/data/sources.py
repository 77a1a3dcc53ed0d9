"""Prompt records from a user's own data: a JSON-lines prompt file or a hub dataset.

A user's file is strict: a malformed line, a missing or empty prompt, a ``messages`` list
that does not end with a user turn is one error naming the file and line (the user can fix
it, and half a prompt set is not what they asked for). Hub datasets go through the harness's
hub loader (:func:`glotbench.harness.taskapi.data.read_hub`), so offline mode, retries and
failures behave as they do for evaluation data, and a local directory laid out like a hub
dataset repository can stand in for a hub id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from glotbench.harness.core.errors import DataError
from glotbench.harness.core.records import ChatMessage, Sample
from glotbench.harness.taskapi.spec import DataSource, Task
from glotbench.training.core.jsonl import read_jsonl
from glotbench.training.core.records import Prompt

ROLES = ("system", "user", "assistant")
FIELDS = ("prompt_id", "language", "prompt", "messages")


@dataclass(frozen=True)
class Read:
    """What a reader produced before the set-wide checks (duplicates, overlap, hash)."""

    prompts: tuple[Prompt, ...]
    source: str
    """``file:<path>``, ``hub:<id>/<config>/<split>``, ``alpaca_eval_multilingual:<dir>`` …"""
    problems: tuple[str, ...] = ()
    """Real-file defects handled by a documented rule, one line each (file:line, what, rule)."""


def messages_of(value: object, where: str) -> tuple[ChatMessage, ...]:
    """A ``messages`` value as chat turns: a non-empty list of ``{role, content}`` ending with
    a user turn (the prompt a teacher completes)."""
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: messages must be a non-empty list of {{role, content}}, not {value!r:.60}",
                        'write e.g. "messages": [{"role": "user", "content": "..."}]')
    turns = []
    for i, turn in enumerate(value):
        if not isinstance(turn, Mapping) or set(turn) - {"role", "content"} or "role" not in turn \
                or "content" not in turn:
            raise DataError(f"{where}: messages[{i}] must be {{role, content}}, not {turn!r:.60}",
                            "give each turn exactly the keys role and content")
        if turn["role"] not in ROLES:
            raise DataError(f"{where}: messages[{i}] has role {turn['role']!r}", f"use one of {', '.join(ROLES)}")
        if not isinstance(turn["content"], str) or not turn["content"].strip():
            raise DataError(f"{where}: messages[{i}] has empty or non-text content", "give every turn its text")
        turns.append(ChatMessage(turn["role"], turn["content"]))
    if turns[-1].role != "user":
        raise DataError(f"{where}: the last turn is {turns[-1].role!r}, not 'user'",
                        "end messages with the user turn the teachers should answer")
    return tuple(turns)


def prompt_of(row: Mapping, fields: Mapping[str, str], where: str, *, default_id: str | None = None,
              language: str | None = None) -> Prompt:
    """One row → a Prompt. ``fields`` maps record fields (prompt_id, language, prompt or
    messages) to the row's keys; ``default_id``/``language`` stand in for unmapped ones."""
    if "prompt" in fields and "messages" in fields:
        raise DataError(f"{where}: both prompt and messages are mapped", "map one of them")
    pid = row.get(fields["prompt_id"]) if "prompt_id" in fields else default_id
    if isinstance(pid, bool) or not isinstance(pid, (str, int)) or not str(pid).strip():
        raise DataError(f"{where}: prompt_id must be a non-empty string or integer, not {pid!r}",
                        "give every prompt its id")
    lang = row.get(fields["language"]) if "language" in fields else language
    if not isinstance(lang, str) or not lang.strip():
        raise DataError(f"{where}: language must be a non-empty code such as 'de', not {lang!r}",
                        "give every prompt its language")
    if "messages" in fields:
        turns = messages_of(row.get(fields["messages"]), where)
    else:
        text = row.get(fields.get("prompt", "prompt"))
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: the prompt is empty or not text ({text!r:.60})", "give every prompt its text")
        turns = (ChatMessage("user", text),)
    return Prompt(str(pid), lang, turns, where)


def read_file(path: Path) -> Read:
    """A JSON-lines prompt file: ``{prompt_id, language, prompt}`` or ``{prompt_id, language,
    messages}`` per line; blank lines are allowed, anything else malformed is an error."""
    prompts = []
    for where, row in read_jsonl(path, "prompt file", '{"prompt_id", "language", "prompt"}'):
        unknown = sorted(set(row) - set(FIELDS))
        if unknown or ("prompt" in row) == ("messages" in row):
            raise DataError(f"{where} has keys {', '.join(sorted(row))}",
                            "each line needs prompt_id, language and one of prompt or messages")
        mapped = {k: k for k in FIELDS if k in row or k in ("prompt_id", "language")}
        prompts.append(prompt_of(row, mapped, where))
    if not prompts:
        raise DataError(f"prompt file {path} has no prompts", "write one JSON object per line")
    return Read(tuple(prompts), f"file:{path}")


def read_hub(hub_id: str, config: str | None, split: str, fields: Mapping[str, str],
             language: str | None) -> Read:
    """A hub dataset's rows as prompts; ``fields`` maps record fields to its columns."""
    from glotbench.harness.taskapi import data as data_mod

    # The harness's hub loader reads a Task's data source; describe the prompt dataset as one
    # (it is never rendered: only its data source and name are used).
    task = Task(name="the prompts block", version="0", title=f"training prompts {hub_id}", languages=(),
                data=DataSource(hub_id=hub_id, split=split, local="<prompts>", fields=tuple(fields.values())),
                chance=0.0, render=_never_rendered)
    try:
        rows = data_mod.read_hub(task, config, split, tuple(fields.values()))
    except DataError as exc:
        raise DataError(exc.problem, "use a local copy: prompts: {file: PATH} (JSON lines), or give as hub "
                                     "a local directory laid out like the dataset's repository") from None
    at = f"hub:{hub_id}/{config}/{split}" if config else f"hub:{hub_id}/{split}"
    prompts = [prompt_of(row, fields, f"{at} row {i}", default_id=str(i), language=language)
               for i, row in enumerate(rows)]
    if not prompts:
        raise DataError(f"{at} has no rows", "check the dataset id, config and split")
    return Read(tuple(prompts), at)


def _never_rendered(sample: Sample) -> None:
    raise TypeError("a training prompt dataset is not an evaluation task and is never rendered")

