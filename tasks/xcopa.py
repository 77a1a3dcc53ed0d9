"""XCOPA — Cross-lingual Choice of Plausible Alternatives.

Paper: Ponti et al. 2020, "XCOPA: A Multilingual Dataset for Causal Commonsense Reasoning".
Data: HF ``cambridgeltl/xcopa`` (config = language, split ``test``, 500 items); CC-BY-4.0.
Languages: et ht id it qu sw ta th tr vi zh.
Setting: 0-shot; each choice scored as a continuation of the premise; accuracy; chance 0.5.

Prompt = lm-eval 0.4.13 ``xcopa_<lang>``: the premise with its final character (the
period) dropped, a space and the localized connector; each choice is the continuation,
with a leading space and its first letter lower-cased.

Known quirk, kept for comparability: the Thai premises (500/500) and all but one Tamil
premise end without a period, so dropping "the period" cuts their last letter or vowel
sign. lm-eval does the same; the golden prompt tests pin it.
"""

from __future__ import annotations

from glotbench.harness.core.errors import DataError
from glotbench.harness.core.records import LoglikelihoodRequest, MultipleChoicePrompt, Sample
from glotbench.harness.taskapi.spec import DataSource, Task

# Connectors "because" (cause) / "therefore" (effect), verbatim from lm-eval 0.4.13.
CONNECTORS: dict[str, dict[str, str]] = {
    "et": {"cause": "sest", "effect": "seetõttu"},
    "ht": {"cause": "poukisa", "effect": "donk sa"},
    "id": {"cause": "karena", "effect": "maka"},
    "it": {"cause": "perché", "effect": "quindi"},
    "qu": {"cause": "imataq", "effect": "chaymi"},
    "sw": {"cause": "kwa sababu", "effect": "kwa hiyo"},
    "ta": {"cause": "காரணமாக", "effect": "எனவே"},
    "th": {"cause": "เพราะ", "effect": "ดังนั้น"},
    "tr": {"cause": "çünkü", "effect": "bu yüzden"},
    "vi": {"cause": "bởi vì", "effect": "vì vậy"},
    "zh": {"cause": "因为", "effect": "所以"},
}


def connector(lang: str, question: str) -> str:
    try:
        return CONNECTORS[lang][question]
    except KeyError:
        raise DataError(f"xcopa has no connector for language {lang!r}, question {question!r}",
                        f"questions are 'cause' or 'effect'; languages {', '.join(CONNECTORS)}") from None


def _lower_first(text: str) -> str:
    return text[0].lower() + text[1:]


def render(sample: Sample) -> MultipleChoicePrompt:
    row = sample.fields
    context = row["premise"].strip()[:-1] + " " + connector(sample.lang, row["question"])
    pairs = tuple(LoglikelihoodRequest(context, " " + _lower_first(row[c])) for c in ("choice1", "choice2"))
    return MultipleChoicePrompt(pairs, int(row["label"]))


TASK = Task(
    name="xcopa",
    version="1.0",
    title="XCOPA (0-shot, log-likelihood accuracy)",
    languages=tuple(CONNECTORS),
    data=DataSource(
        hub_id="cambridgeltl/xcopa",
        split="test",
        local="xcopa/{lang}/test.{lang}.jsonl",
        fields=("premise", "choice1", "choice2", "question", "label"),
        licence="CC-BY-4.0",
    ),
    chance=0.5,
    render=render,
    lmeval_yaml="xcopa/default_{lang}.yaml",
)
