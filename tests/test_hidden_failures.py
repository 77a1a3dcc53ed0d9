"""Failures that must not hide: a NaN log-likelihood never wins an argmax (it is counted), a
bootstrap without a finite replicate says so, a language left out of an average is named
(in run.json and in the summary ``glotbench run`` prints), a Global-MMLU subject with fewer
than five dev shots is named in provenance."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from glotbench.harness.cli.run import format_summary, summary_notes
from glotbench.harness.core.records import (
    LoglikelihoodRequest,
    LoglikelihoodResult,
    MultipleChoicePrompt,
)
from glotbench.harness.metrics.stats import averages, bootstrap_ci, summarize
from glotbench.harness.run.config import RunConfig
from glotbench.harness.run.plan import plan
from glotbench.harness.run.scoring import cell, choice_record, task_averages
from glotbench.harness.store.schema import RunRecord
from glotbench.harness.taskapi.registry import get_task
from glotbench.harness.taskapi.spec import score_multiple_choice

FIXTURES = Path(__file__).resolve().parent / "fixtures"
NAN, INF = float("nan"), float("inf")


def prompt(n: int, gold: int) -> MultipleChoicePrompt:
    return MultipleChoicePrompt(tuple(LoglikelihoodRequest("ctx", f" {i}") for i in range(n)), gold)


def lls(*values: float) -> list[LoglikelihoodResult]:
    return [LoglikelihoodResult(v, False, 1) for v in values]


@pytest.mark.parametrize(("values", "gold", "pred", "nan"), [
    ((NAN, -2.0, -1.0), 0, 2, 1),      # np.argmax would pick the NaN (index 0) and score it right
    ((-1.0, NAN, -3.0), 1, 0, 1),
    ((INF, -1.0), 0, 1, 1),            # +inf is no probability either
    ((NAN, NAN), 0, None, 2),          # nothing usable: no prediction, scored wrong
    ((-INF, NAN, -INF), 0, 0, 1),      # -inf is a real value (probability 0): first of the tie
])
def test_nan_never_wins_and_is_counted(values, gold, pred, nan):
    score = score_multiple_choice(prompt(len(values), gold), lls(*values))
    assert score == {"pred": pred, "acc": float(pred == gold), "nan_logprobs": nan}


def test_finite_scores_are_unchanged():
    assert int(np.argmax([NAN, -2.0, -1.0])) == 0  # what a bare argmax would have predicted
    assert score_multiple_choice(prompt(3, 1), lls(-3.0, -1.0, -1.0)) == {"pred": 1, "acc": 1.0}
    assert score_multiple_choice(prompt(2, 0), lls(-INF, -5.0)) == {"pred": 1, "acc": 0.0}


def test_cell_and_record_count_nan_items():
    task = get_task("xcopa")
    p = prompt(2, 0)
    scores = [score_multiple_choice(p, lls(NAN, -1.0)), score_multiple_choice(p, lls(-1.0, -2.0)),
              score_multiple_choice(p, lls(NAN, NAN))]
    out = cell(task, [], scores, seed=1)
    assert out["nan_logprobs"] == 2 and out["n"] == 3 and out["acc"] == pytest.approx(1 / 3)
    assert "nan_logprobs" not in cell(task, [], scores[1:2] * 2, seed=1)  # absent: none
    rec = choice_record(0, p, lls(NAN, -1.0), scores[0])
    assert rec["nan_logprobs"] == 1 and rec["pred"] == 1
    assert "nan_logprobs" not in choice_record(0, p, lls(-1.0, -2.0), scores[1])


def test_bootstrap_without_a_finite_replicate_says_so():
    assert bootstrap_ci(np.array([1.0, NAN, 0.0]), seed=3) is None
    s = summarize([1.0, NAN, 0.0, 1.0], seed=3)
    assert s["ci95"] is None and s["n"] == 4 and math.isnan(s["value"])
    assert s["ci95_note"] == "no finite bootstrap replicate (1 of 4 values are not finite)"
    s = summarize([INF, -INF], seed=3)
    assert s["ci95"] is None and "2 of 2 values are not finite" in s["ci95_note"]
    ok = summarize([1.0, 0.0, 1.0], seed=3)
    assert "ci95_note" not in ok and ok["ci95"][0] <= ok["value"] <= ok["ci95"][1]


def test_an_average_names_the_languages_it_leaves_out():
    per_lang = {"et": {"acc": 0.5, "n": 10}, "zh": {"acc": None, "n": 0}, "qu": {"acc": NAN, "n": 4},
                "sw": {"acc": 0.7, "n": 10}}
    avg = averages(per_lang, "acc")
    assert avg == {"macro": pytest.approx(0.6), "micro": pytest.approx(0.6), "n": 20, "languages": 2,
                   "missing": ["zh", "qu"]}
    assert "missing" not in averages({"et": {"acc": 0.5, "n": 10}}, "acc")
    assert averages({"zh": {"acc": None, "n": 0}}, "acc") == {"macro": None, "micro": None, "n": 0,
                                                              "languages": 0, "missing": ["zh"]}


def test_the_run_summary_names_what_an_average_left_out(tmp_path):
    task = get_task("xcopa")
    p = prompt(2, 0)
    good = [score_multiple_choice(p, lls(-1.0, -2.0)), score_multiple_choice(p, lls(-2.0, -1.0))]
    results = {"xcopa": {"et": cell(task, [], good, 1), "zh": cell(task, [], [], 1),
                         "sw": cell(task, [], [score_multiple_choice(p, lls(NAN, -1.0))] * 2, 1)}}
    run = {"results": results, "averages": {"xcopa": task_averages(task, results["xcopa"], ["acc"])},
           "provenance": {"tasks": {"xcopa": {"metrics": ["acc"]}}}}
    json.dumps(run)
    assert run["averages"]["xcopa"]["missing"] == ["zh"]
    run = RunRecord(tmp_path, {**run, "format": "glotbench-run/1", "config": {}})
    notes = summary_notes(run)
    assert "xcopa macro/micro leave out zh (no value)" in notes
    assert any(n.startswith("xcopa/sw: 2 of 2 items had a NaN log-likelihood") for n in notes)
    assert "xcopa" in format_summary(run)


def test_global_mmlu_with_fewer_dev_shots_says_so(tmp_path):
    """A subject with 3 dev rows: its questions get 3 shots (as lm-eval's first_n sampler), the
    plan notes it and the unit carries it to provenance."""
    src = FIXTURES / "global_mmlu" / "en"
    dst = tmp_path / "global_mmlu" / "en"
    dst.mkdir(parents=True)
    (dst / "test.jsonl").write_text((src / "test.jsonl").read_text())
    dev = [json.loads(x) for x in (src / "dev.jsonl").read_text().splitlines() if x.strip()]
    kept, seen = [], {}
    for row in dev:
        seen[row["subject"]] = seen.get(row["subject"], 0) + 1
        if row["subject"] != "astronomy" or seen["astronomy"] <= 3:
            kept.append(row)
    (dst / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    notes: list[str] = []
    [unit] = plan(RunConfig(tasks=("global_mmlu",), langs=("en",), data="local", data_dir=str(tmp_path)), notes)
    assert unit.fewshot_short == {"astronomy": 3}
    assert any("global_mmlu/en: 1 groups have fewer than 5 few-shot examples (astronomy 3)" in n for n in notes)
    astro = next(p for s, p in zip(unit.item_samples(), unit.prompts) if s.fields["subject"] == "astronomy")
    other = next(p for s, p in zip(unit.item_samples(), unit.prompts) if s.fields["subject"] != "astronomy")
    assert astro.pairs[0].context.count("\nAnswer: ") == 3 and other.pairs[0].context.count("\nAnswer: ") == 5
    from glotbench.harness.run.execute import language_provenance

    unit.requests = [list(p.pairs) for p in unit.prompts]
    assert language_provenance(unit)["fewshot_short"] == {"wanted": 5, "have": {"astronomy": 3}}
    # the full dev split: nothing to say
    [full] = plan(RunConfig(tasks=("global_mmlu",), langs=("en",), data="local", data_dir=str(FIXTURES)))
    assert full.fewshot_short == {} and "fewshot_short" not in language_provenance(full)
