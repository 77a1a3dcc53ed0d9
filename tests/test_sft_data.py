"""SFT data preparation without training: the held-out split keeps translations together,
rows left out by languages/clusters are counted, evaluation prompts are refused unless
allowed, and the lineage hash covers the chat template file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_sft import alpaca_rows, tiny_cfg, write_config, write_sft

from glotbench.harness.cli.main import main
from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import dir_sha256
from glotbench.training.sft.clusters import plan_units
from glotbench.training.sft.config import parse_config
from glotbench.training.sft.data import load_rows, select_languages, split_eval
from glotbench.training.sft.train import WEIGHT_PATTERNS, data_line, prepare

ARENA = Path(__file__).resolve().parents[2] / "shared" / "data" / "arena_hard_v0.1" / "question.jsonl"


def row(pid: str | None, language: str | None, i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}],
            "language": language, "prompt_id": pid, "source": f"sft.jsonl:{i + 1}"}


def test_split_holds_out_whole_source_groups():
    """12 prompts in 3 languages (``p<i>/<lang>``) and 4 rows without an id: every prompt's
    translations land on one side; a row without an id is its own group."""
    rows = [row(f"p{i}/{lang}", lang, 3 * i + j) for i in range(12) for j, lang in enumerate(("en", "de", "zh"))]
    rows += [row(None, "en", 100 + i) for i in range(4)]
    for seed in range(5):
        train, held = split_eval(rows, 0.25, seed)
        assert len(train) + len(held) == len(rows) and held
        group = {id(r): (r["prompt_id"] or r["source"]).split("/")[0] for r in rows}
        assert not {group[id(r)] for r in train} & {group[id(r)] for r in held}, seed
        assert len({group[id(r)] for r in held}) == 4  # a quarter of the 16 groups
    # One group only: nothing can be held out without a leak.
    assert split_eval(rows[:3], 0.5, 0) == (rows[:3], [])
    # Without ids every row is a group: the row-level split as before (same seeded positions).
    plain = [row(None, "en", i) for i in range(16)]
    assert len(split_eval(plain, 0.25, 0)[1]) == 4


def test_rows_left_out_by_languages_and_clusters_are_counted(tiny_model_dir, tmp_path):
    data = alpaca_rows(12)  # en, es, fr, zh, ja round-robin
    del data[0]["language"]
    data[1]["language"] = "xx"
    f = write_sft(tmp_path / "sft.jsonl", data)
    rows, _ = load_rows(parse_config({"model": "embedded", "data": {"file": str(f)}}).data)
    kept, dropped = select_languages(rows, ("es", "fr", "zh", "ja", "en"))
    assert len(kept) == 10 and dropped == {"no_language": 1, "other_language": 1}
    assert select_languages(rows, ())[1] == {"no_language": 0, "other_language": 0}

    raw = tiny_cfg(tiny_model_dir, f, languages=["en", "es", "fr", "zh", "ja"], clusters={"romance": ["es", "fr"]},
                   shared=["en"])
    units, outside = plan_units(parse_config(raw), kept)
    assert outside == 4 and len(units["romance"]) == 6  # zh, ja rows: 2 + 2 outside; en 2, es 2 (xx gone), fr 2
    _, _, entry = prepare(parse_config(raw))
    assert entry["rows"] == 12 and entry["dropped"] == {"no_language": 1, "other_language": 1,
                                                         "outside_clusters": 4}
    line = data_line(entry)
    assert "12 rows read" in line and "1 without a language and 1 in other languages" in line
    assert "4 outside every cluster" in line and "eval overlap: 0 prompts" in line


def arena_sft(tmp_path: Path) -> Path:
    question = json.loads(ARENA.read_text(encoding="utf-8").splitlines()[0])["prompt"]
    rows = alpaca_rows(4)
    rows[2]["messages"][0]["content"] = "  " + question.upper()  # normalised form still collides
    return write_sft(tmp_path / "sft.jsonl", rows)


def test_an_arena_hard_question_is_refused_unless_allowed(tiny_model_dir, tmp_path, capsys):
    data = arena_sft(tmp_path)
    cfg = write_config(tmp_path / "sft.yaml", **tiny_cfg(tiny_model_dir, data))
    assert main(["train", "sft", str(cfg), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "1 of 4 training prompts" in err and "m_arenahard" in err, err
    assert "alpaca-2" in err and "allow_eval_overlap: true in the data block" in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(GlotbenchError, match="are evaluation prompts"):
        prepare(parse_config(tiny_cfg(tiny_model_dir, data)))
    allowed = parse_config(tiny_cfg(tiny_model_dir, data, data={"file": str(data), "allow_eval_overlap": True}))
    _, units, entry = prepare(allowed)
    report = entry["eval_overlap"]
    assert len(units[""]) == 4 and report["allowed"] and report["overlapping"] == 1
    assert report["overlaps"] == {"m_arenahard": 1} and report["checked_sets"]["m_arenahard"] == 500


def test_allow_eval_overlap_must_be_a_boolean(tiny_model_dir, tmp_path):
    data = write_sft(tmp_path / "sft.jsonl", alpaca_rows(2))
    with pytest.raises(GlotbenchError, match="allow_eval_overlap must be bool"):
        parse_config(tiny_cfg(tiny_model_dir, data, data={"file": str(data), "allow_eval_overlap": "yes"}))


def test_lineage_hash_covers_the_chat_template_file(tiny_model_dir, tmp_path):
    ckpt = shutil.copytree(tiny_model_dir, tmp_path / "ckpt")
    template = ckpt / "chat_template.jinja"
    if not template.exists():  # older tokenizers kept it inside tokenizer_config.json
        template.write_text("{{ messages[0]['content'] }}", encoding="utf-8")
    before = dir_sha256(ckpt, WEIGHT_PATTERNS)
    template.write_text(template.read_text(encoding="utf-8") + "{# changed #}", encoding="utf-8")
    assert dir_sha256(ckpt, WEIGHT_PATTERNS) != before
