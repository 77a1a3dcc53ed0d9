"""INCLUDE (tasks/include.py): literals for all 44 languages, rendering, answer extraction
(golden cases as data), scoring, parity of the log-likelihood prompt with lm-eval 0.4.13,
and loading the synthetic fixtures (tests/fixtures/include, see the README there)."""

from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType

import pytest

from glotbench.harness.core.errors import DataError
from glotbench.harness.core.records import (
    GenerationPrompt,
    GenerationResult,
    MultipleChoicePrompt,
    Sample,
)
from glotbench.harness.taskapi.data import load
from glotbench.tasks import include
from glotbench.tasks.include import TASK_COT, TASK_LOGLIK, extract

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURE_LANGS = ("de", "zh", "el")
ROW = {"language": "X", "country": "X", "domain": "STEM", "subject": "Math", "level": "High school",
       "regional_feature": "region agnostic", "question": "  What is 2 + 2?\n",
       "option_a": "3", "option_b": "4", "option_c": "5", "option_d": "22", "answer": 1}
# lm-eval 0.4.13's include/default/<Language> folders (= the hub configs), in its order.
NAMES = ("Albanian, Arabic, Armenian, Azerbaijani, Basque, Belarusian, Bengali, Bulgarian, Chinese, "
         "Croatian, Dutch, Estonian, Finnish, French, Georgian, German, Greek, Hebrew, Hindi, "
         "Hungarian, Indonesian, Italian, Japanese, Kazakh, Korean, Lithuanian, Malay, Malayalam, "
         "Nepali, North Macedonian, Persian, Polish, Portuguese, Russian, Serbian, Spanish, Tagalog, "
         "Tamil, Telugu, Turkish, Ukrainian, Urdu, Uzbek, Vietnamese").split(", ")


def sample(lang: str, **changes) -> Sample:
    return Sample(0, lang, MappingProxyType({**ROW, **changes}))


def generated(text: str) -> GenerationResult:
    return GenerationResult(text=text, n_tokens=len(text.split()), finish="eos")


# --- metadata and literals ----------------------------------------------------------------


def test_languages_and_hub_configs():
    assert len(TASK_COT.languages) == 44 and TASK_LOGLIK.languages == TASK_COT.languages
    configs = [TASK_COT.data.hub_configs[lang] for lang in TASK_COT.languages]
    assert configs == NAMES
    assert set(TASK_COT.data.hub_configs) == set(TASK_COT.languages)
    for task in (TASK_COT, TASK_LOGLIK):
        assert task.version == "1.0" and task.chance == 0.25 and task.metrics == ("acc",)
        assert task.data.hub_id == "CohereForAI/include-base-44" and task.data.split == "test"
        assert task.data.local == "include/{lang}.jsonl" and task.data.licence == "Apache-2.0"
        assert task.lmeval_yaml is None
    assert (TASK_COT.name, TASK_COT.output_type, TASK_COT.scorer) == ("include", "generate", include.score)
    assert (TASK_LOGLIK.name, TASK_LOGLIK.output_type) == ("include_loglik", "multiple_choice")


def test_hub_configs_are_lm_eval_folders():
    lm_eval = pytest.importorskip("lm_eval")
    base = Path(lm_eval.__file__).parent / "tasks" / "include" / "default"
    folders = sorted(p.name for p in base.iterdir() if p.is_dir())
    assert folders == sorted(TASK_COT.data.hub_configs.values())
    for name in folders:
        template = next(base.joinpath(name).glob("_*_template_yaml")).read_text(encoding="utf-8")
        assert f"dataset_name: {name}\n" in template


@pytest.mark.parametrize("lang", TASK_COT.languages)
def test_literals_exist_and_agree(lang):
    instruction, answer = include.literal(lang, "instruction"), include.literal(lang, "answer")
    assert instruction.strip() == instruction and answer.strip() == answer
    # the instruction shows the exact answer line that the native extraction reads
    assert re.search(re.escape(answer) + r" ?[:：] ?X", instruction), (lang, instruction)
    assert all(re.search(rf"(?<![A-Za-z]){x}(?![A-Za-z])", instruction) for x in "ABCD"), lang
    assert extract(f"…\n\n{answer}: C", lang) == ("C", "native")
    assert extract(f"…\n\n**{answer}:** D", lang) == ("D", "native")


