"""The regression gate: verdicts on planted differences, comparability errors, chrF++ and
win-rate cells, failures named, the environment note, the Markdown summary (the statistics
are in test_paired_stats.py, the policy file in test_gate_policy.py)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.stats as scipy_stats

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import json_sha256
from glotbench.harness.gate.fixed import exit_code, gate
from glotbench.harness.gate.markdown import format_markdown
from glotbench.harness.gate.paired_stats import (
    chrf_corpus,
    mde,
    paired_bootstrap_delta,
)
from glotbench.harness.gate.policy import Policy, load_policy
from glotbench.harness.metrics import chrf as mt_metrics

DATA_SHA = "d" * 64
PROMPT_SHA = "p" * 64


def make_run(root: Path, name: str, tasks: dict[str, dict[str, list[dict]]], *,
             metrics: dict[str, list[str]] | None = None, version: str = "1.0",
             data_sha: dict[str, str] | None = None, prompt_sha: dict[str, str] | None = None,
             model: str | None = None, provenance: dict | None = None) -> Path:
    """A finished run directory in the store's format (run.json + samples/<task>/<lang>.jsonl);
    ``data_sha`` / ``prompt_sha`` override the hashes of "task/lang" cells; ``provenance`` adds
    keys (host, versions, device)."""
    run = root / name
    prov_tasks, results = {}, {}
    for task, langs in tasks.items():
        names = (metrics or {}).get(task) or [_metric_of(task)]
        prov_tasks[task] = {"version": version, "metrics": names, "languages": {}, "prompting": {}}
        for lang, records in langs.items():
            key = f"{task}/{lang}"
            prov_tasks[task]["languages"][lang] = {
                "data_source": f"bundled:{key}", "n_available": len(records),
                "data_sha256": (data_sha or {}).get(key, DATA_SHA),
                "prompt_sha256": (prompt_sha or {}).get(key, PROMPT_SHA)}
            path = run / "samples" / task / f"{lang}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                            encoding="utf-8")
            results.setdefault(task, {})[lang] = {"n": len(records)}
    (run / "run.json").write_text(json.dumps({
        "format": "glotbench-run/1", "created": "2026-01-01T00:00:00+00:00",
        "config": {"tasks": list(tasks), "model": model or name}, "results": results, "averages": {},
        "provenance": {"glotbench_version": "0.1.0",
                       "model": {"backend": "hf", "name": model or name, "weights_sha256": "w" * 64},
                       "tasks": prov_tasks, "seed": 1234, **(provenance or {})}}, indent=1), encoding="utf-8")
    return run


def _metric_of(task: str) -> str:
    return {"flores": "chrf++", "m_arenahard": "new_tokens", "mgsm": "strict_match"}.get(task, "acc")


def acc_records(correct) -> list[dict]:
    return [{"doc_id": i, "target": 0, "pred": 0 if c else 1, "acc": float(c)} for i, c in enumerate(correct)]


def baseline_correct(n: int = 400, p: float = 0.6, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < p).astype(int)


def flip(correct: np.ndarray, worse: int, better: int = 0) -> np.ndarray:
    """Candidate answers: the first ``worse`` correct ones wrong, the first ``better`` wrong ones right."""
    out = correct.copy()
    out[np.flatnonzero(correct == 1)[:worse]] = 0
    out[np.flatnonzero(correct == 0)[:better]] = 1
    return out


@pytest.fixture()
def pair(tmp_path):
    """Baseline and candidate of two xcopa languages, n = 400 each; the candidate's answers given."""
    def build(cand: dict[str, np.ndarray] | None = None, **kwargs) -> tuple[Path, Path]:
        base = {"et": baseline_correct(seed=1), "ht": baseline_correct(seed=2)}
        cand = {**base, **(cand or {})}
        b = make_run(tmp_path, "base", {"xcopa": {k: acc_records(v) for k, v in base.items()}})
        c = make_run(tmp_path, "cand", {"xcopa": {k: acc_records(v) for k, v in cand.items()}}, **kwargs)
        return b, c
    return build


