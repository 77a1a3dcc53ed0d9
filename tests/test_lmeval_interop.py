"""lm-eval interop: ``glotbench import-lmeval`` and ``glotbench export --format lm-eval``.

* Real lm-eval 0.4.13 output, produced here: lm-eval's own task configs (XCOPA it, MGSM
  native CoT en, two Global-MMLU subjects, and one task glotbench does not know), pointed at
  local copies of the data as the parity tests do, run on the tiny random Llama through
  ``simple_evaluate`` and written by lm-eval's ``EvaluationTracker``. The import recomputes
  every number from the samples and reproduces lm-eval's reported acc / exact_match and
  stderr; export → import gives back the same per-example records; the export is shaped as
  lm-eval's files are; ``table``, ``report`` and ``gate`` read the imported runs.
* A hand-made directory in lm-eval's format (written by lm-eval's ``EvaluationTracker``) for
  the other mappings: xwinograd (gold from the doc, not the target), xstorycloze,
  Global-MMLU full and Lite, INCLUDE (``north_macedonian`` → mk), MGSM with hits and misses.
* The committed reference run (a glotbench run) → export → import: same predictions.
* Mistakes are one line and exit 2.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from glotbench.harness.cli.main import main
from glotbench.harness.core.records import Sample
from glotbench.harness.store.lmeval import arguments, find_output, parse_name
from glotbench.harness.store.lmeval_export import export_lmeval
from glotbench.harness.store.lmeval_import import import_lmeval
from glotbench.harness.store.schema import RunRecord
from glotbench.harness.taskapi import data
from glotbench.harness.taskapi.registry import get_task

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
REFERENCE = REPO / "results" / "reference-embedded"
XCOPA_N, MGSM_N, SUBJECTS = 8, 3, ("astronomy", "world_religions")


def cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def lm_lines(folder: Path, task: str) -> list[dict]:
    (file,) = folder.glob(f"samples_{task}_*.jsonl")
    return [json.loads(x) for x in file.read_text(encoding="utf-8").splitlines()]


# ---- real lm-eval output ------------------------------------------------------------------

def _configs(tmp: Path) -> list[str]:
    """lm-eval's own configs under their real names, data pointed at local files."""
    from glotbench.harness.models.lmeval_ref import write_configs

    sys.path.insert(0, str(REPO / "tests"))
    from test_parity_generation import mgsm_files

    xcopa = get_task("xcopa")
    rows = data.load(xcopa, "it", "bundled").samples[:XCOPA_N]
    xfile = tmp / "xcopa-it.jsonl"
    xfile.write_text("".join(json.dumps(dict(s.fields), ensure_ascii=False) + "\n" for s in rows))
    made = {}
    made.update(zip(write_configs(xcopa, ["it"], {"it": xfile}, tmp), ["xcopa_it"]))
    made.update(zip(write_configs(xcopa, ["it"], {"it": xfile}, tmp, suffix="_unknown"), ["custom_copa_it"]))
    test, train = mgsm_files(tmp, "en", MGSM_N)
    made.update(zip(write_configs(get_task("mgsm"), ["en"], {"en": test}, tmp, fewshot_files={"en": train},
                                  max_gen_toks=24), ["mgsm_native_cot_en"]))
    gm = get_task("global_mmlu")
    for subject in SUBJECTS:
        name = f"global_mmlu_full_en_{subject}"
        made.update(zip(write_configs(gm, ["en"], {"en": FIXTURES / "global_mmlu/en/test.jsonl"}, tmp,
                                      fewshot_files={"en": FIXTURES / "global_mmlu/en/dev.jsonl"},
                                      suffix=f"_{subject}",
                                      yaml_path=f"global_mmlu/full/{{lang}}/global_mmlu_full_{{lang}}_{subject}.yaml"),
                        [name]))
    for ref, real in made.items():  # the reference configs' names → lm-eval's own task names
        path = tmp / f"{ref}.yaml"
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
        cfg["task"] = real
        path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return list(made.values())


