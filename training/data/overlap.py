"""The evaluation-overlap check: training prompts must not be evaluation prompts.

Training on the test set is the easiest way to fake a gain, so every user turn of every
training prompt is compared, by a hash of its normalised form, with every prompt of the
evaluation sets glotbench ships or can load offline. Normalisation (:func:`normalise`): NFKC,
case folding, whitespace runs collapsed to one space, punctuation and quotes stripped at both
ends, so ``"What is X?"`` and ``what is  x`` collide but a different sentence never does.

The evaluation prompts are read the way ``glotbench run`` reads them, through the task
registry and :func:`glotbench.harness.taskapi.data.load`: each task's default languages, from
``eval_data_dir`` (the ``--data-dir`` layout) when it has them, else the bundled copy; with
``eval_data: auto`` the hub is tried for the rest, as ``--data auto`` does. A set (or some
languages of it) that cannot be loaded is named in :attr:`OverlapReport.unavailable`, never
skipped silently. Loading and hashing everything available offline (the bundled copy:
59k rows, 37k distinct texts) takes about a second (measured 0.9–1.2 s on a 2-core
machine), so the index is memoised in the process only, not cached on disk.
"""

from __future__ import annotations

import functools
import hashlib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from glotbench.harness.core.errors import DataError, GlotbenchError, first_line
from glotbench.training.core.records import Prompt

EvalData = Literal["local", "auto"]

# Task → the row fields that make up the prompt text a model is evaluated on (joined by a
# space). Discriminative tasks are included: an XCOPA premise in the training data is as much
# a leak as an arena question.
EVAL_TEXT: dict[str, tuple[str, ...]] = {
    "m_arenahard": ("prompt",),
    "dolly": ("inputs",),
    "dolly_human": ("inputs",),
    "flores": ("source",),
    "mgsm": ("question",),
    "xcopa": ("premise",),
    "xwinograd": ("sentence",),
    "xstorycloze": ("input_sentence_1", "input_sentence_2", "input_sentence_3", "input_sentence_4"),
    "global_mmlu": ("question",),
    "global_mmlu_lite": ("question",),
    "include": ("question",),
}
# Registered tasks that evaluate on the same rows as another one (checked once, under it).
SAME_DATA: dict[str, str] = {"flores_5shot": "flores", "include_loglik": "include"}


def normalise(text: str) -> str:
    """The form two texts are compared in: NFKC, casefolded, whitespace collapsed, and
    punctuation (quotes included) and spaces stripped at both ends."""
    t = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    start, end = 0, len(t)
    while start < end and _edge(t[start]):
        start += 1
    while end > start and _edge(t[end - 1]):
        end -= 1
    return t[start:end]


def _edge(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch).startswith("P")


def text_hash(text: str) -> str | None:
    """SHA-256 of the normalised text; None for a text with nothing left to compare."""
    norm = normalise(text)
    return hashlib.sha256(norm.encode("utf-8")).hexdigest() if norm else None


@dataclass(frozen=True)
class OverlapReport:
    """What the overlap check compared and found; goes into the stage manifest."""

    checked_sets: dict[str, int]
    """Evaluation set (task name) → distinct normalised prompts compared against."""
    unavailable: dict[str, str]
    """Evaluation set → why it (or some of its languages) could not be loaded."""
    overlaps: dict[str, int]
    """Evaluation set → training prompts found in it (sets with none are absent)."""
    examples: list[str]
    """A few overlapping prompts: training id and source, evaluation set, language and row."""
    overlapping: int = 0
    """Training prompts found in at least one evaluation set."""
    allowed: bool = False
    """``allow_eval_overlap: true``: overlapping prompts were kept."""

    def to_json(self) -> dict:
        """A JSON-able dict (the manifest's ``eval_overlap``)."""
        return {"checked_sets": dict(self.checked_sets), "unavailable": dict(self.unavailable),
                "overlaps": dict(self.overlaps), "overlapping": self.overlapping,
                "examples": list(self.examples), "allowed": self.allowed}


@dataclass(frozen=True)
class EvalIndex:
    """Normalised-text hashes of the evaluation prompts, per evaluation set."""

    sets: dict[str, dict[str, str]] = field(default_factory=dict)
    """Task → {text hash: where the first such prompt is (``<lang> row <i>`` or its id)}."""
    unavailable: dict[str, str] = field(default_factory=dict)


def eval_index(data_dir: Path | None = None, eval_data: EvalData = "local") -> EvalIndex:
    """The evaluation prompts glotbench can load (see the module docstring); memoised."""
    return _cached_index(str(Path(data_dir).resolve()) if data_dir is not None else None, eval_data)


