"""Every registered task in every language: golden prompts, lm-eval parity, the task contract.

Golden prompts: the exact rendered prompt (all (context, continuation) pairs and the gold
index) of the first row of each task × language is pinned in ``tests/golden/prompts.json``,
so any change to a connector, a space or a character is a visible diff. After an intended
prompt change, regenerate and review the diff:

    GLOTBENCH_UPDATE_GOLDEN=1 python3 -m pytest tests/test_tasks.py

Data: the bundled copies (xcopa, xwinograd); xstorycloze has none, so it reads the
synthetic rows in ``tests/fixtures`` (see the README there).
"""

from __future__ import annotations

import ast
import functools
import importlib
import json
import os
from pathlib import Path

import pytest

from glotbench import tasks as catalogue
from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.records import (
    GenerationPrompt,
    GenerationResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    MultipleChoicePrompt,
)
from glotbench.harness.taskapi.data import LoadedData, available, load
from glotbench.harness.taskapi.registry import get_task, task_names
from glotbench.harness.taskapi.spec import Task

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
GOLDEN = REPO / "tests" / "golden" / "prompts.json"
UPDATE_GOLDEN = os.environ.get("GLOTBENCH_UPDATE_GOLDEN") == "1"

def has_offline_data(name: str, lang: str) -> bool:
    task = get_task(name)
    return available(task, lang, FIXTURES) is not None


# Every language with bundled data or a synthetic fixture (hub-only languages are covered by
# test_every_language_has_a_hub_config).
CASES = [(name, lang) for name in task_names() for lang in get_task(name).languages
         if has_offline_data(name, lang)]
IDS = [f"{name}/{lang}" for name, lang in CASES]
MC_CASES = [(n, x) for n, x in CASES if get_task(n).output_type == "multiple_choice"]
# Translation tasks are graded (chrF++), not right/wrong: their contract is in test_flores.py.
# Open-ended tasks have no right answer (the judge scores them): their contract is in test_judge.py.
GEN_CASES = [(n, x) for n, x in CASES if get_task(n).output_type == "generate" and not get_task(n).source_field
             and not get_task(n).judged]


@functools.cache
def data(name: str, lang: str) -> LoadedData:
    """The bundled rows where a copy ships with glotbench, else the test fixtures."""
    task = get_task(name)
    if available(task, lang, None) == "bundled":
        return load(task, lang, "bundled")
    return load(task, lang, "local", data_dir=FIXTURES)


def as_golden(prompt: MultipleChoicePrompt | GenerationPrompt) -> dict:
    if isinstance(prompt, GenerationPrompt):
        # The plain-text layout and the multi-turn chat layout, message by message.
        return {"plain": prompt.plain(), "target": prompt.target, "stop": list(prompt.stop),
                "max_new_tokens": prompt.max_new_tokens,
                "messages": [[m.role, m.content] for m in prompt.messages("multiturn")]}
    return {"pairs": [{"context": p.context, "continuation": p.continuation} for p in prompt.pairs],
            "gold": prompt.gold}


def render(name: str, lang: str, i: int = 0):
    loaded = data(name, lang)
    return get_task(name).prompt(loaded.samples[i], loaded.fewshot)


def first_prompt(name: str, lang: str) -> dict:
    return as_golden(render(name, lang))


