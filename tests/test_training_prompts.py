"""Training prompt sets on the real files: defects reported one line each, quotes stripped,
ids aligned across languages, filters, config errors, a hub dataset read from a local
stand-in, and a stable hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glotbench.harness.core.errors import DataError, GlotbenchError
from glotbench.training.core.config import ConfigError
from glotbench.training.data.parallel import strip_quotes
from glotbench.training.data.prompts import PromptSet, load_prompts, prompts_sha256, source_id

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OASST = SHARED_DATA / "oasst_hplt_parallel"
ALPACA = SHARED_DATA / "alpaca_eval_multilingual"


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n"
                            for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def oasst() -> PromptSet:
    return load_prompts({"oasst_hplt": str(OASST)})


# --- the real files' defects ---------------------------------------------------------------


def test_oasst_defects_are_one_line_each(oasst):
    assert len(oasst.problems) == 2
    hi, zh = oasst.problems
    assert "test_hi.jsonl:50: not valid JSON" in hi and "excluded from hi (49 of 50 lines kept)" in hi
    assert "test_zh.jsonl:13: id bed57788-833a-46e3-bffd-0b271333c391" in zh
    assert "f2f5d948-6de1-4e4f-a83c-46e115c2a036" in zh and "not parallel" in zh
    assert all("\n" not in p for p in oasst.problems)


def test_oasst_rule_exclude_malformed_keep_misaligned(oasst):
    per_lang = {lang: sum(p.language == lang for p in oasst.prompts) for lang in oasst.languages()}
    assert per_lang.pop("hi") == 49
    assert set(per_lang.values()) == {50} and len(per_lang) == 10
    ids = oasst.by_id()
    assert "bed57788-833a-46e3-bffd-0b271333c391/zh" in ids  # kept under its own id
    assert "f2f5d948-6de1-4e4f-a83c-46e115c2a036/zh" not in ids
    assert "7f06d307-8dff-445c-bf72-82862aaf3439/hi" not in ids  # the malformed line
    assert ids["bed57788-833a-46e3-bffd-0b271333c391/zh"].source.endswith("test_zh.jsonl:13")


def test_oasst_ids_align_across_languages(oasst):
    by_lang: dict[str, list[str]] = {}
    for p in oasst.prompts:
        by_lang.setdefault(p.language, []).append(source_id(p))
    en = by_lang["en"]
    assert len(set(en)) == 50
    for lang in ("bg", "bn", "cs", "es", "fi", "fr", "no", "ru"):
        assert by_lang[lang] == en, lang
    assert by_lang["hi"] == en[:49]
    assert [a == b for a, b in zip(by_lang["zh"], en)].count(False) == 1
    assert oasst.by_id()[f"{en[0]}/fr"].text.startswith("Mon fils m'a dit")


def test_defects_beyond_first_are_not_read():
    ps = load_prompts({"oasst_hplt": str(OASST), "first": 12})
    assert ps.problems == ()
    assert len(ps.prompts) == 11 * 12
    ps = load_prompts({"oasst_hplt": str(OASST), "first": 13, "languages": ["zh", "en"]})
    assert len(ps.problems) == 1 and "test_zh.jsonl:13" in ps.problems[0]


# --- AlpacaEval, machine-translated ----------------------------------------------------------


def test_alpaca_quotes_stripped_de_zh_and_ids_shared():
    ps = load_prompts({"alpaca_eval_multilingual": str(ALPACA), "languages": ["en", "de", "zh"], "first": 30})
    assert ps.problems == ()
    assert len(ps.prompts) == 90 and ps.languages() == ["en", "de", "zh"]
    ids = ps.by_id()
    raw_de = json.loads((ALPACA / "de.jsonl").read_text(encoding="utf-8").splitlines()[0])["instruction"]
    assert raw_de.startswith('"') and raw_de.endswith('"')
    assert ids["alpaca-0/de"].text == raw_de[1:-1].strip()
    assert not any(p.text.startswith(('"', "\u201c")) and p.text.endswith(('"', "\u201d"))
                   for p in ps.prompts if p.language == "de")
    assert {source_id(p) for p in ps.prompts if p.language == "zh"} == {f"alpaca-{i}" for i in range(30)}
    assert ids["alpaca-3/de"].source.endswith("de.jsonl:4")


def test_alpaca_zh_curly_quotes_and_english_kept_verbatim():
    zh_lines = (ALPACA / "zh.jsonl").read_text(encoding="utf-8").splitlines()
    curly = next(i for i, line in enumerate(zh_lines) if json.loads(line)["instruction"].startswith("\u201c")
                 and json.loads(line)["instruction"].endswith("\u201d"))
    ps = load_prompts({"alpaca_eval_multilingual": str(ALPACA), "languages": ["zh", "en"]})
    text = ps.by_id()[f"alpaca-{curly}/zh"].text
    assert not text.startswith("\u201c") and not text.endswith("\u201d")
    # en is AlpacaEval itself: line 222 (index 221) carries quotes that belong to the instruction
    raw_en = json.loads((ALPACA / "en.jsonl").read_text(encoding="utf-8").splitlines()[221])["instruction"]
    assert ps.by_id()["alpaca-221/en"].text == raw_en and raw_en.startswith('"')
    assert sum(p.language == "zh" for p in ps.prompts) == 805


@pytest.mark.parametrize(("raw", "clean"), [('"Wie geht es?"', "Wie geht es?"), ('  " a b "  ', "a b"),
                                            ("\u201c你好\u201d", "你好"), ('""x""', '"x"'), ('"a', '"a'),
                                            ("plain", "plain")])
def test_strip_quotes_one_pair(raw, clean):
    assert strip_quotes(raw) == clean


def test_alpaca_malformed_line_reported_and_misaligned_file_refused(tmp_path):
    write_jsonl(tmp_path / "en.jsonl", [{"instruction": f"Question {i}?"} for i in range(3)])
    write_jsonl(tmp_path / "de.jsonl", [{"instruction": '"Frage 0?"'}, '{"instruction": "Frage 1?', {"instruction": '""'}])
    ps = load_prompts({"alpaca_eval_multilingual": str(tmp_path), "languages": ["de"]})
    assert [p.prompt_id for p in ps.prompts] == ["alpaca-0/de"]
    assert len(ps.problems) == 2
    assert "de.jsonl:2: not valid JSON" in ps.problems[0] and "(1 of 3 lines kept)" in ps.problems[0]
    assert "de.jsonl:3: empty instruction" in ps.problems[1]
    write_jsonl(tmp_path / "fr.jsonl", [{"instruction": "Q?"}])
    with pytest.raises(DataError, match="fr.jsonl has 1 lines, en.jsonl 3: the files are not line-aligned"):
        load_prompts({"alpaca_eval_multilingual": str(tmp_path)})


# --- a user's own file -----------------------------------------------------------------------


def test_file_prompts_and_messages_with_filters(tmp_path):
    f = write_jsonl(tmp_path / "p.jsonl", [
        {"prompt_id": "a", "language": "de", "prompt": "Hallo?"},
        {"prompt_id": 7, "language": "fr", "messages": [{"role": "system", "content": "Sois bref."},
                                                        {"role": "user", "content": "Bonjour ?"}]},
        {"prompt_id": "b", "language": "de", "prompt": "Wer bist du?"},
        "",
        {"prompt_id": "c", "language": "en", "prompt": "Who are you?"},
    ])
    ps = load_prompts({"file": f.name}, tmp_path / "config.yaml")  # relative to the config's directory
    assert [p.prompt_id for p in ps.prompts] == ["a", "7", "b", "c"]
    assert ps.by_id()["7"].text == "Bonjour ?" and ps.by_id()["7"].messages[0].role == "system"
    assert ps.source == f"file:{f}" and ps.by_id()["c"].source == f"{f}:5"
    ps = load_prompts({"file": str(f), "languages": ["de", "fr"], "first": 1})
    assert [p.prompt_id for p in ps.prompts] == ["a", "7"]
    with pytest.raises(DataError, match="has no prompts in xx — languages present: de, en, fr"):
        load_prompts({"file": str(f), "languages": ["xx"]})


@pytest.mark.parametrize(("line", "message"), [
    ('{"prompt_id": "a", "language": "de", "prompt": "x"', "p.jsonl:2 is not valid JSON"),
    ({"prompt_id": "a", "language": "de", "prompt": "   "}, "p.jsonl:2: the prompt is empty"),
    ({"prompt_id": "a", "language": "de"}, "p.jsonl:2 has keys language, prompt_id"),
    ({"prompt_id": "a", "language": "de", "prompt": "x", "messages": []}, "p.jsonl:2 has keys"),
    ({"prompt_id": "z", "language": "de", "text": "x"}, "p.jsonl:2 has keys"),
    ({"prompt_id": "", "language": "de", "prompt": "x"}, "prompt_id must be a non-empty"),
    ({"prompt_id": "z", "language": "", "prompt": "x"}, "language must be a non-empty code"),
    ({"prompt_id": "z", "language": "de", "messages": [{"role": "assistant", "content": "x"}]},
     "the last turn is 'assistant'"),
    ({"prompt_id": "z", "language": "de", "messages": [{"role": "bot", "content": "x"}]}, "has role 'bot'"),
    ({"prompt_id": "first", "language": "de", "prompt": "again"}, "prompt_id 'first' appears twice"),
])
def test_file_defects_are_one_line_errors(tmp_path, line, message):
    f = write_jsonl(tmp_path / "p.jsonl", [{"prompt_id": "first", "language": "de", "prompt": "ok"}, line])
    with pytest.raises(DataError) as exc:
        load_prompts({"file": str(f)})
    assert message in str(exc.value) and "\n" not in str(exc.value) and exc.value.exit_code == 2


# --- config validation -----------------------------------------------------------------------


@pytest.mark.parametrize(("block", "message"), [
    ({"file": "p.jsonl", "frist": 3}, "unknown key 'frist' (did you mean 'first'?)"),
    ({}, "must name exactly one source, not 0"),
    ({"file": "p.jsonl", "oasst_hplt": "d"}, "must name exactly one source, not 2 (file, oasst_hplt)"),
    ({"file": "p.jsonl", "split": "train"}, "split only goes with hub"),
    ({"file": "p.jsonl", "first": 0}, "first must be at least 1"),
    ({"file": "p.jsonl", "first": "10"}, "first must be int"),
    ({"file": "p.jsonl", "allow_eval_overlap": "yes"}, "allow_eval_overlap must be bool"),
    ({"file": "p.jsonl", "languages": "de"}, "languages must be list"),
    ({"file": "p.jsonl", "languages": ["de", "de"]}, "distinct codes"),
    ({"file": "p.jsonl", "eval_data": "hub"}, "eval_data must be one of local, auto"),
    ({"file": "p.jsonl", "eval_data_dir": "/nonexistent"}, "eval_data_dir /nonexistent is not a directory"),
    ({"hub": "x/y", "fields": {"prompt": "text"}}, "needs the language either as language"),
    ({"hub": "x/y", "language": "en", "fields": {"promt": "text"}}, "unknown key 'promt'"),
    ({"hub": "x/y", "language": "en", "fields": {"prompt_id": "id"}}, "exactly one of prompt or messages"),
    ({"oasst_hplt": str(OASST), "languages": ["zz"]}, "has no language 'zz'"),
    ({"alpaca_eval_multilingual": "/nonexistent"}, "is not a directory"),
    ({"file": "/nonexistent/p.jsonl"}, "prompt file /nonexistent/p.jsonl does not exist"),
])
def test_bad_config_is_one_line(block, message):
    with pytest.raises(GlotbenchError) as exc:
        load_prompts(block)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_config_errors_name_the_config_file(tmp_path):
    with pytest.raises(ConfigError, match=r"^/.*arb\.yaml: prompts: unknown key 'lang'"):
        load_prompts({"file": "p.jsonl", "lang": "de"}, tmp_path / "arb.yaml")


# --- a hub dataset, offline, from a local stand-in ---------------------------------------------


@pytest.fixture()
def datasets_offline(tmp_path, monkeypatch):
    """Offline ``datasets`` with a private cache (the flags are read at import, so patched too)."""
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets-cache")
    return datasets


def test_hub_dataset_from_a_local_repo(tmp_path, datasets_offline):
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    rows = [{"uid": f"q{i}", "lang": "de" if i % 2 else "fr", "instruction": f"Frage {i}?"} for i in range(6)]
    write_jsonl(repo / "data" / "train.jsonl", rows)
    write_jsonl(repo / "data" / "test.jsonl", rows[:2])
    (repo / "README.md").write_text("---\nconfigs:\n- config_name: main\n  data_files:\n  - split: train\n"
                                    "    path: data/train.jsonl\n  - split: test\n    path: data/test.jsonl\n---\n",
                                    encoding="utf-8")
    block = {"hub": str(repo), "config": "main", "split": "train",
             "fields": {"prompt_id": "uid", "language": "lang", "prompt": "instruction"}}
    ps = load_prompts(block)
    assert [p.prompt_id for p in ps.prompts] == [f"q{i}" for i in range(6)]
    assert ps.source == f"hub:{repo}/main/train" and ps.by_id()["q3"].source == f"hub:{repo}/main/train row 3"
    assert ps.by_id()["q1"].language == "de" and ps.by_id()["q1"].text == "Frage 1?"
    ps = load_prompts({**block, "languages": ["fr"], "first": 2})
    assert [p.prompt_id for p in ps.prompts] == ["q0", "q2"]
    ps = load_prompts({"hub": str(repo), "config": "main", "split": "test", "language": "xx",
                       "fields": {"prompt": "instruction"}})
    assert [(p.prompt_id, p.language) for p in ps.prompts] == [("0", "xx"), ("1", "xx")]
    relative = load_prompts({**block, "hub": "repo"}, tmp_path / "arbitrage.yaml")  # next to the config
    assert relative.sha256 == load_prompts(block).sha256
    with pytest.raises(DataError, match=r"row 0 lacks field\(s\) text .* — use a local copy"):
        load_prompts({"hub": str(repo), "config": "main", "language": "de", "fields": {"prompt": "text"}})


def test_hub_unreachable_is_one_line(datasets_offline):
    with pytest.raises(DataError) as exc:
        load_prompts({"hub": "no-such-owner/no-such-prompts", "language": "en", "fields": {"prompt": "text"}})
    msg = str(exc.value)
    assert "cannot load no-such-owner/no-such-prompts" in msg and "offline mode is on" in msg
    assert "prompts: {file: PATH}" in msg and "\n" not in msg


# --- the data hash -----------------------------------------------------------------------------


def test_hash_is_stable_and_covers_content_not_paths(tmp_path, oasst):
    again = load_prompts({"oasst_hplt": str(OASST)})
    assert again.sha256 == oasst.sha256 == prompts_sha256(list(oasst.prompts))
    rows = [{"prompt_id": "a", "language": "de", "prompt": "Hallo?"}, {"prompt_id": "b", "language": "de",
                                                                       "prompt": "Tschüss?"}]
    one = load_prompts({"file": str(write_jsonl(tmp_path / "one.jsonl", rows))})
    (tmp_path / "elsewhere").mkdir()
    moved = load_prompts({"file": str(write_jsonl(tmp_path / "elsewhere" / "two.jsonl", rows))})
    assert one.sha256 == moved.sha256
    rows[1]["prompt"] = "Tschüss!"
    assert load_prompts({"file": str(write_jsonl(tmp_path / "three.jsonl", rows))}).sha256 != one.sha256
    assert load_prompts({"file": str(tmp_path / "one.jsonl"), "first": 1}).sha256 != one.sha256
