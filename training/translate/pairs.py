"""Parallel units and what becomes of each: a pair, or a drop with its reason.

A **unit** is one source prompt in one target language L: the pivot (English) prompt and the
L prompt sharing a source id (:func:`glotbench.training.data.prompts.source_id`: ``alpaca-12``
for ``alpaca-12/de``; in a prompt file of one's own, write ids ``<id>/<language>``). Without
an L prompt the unit exists only when ``translate_prompts`` is on (the pivot prompt is then
translated); otherwise the source id is counted as ``no_target_prompt``.

Each unit ends as exactly one of: a kept pair, or a drop whose reason is the first that
applies, in this order: ``prompt_translation_missing``, ``chosen_missing``,
``chosen_<empty|too_short|wrong_script|wrong_language>`` (the language check of the chosen
completion), ``rejected_missing`` / ``rejected_empty`` (the weak model gave no answer, or an
empty one), ``translation_missing`` / ``translation_empty``, ``rejected_not_in_language``
(only with ``drop_rejected``), ``identical`` (chosen and rejected the same text). So per language
``kept + sum(dropped_*) == units``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from glotbench.harness.core.errors import DataError
from glotbench.training.arbitrage.outputs import pair_rows
from glotbench.training.core.records import Candidate, Prompt
from glotbench.training.data.prompts import source_id
from glotbench.training.translate.language import REASONS, Verdict

DROP_REASONS = ("prompt_translation_missing", "chosen_missing", *(f"chosen_{r}" for r in REASONS),
                "rejected_missing", "rejected_empty", "translation_missing", "translation_empty",
                "rejected_not_in_language", "identical")
COUNTS = ("units", "kept", "native_prompt", "translated_prompt", "no_target_prompt", "no_pivot_prompt",
          "chosen_truncated", "rejected_in_language", "rejected_not_in_language", "translation_truncated")


@dataclass(frozen=True)
class Unit:
    source: str
    language: str
    pivot: Prompt
    native: Prompt | None
    """The L prompt of the prompt set; None when the pivot prompt is to be translated."""

    @property
    def key(self) -> str:
        """``<source id>/<language>``: the id of a translated prompt, and of the unit."""
        return f"{self.source}/{self.language}"


def plan(prompts: Iterable[Prompt], pivot: str, languages: tuple[str, ...],
         translate_prompts: bool) -> tuple[list[Unit], dict[str, Counter]]:
    """Units sorted by (language order, source id), and per-language planning counts."""
    by: dict[tuple[str, str], Prompt] = {}
    for p in prompts:
        if p.language != pivot and p.language not in languages:
            continue
        k = (source_id(p), p.language)
        if k in by:
            raise DataError(f"prompts {by[k].prompt_id!r} and {p.prompt_id!r} share source id {k[0]!r} in {k[1]}",
                            "give each translation the id <source id>/<language>, once per language")
        by[k] = p
    pivots = {s: p for (s, lang), p in by.items() if lang == pivot}
    units, counts = [], {lang: Counter() for lang in languages}
    for lang in languages:
        c = counts[lang]
        c["no_pivot_prompt"] = sum(1 for (s, la) in by if la == lang and s not in pivots)
        for s in sorted(pivots):
            native = by.get((s, lang))
            if native is None and not translate_prompts:
                c["no_target_prompt"] += 1
                continue
            c["native_prompt" if native else "translated_prompt"] += 1
            units.append(Unit(s, lang, pivots[s], native))
    return units, counts


@dataclass
class Results:
    """What the models produced, by unit key (the weak model's answers by source id)."""

    prompts: dict[str, Prompt]
    """The L prompt of each unit whose prompt exists (native or translated)."""
    chosen: dict[str, Candidate]
    chosen_check: dict[str, Verdict]
    weak: dict[str, Candidate]
    translated: dict[str, Candidate]
    rejected_check: dict[str, Verdict]


def reason(u: Unit, r: Results, drop_rejected: bool) -> str | None:
    """Why unit ``u`` gives no pair (None: it gives one); see the module docstring."""
    k = u.key
    if k not in r.prompts:
        return "prompt_translation_missing"
    if k not in r.chosen:
        return "chosen_missing"
    if not r.chosen_check[k].ok:
        return f"chosen_{r.chosen_check[k].reason}"
    if u.source not in r.weak:
        return "rejected_missing"
    if not r.weak[u.source].completion.strip():
        return "rejected_empty"
    if k not in r.translated:
        return "translation_missing"
    if not r.translated[k].completion.strip():
        return "translation_empty"
    if drop_rejected and not r.rejected_check[k].ok:
        return "rejected_not_in_language"
    if r.chosen[k].completion.strip() == r.translated[k].completion.strip():
        return "identical"
    return None


def collect(units: list[Unit], r: Results, drop_rejected: bool,
            counts: Mapping[str, Counter]) -> tuple[list[dict], list[dict], dict[str, dict]]:
    """(pairs.jsonl rows, dropped.jsonl rows, per-language counts), rows sorted by prompt id."""
    kept, extras, dropped = [], {}, []
    for u in units:
        c, k = counts[u.language], u.key
        c["units"] += 1
        if k in r.chosen and r.chosen[k].finish == "length":
            c["chosen_truncated"] += 1
        if k in r.rejected_check:
            c["rejected_in_language" if r.rejected_check[k].ok else "rejected_not_in_language"] += 1
            c["translation_truncated"] += r.translated[k].finish == "length"
        why = reason(u, r, drop_rejected)
        if why is not None:
            c[f"dropped_{why}"] += 1
            dropped.append(_dropped_row(u, r, why))
            continue
        c["kept"] += 1
        pid = r.prompts[k].prompt_id
        ch, tr, weak = r.chosen[k], r.translated[k], r.weak[u.source]
        kept.append({"prompt_id": pid, "language": u.language, "chosen": ch.completion, "rejected": tr.completion,
                     "chosen_score": None, "rejected_score": None, "chosen_teacher": ch.teacher,
                     "rejected_teacher": weak.teacher, "chosen_sample": 0, "rejected_sample": 0})
        extras[pid] = {"source_id": u.source, "prompt_source": "native" if u.native else "translated",
                       "pivot_prompt_id": u.pivot.prompt_id, "rejected_source": "translated",
                       "rejected_pivot": weak.completion, "translator": tr.teacher,
                       "chosen_check": r.chosen_check[k].to_json(), "rejected_check": r.rejected_check[k].to_json()}
    prompts = {r.prompts[u.key].prompt_id: r.prompts[u.key] for u in units if u.key in r.prompts}
    rows = [{**row, **extras[row["prompt_id"]]} for row in pair_rows(prompts, kept)]
    dropped.sort(key=lambda d: d["prompt_id"])
    return rows, dropped, {lang: _ordered(c) for lang, c in counts.items()}


def _dropped_row(u: Unit, r: Results, why: str) -> dict:
    k = u.key
    return {"prompt_id": r.prompts[k].prompt_id if k in r.prompts else k, "language": u.language,
            "source_id": u.source, "reason": why,
            "chosen": r.chosen[k].completion if k in r.chosen else None,
            "chosen_check": r.chosen_check[k].to_json() if k in r.chosen_check else None,
            "rejected_pivot": r.weak[u.source].completion if u.source in r.weak else None,
            "rejected": r.translated[k].completion if k in r.translated else None,
            "rejected_check": r.rejected_check[k].to_json() if k in r.rejected_check else None}


def _ordered(c: Counter) -> dict:
    """Every count, zeros included, in a fixed order (a missing key would read as "not counted")."""
    return {k: c[k] for k in COUNTS + tuple(f"dropped_{r}" for r in DROP_REASONS)}
