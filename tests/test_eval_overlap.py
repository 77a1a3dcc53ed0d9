"""The evaluation-overlap refusal on real data: Arena-Hard questions (= m-ArenaHard English)
are refused with the right count, AlpacaEval instructions pass, FLORES devtest and MGSM test
prompts are caught in any language, hub-only sets are named as unchecked, and a local data
directory adds the sets it holds."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from glotbench import tasks as catalogue
from glotbench.harness.core.errors import GlotbenchError
from glotbench.training.data.overlap import (
    EVAL_TEXT,
    SAME_DATA,
    check_overlap,
    describe,
    eval_index,
    normalise,
    text_hash,
)
from glotbench.training.data.prompts import load_prompts

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ARENA = SHARED_DATA / "arena_hard_v0.1" / "question.jsonl"
ALPACA = SHARED_DATA / "alpaca_eval_multilingual"
FLORES = SHARED_DATA / "flores200"


def arena_rows() -> list[dict]:
    return [json.loads(line) for line in ARENA.read_text(encoding="utf-8").splitlines()]


def prompt_file(path: Path, texts: list[tuple[str, str, str]]) -> Path:
    path.write_text("".join(json.dumps({"prompt_id": pid, "language": lang, "prompt": text}, ensure_ascii=False)
                            + "\n" for pid, lang, text in texts), encoding="utf-8")
    return path


@pytest.mark.parametrize(("a", "b"), [("What is X?", "what is  x"), ('"Use ABC notation."', "use abc notation"),
                                      ("\u201cＦｕｌｌ　width\u201d", "full width"), ("Straße\n\tnow!", "STRASSE now")])
def test_normalised_forms_collide(a, b):
    assert normalise(a) == normalise(b) and text_hash(a) == text_hash(b)


def test_different_texts_and_inner_punctuation_do_not_collide():
    assert text_hash("What is X?") != text_hash("What is Y?")
    assert text_hash("e.g. x") != text_hash("eg x")
    assert text_hash(" ?! ") is None


def test_every_registered_task_is_covered():
    assert set(catalogue.REGISTRY) == set(EVAL_TEXT) | set(SAME_DATA)
    assert set(SAME_DATA.values()) <= set(EVAL_TEXT)


def test_index_of_bundled_sets_and_unavailable_named():
    start = time.monotonic()
    index = eval_index()
    took = time.monotonic() - start
    sizes = {name: len(h) for name, h in index.sets.items()}
    # m-ArenaHard en 500; FLORES devtest 24 languages x 1012 (every sentence distinct);
    # MGSM 11 x 250; XCOPA and XWinograd a few repeats less than their rows.
    assert sizes["m_arenahard"] == 500 and sizes["flores"] == 24 * 1012 and sizes["mgsm"] == 2750
    assert 5400 < sizes["xcopa"] <= 5500 and 3800 < sizes["xwinograd"] <= 3961
    for name in ("dolly", "dolly_human", "global_mmlu", "include", "xstorycloze"):
        assert "hub only" in index.unavailable[name]
    assert index.unavailable["m_arenahard"].startswith("22 of 23 languages (ar, cs, de")
    assert took < 30  # measured ~1.2 s (0 when memoised earlier in the session)


def test_arena_hard_questions_are_refused_with_the_count(tmp_path):
    rows = arena_rows()
    alpaca = [json.loads(line)["instruction"] for line in (ALPACA / "en.jsonl").read_text().splitlines()[:30]]
    texts = [(r["uid"], "en", r["prompt"]) for r in rows[:20]] + [(f"a{i}", "en", t) for i, t in enumerate(alpaca)]
    f = prompt_file(tmp_path / "mixed.jsonl", texts)
    with pytest.raises(GlotbenchError) as exc:
        load_prompts({"file": str(f)})
    msg = str(exc.value)
    assert msg.startswith(f"20 of 50 training prompts from file:{f} are evaluation prompts (m_arenahard: 20)")
    assert f"e.g. {rows[0]['uid']} ({f}:1) is m_arenahard en question_id {rows[0]['uid']}" in msg
    assert "allow_eval_overlap: true" in msg and "\n" not in msg and exc.value.exit_code == 2


def test_all_500_arena_questions_refused_even_reformatted(tmp_path):
    rows = arena_rows()
    texts = [(r["uid"], "en", f'  "{r["prompt"].upper()}"  ') for r in rows]
    with pytest.raises(GlotbenchError, match=r"^500 of 500 training prompts .*\(m_arenahard: 500\)"):
        load_prompts({"file": str(prompt_file(tmp_path / "arena.jsonl", texts))})


def test_allowed_overlap_is_kept_and_counted(tmp_path):
    rows = arena_rows()[:7]
    f = prompt_file(tmp_path / "arena.jsonl", [(r["uid"], "en", r["prompt"]) for r in rows])
    ps = load_prompts({"file": str(f), "allow_eval_overlap": True})
    assert len(ps.prompts) == 7
    report = ps.overlap.to_json()
    assert report["overlaps"] == {"m_arenahard": 7} and report["overlapping"] == 7 and report["allowed"]
    assert len(report["examples"]) == 5 and report["checked_sets"]["m_arenahard"] == 500
    assert "dolly" in report["unavailable"]
    json.dumps(report)
    assert describe(ps.overlap).startswith("eval overlap: 7 prompts (checked 5 sets")


def test_alpaca_eval_instructions_pass_in_every_language():
    first = load_prompts({"alpaca_eval_multilingual": str(ALPACA), "languages": ["en"], "first": 50})
    assert len(first.prompts) == 50 and first.overlap.overlapping == 0
    # Measured: none of the 805 instructions, in any of the 10 files, is an evaluation prompt.
    every = load_prompts({"alpaca_eval_multilingual": str(ALPACA)})
    assert len(every.prompts) == 8050 and every.overlap.overlapping == 0 and every.overlap.overlaps == {}


def test_flores_devtest_and_mgsm_test_caught_in_any_language(tmp_path):
    deu = (FLORES / "devtest" / "deu_Latn.devtest").read_text(encoding="utf-8").splitlines()
    deu_dev = (FLORES / "dev" / "deu_Latn.dev").read_text(encoding="utf-8").splitlines()
    zh_q = (SHARED_DATA / "mgsm" / "mgsm_zh.tsv").read_text(encoding="utf-8").splitlines()[3].split("\t")[0]
    f = prompt_file(tmp_path / "p.jsonl", [("f1", "de", deu[10]), ("f2", "de", deu_dev[10]), ("m1", "zh", zh_q),
                                           ("ok", "en", "Write a haiku about training data.")])
    ps = load_prompts({"file": str(f), "allow_eval_overlap": True})
    assert ps.overlap.overlaps == {"flores": 1, "mgsm": 1} and ps.overlap.overlapping == 2
    assert any("f1" in e and "flores deu_Latn" in e for e in ps.overlap.examples)


def test_a_local_eval_data_dir_adds_its_sets(tmp_path):
    """A --data-dir style directory with Dolly rows for one language (labelled synthetic,
    in the hub schema) makes Dolly a checked set for that language only."""
    dolly = tmp_path / "eval" / "aya_evaluation_suite" / "dolly_machine_translated"
    dolly.mkdir(parents=True)
    rows = [{"id": i, "inputs": f"Synthetische Dolly-Frage {i}?", "targets": "…", "language": "deu",
             "script": "Latn", "source_id": i} for i in range(1, 4)]
    (dolly / "deu.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    f = prompt_file(tmp_path / "p.jsonl", [("x", "de", "synthetische dolly-frage 2")])
    with pytest.raises(GlotbenchError, match=r"1 of 1 training prompts .*\(dolly: 1\), e\.g\. x .* is dolly deu id 2"):
        load_prompts({"file": str(f), "eval_data_dir": str(tmp_path / "eval")})
    ps = load_prompts({"file": str(f), "eval_data_dir": str(tmp_path / "eval"), "allow_eval_overlap": True})
    assert ps.overlap.checked_sets["dolly"] == 3
    assert ps.overlap.unavailable["dolly"].startswith("22 of 23 languages")


def test_eval_data_auto_offline_names_the_hub_failure(monkeypatch):
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    index = eval_index(None, "auto")
    assert time.monotonic() - start < 60  # one failed hub attempt per set, offline: fast
    assert index.sets.keys() == eval_index().sets.keys()
    assert "offline mode is on" in index.unavailable["dolly"]
    report = check_overlap([], "nothing", allow=False, index=index)
    assert report.overlapping == 0 and report.unavailable == index.unavailable


def test_an_evaluation_question_in_an_earlier_user_turn_is_caught(tmp_path):
    question = arena_rows()[3]["prompt"]
    turns = [{"role": "user", "content": question}, {"role": "assistant", "content": "Here it is."},
             {"role": "user", "content": "Thanks, now make it shorter."}]
    f = tmp_path / "multi.jsonl"
    f.write_text(json.dumps({"prompt_id": "m1", "language": "en", "messages": turns}) + "\n", encoding="utf-8")
    with pytest.raises(GlotbenchError, match=r"1 of 1 training prompts .* \(m_arenahard: 1\)"):
        load_prompts({"file": str(f)})
