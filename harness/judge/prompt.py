"""Pairwise judge prompts as versioned data files (``harness/judge/prompts/*.yaml``).

A prompt file holds the judge's system message, a user template with the placeholders
``{language}``, ``{instruction}``, ``{answer_a}``, ``{answer_b}``, the name of a verdict
parser from the closed set :data:`PARSERS`, and the verdict labels mapped to the position
that won (``A``, ``B`` or ``tie``). Files are validated strictly on load (unknown or
missing keys, wrong types, unknown placeholders are one-line errors), and the loaded
prompt carries the sha256 of the file's bytes so a run records exactly which text judged.

Positions, not models: a verdict says which *shown* answer won; mapping positions back to
models (and judging both orders) is the caller's job.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal, cast, get_args

import yaml

from glotbench.harness.core.errors import GlotbenchError, close_match
from glotbench.harness.core.records import ChatMessage

Position = Literal["A", "B", "tie"]
ParserName = Literal["preferred_line", "bracket_labels"]

PROMPTS_DIR = Path(__file__).parent / "prompts"
DEFAULT_PROMPT = "aya101_pairwise"
PARSERS: tuple[str, ...] = get_args(ParserName)
POSITIONS: tuple[str, ...] = get_args(Position)
KEYS = ("name", "version", "description", "source", "system", "template", "parser", "labels")
PLACEHOLDERS = ("language", "instruction", "answer_a", "answer_b")
REQUIRED_IN_TEMPLATE = ("instruction", "answer_a", "answer_b")
# The system message is shown before any item, so only the language may appear there.
ALLOWED_IN_SYSTEM = ("language",)

# One pass over the template: a value is inserted once and never scanned again, so an answer
# containing "{answer_b}" (or any braces: code, JSON, LaTeX) stays literal. Chained
# str.replace would substitute inside an earlier inserted answer; str.format would choke.
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
# Anything shaped like a placeholder, to catch a forgotten rename such as {question_1}.
_PLACEHOLDER_LIKE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

# arena-hard-auto's regex_pattern (config/judge_config.yaml), applied as its get_score does.
_BRACKET = re.compile(r"\[\[([AB<>=]+)\]\]")
# "Preferred:" at the start of a line, after optional markdown (list dash, heading, quote,
# bold/italic), with bold/italic markers allowed on either side of the colon.
_PREFERRED = re.compile(r"^[\s>#*_-]*preferred[*_]*\s*:[*_]*\s*(?P<rest>.*?)\s*$", re.IGNORECASE)
# Decoration allowed around the label: straight and curly quotes, bold/italic, backticks.
_DECOR = "\\s*_`'\"\u2018\u2019\u201c\u201d"

_Fail = Callable[[str, str], GlotbenchError]


@dataclass(frozen=True)
class Verdict:
    """A judge's parsed decision, in terms of the positions the answers were shown in."""

    position: Position
    """Which shown answer won: ``"A"``, ``"B"`` or ``"tie"``."""
    label: str
    """The labels-table key that matched, in its canonical spelling (``"Answer (A)"``,
    ``"TIE"`` even when the judge wrote ``tie``, ``"A>>B"``)."""


@dataclass(frozen=True)
class JudgePrompt:
    """One validated judge prompt file."""

    name: str
    """Identifier; for a bundled prompt, the file's stem."""
    version: int
    """Bumped whenever the text or labels change."""
    description: str
    """What the prompt asks the judge to do, in a sentence or two."""
    source: str
    """Where the text comes from (paper page or repository, commit, file) and any edits."""
    system: str
    """System message; may contain ``{language}``."""
    template: str
    """User message; contains ``{instruction}``, ``{answer_a}``, ``{answer_b}`` and
    optionally ``{language}``."""
    parser: ParserName
    """How a judge's reply is turned into a :class:`Verdict` (one of :data:`PARSERS`)."""
    labels: Mapping[str, Position]
    """Verdict label as the judge writes it → the position it means; read-only."""
    sha256: str
    """sha256 hex digest of the file's raw bytes (provenance)."""
    path: str
    """The file the prompt was loaded from."""

    def render(self, instruction: str, answer_a: str, answer_b: str,
               language: str) -> tuple[ChatMessage, ...]:
        """The (system, user) messages for one comparison; values are inserted verbatim."""
        if not language.strip() and "{language}" in self.system + self.template:
            raise GlotbenchError(f"judge prompt {self.name!r} needs a language name, got {language!r}",
                                 "pass the language's English name, e.g. 'French'")
        values = {"language": language, "instruction": instruction,
                  "answer_a": answer_a, "answer_b": answer_b}

        def fill(text: str) -> str:
            return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)

        return (ChatMessage("system", fill(self.system)), ChatMessage("user", fill(self.template)))

    def parse(self, text: str) -> Verdict | None:
        """The verdict in a judge's reply, or None when there is none or it is ambiguous."""
        if self.parser == "preferred_line":
            return _parse_preferred_line(text, self.labels)
        return _parse_bracket_labels(text, self.labels)


def _parse_preferred_line(text: str, labels: Mapping[str, Position]) -> Verdict | None:
    # The last "Preferred:" line decides; if it holds no valid label the reply is invalid
    # (an earlier line is not consulted: the judge's final word was unreadable).
    for line in reversed(text.splitlines()):
        found = _PREFERRED.match(line)
        if found is None:
            continue
        by_fold = {label.casefold(): label for label in labels}
        alternatives = "|".join(re.escape(label) for label in sorted(labels, key=len, reverse=True))
        value = re.fullmatch(f"[{_DECOR}]*({alternatives})[{_DECOR}]*\\.?[{_DECOR}]*",
                             found.group("rest"), re.IGNORECASE)
        if value is None:
            return None
        label = by_fold[value.group(1).casefold()]
        return Verdict(labels[label], label)
    return None