# --- golden prompts ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def golden() -> dict:
    if UPDATE_GOLDEN:
        pinned = {f"{name}/{lang}": first_prompt(name, lang) for name, lang in CASES}
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(pinned, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return pinned
    if not GOLDEN.is_file():
        pytest.fail(f"{GOLDEN} is missing; create it with GLOTBENCH_UPDATE_GOLDEN=1 "
                    "python3 -m pytest tests/test_tasks.py and review it")
    return json.loads(GOLDEN.read_text(encoding="utf-8"))


def test_golden_covers_every_task_and_language(golden):
    assert sorted(golden) == sorted(IDS), "stale or missing entries: regenerate and review the diff"


@pytest.mark.parametrize(("name", "lang"), CASES, ids=IDS)
def test_golden_prompt(golden, name, lang):
    key = f"{name}/{lang}"
    if key not in golden:
        pytest.fail(f"no golden prompt for {key}: regenerate with GLOTBENCH_UPDATE_GOLDEN=1")
    assert first_prompt(name, lang) == golden[key], (
        f"the rendered prompt of {key} changed; if intended, regenerate with "
        "GLOTBENCH_UPDATE_GOLDEN=1 (and bump the task's version)")


def pinned(contexts: list[str], continuations: list[str], gold: int) -> dict:
    pairs = zip(contexts, continuations, strict=True)
    return {"pairs": [{"context": c, "continuation": k} for c, k in pairs], "gold": gold}


def test_golden_spot_checks(golden):
    # Hand-checked against the data rows (quoted), independently of the renderer.
    # xcopa zh: 该物品用气泡包装纸包着。 / 它很易碎。 / 它很小。 cause, label 0
    ctx = "该物品用气泡包装纸包着 因为"
    assert golden["xcopa/zh"] == pinned([ctx, ctx], [" 它很易碎。", " 它很小。"], 0)
    # xcopa et: Ese oli mullikilesse mässitud. / See oli õrn. / See oli väike. cause, label 0
    ctx = "Ese oli mullikilesse mässitud sest"
    assert golden["xcopa/et"] == pinned([ctx, ctx], [" see oli õrn.", " see oli väike."], 0)
    # xwinograd jp: 狙撃兵はテロリストを撃った。_は悪漢だったからだ。
    #   options 狙撃兵 / テロリスト, answer "2"
    prefix, rest = "狙撃兵はテロリストを撃った。", " は悪漢だったからだ。"
    contexts = [prefix + "狙撃兵", prefix + "テロリスト"]
    assert golden["xwinograd/jp"] == pinned(contexts, [rest, rest], 1)
    # xstorycloze en (synthetic fixture row 1)
    story = ("Mary wanted to bake a cake for her mother's birthday. "
             "She bought flour, eggs and sugar at the store. "
             "She spent the whole afternoon baking. "
             "In the evening she gave the cake to her mother.")
    endings = [" Her mother was very happy.", " Her mother threw the cake into the sea."]
    assert golden["xstorycloze/en"] == pinned([story, story], endings, 0)


# --- parity with the reference implementation (lm-eval 0.4.13) ---------------------------


def lm_eval_utils(bench: str):
    pytest.importorskip("lm_eval")
    return importlib.import_module(f"lm_eval.tasks.{bench}.utils")


@pytest.mark.parametrize("lang", get_task("xcopa").languages)
def test_xcopa_matches_lm_eval(lang):
    ref = lm_eval_utils("xcopa")
    doc_to_text = getattr(ref, f"doc_to_text_{lang}", None)
    assert doc_to_text is not None, f"lm-eval has no xcopa connector for {lang}"
    task = get_task("xcopa")
    for sample in data("xcopa", lang).samples:
        row = dict(sample.fields)
        prompt = task.render(sample)
        assert {p.context for p in prompt.pairs} == {doc_to_text(row)}, sample.doc_id
        assert [p.continuation for p in prompt.pairs] == [" " + c for c in ref.doc_to_choice(row)]
        assert prompt.gold == row["label"]


@pytest.mark.parametrize("lang", get_task("xwinograd").languages)
def test_xwinograd_matches_lm_eval(lang):
    ref = lm_eval_utils("xwinograd")
    task = get_task("xwinograd")
    for sample in data("xwinograd", lang).samples:
        row = dict(sample.fields)
        prompt = task.render(sample)
        assert [p.context for p in prompt.pairs] == ref.doc_to_choice(row), sample.doc_id
        assert {p.continuation for p in prompt.pairs} == {" " + ref.doc_to_target(row)}
        assert prompt.gold == ref.doc_to_text(row)


def lm_eval_config(relpath: str) -> dict:
    """An lm-eval task YAML with its ``include`` chain merged (the including file wins)."""
    lm_eval = pytest.importorskip("lm_eval")
    import yaml

    path = Path(lm_eval.__file__).parent / "tasks" / relpath
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    if "include" in config:
        base = lm_eval_config(str(Path(relpath).parent / config.pop("include")))
        config = {**base, **config}
    return config


@pytest.mark.parametrize("lang", get_task("xstorycloze").languages)
def test_xstorycloze_matches_lm_eval_template(lang):
    # lm-eval renders these Jinja templates with StrictUndefined and literal_evals the
    # choice list and the digit target (lm_eval/api/task.py); the same is done here.
    import jinja2

    task = get_task("xstorycloze")
    config = lm_eval_config(task.lmeval_yaml.format(lang=lang))
    assert config["dataset_path"] == task.data.hub_id
    assert config["dataset_name"] == lang
    assert config["validation_split"] == task.data.split
    assert config["output_type"] == "multiple_choice"
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    text, choice, target = (env.from_string(config[k])
                            for k in ("doc_to_text", "doc_to_choice", "doc_to_target"))
    delimiter = config.get("target_delimiter", " ")
    for sample in data("xstorycloze", lang).samples:
        row = dict(sample.fields)
        prompt = task.render(sample)
        assert {p.context for p in prompt.pairs} == {text.render(**row)}
        choices = ast.literal_eval(choice.render(**row))
        assert [p.continuation for p in prompt.pairs] == [delimiter + c for c in choices]
        assert prompt.gold == ast.literal_eval(target.render(**row))


# --- the task contract -------------------------------------------------------------------


def result(logprob: float) -> LoglikelihoodResult:
    return LoglikelihoodResult(logprob=logprob, is_greedy=False, n_tokens=3)


def generated(text: str) -> GenerationResult:
    return GenerationResult(text=text, n_tokens=len(text), finish="stop")


@pytest.mark.parametrize(("name", "lang"), GEN_CASES, ids=[f"{n}/{x}" for n, x in GEN_CASES])
def test_generative_contract(name, lang):
    task = get_task(name)
    loaded = data(name, lang)
    assert loaded.samples and loaded.source.startswith(("bundled:", "local:"))
    assert task.scorer is not None and task.answer_as_text is not None
    for sample in loaded.samples[:50]:
        prompt = task.prompt(sample, loaded.fewshot)
        assert isinstance(prompt, GenerationPrompt)
        assert prompt.question and prompt.target and prompt.max_new_tokens > 0
        for layout in (prompt.plain(), *(m.content for m in prompt.messages("multiturn"))):
            assert layout.strip() == layout or layout.endswith(":") or layout.endswith("："), repr(layout[-20:])
    prompt = task.prompt(loaded.samples[0], loaded.fewshot)
    right = task.score(prompt, generated(task.answer_as_text(prompt.target, lang)), lang)
    assert right[task.primary] == 1.0 and right["parsed"] is True
    wrong_answer = "A" if prompt.target != "A" and not prompt.target.isdigit() else str(int(prompt.target) + 1) \
        if prompt.target.isdigit() else "B"
    wrong = task.score(prompt, generated(task.answer_as_text(wrong_answer, lang)), lang)
    assert wrong[task.primary] == 0.0 and wrong["parsed"] is True
    garbage = task.score(prompt, generated("I do not know."), lang)
    assert garbage[task.primary] == 0.0 and garbage["parsed"] is False


@pytest.mark.parametrize(("name", "lang"), MC_CASES, ids=[f"{n}/{x}" for n, x in MC_CASES])
def test_contract(name, lang):
    task = get_task(name)
    assert isinstance(task, Task)
    loaded = data(name, lang)
    assert len(loaded.samples) > 0
    assert loaded.source.startswith(("bundled:", "local:"))
    for sample in loaded.samples:
        prompt = task.prompt(sample, loaded.fewshot)
        assert isinstance(prompt, MultipleChoicePrompt)
        assert len(prompt.pairs) >= 2
        assert all(isinstance(p, LoglikelihoodRequest) for p in prompt.pairs)
        assert all(p.context and p.continuation for p in prompt.pairs)
        assert 0 <= prompt.gold < len(prompt.pairs)
        # word-boundary spaces belong to the continuation (the backend protocol's convention)
        assert not any(p.context[-1].isspace() for p in prompt.pairs)

    prompt = task.prompt(loaded.samples[0], loaded.fewshot)
    n, gold = len(prompt.pairs), prompt.gold
    right = task.score(prompt, [result(-1.0 if i == gold else -5.0) for i in range(n)])
    assert right["acc"] == 1.0 and right["pred"] == gold
    for wrong in (i for i in range(n) if i != gold):
        scored = task.score(prompt, [result(-1.0 if i == wrong else -5.0) for i in range(n)])
        assert scored["acc"] == 0.0 and scored["pred"] == wrong
    tied = task.score(prompt, [result(-2.0)] * n)
    assert tied["pred"] == 0 and tied["acc"] == float(gold == 0)


@pytest.mark.parametrize("name", [n for n in task_names() if get_task(n).output_type == "multiple_choice"])
def test_ties_go_to_the_first_choice(name):
    task = get_task(name)
    pairs = tuple(LoglikelihoodRequest("a", c) for c in (" b", " c", " d"))
    scores = [result(-3.0), result(-1.0), result(-1.0)]
    assert task.score(MultipleChoicePrompt(pairs, 1), scores) == {"pred": 1, "acc": 1.0}
    assert task.score(MultipleChoicePrompt(pairs, 2), scores) == {"pred": 1, "acc": 0.0}


@pytest.mark.parametrize("name", task_names())
def test_task_metadata(name):
    task = get_task(name)
    assert task.name == name
    assert task.languages and len(set(task.languages)) == len(task.languages)
    assert 0 <= task.chance < 1
    assert "{lang}" in task.data.local
    assert task.data.fields


@pytest.mark.parametrize("name", task_names())
def test_every_task_has_offline_languages_and_hub_configs(name):
    task = get_task(name)
    assert any(has_offline_data(name, lang) for lang in task.languages), f"{name}: no fixture or bundled data"
    assert set(task.data.hub_configs) <= set(task.languages)


# --- registry ----------------------------------------------------------------------------


def test_registry_and_suites_are_consistent():
    assert task_names() == list(catalogue.REGISTRY)
    for name, target in catalogue.REGISTRY.items():
        module, _, attr = target.partition(":")
        assert module and attr, f"{name}: {target!r} is not 'module:attribute'"
        assert getattr(importlib.import_module(module), attr) is get_task(name)
    for suite, members in catalogue.SUITES.items():
        assert members, suite
        assert suite not in catalogue.REGISTRY, f"suite {suite!r} shadows a task"
        unknown = [m for m in members if m not in catalogue.REGISTRY]
        assert not unknown, f"suite {suite!r} names unregistered tasks {unknown}"


def test_unknown_task_suggests_close_match():
    with pytest.raises(GlotbenchError) as exc:
        get_task("xcopaa")
    assert "did you mean 'xcopa'" in str(exc.value)
    assert "xstorycloze" in str(exc.value)  # lists the valid names
