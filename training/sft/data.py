"""SFT data: chat rows from arbitrage's ``sft.jsonl``, any chat jsonl, or a ``datasets`` source.

A row is ``{"messages": [{"role", "content"}, ...], "language": ...}`` (``sft.jsonl`` also
carries prompt_id, teacher and score, kept for the record but not trained on). The last
message must be the assistant's: it is what the model learns to write. A malformed row is a
one-line error naming file:line, never a silent drop, since a training set quietly missing
rows trains a different model than the one the manifest describes.

Assistant-only loss, two ways (trl 1.16): a template with ``{% generation %}`` markers lets
trl mask every non-assistant token of whole conversations (``assistant_only_loss``); any other
template (SmolLM2's, most shipped ones) gets the prompt/completion split, where the prompt is
every message before the last and the completion the last assistant turn, rendered with the
same template (``completion_only_loss``): loss on the final assistant turn and its end-of-turn
token only. Earlier assistant turns of a multi-turn row are then context, not targets.

Any chat data may hold evaluation prompts, so every row's user turns go through the
evaluation-overlap check (:func:`glotbench.training.data.overlap.check_overlap`) unless the
data block says ``allow_eval_overlap: true``. The held-out split keeps a prompt's
translations together (one source id, :func:`glotbench.training.data.prompts.source_of`):
a translation of a training row in the eval split would make the eval loss a training loss.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import file_sha256, json_sha256
from glotbench.harness.core.records import ChatMessage
from glotbench.training.core.jsonl import read_jsonl
from glotbench.training.core.records import Prompt
from glotbench.training.data.overlap import OverlapReport, check_overlap
from glotbench.training.data.prompts import source_of
from glotbench.training.sft.config import DataSpec

ROLES = ("system", "user", "assistant")


def load_rows(spec: DataSpec) -> tuple[list[dict], dict]:
    """The validated rows of ``spec`` and their lineage entry (``role: data``, path, sha256, rows)."""
    if spec.file is not None:
        rows = [check_row(raw, spec, where)
                for where, raw in read_jsonl(spec.file, "SFT data file", '{"messages": [{"role", "content"}, ...]}')]
        source = {"role": "data", "path": str(spec.file), "sha256": file_sha256(spec.file)}
    else:
        rows = [check_row(raw, spec, f"{spec.hub}[{spec.split}] row {i}") for i, raw in enumerate(_hub_rows(spec))]
        source = {"role": "data", "path": spec.hub, "config": spec.config, "split": spec.split,
                  "sha256": json_sha256(rows)}
    if not rows:
        raise GlotbenchError(f"SFT data {source['path']} holds no rows", "point data at a non-empty chat jsonl")
    return rows, {**source, "rows": len(rows)}


def _hub_rows(spec: DataSpec) -> list[dict]:
    """Rows of a hub dataset, or of a local dataset directory standing in for one (offline)."""
    import datasets

    try:
        ds = datasets.load_dataset(spec.hub, spec.config, split=spec.split)
    except Exception as exc:  # noqa: BLE001 — offline, unknown id, bad split: all user-fixable here
        raise GlotbenchError(f"SFT data hub {spec.hub!r} (config {spec.config}, split {spec.split}) could not be "
                             f"loaded ({type(exc).__name__})", "check the id/split, or download it first") from None
    return list(ds)


def check_row(raw: object, spec: DataSpec, where: str) -> dict:
    """``{"messages": [...], "language": str | None, "prompt_id": str | None, "source": where}``
    or a one-line error."""
    if not isinstance(raw, dict) or spec.field not in raw:
        raise GlotbenchError(f"SFT data {where} has no {spec.field!r} field",
                             "each line needs messages: [{role: user, ...}, {role: assistant, ...}]")
    messages = raw[spec.field]
    if not isinstance(messages, list) or not messages:
        raise GlotbenchError(f"SFT data {where}: {spec.field} must be a non-empty list of messages", "fix the line")
    clean = []
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise GlotbenchError(f"SFT data {where}: message {m!r:.80} is not {{role: system|user|assistant, "
                                 "content: text}", "fix the line")
        clean.append({"role": m["role"], "content": m["content"]})
    if clean[-1]["role"] != "assistant" or not any(m["role"] == "user" for m in clean):
        raise GlotbenchError(f"SFT data {where}: the conversation must hold a user turn and end with the "
                             "assistant's", "the last message is what the model learns to write")
    language = raw.get(spec.language_field)
    pid = raw.get("prompt_id")
    return {"messages": clean, "language": language if isinstance(language, str) else None,
            "prompt_id": str(pid) if isinstance(pid, (str, int)) and not isinstance(pid, bool) and pid != "" else None,
            "source": where}


def check_eval_overlap(rows: list[dict], spec: DataSpec, source: str) -> OverlapReport:
    """The evaluation-overlap check on every row's user turns (one-line error on a hit unless
    ``spec.allow_eval_overlap``); the report goes into the manifest's data entry."""
    prompts = [Prompt(prompt_id=r["prompt_id"] or r["source"], language=r["language"] or "",
                      messages=tuple(ChatMessage("user", m["content"]) for m in r["messages"] if m["role"] == "user"),
                      source=r["source"]) for r in rows]
    return check_overlap(prompts, f"SFT data {source}", allow=spec.allow_eval_overlap, block="data")


def select_languages(rows: list[dict], languages: tuple[str, ...]) -> tuple[list[dict], dict[str, int]]:
    """The rows whose ``language`` is in ``languages`` (all rows when it is empty), and how many
    were left out: ``no_language`` (the row states none) and ``other_language``."""
    if not languages:
        return list(rows), {"no_language": 0, "other_language": 0}
    kept = [r for r in rows if r["language"] in languages]
    missing = sum(r["language"] is None for r in rows)
    return kept, {"no_language": missing, "other_language": len(rows) - len(kept) - missing}


def group_of(row: dict) -> str:
    """The held-out unit a row belongs to: its prompt's source id (shared by its translations),
    or the row itself (its file:line) when it has no prompt_id."""
    return source_of(row["prompt_id"], row["language"]) if row.get("prompt_id") else f"row:{row['source']}"


def split_eval(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, eval): a seeded random ``fraction`` of the source groups (:func:`group_of`) held
    out whole, at least one group, at least one left; no eval rows with fewer than two groups."""
    groups = list(dict.fromkeys(group_of(r) for r in rows))
    if fraction <= 0 or len(groups) < 2:
        return list(rows), []
    random.Random(seed).shuffle(groups)
    n_eval = min(len(groups) - 1, max(1, round(fraction * len(groups))))
    held = set(groups[:n_eval])
    return [r for r in rows if group_of(r) not in held], [r for r in rows if group_of(r) in held]


def to_dataset(rows: list[dict], mode: str):
    """A ``datasets.Dataset`` in the shape trl expects for ``mode``: ``prompt_completion``
    (conversational prompt = all but the last message, completion = the last) or ``messages``."""
    import datasets

    if mode == "prompt_completion":
        cols = {"prompt": [r["messages"][:-1] for r in rows], "completion": [r["messages"][-1:] for r in rows]}
    elif mode == "messages":
        cols = {"messages": [r["messages"] for r in rows]}
    else:
        raise ValueError(f"unknown dataset mode {mode!r}")
    return datasets.Dataset.from_dict(cols)


def write_jsonl(rows: list[dict], path: Path) -> None:
    """Rows as chat jsonl (what :func:`load_rows` reads back): for tests, benches and cluster records."""
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({"language": r["language"], "messages": r["messages"]}, ensure_ascii=False) + "\n")
