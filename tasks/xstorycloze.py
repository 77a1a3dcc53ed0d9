"""XStoryCloze — the Story Cloze Test translated into 10 languages (plus English).

Paper: Lin et al. 2021, "Few-shot Learning with Multilingual Language Models" (XGLM).
Data: HF ``juletxara/xstory_cloze`` (config = language, split ``eval``, 1511 items).
Languages: ar en es eu hi id my ru sw te zh.
Setting: 0-shot; each ending scored as a continuation of the story; accuracy; chance 0.5.

Prompt = lm-eval 0.4.13 ``xstorycloze_<lang>``: the four story sentences joined by single
spaces; each ending (``sentence_quiz1``/``sentence_quiz2``) with a leading space.
No copy of this dataset exists offline here; tests use a synthetic fixture in its schema.
"""

from __future__ import annotations

from glotbench.harness.core.errors import DataError
from glotbench.harness.core.records import LoglikelihoodRequest, MultipleChoicePrompt, Sample
from glotbench.harness.taskapi.spec import DataSource, Task

LANGUAGES = ("ar", "en", "es", "eu", "hi", "id", "my", "ru", "sw", "te", "zh")


def render(sample: Sample) -> MultipleChoicePrompt:
    row = sample.fields
    story = " ".join(row[f"input_sentence_{i}"] for i in range(1, 5))
    gold = int(row["answer_right_ending"]) - 1
    if gold not in (0, 1):
        raise DataError(f"xstorycloze/{sample.lang} row {sample.doc_id} has answer_right_ending "
                        f"{row['answer_right_ending']!r}", "it must be 1 or 2")
    pairs = tuple(LoglikelihoodRequest(story, " " + row[f]) for f in ("sentence_quiz1", "sentence_quiz2"))
    return MultipleChoicePrompt(pairs, gold)


TASK = Task(
    name="xstorycloze",
    version="1.0",
    title="XStoryCloze (0-shot, log-likelihood accuracy)",
    languages=LANGUAGES,
    data=DataSource(
        hub_id="juletxara/xstory_cloze",
        split="eval",
        local="xstorycloze/{lang}/eval.{lang}.jsonl",
        fields=("input_sentence_1", "input_sentence_2", "input_sentence_3", "input_sentence_4",
                "sentence_quiz1", "sentence_quiz2", "answer_right_ending"),
        licence="CC-BY-SA-4.0 (the hub copy; Story Cloze terms apply)",
    ),
    chance=0.5,
    render=render,
    lmeval_yaml="xstorycloze/default_{lang}.yaml",
)