@functools.lru_cache(maxsize=4)
def _cached_index(data_dir: str | None, eval_data: EvalData) -> EvalIndex:
    from glotbench.harness.taskapi import data as data_mod
    from glotbench.harness.taskapi import registry

    root = Path(data_dir) if data_dir is not None else None
    index = EvalIndex()
    for name in EVAL_TEXT:
        task = registry.get_task(name)
        hashes: dict[str, str] = {}
        missing: list[str] = []
        why = ""
        for lang in task.languages:
            where = data_mod.available(task, lang, root)
            if where is None and (eval_data == "local" or why):
                missing.append(lang)  # after one hub failure the others would fail alike
                continue
            try:
                loaded = data_mod.load(task, lang, where or "hub", root)
            except DataError as exc:
                missing.append(lang)
                why = why or first_line(exc)
                continue
            for sample in loaded.samples:
                text = " ".join(str(sample.fields[f]) for f in EVAL_TEXT[name])
                digest = text_hash(text)
                if digest is not None and digest not in hashes:
                    ident = sample.fields.get(task.id_field) if task.id_field else None
                    hashes[digest] = f"{lang} {task.id_field} {ident}" if ident is not None \
                        else f"{lang} row {sample.doc_id}"
        if hashes:
            index.sets[name] = hashes
        if missing:
            shown = ", ".join(missing[:6]) + (", …" if len(missing) > 6 else "")
            reason = why or (f"not in the bundled copy or eval_data_dir (hub only: {task.data.hub_id}); "
                             f"give eval_data_dir: DIR with {task.data.local}, or eval_data: auto")
            index.unavailable[name] = f"{len(missing)} of {len(task.languages)} languages ({shown}): {reason}"
    return index


def check_overlap(prompts: Sequence[Prompt], source: str, *, allow: bool, data_dir: Path | None = None,
                  eval_data: EvalData = "local", index: EvalIndex | None = None,
                  block: str = "prompts") -> OverlapReport:
    """Compare ``prompts`` with the evaluation sets; raise :class:`GlotbenchError` naming the
    count, the sets, one example and the fix when some collide and ``allow`` is False."""
    index = index if index is not None else eval_index(data_dir, eval_data)
    overlaps: dict[str, int] = {}
    examples: list[str] = []
    hit = 0
    for prompt in prompts:
        # Every user turn: an evaluation question in the first turn of a multi-turn prompt counts.
        turns = [m.content for m in prompt.messages if m.role == "user"]
        matches = [(name, digest, text) for text in turns for digest in [text_hash(text)]
                   for name, hashes in index.sets.items() if digest in hashes]
        if not matches:
            continue
        hit += 1
        for name in dict.fromkeys(n for n, _, _ in matches):
            overlaps[name] = overlaps.get(name, 0) + 1
        if len(examples) < 5:
            name, digest, text = matches[0]
            excerpt = " ".join(text.split())[:70]
            examples.append(f"{prompt.prompt_id} ({prompt.source}) is {name} {index.sets[name][digest]}: "
                            f"{excerpt!r}")
    report = OverlapReport(checked_sets={name: len(h) for name, h in index.sets.items()},
                           unavailable=dict(index.unavailable), overlaps=overlaps, examples=examples,
                           overlapping=hit, allowed=allow)
    if hit and not allow:
        counts = ", ".join(f"{name}: {n}" for name, n in overlaps.items())
        raise GlotbenchError(
            f"{hit} of {len(prompts)} training prompts from {source} are evaluation prompts ({counts}), "
            f"e.g. {examples[0]}",
            f"remove them, or set allow_eval_overlap: true in the {block} block "
            "to keep them (the overlap is then counted in the manifest)")
    return report


def describe(report: OverlapReport | Mapping) -> str:
    """One line for a stage summary: sets checked, overlap found, sets not checked."""
    data = report.to_json() if isinstance(report, OverlapReport) else dict(report)
    checked = sum(data["checked_sets"].values())
    line = (f"eval overlap: {data['overlapping']} prompts (checked {len(data['checked_sets'])} sets, "
            f"{checked} prompts)")
    if data["unavailable"]:
        # "m_arenahard (22 of 23 languages)": a set partly checked must not read as unchecked.
        parts = [f"{name} ({reason.split(' (')[0]})" if " of " in reason.split(" (")[0] else name
                 for name, reason in data["unavailable"].items()]
        line += f"; not checked: {', '.join(parts)}"
    return line