def _parse_bracket_labels(text: str, labels: Mapping[str, Position]) -> Verdict | None:
    # As arena-hard-auto's get_score: exactly one distinct [[label]] in the whole reply.
    distinct = {m for m in _BRACKET.findall(text) if m}
    if len(distinct) != 1:
        return None
    (label,) = distinct
    return Verdict(labels[label], label) if label in labels else None


def prompt_names() -> list[str]:
    """Names of the bundled prompts, sorted."""
    return sorted(p.stem for p in PROMPTS_DIR.glob("*.yaml"))


def load_prompt(name_or_path: str) -> JudgePrompt:
    """A bundled prompt by name (see :func:`prompt_names`), or a prompt file by path."""
    looks_like_path = name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path or "\\" in name_or_path
    if not looks_like_path:
        names = prompt_names()
        if name_or_path not in names:
            raise GlotbenchError(
                f"unknown judge prompt {name_or_path!r}{close_match(name_or_path, names)}",
                f"choose from {', '.join(names)}, or pass a path to a .yaml prompt file")
        return _load_file(PROMPTS_DIR / f"{name_or_path}.yaml", expect_name=name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        raise GlotbenchError(f"judge prompt file {str(path)!r} is not a file",
                             f"pass an existing .yaml file or a bundled name ({', '.join(prompt_names())})")
    return _load_file(path, expect_name=None)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (PyYAML silently keeps the last)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _load_file(path: Path, expect_name: str | None) -> JudgePrompt:
    raw = path.read_bytes()
    where = str(path)

    def fail(problem: str, fix: str) -> GlotbenchError:
        return GlotbenchError(f"judge prompt {where}: {problem}", fix)

    try:
        data = yaml.load(raw.decode("utf-8"), Loader=_UniqueKeyLoader)
    except UnicodeDecodeError as e:
        raise fail(f"not UTF-8 ({e.reason} at byte {e.start})", "save the file as UTF-8") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise fail(f"invalid YAML: {problem}{at}", "fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise fail(f"expected a mapping of keys, got {type(data).__name__}", f"use the keys {', '.join(KEYS)}")
    for key in data:
        if key not in KEYS:
            raise fail(f"unknown key {key!r}{close_match(str(key), KEYS)}", f"allowed keys: {', '.join(KEYS)}")
    missing = [k for k in KEYS if k not in data]
    if missing:
        raise fail(f"missing key(s) {', '.join(missing)}", f"every prompt file has {', '.join(KEYS)}")
    for key in ("name", "description", "source", "system", "template"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise fail(f"{key} must be a non-empty string, got {data[key]!r:.60}", "quote it or use a |- block")
    version = data["version"]
    if type(version) is not int or version < 1:
        raise fail(f"version must be an integer >= 1, got {version!r}", "e.g. version: 1")
    if expect_name is not None and data["name"] != expect_name:
        raise fail(f"name {data['name']!r} differs from the file name {expect_name!r}",
                   "make name equal to the file's stem")
    if data["parser"] not in PARSERS:
        raise fail(f"unknown parser {data['parser']!r}{close_match(str(data['parser']), PARSERS)}",
                   f"use one of {', '.join(PARSERS)}")
    labels = _check_labels(data["labels"], data["parser"], fail)
    _check_placeholders(data["system"], data["template"], fail)
    return JudgePrompt(
        name=data["name"], version=version, description=data["description"], source=data["source"],
        system=data["system"], template=data["template"], parser=cast(ParserName, data["parser"]),
        labels=MappingProxyType(labels), sha256=hashlib.sha256(raw).hexdigest(), path=where)


def _check_labels(labels: object, parser: str, fail: _Fail) -> dict[str, Position]:
    if not isinstance(labels, dict) or not labels:
        raise fail(f"labels must be a non-empty mapping of label to position, got {labels!r:.60}",
                   "e.g. labels: {TIE: tie}")
    for label, position in labels.items():
        if not isinstance(label, str) or not label.strip():
            raise fail(f"label {label!r} is not a non-empty string", "quote the label")
        if position not in POSITIONS:
            raise fail(f"label {label!r} maps to {position!r}", f"map every label to one of {', '.join(POSITIONS)}")
        if parser == "bracket_labels" and not _BRACKET.fullmatch(f"[[{label}]]"):
            raise fail(f"label {label!r} can never match [[...]] (only A, B, <, >, = are allowed)",
                       "spell bracket labels like A>>B or A=B")
    if parser == "preferred_line":
        folded = [label.casefold() for label in labels]
        if len(set(folded)) != len(folded):
            raise fail("labels differ only by case", "the preferred_line parser is case-insensitive")
    return cast(dict[str, Position], dict(labels))


def _check_placeholders(system: str, template: str, fail: _Fail) -> None:
    for field, text, allowed in (("system", system, ALLOWED_IN_SYSTEM), ("template", template, PLACEHOLDERS)):
        for found in _PLACEHOLDER_LIKE.findall(text):
            if found not in allowed:
                raise fail(f"{field} has unknown placeholder {{{found}}}",
                           f"{field} may use {', '.join('{' + p + '}' for p in allowed)}")
    absent = [p for p in REQUIRED_IN_TEMPLATE if f"{{{p}}}" not in template]
    if absent:
        raise fail(f"template lacks placeholder(s) {', '.join('{' + p + '}' for p in absent)}",
                   "the template must show {instruction}, {answer_a} and {answer_b}")
