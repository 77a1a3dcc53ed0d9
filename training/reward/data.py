"""Preference pairs for reward-model training: AlpacaEval judge annotations, a chosen/rejected
JSON-lines file, or a hub dataset; and the held-out split by instruction.

AlpacaEval 2 annotations (``<generator_2>.json``): every record compares ``output_1`` (the
baseline, gpt4_1106_preview, in every file) with ``output_2`` (the file's model);
``preference`` is 1 + P(output_2 is better) as judged by GPT-4 Turbo: below 1.5 output_1 is
chosen, above 1.5 output_2, exactly 1.5 is a draw (in these files: identical outputs, never
judged). The leaderboard's n_wins / n_wins_base / n_draws count exactly these three cases.
Draws and pairs closer to 1.5 than ``min_margin`` are skipped and counted; the baseline's own
file (baseline against itself, 805 draws) is left out by default. Nothing is dropped silently:
``PairSet.counts`` adds up to the records read.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from glotbench.harness.core.errors import DataError
from glotbench.harness.core.hashing import json_sha256
from glotbench.harness.core.records import ChatMessage
from glotbench.training.core.jsonl import read_jsonl
from glotbench.training.data.prompts import source_of
from glotbench.training.data.sources import messages_of
from glotbench.training.reward.config import DataConfig

BASELINE = "gpt4_1106_preview"
"""AlpacaEval 2's baseline: output_1 of every annotations file."""


@dataclass(frozen=True)
class PreferencePair:
    """One preference: the same prompt answered twice, one answer preferred."""

    pair_id: str
    group: str
    """The instruction (prompt) it belongs to: the unit of the held-out split and the bootstrap."""
    messages: tuple[ChatMessage, ...]
    """The prompt, ending with the user turn."""
    chosen: str
    rejected: str
    chosen_by: str = ""
    """Who wrote the chosen answer (AlpacaEval: the generator), when known."""
    rejected_by: str = ""
    index: int | None = None
    """The instruction's position in its source (AlpacaEval: 0..804)."""
    score_chosen: float | None = None
    """The chosen answer's score when the source gives one (arbitrage's pairs.jsonl does)."""
    score_rejected: float | None = None


@dataclass(frozen=True)
class PairSet:
    pairs: tuple[PreferencePair, ...]
    source: str
    counts: dict
    """Records read and what became of them (pairs, draws, below margin, excluded instructions)."""

    @property
    def sha256(self) -> str:
        """Content hash of the pairs (what the model was trained and evaluated on)."""
        return json_sha256([[p.pair_id, [m.content for m in p.messages], p.chosen, p.rejected] for p in self.pairs])


def load_pairs(cfg: DataConfig, path: Path) -> PairSet:
    """The pairs ``cfg`` names; ``path`` is its resolved location."""
    if cfg.kind == "alpaca_eval":
        return alpaca_eval_pairs(path, cfg.teachers, cfg.min_instruction, cfg.min_margin)
    if cfg.kind == "file":
        return jsonl_pairs(path)
    return hub_pairs(str(path) if path.exists() else cfg.location, cfg.hub_config, cfg.hub_split, dict(cfg.fields))


