"""The run.json / judge.json schema: typed accessors, strict reading (one line naming the file
for anything missing, truncated or foreign), the one open-ended and translation definitions,
the one comparability check, and the environment differences the gate turns into a note."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.store.schema import (
    Environment,
    EnvironmentDifference,
    JudgeRecord,
    RunRecord,
    differences,
    environment_differences,
    kind_of,
)

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "results" / "reference-embedded"


def run_json(tasks: dict | None = None, **provenance) -> dict:
    """A minimal run.json: ``tasks`` maps task → {lang: (n, data_sha, prompt_sha)}."""
    tasks = tasks if tasks is not None else {"xcopa": {"et": (4, "d" * 64, "p" * 64)}}
    results = {t: {lang: {"acc": 0.5, "n": n, "stderr": 0.1, "ci95": [0.3, 0.7]}
                   for lang, (n, _, _) in langs.items()} for t, langs in tasks.items()}
    prov = {t: {"version": "1.0", "metrics": ["acc"], "prompting": {"chat_template": False},
                "languages": {lang: {"data_source": "bundled", "data_sha256": d, "prompt_sha256": p,
                                     "n_available": n} for lang, (n, d, p) in langs.items()}}
            for t, langs in tasks.items()}
    return {"format": "glotbench-run/1", "created": "2026-01-01T00:00:00+00:00",
            "config": {"tasks": list(tasks), "model": "m"}, "results": results,
            "averages": {t: {"macro": 0.5, "micro": 0.5, "n": 4, "languages": 1} for t in tasks},
            "provenance": {"glotbench_version": "0.1.0", "model": {"name": "m", "dtype": "float32", "device": "cpu"},
                           "tasks": prov, **provenance}}


def write_run(root: Path, name: str, data: dict, samples: dict[tuple[str, str], list[dict]] | None = None) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps(data), encoding="utf-8")
    for (task, lang), recs in (samples or {}).items():
        f = run / "samples" / task / f"{lang}.jsonl"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return run


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and exc.value.fix, text
    return text


# ---------------------------------------------------------------------------- strict reading


def test_the_committed_reference_run_reads():
    run = RunRecord.read(REFERENCE)
    assert run.tasks() == ["xcopa", "xwinograd", "flores"] and run.name == "reference-embedded"
    assert run.headline("flores") == "chrf++" and run.metrics("xcopa") == ["acc"]
    assert run.n("xcopa", "et") == 2 and run.language_provenance("xcopa", "et").n_available >= 2
    assert run.versions["torch"] == run.host["torch"]  # an older run: torch only, from the host
    assert run.environment.device == "cpu" and run.environment.dtype == "float32"
    assert "torch" not in run.environment.host and run.environment.host["cpus"] >= 1
    assert len(run.samples("xcopa", "et")) == 2 and kind_of(REFERENCE) == "run"


@pytest.mark.parametrize("content, message", [
    (None, r"is not a finished glotbench run \(no run.json\)"),
    (b'{"format": "glotbench-run/1", "results": {', r"run.json is not valid JSON \(.* truncated or corrupt\)"),
    (b"", r"is not valid JSON"),
    (b"\xff\xfe\x00garbage", r"run.json is not UTF-8 text"),
    (b"[1, 2]", r"run.json is not a JSON object"),
    (b'{"format": "lm-eval/0.4"}', r"is not a glotbench run \(format 'lm-eval/0.4'\)"),
    (b'{"format": "glotbench-run/1", "results": {}, "provenance": {}, "averages": {}}',
     r"lacks its 'config' section"),
    (b'{"format": "glotbench-run/1", "results": {}, "provenance": {}, "averages": {}, "config": {}}',
     r"lacks provenance.tasks"),
])
def test_bad_run_json_is_one_line(tmp_path, content, message):
    run = tmp_path / "run"
    run.mkdir()
    if content is not None:
        (run / "run.json").write_bytes(content)
    with pytest.raises(GlotbenchError, match=message) as err:
        RunRecord.read(run)
    assert str(run) in one_line(err)


def test_a_truncated_real_run_json_is_one_line(tmp_path):
    text = (REFERENCE / "run.json").read_text(encoding="utf-8")
    for cut in (len(text) // 3, len(text) - 2):
        run = tmp_path / f"cut{cut}"
        run.mkdir()
        (run / "run.json").write_text(text[:cut], encoding="utf-8")
        with pytest.raises(GlotbenchError, match="is not valid JSON") as err:
            RunRecord.read(run)
        one_line(err)


def test_samples_missing_truncated_or_damaged(tmp_path):
    recs = [{"doc_id": i, "acc": 1.0} for i in range(3)]
    run = RunRecord.read(write_run(tmp_path, "r", run_json(), {("xcopa", "et"): recs}))
    assert run.samples("xcopa", "et") == recs and list(run.samples_by_id("xcopa", "et")) == [0, 1, 2]
    with pytest.raises(GlotbenchError, match=r"\(xcopa/ht\) lacks its per-example records") as err:
        run.samples("xcopa", "ht")
    one_line(err)
    f = run.samples_file("xcopa", "et")
    f.write_text(f.read_text()[:-6])  # cut inside the last record
    with pytest.raises(GlotbenchError, match=r"et.jsonl line 3 is not valid JSON") as err:
        run.samples("xcopa", "et")
    one_line(err)
    f.write_text(json.dumps({"doc_id": 1}) + "\n" + json.dumps({"doc_id": 1}) + "\n")
    with pytest.raises(GlotbenchError, match=r"record 2 repeats doc_id 1"):
        run.samples_by_id("xcopa", "et")
    f.write_text(json.dumps({"acc": 1}) + "\n")
    with pytest.raises(GlotbenchError, match=r"record 1 has no doc_id"):
        run.samples_by_id("xcopa", "et")


# ---------------------------------------------------------------------------- accessors


def test_accessors(tmp_path):
    data = run_json({"xcopa": {"et": (4, "d" * 64, "p" * 64), "ht": (3, "e" * 64, "p" * 64)}})
    data["results"]["xcopa"]["et"]["metrics"] = {"acc_norm": {"value": 0.75, "n": 4, "stderr": 0.2,
                                                              "ci95": [0.5, 1.0]}}
    run = RunRecord.read(write_run(tmp_path, "r", data))
    assert run.tasks() == ["xcopa"] and run.languages("xcopa") == ["et", "ht"]
    assert run.has("xcopa") and run.has("xcopa", "ht") and not run.has("xcopa", "qu") and not run.has("mgsm")
    assert run.version("xcopa") == "1.0" and run.headline("xcopa") == "acc" and run.version("mgsm") is None
    assert run.metric("xcopa", "et", "acc").ci95 == (0.3, 0.7)  # the headline, from the cell itself
    assert run.metric("xcopa", "et", "acc_norm").value == 0.75  # another metric, from cell.metrics
    assert run.metric("xcopa", "et", "f1") is None and run.metric("xcopa", "qu", "acc") is None
    lp = run.language_provenance("xcopa", "ht")
    assert (lp.data_sha256, lp.n_available, lp.data_source) == ("e" * 64, 3, "bundled")
    assert run.language_provenance("xcopa", "qu").data_sha256 is None
    assert run.averages("xcopa")["macro"] == 0.5 and run.prompting("xcopa") == {"chat_template": False}
    assert run.sha256 == RunRecord.read(run.path).sha256 and not run.imported
    assert run.scored_tasks() == ["xcopa"]


@pytest.mark.parametrize("task, headline, open_ended, translation", [
    ("m_arenahard", "new_tokens", True, False),  # known: the registry says judged
    ("xcopa", "acc", False, False),
    ("flores", "chrf++", False, True),
    ("dolly", "new_tokens", True, False),
    ("my_custom_chat", "new_tokens", True, False),  # unknown to this version: read from the run
    ("my_custom_mc", "acc", False, False),
    ("my_custom_mt", "chrf++", False, True),
])
def test_open_ended_and_translation(tmp_path, task, headline, open_ended, translation):
    data = run_json({task: {"en": (2, "d" * 64, "p" * 64)}})
    data["provenance"]["tasks"][task]["metrics"] = [headline]
    run = RunRecord.read(write_run(tmp_path, "r", data))
    assert run.open_ended(task) is open_ended and run.translation(task) is translation
    assert run.scored_tasks() == ([] if open_ended else [task])


# ---------------------------------------------------------------------------- comparability


def test_differences(tmp_path):
    a = RunRecord.read(write_run(tmp_path, "a", run_json(
        {"xcopa": {"et": (4, "d" * 64, "p" * 64), "ht": (4, "d" * 64, "p" * 64), "qu": (4, "d" * 64, "p" * 64)}})))
    same = RunRecord.read(write_run(tmp_path, "same", a.data))
    assert differences(a, same, "xcopa") == [] and differences(a, same, "xcopa", "et") == []
    other = run_json({"xcopa": {"et": (4, "e" * 64, "q" * 64), "ht": (5, "d" * 64, "p" * 64)}})
    other["provenance"]["tasks"]["xcopa"]["version"] = "2.0"
    b = RunRecord.read(write_run(tmp_path, "b", other))
    found = differences(a, b, "xcopa")  # qu is in one run only: not a difference, a gap
    assert [(d.kind, d.lang) for d in found] == [("version", None), ("data_sha256", "et"),
                                                  ("prompt_sha256", "et"), ("n", "ht")]
    assert [d.describe() for d in found] == [
        "xcopa: task version differs (version 1.0 vs 2.0)",
        "xcopa/et: the runs scored different data (data_sha256 dddddddddddd vs eeeeeeeeeeee)",
        "xcopa/et: the runs used different prompts (prompt_sha256 pppppppppppp vs qqqqqqqqqqqq)",
        "xcopa/ht: the runs scored different numbers of examples (n 4 vs 5)"]
    assert [d.kind for d in differences(a, b, "xcopa", "et", kinds=("data_sha256",))] == ["data_sha256"]
    assert differences(a, b, "xcopa", "ht", kinds=("data_sha256", "prompt_sha256")) == []
    # another --limit changes the prompt hash too (it covers the items scored): only n is named
    limited = RunRecord.read(write_run(tmp_path, "limited", run_json({"xcopa": {"et": (2, "d" * 64, "q" * 64)}})))
    assert [d.kind for d in differences(a, limited, "xcopa", "et")] == ["n"]


def env(versions=None, host=None, device="cpu", dtype="float32") -> Environment:
    return Environment(versions or {}, host or {}, device, dtype)


def test_environment_differences():
    here = env({"torch": "2.13.0+cpu", "transformers": "4.57.1"}, {"platform": "Linux-a", "cpus": 2})
    assert environment_differences(here, here) == []
    there = env({"torch": "2.13.0+cpu", "transformers": "5.24.0", "tokenizers": "0.22.1"},
                {"platform": "Linux-b", "cpus": 2, "hostname": "box"}, device="cuda")
    found = environment_differences(here, there)
    assert found == [EnvironmentDifference("tokenizers", None, "0.22.1"),
                     EnvironmentDifference("transformers", "4.57.1", "5.24.0"),
                     EnvironmentDifference("device", "cpu", "cuda"),
                     EnvironmentDifference("platform", "Linux-a", "Linux-b")]  # hostname: one side only
    assert [d.describe() for d in found[:2]] == ["tokenizers not recorded vs 0.22.1",
                                                 "transformers 4.57.1 vs 5.24.0"]
    assert environment_differences(env(device=None), env(device="cuda")) == []  # unknown is not a difference


def test_environment_of_old_and_new_runs(tmp_path):
    old = RunRecord.read(write_run(tmp_path, "old", run_json(host={"torch": "2.13.0+cpu", "cpus": 2})))
    new = RunRecord.read(write_run(tmp_path, "new", run_json(
        host={"torch": "2.13.0+cpu", "cpus": 16}, device="cpu",
        versions={"torch": "2.13.0+cpu", "transformers": "5.24.0", "numpy": "2.3.4"})))
    assert old.versions == {"torch": "2.13.0+cpu"} and new.versions["transformers"] == "5.24.0"
    keys = [d.key for d in environment_differences(old.environment, new.environment)]
    assert keys == ["numpy", "transformers", "cpus"]


# ---------------------------------------------------------------------------- judge.json


def judge_json(run_a: Path, run_b: Path) -> dict:
    runs = {p.name: {"path": str(p), "run_sha256": "s" * 64,
                     "tasks": {"m_arenahard": {"languages": {"en": {"data_sha256": "d" * 64}}}}}
            for p in (run_a, run_b)}
    return {"format": "glotbench-judge/1", "config": {"run_a": str(run_a)}, "results": {}, "counts": {},
            "usage": {}, "provenance": {"runs": runs, "judge": {"spec": "openai:gpt-4o"},
                                        "prompt": {"sha256": "x" * 64}}}


def test_judge_record(tmp_path):
    out = tmp_path / "judge"
    out.mkdir()
    (out / "judge.json").write_text(json.dumps(judge_json(tmp_path / "a", tmp_path / "b")))
    rec = JudgeRecord.read(out)
    assert rec.run_a == tmp_path / "a" and rec.judge_spec == "openai:gpt-4o" and rec.prompt_sha256 == "x" * 64
    runs = rec.judged_runs()
    assert set(runs) == {"a", "b"} and runs["b"].path == tmp_path / "b" and runs["b"].run_sha256 == "s" * 64
    assert runs["a"].data_sha256("m_arenahard", "en") == "d" * 64 and runs["a"].data_sha256("m_arenahard", "fr") is None
    f = rec.judgments_file("a__vs__b", "m_arenahard", "en")
    f.parent.mkdir(parents=True)
    f.write_text('{"prompt_id": "p0", "order": "ab", "outcome": "a"}\n{"prompt_id": "p0", "or')
    with pytest.raises(GlotbenchError, match="en.jsonl line 2 is not valid JSON") as err:
        rec.judgments("a__vs__b", "m_arenahard", "en")
    one_line(err)
    assert kind_of(out) == "judge" and kind_of(tmp_path) is None


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("usage"), "lacks its 'usage' section"),
    (lambda d: d.update(format="glotbench-run/1"), "is not a glotbench judgment"),
])
def test_bad_judge_json_is_one_line(tmp_path, edit, message):
    data = judge_json(tmp_path / "a", tmp_path / "b")
    edit(data)
    (tmp_path / "judge.json").write_text(json.dumps(data))
    with pytest.raises(GlotbenchError, match=message) as err:
        JudgeRecord.read(tmp_path)
    one_line(err)
    (tmp_path / "judge.json").write_text(json.dumps(data)[:40])
    with pytest.raises(GlotbenchError, match="judge.json is not valid JSON"):
        JudgeRecord.read(tmp_path)