def test_unknown_language_fails_loudly():
    with pytest.raises(DataError, match=r"'instruction'.*'xx'"):
        include.literal("xx", "instruction")
    for render in (include.render_cot, include.render_loglik):
        with pytest.raises(DataError, match="'xx'"):
            render(sample("xx"))
    with pytest.raises(DataError, match="'xx'"):
        extract("Answer: A", "xx")


@pytest.mark.parametrize("answer", [4, -1, "B", None, True])
def test_bad_gold_fails_loudly(answer):
    with pytest.raises(DataError, match="answers are 0, 1, 2 or 3"):
        include.render_cot(sample("de", answer=answer))


# --- rendering ----------------------------------------------------------------------------


@pytest.mark.parametrize("lang", TASK_COT.languages)
def test_render_every_language(lang):
    prompt = TASK_COT.prompt(sample(lang))
    assert isinstance(prompt, GenerationPrompt)
    body = "What is 2 + 2?\n\nA. 3\nB. 4\nC. 5\nD. 22"
    assert prompt.question == include.literal(lang, "instruction") + "\n\n" + body
    assert (prompt.target, prompt.system, prompt.shots, prompt.stop) == ("B", None, (), ())
    assert prompt.max_new_tokens == 1024 and prompt.plain() == prompt.question

    mc = TASK_LOGLIK.prompt(sample(lang))
    assert isinstance(mc, MultipleChoicePrompt) and mc.gold == 1
    context = ("The following is multiple-choice question about STEM."
               "What is 2 + 2?\nA. 3\nB. 4\nC. 5\n D. 22\nAnswer:")
    assert [(p.context, p.continuation) for p in mc.pairs] == [(context, " " + x) for x in "ABCD"]


def test_golden_cot_prompts():
    # Pinned: a literal change is a visible diff (fixture row 1 of de and zh).
    de = load(TASK_COT, "de", "local", FIXTURES).samples[0]
    assert TASK_COT.prompt(de).question == (
        "Beantworte die folgende Multiple-Choice-Frage. Denke Schritt für Schritt nach und beende "
        'deine Antwort mit einer Zeile der Form "Antwort: X", wobei X einer der Buchstaben A, B, C '
        "oder D ist.\n\nWie viele Seiten hat ein Sechseck?\n\nA. Fünf\nB. Sechs\nC. Sieben\nD. Acht")
    zh = load(TASK_COT, "zh", "local", FIXTURES).samples[0]
    assert TASK_COT.prompt(zh).question == (
        "请回答下面的单项选择题。请逐步思考，并以“答案：X”格式的一行结束你的回答，其中 X 是 A、B、C、D 之一。"
        "\n\n在标准大气压下，水的沸点是多少摄氏度？\n\nA. 90\nB. 100\nC. 110\nD. 120")


def test_hebrew_driving_license_description():
    context = TASK_LOGLIK.prompt(sample("he", domain="Driving License")).pairs[0].context
    assert context.startswith("The following is multiple-choice question about Driving license.What")
    context = TASK_LOGLIK.prompt(sample("de", domain="Driving License")).pairs[0].context
    assert context.startswith("The following is multiple-choice question about Driving License.What")


# --- answer extraction: golden cases (language, model output, letter, stage) ---------------