def alpaca_eval_pairs(directory: Path, teachers: tuple[str, ...] = (), min_instruction: int = 0,
                      min_margin: float = 0.0) -> PairSet:
    """Pairs from AlpacaEval annotation files (one per ``output_2`` model)."""
    if not directory.is_dir():
        raise DataError(f"AlpacaEval annotations directory {directory} does not exist",
                        "give data.alpaca_eval the folder of <model>.json annotation files")
    available = sorted(p.stem for p in directory.glob("*.json"))
    names = list(teachers) or [n for n in available if n != BASELINE]
    for name in names:
        if name not in available:
            raise DataError(f"no annotations file {name}.json in {directory}", f"teachers: {', '.join(available)}")
    counts: Counter = Counter()
    pairs: list[PreferencePair] = []
    instructions: dict[int, str] = {}
    for name in names:
        rows = _read_json_list(directory / f"{name}.json")
        for i, row in enumerate(rows):
            where = f"{directory / name}.json record {i}"
            counts["records"] += 1
            pref = _preference(row, where)
            # Record i of every file is instruction i (the split and the exclusion rely on it).
            if instructions.setdefault(i, row["instruction"]) != row["instruction"]:
                raise DataError(f"{where}: instruction differs from record {i} of {names[0]}.json",
                                "give annotation files of the same AlpacaEval release (805 records, same order)")
            if i < min_instruction:
                counts["excluded_instruction"] += 1
            elif pref is None:
                counts["no_preference"] += 1
            elif pref == 1.5:
                counts["draw"] += 1
            elif abs(pref - 1.5) < min_margin:
                counts["below_margin"] += 1
            else:
                first = pref < 1.5
                g1, g2 = str(row.get("generator_1", BASELINE)), str(row.get("generator_2", name))
                pairs.append(PreferencePair(
                    pair_id=f"alpaca-{i}/{name}", group=f"alpaca-{i}",
                    messages=(ChatMessage("user", row["instruction"]),),
                    chosen=row["output_1"] if first else row["output_2"],
                    rejected=row["output_2"] if first else row["output_1"],
                    chosen_by=g1 if first else g2, rejected_by=g2 if first else g1, index=i))
                counts["pairs"] += 1
                counts["chosen_baseline" if first else "chosen_other"] += 1
    return PairSet(tuple(pairs), f"alpaca_eval:{directory}:{','.join(names)}", dict(counts))


def _read_json_list(path: Path) -> list[dict]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not readable JSON ({exc})", "replace it with the AlpacaEval file") from None
    if not isinstance(rows, list):
        raise DataError(f"{path} is not a list of annotation records", "give AlpacaEval annotations files")
    return rows


def _preference(row: object, where: str) -> float | None:
    if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in ("instruction", "output_1",
                                                                                    "output_2")):
        raise DataError(f"{where} lacks instruction, output_1 or output_2", "give AlpacaEval annotations files")
    pref = row.get("preference")
    if pref is None:
        return None
    if isinstance(pref, bool) or not isinstance(pref, (int, float)) or not 1 <= pref <= 2:
        raise DataError(f"{where}: preference {pref!r} is not a number in [1, 2]",
                        "AlpacaEval preferences are 1 + P(output_2 better)")
    return float(pref)


def jsonl_pairs(path: Path) -> PairSet:
    """``{prompt | messages, chosen, rejected}`` per line: ``prompt`` as text or as chat turns
    (trl's conversational format, what arbitrage writes to pairs.jsonl), answers as text or as
    one assistant turn. Extra keys (teachers) are allowed; ``score_chosen``/``score_rejected``,
    when present, are kept (DPO's min_gap filter reads them); ``prompt_id``, when present,
    names the instruction group by its source id (``alpaca-3`` for ``alpaca-3/de`` with
    ``language: de``), so a prompt's translations fall on one side of the split."""
    pairs = []
    for where, row in read_jsonl(path, "pairs file", '{"prompt", "chosen", "rejected"}'):
        pairs.append(pair_of(row, where, where.rsplit(":", 1)[1]))
    if not pairs:
        raise DataError(f"pairs file {path} has no pairs", "write one {prompt, chosen, rejected} per line")
    return PairSet(tuple(pairs), f"file:{path}", {"records": len(pairs), "pairs": len(pairs)})