# ---------------------------------------------------------------------------- verdicts


def test_identical_runs_pass(pair):
    b, c = pair()
    result = gate(b, c, load_policy())
    assert result["verdict"] == "pass" and exit_code(result) == 0
    fam = result["tasks"]["xcopa"]["metrics"]["acc"]
    et = fam["languages"]["et"]
    assert et["delta"] == 0 and et["ci"] == [0, 0] and et["p_mcnemar"] == 1.0
    assert et["margin_source"] == "mde-floor"
    p = et["baseline"]  # floor: sqrt(2 p (1 - p) / n), margin = (z_.95 + z_.8) * floor
    assert et["margin"] == pytest.approx(mde(math.sqrt(2 * p * (1 - p) / 400)))
    assert et["p_noninferior"] == pytest.approx(1 / 1001) and et["p_regression"] == 1.0
    assert fam["pooled"]["verdict"] == "pass"
    json.dumps(result)  # JSON-serialisable


def test_planted_regression_fails(pair):
    base_et = baseline_correct(seed=1)
    b, c = pair({"et": flip(base_et, worse=40)})  # 10 points lower on n = 400
    result = gate(b, c, load_policy())
    assert result["verdict"] == "regression" and exit_code(result) == 1
    fam = result["tasks"]["xcopa"]["metrics"]["acc"]
    et = fam["languages"]["et"]
    assert et["delta"] == pytest.approx(-0.10)
    assert et["verdict"] == "regression" and et["margin_source"] == "mde"
    assert et["ci"][1] < -et["margin"]
    assert et["p_mcnemar"] == pytest.approx(scipy_stats.binomtest(0, 40, 0.5).pvalue)
    assert et["discordant"] == {"worse": 40, "better": 0}
    assert fam["languages"]["ht"]["verdict"] == "pass"
    assert fam["verdict"] == "regression" and result["tasks"]["xcopa"]["verdict"] == "regression"


def test_tiny_change_within_margin_passes(tmp_path, pair):
    base_et = baseline_correct(seed=1)
    b, c = pair({"et": flip(base_et, worse=3, better=1)})  # -0.5 points
    policy_file = tmp_path / "gate.yaml"
    policy_file.write_text("margins:\n  xcopa: 0.03\n")
    result = gate(b, c, load_policy(policy_file))
    et = result["tasks"]["xcopa"]["metrics"]["acc"]["languages"]["et"]
    assert et["delta"] == pytest.approx(-0.005) and et["margin"] == 0.03 and et["margin_source"] == "policy"
    assert et["verdict"] == "pass" and result["verdict"] == "pass" and exit_code(result) == 0


def test_inconclusive_follows_policy(tmp_path):
    base = baseline_correct(n=40, seed=3)
    b = make_run(tmp_path, "b", {"xcopa": {"et": acc_records(base)}})
    c = make_run(tmp_path, "c", {"xcopa": {"et": acc_records(flip(base, worse=3, better=3))}})
    lenient = replace(Policy(), margins={"xcopa": 0.01})
    result = gate(b, c, lenient)
    assert result["verdict"] == "inconclusive" and result["inconclusive"] == ["xcopa/acc"]
    assert exit_code(result) == 0
    strict = gate(b, c, replace(lenient, on_inconclusive="fail"))
    assert exit_code(strict) == 1


# ---------------------------------------------------------------------------- comparability


def test_different_data_is_refused(pair):
    b, c = pair(data_sha={"xcopa/ht": "e" * 64})
    with pytest.raises(GlotbenchError, match=r"xcopa/ht: the runs scored different data \(data_sha256"):
        gate(b, c, Policy())


def test_different_prompts_refused_unless_allowed(pair):
    b, c = pair(prompt_sha={"xcopa/et": "q" * 64})
    with pytest.raises(GlotbenchError, match="xcopa/et: the runs used different prompts.*allow_prompt_change"):
        gate(b, c, Policy())
    result = gate(b, c, replace(Policy(), allow_prompt_change=True))
    assert result["verdict"] == "pass"
    assert any("xcopa/et" in w and "allowed by the policy" in w for w in result["warnings"])


