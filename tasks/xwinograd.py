"""XWinograd — multilingual Winograd schemas.

Paper: Tikhonov & Ryabinin 2021, "It's All in the Heads" (and Muennighoff et al. 2022).
Data: HF ``Muennighoff/xwinograd`` (config = language, split ``test``); Apache-2.0.
Languages: en fr jp pt ru zh (the hub's codes; ``jp`` is Japanese).
Setting: 0-shot partial scoring; accuracy; chance 0.5.

Prompt = lm-eval 0.4.13 ``xwinograd_<lang>`` ("multiple input" mode): the sentence up to
the blank ``_`` with each option substituted is the context; the shared continuation is
the rest of the sentence after the blank, stripped, with a leading space. Only the common
suffix is scored, under each substituted prefix.
"""

from __future__ import annotations

from glotbench.harness.core.errors import DataError
from glotbench.harness.core.records import LoglikelihoodRequest, MultipleChoicePrompt, Sample
from glotbench.harness.taskapi.spec import DataSource, Task

LANGUAGES = ("en", "fr", "jp", "pt", "ru", "zh")
ANSWERS = {"1": 0, "2": 1}


def render(sample: Sample) -> MultipleChoicePrompt:
    row = sample.fields
    sentence = row["sentence"]
    blank = sentence.find("_")
    if blank < 0:
        raise DataError(f"xwinograd/{sample.lang} row {sample.doc_id} has no '_' blank in its sentence",
                        "each sentence marks the pronoun to resolve with '_'")
    if str(row["answer"]) not in ANSWERS:
        raise DataError(f"xwinograd/{sample.lang} row {sample.doc_id} has answer {row['answer']!r}",
                        "answers are '1' or '2'")
    suffix = " " + sentence[blank + 1:].strip()
    pairs = tuple(LoglikelihoodRequest(sentence[:blank] + row[o], suffix) for o in ("option1", "option2"))
    return MultipleChoicePrompt(pairs, ANSWERS[str(row["answer"])])


TASK = Task(
    name="xwinograd",
    version="1.0",
    title="XWinograd (0-shot, partial scoring, accuracy)",
    languages=LANGUAGES,
    data=DataSource(
        hub_id="Muennighoff/xwinograd",
        split="test",
        local="xwinograd/{lang}.jsonl",
        fields=("sentence", "option1", "option2", "answer"),
        licence="Apache-2.0",
    ),
    chance=0.5,
    render=render,
    lmeval_yaml="xwinograd/xwinograd_{lang}.yaml",
)
