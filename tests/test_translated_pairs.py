"""Translated-vs-native preference pairs (glotbench train translated-pairs): the language check
on real text in several scripts, the pipeline's counts and drops on tiny random models and on
the embedded model with real parallel prompts (AlpacaEval instructions in de and zh, the
published alpaca-7b answers as the weak model), one-line config errors, and the output read
by ``glotbench train dpo``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from glotbench.harness.cli.main import main
from glotbench.harness.core.records import ChatMessage
from glotbench.training.core.records import Candidate, Prompt
from glotbench.training.translate.build import run_stage
from glotbench.training.translate.language import check, checkable
from glotbench.training.translate.pairs import Results, collect, plan

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ALPACA = DATA / "alpaca_eval_multilingual"
ANNOTATIONS = DATA / "alpaca_eval_2" / "annotations" / "alpaca-7b.json"


def line(lang: str, i: int) -> str:
    """AlpacaEval instruction ``i`` in ``lang`` (real text; outer quotes of the translations removed)."""
    text = json.loads(ALPACA.joinpath(f"{lang}.jsonl").read_text(encoding="utf-8").splitlines()[i])["instruction"]
    return text.strip().strip('"').strip()


def answer(lang: str, i: int) -> str:
    """Two real instructions in ``lang`` as one answer-length text (a 5-word question alone can
    leave langid.py unsure between near languages: ru/uk)."""
    return f"{line(lang, i)} {line(lang, i + 100)}"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return path


def read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


# --- (c) the language check on real text -----------------------------------------------------------

@pytest.mark.parametrize("lang", ["de", "el", "es", "fr", "hi", "ko", "ru", "vi", "zh"])
def test_real_instructions_are_in_their_language(lang):
    for i in (2, 4, 10):  # long instructions (kickball rules, wrapping a present, ...)
        v = check(line(lang, i), lang)
        assert v.ok and v.probability_language >= 0.25 and v.script_share >= 0.5, (lang, i, v)


def test_a_short_hindi_sentence_counts_its_vowel_signs():
    # 10 words: the vowel signs are marks, not letters, yet carry the syllables.
    assert check("यह हिंदी में एक उत्तर है जो काफी लंबा है।", "hi").ok
    assert check("This is an answer in English that is long enough.", "hi").reason == "wrong_script"


@pytest.mark.parametrize("text_lang, target, reason", [
    ("en", "de", "wrong_language"),   # same script: only language ID tells them apart
    ("fr", "es", "wrong_language"),
    ("en", "zh", "wrong_script"),     # an English answer to a Chinese prompt
    ("ru", "de", "wrong_script"),
    ("zh", "ko", "wrong_script"),
    ("el", "ru", "wrong_script"),
    ("hi", "de", "wrong_script"),
])
def test_wrong_language_is_caught(text_lang, target, reason):
    v = check(line(text_lang, 2), target)
    assert not v.ok and v.reason == reason, v


def test_code_short_and_empty_texts():
    answer = "```python\nfor word in words:\n    print(word.upper())\n```\n" + line("zh", 2)
    assert check(answer, "zh").ok  # the code block is set aside before the script share
    assert check("```python\nprint(1)\n```", "zh").reason == "empty"
    assert check("42 + 17 = 59", "de").reason == "too_short"
    assert check("Ja, gerne.", "de").reason == "too_short"
    assert check("谢谢你的问题，这很好。", "zh").ok  # Han characters count 3 letters each
    assert check("", "de").reason == "empty"


def test_a_close_second_on_a_short_text_is_not_a_wrong_language():
    v = check(line("ru", 4), "ru")  # "Как аккуратно упаковать подарок?": langid ranks uk first
    assert v.ok and v.detected == "uk" and 0.25 <= v.probability_language < 0.5, v


def test_checkable_languages():
    assert checkable("de") is None and checkable("zh") is None and checkable("no") is None
    assert "Latin script alone" in checkable("ceb")
    assert "neither" in checkable("xx")


def test_every_unit_ends_as_a_pair_or_one_drop():
    """Hand-built results: each reason in its order; kept + dropped == units per language."""
    def p(pid, lang, text="q"):
        return Prompt(pid, lang, (ChatMessage("user", text),))

    def c(pid, lang, text, who="m"):
        return Candidate(pid, lang, who, 0, text, "stop")

    ids = ["a", "b", "c", "d", "e", "f"]
    prompts = [p(f"{i}/en", "en") for i in ids] + [p(f"{i}/de", "de") for i in ids if i != "a"]
    units, counts = plan(prompts, "en", ("de",), translate_prompts=True)
    assert [u.key for u in units] == [f"{i}/de" for i in ids] and units[0].native is None
    de = answer("de", 2)
    r = Results(prompts={u.key: u.native for u in units if u.native},
                chosen={k: c(k, "de", de if k != "c/de" else answer("en", 2)) for k in ("b/de", "c/de", "d/de",
                                                                                       "e/de", "f/de")},
                chosen_check={}, weak={s: c(f"{s}/en", "en", "answer", "weak") for s in ("b", "c", "e", "f")},
                translated={"e/de": c("e/de", "de", "  "), "f/de": c("f/de", "de", de)}, rejected_check={})
    r.weak["d"] = c("d/en", "en", "", "weak")
    r.chosen_check = {k: check(v.completion, "de") for k, v in r.chosen.items()}
    r.rejected_check = {k: check(v.completion, "de") for k, v in r.translated.items()}
    rows, dropped, per = collect(units, r, False, counts)
    assert {d["prompt_id"]: d["reason"] for d in dropped} == {
        "a/de": "prompt_translation_missing", "b/de": "translation_missing", "c/de": "chosen_wrong_language",
        "d/de": "rejected_empty", "e/de": "translation_empty", "f/de": "identical"}
    assert rows == [] and per["de"]["units"] == 6 and per["de"]["kept"] == 0
    assert sum(v for k, v in per["de"].items() if k.startswith("dropped_")) == 6


# --- (a) pipeline logic on tiny models ------------------------------------------------------------

def parallel_case(tmp_path: Path, translator: str, strong: dict | None = None, **extra) -> Path:
    """Prompts q0..q5 in en/de/ru (real AlpacaEval text), published strong and weak answers.

    de: q0, q1, q2 kept (German answers); q3 answered in English (wrong_language); q4's weak
    answer missing; q5 has no German prompt. ru: q0 Russian answer; q1 a Chinese answer
    (wrong_script); others have no Russian prompt. q9 exists in de only (no pivot)."""
    prompts, strong_rows = [], []
    for i in range(6):
        prompts.append({"prompt_id": f"q{i}/en", "language": "en", "prompt": line("en", i)})
        if i < 5:
            prompts.append({"prompt_id": f"q{i}/de", "language": "de", "prompt": line("de", i)})
            strong_rows.append({"prompt_id": f"q{i}/de", "response": answer("en" if i == 3 else "de", 20 + i)})
    prompts.append({"prompt_id": "q9/de", "language": "de", "prompt": line("de", 9)})
    for i, ans in ((0, "ru"), (1, "zh")):
        prompts.append({"prompt_id": f"q{i}/ru", "language": "ru", "prompt": line("ru", i)})
        strong_rows.append({"prompt_id": f"q{i}/ru", "response": answer(ans, 30 + i)})
    weak_rows = [{"prompt_id": f"q{i}/en", "response": line("en", 40 + i)} for i in range(6) if i != 4]
    cfg = {"prompts": {"file": str(write_jsonl(tmp_path / "prompts.jsonl", prompts))},
           "languages": ["de", "ru"],
           "strong": strong or {"name": "native", "published": str(write_jsonl(tmp_path / "strong.jsonl", strong_rows)),
                                "match": "id"},
           "weak": {"name": "weak-en", "published": str(write_jsonl(tmp_path / "weak.jsonl", weak_rows)), "match": "id"},
           # sampled: the random model's greedy output is newlines only (an empty translation, dropped)
           "translator": {"name": "mt", "model": translator, "max_new_tokens": 8, "temperature": 0.7},
           "batch_size": 4, "device": "cpu", "dtype": "float32", **extra}
    return write_config(tmp_path / "tp.yaml", cfg)


def test_pipeline_counts_drops_and_is_deterministic(tiny_model_dir, tmp_path, monkeypatch):
    cfg = parallel_case(tmp_path, f"hf:{tiny_model_dir}")
    outs = []
    for k in range(2):  # two fresh request caches: the bytes come from generation, not the cache
        monkeypatch.setenv("GLOTBENCH_REQUEST_CACHE", str(tmp_path / f"cache{k}.sqlite"))
        outs.append(tmp_path / f"out{k}")
        summary = run_stage(cfg, outs[-1])
    for name in ("pairs.jsonl", "dropped.jsonl"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes()
    pairs, dropped = read(outs[0] / "pairs.jsonl"), read(outs[0] / "dropped.jsonl")
    assert [p["prompt_id"] for p in pairs] == ["q0/de", "q0/ru", "q1/de", "q2/de"]
    assert {d["prompt_id"]: d["reason"] for d in dropped} == {
        "q1/ru": "chosen_wrong_script", "q3/de": "chosen_wrong_language", "q4/de": "rejected_missing"}
    man = json.loads((outs[0] / "training_manifest.json").read_text())
    de, ru = man["counts"]["per_language"]["de"], man["counts"]["per_language"]["ru"]
    assert (de["units"], de["kept"], de["no_target_prompt"], de["no_pivot_prompt"]) == (5, 3, 1, 1)
    assert (ru["units"], ru["kept"], ru["no_target_prompt"]) == (2, 1, 4)
    for c in (de, ru):
        assert c["kept"] + sum(v for k, v in c.items() if k.startswith("dropped_")) == c["units"]
        assert c["rejected_in_language"] + c["rejected_not_in_language"] == c["kept"]
    p = pairs[0]
    assert p["prompt"] == [{"role": "user", "content": line("de", 0)}]
    assert p["chosen"] == [{"role": "assistant", "content": answer("de", 20)}]
    assert p["rejected_pivot"] == line("en", 40) and p["rejected_source"] == "translated"
    assert p["teacher_chosen"] == "native" and p["teacher_rejected"] == "weak-en" and p["translator"] == "mt"
    assert p["score_chosen"] is None and p["chosen_check"]["detected"] == "de"
    assert man["models"]["translator"]["model"] == f"hf:{tiny_model_dir}"
    assert man["models"]["weak"]["kind"] == "published" and "{text}" in man["translation_prompt"]["template"]
    assert man["language_check"]["library"] == "langid" and man["stage"] == "translated-pairs"
    assert man["translation_prompt"]["language_names"]["ru"] == "Russian"
    assert "de: 5 units, 3 kept, dropped 1 chosen_wrong_language, 1 rejected_missing" in summary


def test_generating_strong_model_and_translated_prompts(tiny_model_dir, tmp_path, isolated_cache):
    """A random model as strong model and translator: its answers are not German or Russian,
    so the language check drops them; q5 gets its German prompt from the translator."""
    tiny = f"hf:{tiny_model_dir}"
    cfg = parallel_case(tmp_path, tiny, strong={"name": "tiny", "model": tiny, "max_new_tokens": 8},
                        translate_prompts=True, language_check={"drop_rejected": True})
    run_stage(cfg, tmp_path / "out")
    man = json.loads((tmp_path / "out" / "training_manifest.json").read_text())
    de = man["counts"]["per_language"]["de"]
    assert de["units"] == 6 and de["translated_prompt"] == 1 and de["native_prompt"] == 5
    dropped = read(tmp_path / "out" / "dropped.jsonl")
    assert len(dropped) + len(read(tmp_path / "out" / "pairs.jsonl")) == 6 + 6  # ru: 2 native + 4 translated
    assert all(d["reason"].startswith(("chosen_", "prompt_translation_missing", "rejected_")) for d in dropped)
    assert man["models"]["strong"]["model"] == tiny and man["generation"]["strong"]["generated"] > 0
    first = (tmp_path / "out" / "dropped.jsonl").read_bytes()
    run_stage(cfg, tmp_path / "out", overwrite=True)  # a rerun (or one after a kill) generates nothing
    again = json.loads((tmp_path / "out" / "training_manifest.json").read_text())["generation"]
    assert all(g["generated"] == 0 for g in again.values()) and again["strong"]["from_cache"] > 0
    assert (tmp_path / "out" / "dropped.jsonl").read_bytes() == first


# --- (d) one-line config errors ------------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    ({"languagez": ["de"]}, "unknown key 'languagez'"),
    ({"languages": ["en", "de"]}, "languages include the pivot 'en'"),
    ({"languages": ["ceb"]}, "language 'ceb' cannot be checked"),
    ({"translation_prompt": "Translate: {text}"}, "must contain {language} and {text}"),
    ({"translation_prompt": "{language} {text} {x}"}, "translation_prompt is not a template"),
    ({"translator": {"name": "mt", "published": str(ANNOTATIONS)}}, "translator is a published file"),
    ({"translator": {"name": "mt", "model": "gpt2"}}, "is not a model glotbench generates with"),
    ({"language_check": {"script_share": 2}}, "script_share must be in (0, 1]"),
    ({"prompts": {"alpaca_eval_multilingual": str(ALPACA), "languages": ["de"]}}, "lacks the pivot 'en'"),
])
def test_bad_config_is_one_line_exit_2(tmp_path, capsys, change, message):
    cfg = parallel_case(tmp_path, "embedded")
    raw = yaml.safe_load(cfg.read_text())
    write_config(cfg, {**raw, **change})
    code = main(["train", "translated-pairs", str(cfg), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("glotbench: error:") and message in err, err
    assert not (tmp_path / "out").exists()


# --- (b) real parallel prompts, the embedded model as strong model and translator ---------------

def test_real_parallel_prompts_with_the_embedded_model(tmp_path, isolated_cache, capsys):
    cfg = write_config(tmp_path / "tp.yaml", {
        "prompts": {"alpaca_eval_multilingual": str(ALPACA), "first": 3},
        "languages": ["de", "zh"],
        "strong": {"name": "smollm2", "model": "embedded", "max_new_tokens": 32},
        "weak": {"name": "alpaca-7b", "published": str(ANNOTATIONS), "generator": "alpaca-7b", "match": "parallel"},
        "translator": {"name": "smollm2-mt", "model": "embedded", "max_new_tokens": 32},
        "batch_size": 6, "device": "cpu"})
    out = tmp_path / "out"
    assert main(["train", "translated-pairs", str(cfg), "-o", str(out), "--no-progress"]) == 0
    summary = capsys.readouterr().out
    man = json.loads((out / "training_manifest.json").read_text())
    pairs, dropped = read(out / "pairs.jsonl"), read(out / "dropped.jsonl")
    for lang in ("de", "zh"):
        c = man["counts"]["per_language"][lang]
        assert c["units"] == 3 and c["native_prompt"] == 3
        assert c["kept"] + sum(v for k, v in c.items() if k.startswith("dropped_")) == 3
        assert c["kept"] == sum(p["language"] == lang for p in pairs) and f"{lang}: 3 units, {c['kept']} kept" in summary
    assert len(pairs) + len(dropped) == 6
    assert pairs, "the embedded model's greedy answers kept no pair (measured: de 3/3, zh 2/3)"
    for p in pairs:  # recomputed independently: every kept chosen completion is in its language
        assert check(p["chosen"][0]["content"], p["language"]).ok
        assert p["rejected_pivot"] == json.loads(ANNOTATIONS.read_text())[int(p["source_id"].split("-")[1])]["output_2"]
    for d in dropped:  # and every chosen drop is one the check makes again
        if d["reason"].startswith("chosen_"):
            assert check(d["chosen"], d["language"]).reason == d["reason"].removeprefix("chosen_")
    assert man["models"]["strong"]["model"] == "embedded" and man["models"]["weak"]["generator"] == "alpaca-7b"
    assert man["counts"]["total"]["units"] == 6


# --- (e) the output feeds train dpo --------------------------------------------------------------

def test_output_feeds_train_dpo(tiny_model_dir, tmp_path, isolated_cache, capsys):
    cfg = parallel_case(tmp_path, f"hf:{tiny_model_dir}")
    assert main(["train", "translated-pairs", str(cfg), "-o", str(tmp_path / "pairs"), "--no-progress"]) == 0
    dpo = write_config(tmp_path / "dpo.yaml", {
        "policy": f"hf:{tiny_model_dir}", "data": {"file": str(tmp_path / "pairs" / "pairs.jsonl")},
        "min_gap": 0.0, "max_steps": 1, "batch_size": 2, "learning_rate": 1e-3, "max_length": 128, "seed": 0})
    capsys.readouterr()
    assert main(["train", "dpo", str(dpo), "-o", str(tmp_path / "dpo"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "4 pairs read, 4 kept" in out, out
    man = json.loads((tmp_path / "dpo" / "training_manifest.json").read_text())
    data = next(i for i in man["inputs"] if i["role"] == "data")
    assert data["counts"]["unscored_kept"] == 4