def test_different_task_version_is_refused(pair):
    b, c = pair(version="2.0")
    with pytest.raises(GlotbenchError, match=r"xcopa: task version differs \(baseline 1.0, candidate 2.0\)"):
        gate(b, c, Policy())


def test_different_doc_ids_are_refused(tmp_path):
    base = baseline_correct(n=50)
    b = make_run(tmp_path, "b", {"xcopa": {"et": acc_records(base)}})
    c = make_run(tmp_path, "c", {"xcopa": {"et": acc_records(base)[:45]}})
    # another --limit: named as such (its prompt hash differs too, which is not the point)
    with pytest.raises(GlotbenchError, match=r"xcopa/et: the runs scored different numbers of examples "
                                             r"\(n 50 vs 45\) — compare runs made with the same data and --limit"):
        gate(b, c, Policy())
    shifted = [{**r, "doc_id": r["doc_id"] + 5} for r in acc_records(base)]  # as many items, other ones
    d = make_run(tmp_path, "d", {"xcopa": {"et": shifted}})
    with pytest.raises(GlotbenchError, match=r"xcopa/et: the runs scored different examples \(50 vs 50"):
        gate(b, d, Policy())


def test_not_compared_and_require_all(tmp_path):
    base = baseline_correct(n=50)
    b = make_run(tmp_path, "b", {"xcopa": {"et": acc_records(base)}})
    c = make_run(tmp_path, "c", {"xcopa": {"et": acc_records(base), "ht": acc_records(base)},
                                 "xwinograd": {"en": acc_records(base)}})
    result = gate(b, c, Policy())
    assert result["not_compared"] == [
        {"task": "xcopa", "lang": "ht", "reason": "only in the candidate run"},
        {"task": "xwinograd", "lang": None, "reason": "only in the candidate run"}]
    with pytest.raises(GlotbenchError, match=r"not compared: xcopa/ht, xwinograd \(policy require_all\)"):
        gate(b, c, replace(Policy(), require_all=True))


def test_error_messages_are_one_line(pair):
    b, c = pair(data_sha={"xcopa/et": "e" * 64})
    with pytest.raises(GlotbenchError) as err:
        gate(b, c, Policy())
    assert "\n" not in str(err.value) and err.value.fix


HYPS_BASE = ["The cat sits on the mat.", "He went to the market yesterday.", "It is raining today.",
             "We now have mice without diabetes.", "The airport was closed to flights."]
HYPS_CAND = ["A cat is sitting on a mat.", "Yesterday he walked to market.", "It rains.",
             "Mice that used to be diabetic are not now.", "The airport closed for commercial flights."]
REFS = ["The cat is sitting on the mat.", "Yesterday he went to the market.", "It is raining today.",
        "We now have mice that are no longer diabetic.", "The airport was closed to commercial flights."]


def flores_records(hyps: list[str], xcomet: list[float] | None = None) -> list[dict]:
    out = []
    for i, (h, r) in enumerate(zip(hyps, REFS)):
        stats, sentence = mt_metrics.chrf_segment(h, r)
        rec = {"doc_id": i, "target": r, "pred": h, "chrf++": sentence, "parsed": True,
               "chrf_stats": stats, "response": h}
        if xcomet is not None:
            rec["xcomet"] = xcomet[i]
        out.append(rec)
    return out


