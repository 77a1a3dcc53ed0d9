"""The files of an arbitrage directory (docs/training.md#arbitrage-outputs).

- ``candidates.jsonl``: every completion of every teacher, with its score and finish;
- ``sft.jsonl``: the chosen completion per prompt, as chat messages (the SFT stage's input);
- ``pairs.jsonl``: best and worst completion per prompt with both scores, in trl's
  conversational preference format (``prompt`` messages, ``chosen``/``rejected`` assistant
  turns): the offline DPO data of the next stage;
- ``routing.json`` and ``routing.png``: per language × teacher wins, candidates and mean score;
- ``prompts.json``: the prompt set's source, hash, reported defects and evaluation overlap;
- ``training_manifest.json``: config and hash, inputs (prompt data, teachers, scorer), versions.

Lines are sorted (prompt id, teacher order, sample), so the same inputs give the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from glotbench.harness.core.hashing import file_sha256
from glotbench.training.core.records import Candidate, Prompt


def write_jsonl(path: Path, rows: Iterable[dict]) -> dict:
    """Write rows as JSON lines; return ``{"lines", "sha256"}`` for the manifest."""
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return {"lines": n, "sha256": file_sha256(path)}


def candidate_rows(candidates: Sequence[Candidate]) -> Iterable[dict]:
    for c in candidates:
        yield {"prompt_id": c.prompt_id, "language": c.language, "teacher": c.teacher, "sample": c.sample,
               "completion": c.completion, "score": c.score, "finish": c.finish}


def messages(prompt: Prompt) -> list[dict]:
    return [{"role": m.role, "content": m.content} for m in prompt.messages]


def sft_rows(prompts: Mapping[str, Prompt], chosen: Mapping[str, Candidate]) -> Iterable[dict]:
    for pid in sorted(chosen):
        c = chosen[pid]
        yield {"prompt_id": pid, "language": c.language, "teacher": c.teacher, "sample": c.sample,
               "score": c.score,
               "messages": messages(prompts[pid]) + [{"role": "assistant", "content": c.completion}]}


def pair_rows(prompts: Mapping[str, Prompt], pairs: Sequence[dict]) -> Iterable[dict]:
    """trl's conversational preference format, from :func:`routing.preference_pairs` records."""
    for p in sorted(pairs, key=lambda p: p["prompt_id"]):
        yield {"prompt_id": p["prompt_id"], "language": p["language"], "prompt": messages(prompts[p["prompt_id"]]),
               "chosen": [{"role": "assistant", "content": p["chosen"]}],
               "rejected": [{"role": "assistant", "content": p["rejected"]}],
               "score_chosen": p["chosen_score"], "score_rejected": p["rejected_score"],
               "teacher_chosen": p["chosen_teacher"], "teacher_rejected": p["rejected_teacher"],
               "sample_chosen": p["chosen_sample"], "sample_rejected": p["rejected_sample"]}


def write_json(path: Path, value) -> dict:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return {"sha256": file_sha256(path)}