CASES = [
    ("de", "Ein Sechseck hat sechs Seiten.\n\nAntwort: B", "B", "native"),
    ("de", "Schritt 1: …\n\n**Antwort:** C", "C", "native"),
    ("de", "Also ist es Kohlendioxid.\n\nAntwort: **D**", "D", "native"),
    ("de", "**Antwort: (A)**", "A", "native"),
    ("de", "Die Ampel ist rot, also anhalten.\n\n**Antwort:**\n\nA", "A", "native"),
    ("de", "Antwort: A ist falsch, B auch.\n\nAntwort: D", "D", "native"),
    ("de", "Antwort: C\n\nAnswer: D", "C", "native"),
    ("zh", "水在一个标准大气压下100摄氏度沸腾，所以选B。\n\n答案：B", "B", "native"),
    ("zh", "静夜思是李白写的。\n**答案：Ａ**", "A", "native"),
    ("zh", "最终答案: C", "C", "native"),
    ("ja", "段階的に考えます。…\n\n答え：C", "C", "native"),
    ("ko", "단계별로 생각해 봅시다. …\n\n정답: D", "D", "native"),
    ("fr", "Réfléchissons étape par étape…\n\nRéponse : A", "A", "native"),
    ("es", "Respuesta: B. A los 18 años se puede conducir.", "B", "native"),
    ("ar", "لنفكر خطوة بخطوة.\nالإجابة: D", "D", "native"),
    ("ar", "الإجابة:\u200f B", "B", "native"),
    ("ru", "Рассуждаем шаг за шагом…\nОтвет: A", "A", "native"),
    ("el", "Η καρδιά αντλεί το αίμα.\n\nΑΠΑΝΤΗΣΗ: D", "D", "native"),
    ("hy", "Պատասխանը: B", "B", "native"),
    ("bn", "উত্তরঃ C", "C", "native"),
    ("vi", "Suy nghĩ từng bước…\n\n**Đáp án: B**", "B", "native"),
    ("tr", "YANIT: C", "C", "native"),
    ("pl", "Odpowiedz: $C$", "C", "native"),
    # several letters: extraction stops with None (no fallback to a last letter)
    ("de", "Antwort: A und C", None, "native"),
    ("de", "Antwort: A, C", None, "native"),
    ("pt", "Resposta: B e D", None, "native"),
    ("zh", "答案：A和C", None, "native"),
    # fallbacks: the English answer line, then the last standalone letter of the last line
    ("de", "Let me think step by step.\n\nAnswer: D", "D", "english"),
    ("el", "Σκέψη…\n**Answer:** C", "C", "english"),
    ("de", "Die richtige Option ist (B).", "B", "last_line"),
    ("de", "Antwort: Die richtige Antwort ist C.", "C", "last_line"),
    ("zh", "所以正确选项是 D", "D", "last_line"),
    ("zh", "综上所述，应选B。", "B", "last_line"),
    ("zh", "答案：B选项正确。", "B", "native"),
    # nothing usable
    ("de", "Antwort: E", None, None),
    ("de", "Ich weiß es nicht.", None, None),
    ("de", "", None, None),
    ("de", "Antwort: c", None, None),  # capital letters only
    ("ru", "Ответ: В", None, None),  # Cyrillic В is not read as B (nor as C)
    ("el", "Απάντηση: Β", None, None),  # Greek Beta likewise
]


@pytest.mark.parametrize(("lang", "text", "letter", "stage"), CASES)
def test_extract(lang, text, letter, stage):
    assert extract(text, lang) == (letter, stage)


def test_scorer():
    prompt = TASK_COT.prompt(sample("de"))  # gold B
    assert TASK_COT.score(prompt, generated("…\nAntwort: B"), "de") == {"acc": 1.0, "pred": "B", "parsed": True}
    assert TASK_COT.score(prompt, generated("…\nAntwort: C"), "de") == {"acc": 0.0, "pred": "C", "parsed": True}
    for bad in ("Ich weiß es nicht.", "Antwort: E", "Antwort: B oder C", ""):
        assert TASK_COT.score(prompt, generated(bad), "de") == {"acc": 0.0, "pred": None, "parsed": False}


@pytest.mark.parametrize("lang", TASK_COT.languages)
def test_gold_scores_one_wrong_scores_zero(lang):
    prompt = TASK_COT.prompt(sample(lang))
    answer = include.literal(lang, "answer")
    assert TASK_COT.score(prompt, generated(f"…\n{answer}: B"), lang)["acc"] == 1.0
    assert TASK_COT.score(prompt, generated(f"…\n{answer}: A"), lang)["acc"] == 0.0


# --- parity of the log-likelihood prompt with lm-eval 0.4.13 -------------------------------