def test_chrf_delta_matches_sacrebleu(tmp_path):
    metrics = {"flores": ["chrf++", "xcomet"]}
    b = make_run(tmp_path, "b", {"flores": {"deu_Latn-eng_Latn": flores_records(HYPS_BASE, [.8, .7, .9, .6, .8])}},
                 metrics=metrics)
    c = make_run(tmp_path, "c", {"flores": {"deu_Latn-eng_Latn": flores_records(HYPS_CAND, [.7, .7, .8, .6, .7])}},
                 metrics=metrics)
    result = gate(b, c, Policy())
    fams = result["tasks"]["flores"]["metrics"]
    assert list(fams) == ["chrf++", "xcomet"]  # xcomet joins chrF++ when both runs have it
    cell = fams["chrf++"]["languages"]["deu_Latn-eng_Latn"]
    ref = mt_metrics.paired_test(HYPS_BASE, HYPS_CAND, REFS, "bs", seed=1234)
    assert cell["delta"] == ref["delta"]  # exactly: the same summed statistics
    assert cell["baseline"] == ref["baseline"] and cell["candidate"] == ref["system"]
    assert cell["p_sacrebleu"] == ref["p_value"]
    assert not any("disagree" in w for w in result["warnings"])
    stats = [np.array([r["chrf_stats"] for r in flores_records(h)]) for h in (HYPS_BASE, HYPS_CAND)]
    direct = paired_bootstrap_delta(*stats, margin=1.0, seed=1, resamples=200, corpus=chrf_corpus)
    assert direct.delta == ref["delta"]
    xc = fams["xcomet"]["languages"]["deu_Latn-eng_Latn"]
    assert xc["delta"] == pytest.approx(-0.06) and xc["kind"] == "mean" and "p_mcnemar" not in xc


FLORES_OUTPUTS = Path(__file__).parent / "fixtures" / "flores_outputs"


