"""Parity of the few-shot and generative tasks with lm-eval 0.4.13 on the embedded model,
and batch-size invariance of generation.

* MGSM native CoT, en and es (where glotbench's prompt and strict pattern equal lm-eval's),
  20 problems each, plain text (no chat template, as lm-eval without --apply_chat_template):
  identical generated text, identical strict-match per problem.
* Global-MMLU on the synthetic fixture through lm-eval's own per-subject configs
  (``global_mmlu_full_<lang>_<subject>``, which filter test and dev by subject): per-example
  log-likelihoods within 1e-4, identical predictions.
* Generation: the same requests give the same text at batch size 1 and 16.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from glotbench.harness.core.records import GenerationRequest
from glotbench.harness.models.hf import HFBackend
from glotbench.harness.models.lmeval_ref import run_reference
from glotbench.harness.run.config import RunConfig
from glotbench.harness.run.execute import execute
from glotbench.harness.run.plan import plan
from glotbench.harness.store.rundir import read_samples
from glotbench.harness.taskapi import data
from glotbench.harness.taskapi.registry import get_task

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MGSM_LANGS, MGSM_N, MGSM_TOKENS = ("en", "es"), 20, 96


def mgsm_files(tmp_path: Path, lang: str, n: int) -> tuple[Path, Path]:
    """The bundled MGSM rows in the hub's layout (test: answer null; train: exemplars)."""
    task = get_task("mgsm")
    loaded = data.load(task, lang, "bundled")
    test, train = tmp_path / f"{lang}-test.jsonl", tmp_path / f"{lang}-train.jsonl"
    test.write_text("".join(json.dumps({"question": s.fields["question"], "answer": None,
                                        "answer_number": int(s.fields["answer_number"].replace(",", "")),
                                        "equation_solution": None}, ensure_ascii=False) + "\n"
                            for s in loaded.samples[:n]))
    train.write_text("".join(json.dumps({"question": s.fields["question"], "answer": s.fields["answer"],
                                         "answer_number": 0, "equation_solution": None}, ensure_ascii=False) + "\n"
                             for s in loaded.fewshot))
    return test, train


@pytest.mark.slow
def test_mgsm_native_cot_matches_lm_eval(embedded_dir, tmp_path, isolated_cache):
    task = get_task("mgsm")
    files, pools = {}, {}
    for lang in MGSM_LANGS:
        files[lang], pools[lang] = mgsm_files(tmp_path, lang, MGSM_N)
    ref = run_reference(task, embedded_dir, files, batch_size=16, fewshot_files=pools, max_gen_toks=MGSM_TOKENS)
    cfg = RunConfig(tasks=("mgsm",), langs=MGSM_LANGS, limit=MGSM_N, data="bundled", chat="off",
                    max_new_tokens=MGSM_TOKENS, output=str(tmp_path / "run"))
    path = execute(cfg, plan(cfg), progress=False)
    for lang in MGSM_LANGS:
        mine = read_samples(path, "mgsm", lang)
        assert len(mine) == len(ref.responses[lang]) == MGSM_N
        for r, text in zip(mine, ref.responses[lang]):
            assert r["response"] == text, (lang, r["doc_id"])
        strict = ref.filtered[lang]["strict-match"]
        assert [r["strict_match"] for r in mine] == [m for _, m in strict]
        # lm-eval's filtered answer is the raw capture ("18." or "[invalid]")
        assert [r["pred"] for r in mine] == [None if f == "[invalid]" else f.replace(",", "").rstrip(".")
                                             for f, _ in strict]
        flexible = ref.filtered[lang]["flexible-extract"]
        assert [r["flexible_extract"] for r in mine] == [m for _, m in flexible]


@pytest.mark.slow
@pytest.mark.parametrize("task_name", ["global_mmlu"])
def test_global_mmlu_loglikelihoods_equal_lm_eval(task_name, embedded_dir, tmp_path, isolated_cache):
    task = get_task(task_name)
    langs = ("en", "fr")
    cfg = RunConfig(tasks=(task_name,), langs=langs, data="local", data_dir=str(FIXTURES),
                    output=str(tmp_path / "run"))
    path = execute(cfg, plan(cfg), progress=False)
    for subject in ("astronomy", "world_religions"):
        files = {lang: FIXTURES / task_name / lang / "test.jsonl" for lang in langs}
        pools = {lang: FIXTURES / task_name / lang / "dev.jsonl" for lang in langs}
        ref = run_reference(task, embedded_dir, files, batch_size=16, fewshot_files=pools, suffix=f"_{subject}",
                            yaml_path=f"global_mmlu/full/{{lang}}/global_mmlu_full_{{lang}}_{subject}.yaml")
        for lang in langs:
            rows = [json.loads(x) for x in files[lang].read_text().splitlines()]
            mine = [r for r, row in zip(read_samples(path, task_name, lang), rows) if row["subject"] == subject]
            a = np.array([[c["logprob"] for c in r["choices"]] for r in mine])
            b = np.array(ref.loglikelihoods[lang])
            assert a.shape == b.shape == (7, 4)
            assert float(np.abs(a - b).max()) <= 1e-4, (subject, lang)
            assert (a.argmax(1) == b.argmax(1)).all()
            assert [r["acc"] for r in mine] == ref.acc[lang]


@pytest.mark.slow
def test_generation_is_the_same_at_batch_sizes_1_and_16(embedded_dir):
    task = get_task("mgsm")
    requests = []
    for lang in ("en", "de", "zh", "sw"):  # prompts of different lengths: left padding varies
        loaded = data.load(task, lang, "bundled")
        for s in loaded.samples[:4]:
            p = task.prompt(s, loaded.fewshot)
            requests.append(GenerationRequest(p.plain(), p.stop, 40))
    backend = HFBackend(str(embedded_dir), device="cpu", batch_size=16)
    batched = backend.generate(requests)
    backend.batch_size = 1
    single = backend.generate(requests)
    assert [r.text for r in batched] == [r.text for r in single]
    assert [r.finish for r in batched] == [r.finish for r in single]