def lm_eval_yaml(path: Path) -> dict:
    """An lm-eval YAML with its ``include`` chain merged; ``!function`` tags kept as text."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    config = yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)  # noqa: S506
    if "include" in config:
        config = {**lm_eval_yaml(path.parent / config.pop("include")), **config}
    return config


def subtask_yaml(lang: str, domain: str) -> Path:
    lm_eval = pytest.importorskip("lm_eval")
    name = TASK_COT.data.hub_configs[lang]
    slug = lambda s: s.lower().replace(" & ", "_").replace(" ", "_")  # noqa: E731 (lm-eval's utils)
    return (Path(lm_eval.__file__).parent / "tasks" / "include" / "default" / name
            / f"include_base_44_{slug(name)}_{slug(domain)}.yaml")


@pytest.mark.parametrize("lang", FIXTURE_LANGS)
def test_loglik_prompt_matches_lm_eval_templates(lang):
    # lm-eval 0.4.13 renders doc_to_text with this Jinja environment (lm_eval/utils.py) and,
    # at 0-shot, prefixes the description with no delimiter (ConfigurableTask.fewshot_context).
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    for s in load(TASK_LOGLIK, lang, "local", FIXTURES).samples:
        config = lm_eval_yaml(subtask_yaml(lang, s.fields["domain"]))
        assert config["dataset_name"] == TASK_COT.data.hub_configs[lang]
        assert config["output_type"] == "multiple_choice" and config["test_split"] == "test"
        context = config["description"] + env.from_string(config["doc_to_text"]).render(**s.fields)
        choices = [config.get("target_delimiter", " ") + c for c in config["doc_to_choice"]]
        prompt = TASK_LOGLIK.prompt(s)
        assert [(p.context, p.continuation) for p in prompt.pairs] == [(context, c) for c in choices]
        assert prompt.gold == s.fields[config["doc_to_target"]]
        assert "\n D. " in context  # the stray space, kept on purpose


def test_hebrew_description_is_lm_eval_s():
    config = lm_eval_yaml(subtask_yaml("he", "Driving License"))
    context = TASK_LOGLIK.prompt(sample("he", domain="Driving License")).pairs[0].context
    assert context.startswith(config["description"] + "What is 2 + 2?")


def test_loglik_requests_match_lm_eval_itself(tmp_path):
    # lm-eval's own ConfigurableTask on the German fixture (its real subtask YAMLs, data
    # pointed at the local file): contexts, continuations and gold are identical.
    pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager

    data = FIXTURES / "include" / "de.jsonl"
    samples = load(TASK_LOGLIK, "de", "local", FIXTURES).samples
    domains = sorted({s.fields["domain"] for s in samples})
    for i, domain in enumerate(domains):
        (tmp_path / f"ref_{i}.yaml").write_text(
            f"include: {subtask_yaml('de', domain)}\ntask: ref_include_{i}\ndataset_path: json\n"
            f"dataset_name: null\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
            f"  cache_dir: {tmp_path / 'cache'}\n", encoding="utf-8")
    tasks = TaskManager(include_path=str(tmp_path), include_defaults=False).load(
        [f"ref_include_{i}" for i in range(len(domains))])["tasks"]
    seen = 0
    for ref in tasks.values():
        for doc in ref.test_docs():
            mine = TASK_LOGLIK.prompt(next(s for s in samples if s.fields["question"] == doc["question"]))
            ctx = ref.fewshot_context(doc, 0)
            args = [r.args for r in ref.construct_requests(doc, ctx, metadata=("ref", 0, 1))]
            assert [(p.context, p.continuation) for p in mine.pairs] == args
            assert mine.gold == ref.doc_to_target(doc)
            seen += 1
    assert seen == len(samples)


# --- fixtures -----------------------------------------------------------------------------


@pytest.mark.parametrize("lang", FIXTURE_LANGS)
def test_fixtures_load_and_render(lang):
    for task in (TASK_COT, TASK_LOGLIK):
        loaded = load(task, lang, "local", FIXTURES)
        assert loaded.source.startswith("local:") and len(loaded.samples) == 4
        golds = [include.gold(s) for s in loaded.samples]
        assert golds == [1, 0, 2, 3]
        assert {s.fields["language"] for s in loaded.samples} == {TASK_COT.data.hub_configs[lang]}
    assert [TASK_COT.prompt(s).target for s in loaded.samples] == ["B", "A", "C", "D"]