@pytest.mark.parametrize("direction", ["eng_Latn-deu_Latn", "eng_Latn-zho_Hans"])
def test_chrf_delta_matches_sacrebleu_on_model_outputs(tmp_path, direction):
    """Real model outputs (50 segments); the candidate keeps half of every third one."""
    hyps = (FLORES_OUTPUTS / f"{direction}.hyp").read_text(encoding="utf-8").splitlines()
    refs = (FLORES_OUTPUTS / f"{direction}.ref").read_text(encoding="utf-8").splitlines()
    cand = [h[: len(h) // 2] if i % 3 == 0 else h for i, h in enumerate(hyps)]

    def records(hs):
        return [{"doc_id": i, "target": r, "pred": h, "chrf_stats": mt_metrics.chrf_segment(h, r)[0],
                 "chrf++": mt_metrics.chrf_segment(h, r)[1]} for i, (h, r) in enumerate(zip(hs, refs))]

    b = make_run(tmp_path, "b", {"flores": {direction: records(hyps)}})
    c = make_run(tmp_path, "c", {"flores": {direction: records(cand)}})
    cell = gate(b, c, Policy())["tasks"]["flores"]["metrics"]["chrf++"]["languages"][direction]
    ref = mt_metrics.paired_test(hyps, cand, refs, "bs", seed=1234)
    assert cell["delta"] == ref["delta"] != 0
    assert cell["baseline"] == mt_metrics.corpus_chrf(hyps, refs)
    assert cell["p_sacrebleu"] == ref["p_value"]


def test_identical_translations_pass(tmp_path):
    recs = {"flores": {"deu_Latn-eng_Latn": flores_records(HYPS_BASE)}}
    result = gate(make_run(tmp_path, "b", recs), make_run(tmp_path, "c", recs), Policy())
    cell = result["tasks"]["flores"]["metrics"]["chrf++"]["languages"]["deu_Latn-eng_Latn"]
    assert cell["delta"] == 0 and cell["margin_source"] == "mde-floor" and cell["margin"] > 0
    assert cell["p_sacrebleu"] == 1.0 and result["verdict"] == "pass"


# ---------------------------------------------------------------------------- win-rates


def arena_records(n: int) -> list[dict]:
    return [{"doc_id": i, "target": "", "pred": None, "new_tokens": 10, "truncated": 0.0, "parsed": True,
             "response": f"answer {i}", "prompt_id": f"p{i}", "instruction": f"question {i}"}
            for i in range(n)]


def make_judge(root: Path, a: Path, b: Path, outcomes: list[tuple[str, str]]) -> Path:
    """A judge directory of run ``a`` (--a) against ``b``: per prompt, the outcomes (model
    letters) in orders ab and ba."""
    names = {p: p.name for p in (a, b)}
    runs = {names[p]: {"path": str(p), "run_sha256": json_sha256(json.loads((p / "run.json").read_text())),
                       "model": {"name": p.name},
                       "tasks": {"m_arenahard": {"version": "1.0", "languages": {"en": {
                           "data_sha256": DATA_SHA, "prompt_sha256": PROMPT_SHA}}}}} for p in (a, b)}
    out = root / "judge"
    path = out / "judgments" / f"{names[a]}__vs__{names[b]}" / "m_arenahard" / "en.jsonl"
    path.parent.mkdir(parents=True)
    recs = [{"prompt_id": f"p{i}", "order": order, "outcome": o}
            for i, pair_ in enumerate(outcomes) for order, o in zip(("ab", "ba"), pair_)]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    (out / "judge.json").write_text(json.dumps({
        "format": "glotbench-judge/1", "config": {"run_a": str(a), "runs_b": [str(b)]},
        "results": {}, "counts": {"judgments": len(recs)}, "usage": {},
        "provenance": {"runs": runs, "judge": {"spec": "openai:scripted"}, "prompt": {"sha256": "x"}}}))
    return out


@pytest.mark.parametrize("candidate_is_a", [False, True])
def test_win_rate_gate(tmp_path, candidate_is_a):
    n = 60
    b = make_run(tmp_path, "base", {"m_arenahard": {"en": arena_records(n)}})
    c = make_run(tmp_path, "cand", {"m_arenahard": {"en": arena_records(n)}})
    # from the candidate's side: 30 prompts won twice, 20 tied twice, 8 lost twice, 2 with an invalid verdict
    cand = [("w", "w")] * 30 + [("t", "t")] * 20 + [("l", "l")] * 8 + [("w", "i")] * 2
    letter = {"w": "a" if candidate_is_a else "b", "l": "b" if candidate_is_a else "a", "t": "tie", "i": "invalid"}
    judge = make_judge(tmp_path, *((c, b) if candidate_is_a else (b, c)),
                       [tuple(letter[x] for x in p) for p in cand])
    result = gate(b, c, replace(Policy(), margins={"m_arenahard": 0.05}), judgments=judge)
    cell = result["tasks"]["m_arenahard"]["metrics"]["win_rate"]["languages"]["en"]
    assert cell["invalid"] == 2 and cell["n_judgments"] == 120 and cell["n"] == 60
    assert cell["candidate"] == pytest.approx((62 + 0.5 * 40) / 118)  # ties half, invalid left out
    assert cell["delta"] == pytest.approx(cell["candidate"] - 0.5)
    assert cell["verdict"] == "pass" and result["verdict"] == "pass"
    assert result["provenance"]["judgments"]["pair"].startswith("cand" if candidate_is_a else "base")


def test_win_rate_regression_and_missing_judgments(tmp_path):
    b = make_run(tmp_path, "base", {"m_arenahard": {"en": arena_records(40)}})
    c = make_run(tmp_path, "cand", {"m_arenahard": {"en": arena_records(40)}})
    judge = make_judge(tmp_path, b, c, [("a", "a")] * 30 + [("tie", "b")] * 10)  # base (A) mostly wins
    result = gate(b, c, Policy(), judgments=judge)
    assert result["verdict"] == "regression"
    with pytest.raises(GlotbenchError, match="the runs share no task and language that can be gated"):
        gate(b, c, Policy())  # open-ended without judgments: nothing else to gate


def test_judge_directory_of_other_runs_is_refused(tmp_path):
    b = make_run(tmp_path, "base", {"m_arenahard": {"en": arena_records(4)}})
    c = make_run(tmp_path, "cand", {"m_arenahard": {"en": arena_records(4)}})
    other = make_run(tmp_path / "x", "other", {"m_arenahard": {"en": arena_records(5)}})
    judge = make_judge(tmp_path, b, other, [("a", "b")] * 5)
    with pytest.raises(GlotbenchError, match=f"judge directory {judge} did not judge run {c}"):
        gate(b, c, Policy(), judgments=judge)


def test_metrics_policy_gates_several_metrics(tmp_path):
    rng = np.random.default_rng(4)

    def mgsm(strict, flexible):
        return [{"doc_id": i, "strict_match": float(s), "flexible_extract": float(f), "parsed": bool(s)}
                for i, (s, f) in enumerate(zip(strict, flexible))]

    strict, flexible = rng.integers(0, 2, 100), np.ones(100)
    both = {"mgsm": ["strict_match", "flexible_extract"]}
    b = make_run(tmp_path, "b", {"mgsm": {"en": mgsm(strict, flexible)}}, metrics=both)
    c = make_run(tmp_path, "c", {"mgsm": {"en": mgsm(strict, flexible * 0)}}, metrics=both)
    assert list(gate(b, c, Policy())["tasks"]["mgsm"]["metrics"]) == ["strict_match"]  # headline only
    result = gate(b, c, replace(Policy(), metrics={"mgsm": ("strict_match", "flexible_extract")}))
    fams = result["tasks"]["mgsm"]["metrics"]
    assert fams["strict_match"]["verdict"] == "pass" and fams["flexible_extract"]["verdict"] == "regression"
    assert result["tasks"]["mgsm"]["verdict"] == "regression"  # a task takes its worst metric


def test_a_non_finite_score_is_refused_not_bootstrapped(tmp_path):
    recs = acc_records(baseline_correct(n=20))
    b = make_run(tmp_path, "b", {"xcopa": {"et": recs}})
    c = make_run(tmp_path, "c", {"xcopa": {"et": [*recs[:-1], {**recs[-1], "acc": float("nan")}]}})
    with pytest.raises(GlotbenchError, match=r"xcopa/et: example 19 has a non-finite 'acc' score \(nan\)") as err:
        gate(b, c, Policy())
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------------- bootstrap without finite replicates


def arena_pair(tmp_path, n: int, outcomes):
    b = make_run(tmp_path, "base", {"m_arenahard": {"en": arena_records(n)}})
    c = make_run(tmp_path, "cand", {"m_arenahard": {"en": arena_records(n)}})
    return b, c, make_judge(tmp_path, b, c, outcomes)


def test_win_rate_resamples_without_a_valid_verdict_are_counted(tmp_path):
    # 3 of 30 prompts have valid verdicts: about (27/30)^30 = 4 % of resamples draw none of them.
    b, c, judge = arena_pair(tmp_path, 30, [("b", "b")] * 3 + [("invalid", "invalid")] * 27)
    result = gate(b, c, replace(Policy(), margins={"m_arenahard": 0.05}), judgments=judge)
    fam = result["tasks"]["m_arenahard"]["metrics"]["win_rate"]
    cell = fam["languages"]["en"]
    assert cell["invalid"] == 54 and 10 < cell["replicates_dropped"] < 90
    assert cell["replicates"] + cell["replicates_dropped"] == 1000
    dropped = f"{cell['replicates_dropped']} of 1000 bootstrap resamples had no finite Δ"
    assert any(w.startswith("m_arenahard/win_rate/en: " + dropped) for w in result["warnings"])
    assert fam["pooled"]["replicates_dropped"] == cell["replicates_dropped"]
    assert "Warning: m_arenahard/win_rate/en: " + dropped in format_markdown(result)


def test_no_finite_replicate_is_inconclusive_and_said(tmp_path, monkeypatch):
    from glotbench.harness.gate import fixed

    b, c, judge = arena_pair(tmp_path, 20, [("b", "b")] * 20)
    monkeypatch.setattr(fixed, "bootstrap_rates", lambda counts, rng, resamples: np.full((resamples, 2), np.nan))
    result = gate(b, c, replace(Policy(), margins={"m_arenahard": 0.05}), judgments=judge)
    fam = result["tasks"]["m_arenahard"]["metrics"]["win_rate"]
    cell = fam["languages"]["en"]
    assert cell["candidate"] == 1.0 and cell["replicates"] == 0 and cell["replicates_dropped"] == 1000
    assert cell["ci"] is None and cell["p_noninferior"] == cell["p_regression"] == 1.0
    assert cell["verdict"] == fam["pooled"]["verdict"] == result["verdict"] == "inconclusive"
    assert [w.split(":")[0] for w in result["warnings"]] == ["m_arenahard/win_rate/en", "m_arenahard/win_rate/pooled"]
    assert all("no finite bootstrap replicate among 1000 resamples" in w for w in result["warnings"])
    json.dumps(result, allow_nan=False)  # no NaN hides in the result
    md = format_markdown(result)
    assert "| en | 20 | 50.0 | 100.0 | +50.0 | – | 5.0 (policy) | 1.000 | 1.000 | – | inconclusive |" in md
    assert "Warning: m_arenahard/win_rate/en: no finite bootstrap replicate" in md


# ---------------------------------------------------------------------------- Markdown


GOLDEN = """\
## glotbench gate: REGRESSION

Candidate `cand-model` (<tmp>/cand) against baseline `base-model` (<tmp>/base): 0 task(s) pass, 1 regress, 0 inconclusive.

### xcopa · acc: regression

| lang | n | baseline | candidate | Δ | 90% CI | margin | p non-inf. (BH) | p regr. (BH) | p Δ=0 | verdict |
|:--|--:|--:|--:|--:|:--|--:|--:|--:|--:|:--|
| et | 10 | 50.0 | 50.0 | +0.0 | [+0.0, +0.0] | 2.0 (policy) | 0.002 | 1.000 | 1.000 | pass |
| ht | 10 | 100.0 | 0.0 | -100.0 | [-100.0, -100.0] | 2.0 (policy) | 1.000 | 0.002 | 0.002 | regression |
| **pooled** | 20 | 75.0 | 25.0 | -50.0 | [-50.0, -50.0] | 2.0 (policy) | 1.000 | <0.001 | – | regression |

values in %, Δ and margin in points; p Δ=0: exact McNemar, two-sided

Not compared: xcopa/qu (only in the baseline run)

Warning: xcopa/et: the runs used different prompts (prompt_sha256 pppppppppppp vs qqqqqqqqqqqq); allowed by the policy

<sub>One-sided tests of H0: Δ ≤ −margin at α = 0.05; Benjamini–Hochberg across languages; 1000 seeded paired bootstrap resamples (seed 1234); default margins are the MDE at power 0.8; policy: default.</sub>
"""


def test_markdown_golden(tmp_path):
    half = [1, 0] * 5
    b = make_run(tmp_path, "base", {"xcopa": {"et": acc_records(half), "ht": acc_records([1] * 10),
                                              "qu": acc_records(half)}}, model="base-model")
    c = make_run(tmp_path, "cand", {"xcopa": {"et": acc_records(half), "ht": acc_records([0] * 10)}},
                 model="cand-model", prompt_sha={"xcopa/et": "q" * 64})
    policy = replace(load_policy(), margins={"xcopa": 0.02}, allow_prompt_change=True)
    md = format_markdown(gate(b, c, policy))
    assert md.replace(str(tmp_path), "<tmp>") == GOLDEN


def test_no_pass_on_a_margin_as_wide_as_the_metric(tmp_path):
    """At n = 2 the default margin (the MDE floor, ~1.08 for an accuracy) exceeds the largest
    possible drop: a candidate that got everything wrong must not 'pass' that language."""
    b = make_run(tmp_path, "b", {"xcopa": {"et": acc_records(np.array([1, 1]))}})
    c = make_run(tmp_path, "c", {"xcopa": {"et": acc_records(np.array([0, 0]))}})
    result = gate(b, c, Policy())
    et = result["tasks"]["xcopa"]["metrics"]["acc"]["languages"]["et"]
    assert et["margin"] >= 1 and et["margin_too_wide"] and et["verdict"] == "inconclusive"
    assert result["tasks"]["xcopa"]["verdict"] != "pass"
    assert any("xcopa/acc/et: margin" in w and "largest possible drop" in w for w in result["warnings"])