def pair_of(row: object, where: str, default_id: str,
            fields: Mapping[str, str] | None = None) -> PreferencePair:
    """One record → a PreferencePair (``fields``: record field → the row's key)."""
    f = dict(fields or {k: k for k in ("prompt", "messages", "chosen", "rejected", "prompt_id", "language")})
    if not isinstance(row, Mapping):
        raise DataError(f"{where} is not a JSON object", "write {prompt, chosen, rejected}")
    has_prompt, has_messages = f.get("prompt") in row, f.get("messages") in row
    if has_prompt == has_messages:
        raise DataError(f"{where} needs exactly one of prompt or messages", "e.g. {prompt, chosen, rejected}")
    if has_prompt and isinstance(row[f["prompt"]], list):  # trl's conversational prompt (arbitrage's pairs.jsonl)
        messages = messages_of(row[f["prompt"]], where)
    elif has_prompt:
        text = row[f["prompt"]]
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: the prompt is empty or not text", "give every pair its prompt")
        messages: tuple[ChatMessage, ...] = (ChatMessage("user", text),)
    else:
        messages = messages_of(row[f["messages"]], where)
    answers = [_answer(row.get(f.get(k, k)), k, where) for k in ("chosen", "rejected")]
    pid = row.get(f.get("prompt_id", "prompt_id"))
    language = row.get(f.get("language", "language"))
    ident = str(pid) if pid not in (None, "") else json_sha256([m.content for m in messages])[:16]
    group = source_of(ident, language if isinstance(language, str) else None)
    return PreferencePair(pair_id=f"{ident}/{default_id}", group=group, messages=messages,
                          chosen=answers[0], rejected=answers[1],
                          chosen_by=str(row.get("chosen_teacher", "")), rejected_by=str(row.get("rejected_teacher", "")),
                          score_chosen=_score(row.get(f.get("score_chosen", "score_chosen")), "score_chosen", where),
                          score_rejected=_score(row.get(f.get("score_rejected", "score_rejected")), "score_rejected",
                                                where))


def _score(value: object, key: str, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{where}: {key} {value!r} is not a number", f"write {key} as a number or leave it out")
    return float(value)


def _answer(value: object, key: str, where: str) -> str:
    # trl's conversational form: a list holding the one assistant turn.
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], Mapping) \
            and value[0].get("role") == "assistant":
        value = value[0].get("content")
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: {key} is missing, empty or not text", f"give {key} as the answer's text")
    return value


def hub_pairs(hub_id: str, config: str | None, split: str, fields: Mapping[str, str]) -> PairSet:
    """A hub dataset's rows as pairs, through the harness's hub loader (a local directory laid
    out like the dataset repository stands in for the id)."""
    from glotbench.harness.taskapi import data as data_mod
    from glotbench.harness.taskapi.spec import DataSource, Task

    task = Task(name="the reward data block", version="0", title=f"preference pairs {hub_id}", languages=(),
                data=DataSource(hub_id=hub_id, split=split, local="<pairs>", fields=tuple(fields.values())),
                chance=0.5, render=_never_rendered)
    rows = data_mod.read_hub(task, config, split, tuple(fields.values()))
    at = f"hub:{hub_id}/{config}/{split}" if config else f"hub:{hub_id}/{split}"
    pairs = [pair_of(row, f"{at} row {i}", str(i), fields) for i, row in enumerate(rows)]
    if not pairs:
        raise DataError(f"{at} has no rows", "check the dataset id, config and split")
    return PairSet(tuple(pairs), at, {"records": len(pairs), "pairs": len(pairs)})


def _never_rendered(sample: object) -> None:
    raise TypeError("a preference dataset is not an evaluation task and is never rendered")


def split_pairs(pairs: tuple[PreferencePair, ...], eval_fraction: float, seed: int, train_cap: int | None = None,
                eval_cap: int | None = None) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Train and held-out pairs, split by instruction (``group``): a seeded shuffle of the
    groups, the first ``eval_fraction`` of them held out, so no instruction is on both
    sides. Caps keep a seeded sample of each side's pairs."""
    groups = sorted({p.group for p in pairs})
    random.Random(seed).shuffle(groups)
    n_eval = max(1, round(len(groups) * eval_fraction)) if len(groups) > 1 else 0
    held = set(groups[:n_eval])
    train = [p for p in pairs if p.group not in held]
    evals = [p for p in pairs if p.group in held]
    if not train or not evals:
        raise DataError(f"cannot split {len(pairs)} pairs over {len(groups)} instructions into train and held-out",
                        "give more pairs or another split.eval_fraction")
    return _cap(train, train_cap, seed), _cap(evals, eval_cap, seed + 1)


def _cap(pairs: list[PreferencePair], cap: int | None, seed: int) -> list[PreferencePair]:
    if cap is None or cap >= len(pairs):
        return pairs
    keep = set(random.Random(seed).sample(range(len(pairs)), cap))
    return [p for i, p in enumerate(pairs) if i in keep]
