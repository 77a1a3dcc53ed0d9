"""Global-MMLU — MMLU translated into 42 languages, with culturally sensitive/agnostic labels.

Paper: Singh et al. 2024, "Global MMLU: Understanding and Addressing Cultural and Linguistic
Biases in Multilingual Evaluation". Data: HF ``CohereForAI/Global-MMLU`` (config = language;
``test`` 14,042 and ``dev`` 285 rows per language) and the Lite variant
``CohereLabs/Global-MMLU-Lite`` (15 languages, 400 test rows, 200 CS + 200 CA); Apache-2.0.
Fields: ``question, option_a..option_d, answer`` (letter), ``subject``, ``subject_category``,
``cultural_sensitivity_label`` (CS, CA, or ``-`` for rows outside the annotated subset).

Setting (Aya Expanse report): 5-shot, the first five ``dev`` rows of the question's subject
(lm-eval's ``first_n`` sampler, as its ``global_mmlu_full_<lang>_<subject>`` tasks), answer
letters scored by log-likelihood; accuracy per language, by subject category and by
cultural-sensitivity label, and the unweighted mean of the CS and CA accuracies (the
report's number). Chance 0.25.

Prompt = lm-eval 0.4.13 ``global_mmlu_full``: ``question.strip()``, the four options as
``A. …`` lines, ``Answer:``; examples end with `` <letter>`` and are joined by a blank
line; no subject description (unlike the original MMLU harness). The five-shot block is the
same for every question of a subject, so the backend computes its key/value cache once.
A subject with fewer than five ``dev`` rows gets the rows it has (as lm-eval's ``first_n``
sampler); the run names those subjects and their shot counts in its provenance.
"""

from __future__ import annotations

from glotbench.harness.core.errors import DataError
from glotbench.harness.core.records import LoglikelihoodRequest, MultipleChoicePrompt, Sample
from glotbench.harness.taskapi.spec import DataSource, FewShotSource, Task

NUM_FEWSHOT = 5
LETTERS = ("A", "B", "C", "D")
FIELDS = ("question", "option_a", "option_b", "option_c", "option_d", "answer", "subject")
LANGUAGES = ("am", "ar", "bn", "cs", "de", "el", "en", "es", "fa", "fil", "fr", "ha", "he", "hi", "id",
             "ig", "it", "ja", "ko", "ky", "lt", "mg", "ms", "ne", "nl", "ny", "pl", "pt", "ro", "ru",
             "si", "sn", "so", "sr", "sv", "sw", "te", "tr", "uk", "vi", "yo", "zh")
LITE_LANGUAGES = ("ar", "bn", "de", "en", "es", "fr", "hi", "id", "it", "ja", "ko", "pt", "sw", "yo", "zh")


def question_text(row) -> str:
    options = "".join(f"\n{letter}. {row['option_' + letter.lower()]}" for letter in LETTERS)
    return row["question"].strip() + options + "\nAnswer:"


def gold(row, where: str) -> int:
    try:
        return LETTERS.index(str(row["answer"]).strip())
    except ValueError:
        raise DataError(f"{where}: answer {row['answer']!r} is not one of A, B, C, D",
                        "fix the data (Global-MMLU answers are letters)") from None


def shots_of(subject: str, pool: tuple[Sample, ...]) -> list:
    """The first ``NUM_FEWSHOT`` dev rows of a subject, in pool order (fewer if it has fewer)."""
    return [s.fields for s in pool if s.fields["subject"] == subject][:NUM_FEWSHOT]


def shortfall(samples: tuple[Sample, ...], pool: tuple[Sample, ...]) -> dict[str, int]:
    """Subjects of ``samples`` with fewer than ``NUM_FEWSHOT`` dev rows → how many they have."""
    have: dict[str, int] = {}
    for s in pool:
        have[s.fields["subject"]] = have.get(s.fields["subject"], 0) + 1
    subjects = dict.fromkeys(s.fields["subject"] for s in samples)
    return {sub: have.get(sub, 0) for sub in sorted(subjects) if have.get(sub, 0) < NUM_FEWSHOT}


def render(sample: Sample, pool: tuple[Sample, ...]) -> MultipleChoicePrompt:
    row = sample.fields
    shots = shots_of(row["subject"], pool)
    where = f"global_mmlu/{sample.lang} dev"
    context = "".join(question_text(s) + " " + LETTERS[gold(s, where)] + "\n\n" for s in shots)
    context += question_text(row)
    pairs = tuple(LoglikelihoodRequest(context, " " + letter) for letter in LETTERS)
    return MultipleChoicePrompt(pairs, gold(row, f"global_mmlu/{sample.lang} row {sample.doc_id}"))


def _task(name: str, hub_id: str, languages: tuple[str, ...], title: str, lmeval: str) -> Task:
    return Task(
        name=name,
        version="1.0",
        title=title,
        languages=languages,
        data=DataSource(
            hub_id=hub_id,
            split="test",
            local=name + "/{lang}/test.jsonl",
            fields=FIELDS,
            licence="Apache-2.0",
            fewshot=FewShotSource(split="dev", local=name + "/{lang}/dev.jsonl", fields=FIELDS, num=NUM_FEWSHOT),
        ),
        chance=0.25,
        render=render,
        lmeval_yaml=lmeval,
        breakdowns=("subject_category", "cultural_sensitivity_label"),
        balanced=("cultural_sensitivity_label", ("CS", "CA")),
        fewshot_shortfall=shortfall,
    )


TASK = _task("global_mmlu", "CohereForAI/Global-MMLU", LANGUAGES,
             "Global-MMLU (5-shot, log-likelihood accuracy; CS/CA subsets)",
             # lm-eval splits it per subject; this template has no subject filter, so the
             # parity test includes the per-subject configs (global_mmlu_full_<lang>_<subject>).
             "global_mmlu/full/{lang}/_{lang}_template_yaml")
TASK_LITE = _task("global_mmlu_lite", "CohereLabs/Global-MMLU-Lite", LITE_LANGUAGES,
                  "Global-MMLU-Lite (5-shot, log-likelihood accuracy; 200 CS + 200 CA)",
                  "global_mmlu/default/{lang}/_{lang}_template_yaml")