@pytest.fixture(scope="module")
def lmeval_out(tmp_path_factory, tiny_model_dir) -> Path:
    """lm-eval 0.4.13 run on the tiny model and written as ``lm_eval --output_path --log_samples`` does."""
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    tmp = tmp_path_factory.mktemp("lmeval")
    (tmp / "configs").mkdir()
    names = _configs(tmp / "configs")
    tracker = EvaluationTracker(output_path=str(tmp / "out"))
    res = simple_evaluate(model="hf", model_args=f"pretrained={tiny_model_dir},dtype=float32", tasks=names,
                          limit=XCOPA_N, log_samples=True, batch_size=8, device="cpu",
                          task_manager=TaskManager(include_path=str(tmp / "configs"), include_defaults=False),
                          evaluation_tracker=tracker, random_seed=0, numpy_random_seed=0, torch_random_seed=0,
                          fewshot_random_seed=0)
    samples = res.pop("samples")
    tracker.save_results_aggregated(results=res, samples=samples)
    for name in res["configs"]:
        tracker.save_results_samples(task_name=name, samples=samples[name])
    return tmp / "out"


@pytest.fixture(scope="module")
def imported(lmeval_out, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("imported") / "run"
    assert main(["import-lmeval", str(lmeval_out), "--output", str(out), "--samples-required"]) == 0
    return out


@pytest.mark.slow
def test_real_lmeval_output_imports_with_lmevals_numbers(lmeval_out, imported):
    src = find_output(lmeval_out)
    reported = src.results["results"]
    run = RunRecord.read(imported)
    assert set(run.tasks()) == {"xcopa", "mgsm", "global_mmlu"}
    assert run.imported and run.provenance["imported"]["skipped"] == ["custom_copa_it"]
    assert run.provenance["imported"]["lm_eval_version"] == "0.4.13"
    assert run.provenance["imported"]["checks"] == {"mismatches": []}
    assert set(run.provenance["imported"]["samples_files"]) == {f.name for f in src.samples.values()}
    # XCOPA: acc and stderr as lm-eval reports them; per-example log-likelihoods as it wrote them
    x = run.cell("xcopa", "it")
    assert x["n"] == XCOPA_N
    assert math.isclose(x["acc"], reported["xcopa_it"]["acc,none"], abs_tol=1e-12)
    assert math.isclose(x["stderr"], reported["xcopa_it"]["acc_stderr,none"], abs_tol=1e-12)
    assert 0 < x["acc"] < 1 and x["ci95"][0] <= x["acc"] <= x["ci95"][1]
    mine = run.samples("xcopa", "it")
    for rec, line in zip(mine, lm_lines(src.model_dir, "xcopa_it")):
        lls = [float(r[0]) for r in line["filtered_resps"]]
        assert [c["logprob"] for c in rec["choices"]] == lls
        assert [[c["context"], c["continuation"]] for c in rec["choices"]] == arguments(line)
        assert rec["pred"] == lls.index(max(lls)) and rec["acc"] == line["acc"]
        assert rec["target"] == int(line["target"])
    # MGSM: lm-eval's exact matches per filter, its generated text and extracted answers
    g = run.cell("mgsm", "en")
    assert g["n"] == MGSM_N
    for metric, flt in (("strict_match", "strict-match"), ("flexible_extract", "flexible-extract")):
        assert math.isclose(g["metrics"][metric]["value"], reported["mgsm_native_cot_en"][f"exact_match,{flt}"],
                            abs_tol=1e-12)
    lines = lm_lines(src.model_dir, "mgsm_native_cot_en")
    strict = [x for x in lines if x["filter"] == "strict-match"]
    for rec, line in zip(run.samples("mgsm", "en"), strict):
        assert rec["response"] == line["resps"][0][0] and rec["prompt"] == line["arguments"]["gen_args_0"]["arg_0"]
        assert rec["pred"] == (None if line["filtered_resps"][0] == "[invalid]" else line["filtered_resps"][0])
    # Global-MMLU: two lm-eval subtasks make one glotbench cell, breakdowns from lm-eval's docs
    cell = run.cell("global_mmlu", "en")
    ns = [src.results["n-samples"][f"global_mmlu_full_en_{s}"]["effective"] for s in SUBJECTS]
    assert cell["n"] == sum(ns) == 14
    pooled = sum(reported[f"global_mmlu_full_en_{s}"]["acc,none"] * n for s, n in zip(SUBJECTS, ns)) / sum(ns)
    assert math.isclose(cell["acc"], pooled, abs_tol=1e-12)
    assert set(cell["by"]["subject_category"]) >= {"STEM"} and "balanced" in cell
    assert len({r["doc_id"] for r in run.samples("global_mmlu", "en")}) == 14
    # lm-eval's XCOPA prompts are glotbench's (the parity the tasks claim)
    xcopa = get_task("xcopa")
    for rec in mine:
        pairs = xcopa.render(Sample(0, "it", rec["lmeval"]["doc"])).pairs
        assert [(p.context, p.continuation) for p in pairs] == [(c["context"], c["continuation"]) for c in rec["choices"]]


@pytest.mark.slow
def test_real_round_trip_and_lmeval_shape(lmeval_out, imported, tmp_path, capsys):
    rc, out, _ = cli(capsys, "export", "--format", "lm-eval", imported, "-o", tmp_path / "exp")
    assert rc == 0, out
    src, exp = find_output(lmeval_out), find_output(tmp_path / "exp")
    assert exp.model_dir.name == src.model_dir.name  # lm-eval's sanitized model folder
    assert set(exp.samples) == set(src.samples) - {"custom_copa_it"}
    for name in exp.samples:  # every line shaped as lm-eval's, values as lm-eval wrote them
        theirs, ours = lm_lines(src.model_dir, name), lm_lines(exp.model_dir, name)
        assert len(theirs) == len(ours)
        for a, b in zip(theirs, ours):
            assert set(b) == set(a), name
            for key in ("doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter", "metrics",
                        "doc_hash", "prompt_hash", "target_hash"):
                assert b[key] == a[key], (name, key)
        assert exp.results["task_hashes"][name] == src.results["task_hashes"][name]
        for key, value in src.results["results"][name].items():
            if "," in key:
                assert math.isclose(exp.results["results"][name][key], value, abs_tol=1e-12), (name, key)
    rc, out, _ = cli(capsys, "import-lmeval", tmp_path / "exp", "--output", tmp_path / "again")
    assert rc == 0 and "reproduced" in out, out
    a, b = RunRecord.read(imported), RunRecord.read(tmp_path / "again")
    assert a.data["results"] == b.data["results"]
    for task in a.tasks():
        for lang in a.languages(task):
            assert a.samples(task, lang) == b.samples(task, lang), (task, lang)


@pytest.mark.slow
def test_table_report_and_gate_read_imported_runs(imported, tmp_path, capsys):
    again = tmp_path / "again"
    shutil.copytree(imported, again)
    rc, out, err = cli(capsys, "table", imported, again, "--by-language")
    assert rc == 0 and "xcopa · acc" in out and "mgsm · strict_match" in out, err
    rc, out, err = cli(capsys, "report", imported, again, "-o", tmp_path / "r.html")
    assert rc == 0 and (tmp_path / "r.html").stat().st_size > 1000, err
    rc, out, err = cli(capsys, "gate", "--baseline", imported, "--candidate", again)
    assert rc == 0 and "PASS" in out and "global_mmlu" in out, err
    # an import and a glotbench run did not score the same recorded data: refused, one line
    rc, out, err = cli(capsys, "gate", "--baseline", REFERENCE, "--candidate", imported)
    assert rc == 2 and err.startswith("glotbench: error:") and len(err.strip().splitlines()) == 1, err


# ---- hand-made lm-eval output (lm-eval's own writer) ---------------------------------------

def _mc(task: str, lang: str, doc_id: int, doc: dict, target: str, rng: random.Random) -> tuple[dict, float]:
    prompt = get_task(task).prompt(Sample(doc_id, lang, doc), ())
    lls = [rng.uniform(-30, -1) for _ in prompt.pairs]
    acc = float(lls.index(max(lls)) == prompt.gold)
    args = [(p.context, p.continuation) for p in prompt.pairs]
    return {"doc_id": doc_id, "doc": doc, "target": target, "arguments": args,
            "resps": [[(ll, False)] for ll in lls], "filtered_resps": [(ll, False) for ll in lls],
            "filter": "none", "metrics": ["acc"], "doc_hash": "d", "prompt_hash": "p", "target_hash": "t",
            "acc": acc}, acc


def _mgsm(doc_id: int, question: str, target: str, response: str, strict: str, flexible: str) -> list[dict]:
    out = []
    for flt, pred in (("strict-match", strict), ("flexible-extract", flexible)):
        out.append({"doc_id": doc_id, "doc": {"question": question, "answer": None, "answer_number": int(target)},
                    "target": target, "arguments": [("Frage: " + question + "\nSchritt-für-Schritt-Antwort:",
                                                     {"until": ["Frage:"], "do_sample": False})],
                    "resps": [[response]], "filtered_resps": [pred], "filter": flt, "metrics": ["exact_match"],
                    "doc_hash": "d", "prompt_hash": "p", "target_hash": "t",
                    "exact_match": float(pred == target)})
    return out


def handmade(out: Path) -> dict[str, list[dict]]:
    """An lm-eval output directory written by lm-eval's EvaluationTracker; returns the samples."""
    from lm_eval.loggers import EvaluationTracker

    rng = random.Random(7)
    gm_rows = [json.loads(x) for x in (FIXTURES / "global_mmlu/fr/test.jsonl").read_text().splitlines()]
    docs = {
        ("xwinograd_jp", "xwinograd", "jp"): [({"sentence": f"太郎は_が好き{i}。", "option1": "花子", "option2": "次郎",
                                                "answer": str(1 + i % 2)}, "が好き。") for i in range(4)],
        ("xstorycloze_en", "xstorycloze", "en"): [({**{f"input_sentence_{k}": f"S{k}." for k in range(1, 5)},
                                                    "sentence_quiz1": "A.", "sentence_quiz2": "B.",
                                                    "answer_right_ending": 1 + i % 2}, str(i % 2)) for i in range(5)],
        ("include_base_44_north_macedonian_stem", "include_loglik", "mk"): [
            ({"question": f"Q{i}?", "option_a": "a", "option_b": "b", "option_c": "c", "option_d": "d",
              "answer": i % 4, "domain": "STEM"}, str(i % 4)) for i in range(4)],
        ("global_mmlu_fr_stem", "global_mmlu_lite", "fr"): [(r, r["answer"]) for r in gm_rows[:3]],
    }
    for subject in SUBJECTS:
        docs[(f"global_mmlu_full_fr_{subject}", "global_mmlu", "fr")] = [
            (r, r["answer"]) for r in gm_rows if r["subject"] == subject]
    samples: dict[str, list[dict]] = {}
    results: dict[str, dict] = {}
    for (name, task, lang), rows in docs.items():
        made = [_mc(task, lang, i, doc, target, rng) for i, (doc, target) in enumerate(rows)]
        samples[name] = [m for m, _ in made]
        accs = [a for _, a in made]
        results[name] = {"alias": name, "acc,none": sum(accs) / len(accs), "acc_stderr,none": 0.0}
    samples["mgsm_native_cot_de"] = (
        _mgsm(0, "Wie viele?", "18", "9 + 9 = 18. Die Antwort ist 18.", "18", "18")
        + _mgsm(1, "Wie viele?", "3", "1 + 4 = 5. Die Antwort ist 5.", "5", "5")
        + _mgsm(2, "Wie viele?", "7", "Vielleicht 7", "[invalid]", "7"))
    results["mgsm_native_cot_de"] = {"alias": "mgsm_native_cot_de", "exact_match,strict-match": 1 / 3,
                                     "exact_match,flexible-extract": 2 / 3}
    samples["arc_easy"] = [_mc("xstorycloze", "en", 0, docs[("xstorycloze_en", "xstorycloze", "en")][0][0], "0",
                               rng)[0]]
    results["arc_easy"] = {"alias": "arc_easy", "acc,none": samples["arc_easy"][0]["acc"]}
    n = {k: len({s["doc_id"] for s in v}) for k, v in samples.items()}
    full = {"results": results, "group_subtasks": {}, "configs": {k: {"task": k, "metadata": {"version": 1.0}}
                                                                  for k in samples},
            "versions": dict.fromkeys(samples, 1.0), "n-shot": dict.fromkeys(samples, 0),
            "n-samples": {k: {"original": v, "effective": v} for k, v in n.items()},
            "config": {"model": "hf", "model_args": "pretrained=org/handmade", "limit": None, "device": "cpu"},
            "lm_eval_version": "0.4.13"}
    tracker = EvaluationTracker(output_path=str(out))
    tracker.general_config_tracker.log_experiment_args(model_source="hf", model_args="pretrained=org/handmade",
                                                       system_instruction=None, chat_template=None,
                                                       fewshot_as_multiturn=False)
    expected = {k: [dict(s) for s in v] for k, v in samples.items()}
    tracker.save_results_aggregated(results=full, samples=samples)
    for name, rows in samples.items():
        tracker.save_results_samples(task_name=name, samples=rows)
    return expected


def test_names_map_to_glotbench_tasks_and_languages():
    got = {n: (p.map.task, p.lang, p.subtask) if (p := parse_name(n)) else None for n in (
        "xcopa_it", "xwinograd_jp", "xstorycloze_my", "mgsm_native_cot_zh", "global_mmlu_full_fil_anatomy",
        "global_mmlu_full_fr", "global_mmlu_ja_stem", "include_base_44_north_macedonian_stem",
        "include_base_44_chinese", "xcopa_xx", "arc_easy", "mgsm_direct_en")}
    assert got == {"xcopa_it": ("xcopa", "it", None), "xwinograd_jp": ("xwinograd", "jp", None),
                   "xstorycloze_my": ("xstorycloze", "my", None), "mgsm_native_cot_zh": ("mgsm", "zh", None),
                   "global_mmlu_full_fil_anatomy": ("global_mmlu", "fil", "anatomy"),
                   "global_mmlu_full_fr": ("global_mmlu", "fr", None),
                   "global_mmlu_ja_stem": ("global_mmlu_lite", "ja", "stem"),
                   "include_base_44_north_macedonian_stem": ("include_loglik", "mk", "stem"),
                   "include_base_44_chinese": ("include_loglik", "zh", None),
                   "xcopa_xx": None, "arc_easy": None, "mgsm_direct_en": None}


def test_handmade_lmeval_files_map_every_task(tmp_path, capsys):
    expected = handmade(tmp_path / "lm")
    rc, out, err = cli(capsys, "import-lmeval", tmp_path / "lm", "--output", tmp_path / "run")
    assert rc == 0, err
    assert "skipped 1 lm-eval tasks glotbench does not know: arc_easy" in out and "reproduced" in out
    run = RunRecord.read(tmp_path / "run")
    assert {(t, lang) for t in run.tasks() for lang in run.languages(t)} == {
        ("xwinograd", "jp"), ("xstorycloze", "en"), ("include_loglik", "mk"), ("global_mmlu_lite", "fr"),
        ("global_mmlu", "fr"), ("mgsm", "de")}
    assert run.model["name"] == "org/handmade"
    # xwinograd: lm-eval's target is the shared suffix; the gold choice comes from the doc's answer
    wino = run.samples("xwinograd", "jp")
    assert [r["target"] for r in wino] == [0, 1, 0, 1]
    assert [r["acc"] for r in wino] == [s["acc"] for s in expected["xwinograd_jp"]]
    # Global-MMLU: two subjects numbered through, lm-eval's ids and task kept
    gm = run.samples("global_mmlu", "fr")
    assert [r["doc_id"] for r in gm] == list(range(len(gm)))
    assert [r["lmeval"]["task"] for r in gm] == sorted(r["lmeval"]["task"] for r in gm)
    assert run.cell("global_mmlu", "fr")["n"] == sum(len(expected[f"global_mmlu_full_fr_{s}"]) for s in SUBJECTS)
    assert "by" in run.cell("global_mmlu", "fr")
    for task, lang in (("xstorycloze", "en"), ("include_loglik", "mk"), ("global_mmlu_lite", "fr")):
        name = run.language_provenance(task, lang).raw["lmeval_tasks"][0]
        assert run.cell(task, lang)["acc"] == pytest.approx(
            sum(s["acc"] for s in expected[name]) / len(expected[name]), abs=1e-12)
    # MGSM: hits and misses per filter, lm-eval's extracted answers
    mg = run.samples("mgsm", "de")
    assert [r["strict_match"] for r in mg] == [1.0, 0.0, 0.0]
    assert [r["flexible_extract"] for r in mg] == [1.0, 0.0, 1.0]
    assert [r["pred"] for r in mg] == ["18", "5", None] and [r["parsed"] for r in mg] == [True, True, False]
    assert run.cell("mgsm", "de")["unparsed"] == 1
    assert run.cell("mgsm", "de")["metrics"]["flexible_extract"]["value"] == pytest.approx(2 / 3)
    # round trip through lm-eval's layout
    got = export_lmeval(tmp_path / "run", tmp_path / "exp")
    assert sorted(got.tasks) == sorted(k for k in expected if k != "arc_easy")
    back = import_lmeval(tmp_path / "exp", tmp_path / "run2")
    assert not back.mismatches and not back.skipped
    again = RunRecord.read(tmp_path / "run2")
    for task in run.tasks():
        for lang in run.languages(task):
            assert again.samples(task, lang) == run.samples(task, lang), (task, lang)
            assert again.cell(task, lang) == run.cell(task, lang)


def test_glotbench_run_exports_and_imports_with_the_same_predictions(tmp_path, capsys):
    rc, out, err = cli(capsys, "export", REFERENCE, "-o", tmp_path / "exp")
    assert rc == 0 and "skipped 1" in out and "flores" in out, err
    back = import_lmeval(tmp_path / "exp", tmp_path / "back")
    ref, run = RunRecord.read(REFERENCE), RunRecord.read(back.path)
    assert set(run.tasks()) == {"xcopa", "xwinograd"} and not back.mismatches
    for task in run.tasks():
        for lang in ref.languages(task):
            mine, theirs = ref.samples(task, lang), run.samples(task, lang)
            assert [r["doc_id"] for r in theirs] == [r["doc_id"] for r in mine]
            for key in ("target", "pred", "acc"):
                assert [r[key] for r in theirs] == [r[key] for r in mine], (task, lang, key)
            assert [[c["logprob"] for c in r["choices"]] for r in theirs] == \
                   [[c["logprob"] for c in r["choices"]] for r in mine]
            for key in ("acc", "n", "stderr", "ci95"):
                assert run.cell(task, lang)[key] == ref.cell(task, lang)[key], (task, lang, key)
        assert run.averages(task)["macro"] == pytest.approx(ref.averages(task)["macro"], abs=1e-12)


# ---- mistakes ------------------------------------------------------------------------------

def _one_line_error(capsys, *argv) -> str:
    rc, out, err = cli(capsys, *argv)
    assert rc == 2 and err.startswith("glotbench: error:") and len(err.strip().splitlines()) == 1, (rc, out, err)
    return err


def test_mistakes_are_one_line(tmp_path, capsys):
    assert "is not a directory" in _one_line_error(capsys, "import-lmeval", tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    assert "no lm-eval results" in _one_line_error(capsys, "import-lmeval", tmp_path / "empty")
    handmade(tmp_path / "lm")
    (folder,) = [d for d in (tmp_path / "lm").iterdir() if d.is_dir()]
    # only tasks glotbench does not know
    only = tmp_path / "only" / folder.name
    only.mkdir(parents=True)
    res = json.loads(next(folder.glob("results_*.json")).read_text())
    res["configs"] = {"arc_easy": res["configs"]["arc_easy"]}
    (only / "results_2000-01-01T00-00-00.json").write_text(json.dumps(res))
    assert "no task glotbench knows (arc_easy)" in _one_line_error(capsys, "import-lmeval", tmp_path / "only")
    # a results file without samples: refused with --samples-required, else lm-eval's aggregates alone
    bare = tmp_path / "bare" / folder.name
    bare.mkdir(parents=True)
    shutil.copy(next(folder.glob("results_*.json")), bare)
    err = _one_line_error(capsys, "import-lmeval", tmp_path / "bare", "--samples-required", "--output", tmp_path / "x")
    assert "no samples file" in err and "--log_samples" in err and not (tmp_path / "x").exists()
    rc, out, err = cli(capsys, "import-lmeval", tmp_path / "bare", "--output", tmp_path / "agg")
    assert rc == 0 and "from the results file alone" in out, err
    agg = RunRecord.read(tmp_path / "agg")
    assert agg.cell("mgsm", "de")["aggregate_only"] and agg.cell("mgsm", "de")["ci95"] is None
    assert agg.cell("mgsm", "de")["strict_match"] == pytest.approx(1 / 3)
    assert cli(capsys, "table", tmp_path / "agg")[0] == 0
    # an existing output; a tampered reported number is named, not hidden
    assert "already exists" in _one_line_error(capsys, "import-lmeval", tmp_path / "lm", "--output", tmp_path / "agg")
    res_file = next(folder.glob("results_*.json"))
    res = json.loads(res_file.read_text())
    res["results"]["xstorycloze_en"]["acc,none"] += 0.5
    res_file.write_text(json.dumps(res))
    rc, out, _ = cli(capsys, "import-lmeval", tmp_path / "lm", "--output", tmp_path / "tampered")
    assert rc == 0 and "NOT reproduced (1): xstorycloze/en acc" in out
    assert RunRecord.read(tmp_path / "tampered").provenance["imported"]["checks"]["mismatches"]
    # export: nothing lm-eval has; not a run
    (tmp_path / "exp-flores").mkdir()
    err = _one_line_error(capsys, "export", tmp_path / "agg", "-o", tmp_path / "e")  # aggregate-only cells only
    assert "no per-example records of a task lm-eval has" in err
    assert "not a finished glotbench run" in _one_line_error(capsys, "export", tmp_path / "empty", "-o", tmp_path / "e")
