"""MGSM — Multilingual Grade School Math, 5-shot native chain-of-thought.

Paper: Shi et al. 2022, "Language Models are Multilingual Chain-of-Thought Reasoners".
Data: HF ``juletxara/mgsm`` (config = language; ``test`` 250 problems, ``train`` the 8 native
exemplars with worked answers); CC-BY-4.0. Bundled: the original TSVs and exemplars
(google-research/url-nlp). Languages: bn de en es fr ja ru sw te th zh.
Setting (Aya Expanse report): the first 5 native exemplars, fixed; greedy; the answer cue
and the "The answer is N" sentence in the problem's language. Metrics: strict-match (the
language's answer sentence) and flexible-extract (the last number); chance ~0.

Prompt = lm-eval 0.4.13 ``mgsm_native_cot_<lang>`` (question prefix, newline, answer cue;
examples joined by a blank line) with its quirks fixed where they change the prompt or the
score, each documented in the table below and pinned by golden tests:

* bn: lm-eval's strict pattern is the English "The answer is N"; the Bengali exemplars end
  "উত্তর হল N।", which is the pattern used here.
* de: lm-eval's pattern says "Die Antwort lautet N", the exemplars "Die Antwort ist N";
  both are accepted.
* ru: lm-eval's cue is "Пошаговоерешение:" (space lost) and it cuts the exemplar answers one
  character short; the cue here is the exemplars' own "Пошаговое решение:".
* zh/ja: lm-eval's generator meant an empty delimiter between cue and answer but drops it
  (an empty string is falsy), and its cue has an ASCII colon where the exemplars have a
  full-width one, so every exemplar answer loses its first character. Here the exemplars
  are shown verbatim ("逐步解答：罗杰…") and the question prefix has no space, as in the data.

The prompts of en, es, fr, sw, te, th, bn and de are identical to lm-eval's; en and es also
score identically (the parity test runs there). Numbers are compared after dropping
thousands commas, "$" and a trailing period, numerically (so "18.00" matches 18).
"""

from __future__ import annotations

import re

from glotbench.harness.core.errors import DataError
from glotbench.harness.core.records import GenerationPrompt, GenerationResult, Sample, Shot
from glotbench.harness.taskapi.spec import DataSource, FewShotSource, Task
from glotbench.harness.taskapi.spec import literal as task_literal

NUM_FEWSHOT = 5
# The longest native exemplar answer is 692 SmolLM2 tokens (te; bn 374, th 454); lm-eval's
# default of 256 would cut off reasoning of that length, so 768 (outputs that end earlier
# stop at their stop string or EOS and cost nothing more).
MAX_NEW_TOKENS = 768
NUMBER = r"(\-?[0-9\.\,]+)"

# The exemplars' answer sentence, question prefix, answer cue, strict answer pattern
# (lm-eval's unless noted above); zh/ja: no separator after the question prefix and no
# delimiter between cue and answer, as in their exemplars.
LANGS: dict[str, dict[str, str]] = {
    "bn": {"says": "উত্তর হল {}।", "question": "প্রশ্ন:", "cue": "ধাপে ধাপে উত্তর:", "strict": "উত্তর হল " + NUMBER},
    "de": {"says": "Die Antwort ist {}.", "question": "Frage:", "cue": "Schritt-für-Schritt-Antwort:", "strict": "Die Antwort (?:ist|lautet) " + NUMBER},
    "en": {"says": "The answer is {}.", "question": "Question:", "cue": "Step-by-Step Answer:", "strict": "The answer is " + NUMBER},
    "es": {"says": "La respuesta es {}.", "question": "Pregunta:", "cue": "Respuesta paso a paso:", "strict": "La respuesta es " + NUMBER},
    "fr": {"says": "La réponse est {}.", "question": "Question :", "cue": "Réponse étape par étape :", "strict": "La réponse est " + NUMBER},
    "ja": {"says": "答えは{}です。", "question": "問題：", "cue": "ステップごとの答え：", "strict": "答えは" + NUMBER + "です。", "sep": "", "delimiter": ""},
    "ru": {"says": "Ответ — {}.", "question": "Задача:", "cue": "Пошаговое решение:", "strict": "Ответ — " + NUMBER},
    "sw": {"says": "Jibu ni {}.", "question": "Swali:", "cue": "Jibu la Hatua kwa Hatua:", "strict": "Jibu ni " + NUMBER},
    "te": {"says": "సమాధానం {}.", "question": "ప్రశ్న:", "cue": "దశలవారీగా సమాధానం:", "strict": "సమాధానం " + NUMBER},
    "th": {"says": "คำตอบคือ {}", "question": "โจทย์:", "cue": "คำตอบทีละขั้นตอน:", "strict": "คำตอบคือ " + NUMBER},
    "zh": {"says": "答案是 {}。", "question": "问题：", "cue": "逐步解答：", "strict": "答案是 " + NUMBER + "。", "sep": "", "delimiter": ""},
}
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")  # lm-eval's flexible-extract


def literal(lang: str, key: str) -> str:
    return task_literal(LANGS, "mgsm", lang, key)


def _strip_prefix(text: str, prefix: str, lang: str) -> str:
    if not text.startswith(prefix):
        raise DataError(f"mgsm/{lang} exemplar {text[:40]!r} does not start with {prefix!r}",
                        "use the native exemplars (juletxara/mgsm train split or exemplars.json)")
    return text[len(prefix):].lstrip(" ")


def render(sample: Sample, pool: tuple[Sample, ...]) -> GenerationPrompt:
    lang = sample.lang
    q, cue = literal(lang, "question"), literal(lang, "cue")
    sep, delim = LANGS[lang].get("sep", " "), LANGS[lang].get("delimiter", " ")
    if len(pool) < NUM_FEWSHOT:
        raise DataError(f"mgsm/{lang} has {len(pool)} exemplars, needs {NUM_FEWSHOT}",
                        "use the native exemplars (juletxara/mgsm train split or exemplars.json)")
    # Exemplars carry their own question prefix and answer cue; the cue is re-attached to the
    # question so that the answer alone is the assistant turn in chat layouts.
    shots = tuple(Shot(s.fields["question"] + "\n" + cue,
                       _strip_prefix(s.fields["answer"], cue, lang)) for s in pool[:NUM_FEWSHOT])
    question = q + sep + sample.fields["question"] + "\n" + cue
    return GenerationPrompt(question=question, target=answer_number(sample.fields["answer_number"]),
                            shots=shots, delimiter=delim, separator="\n\n",
                            stop=(q, "</s>", "<|im_end|>"), max_new_tokens=MAX_NEW_TOKENS)


def answer_number(value: object) -> str:
    """The gold answer as a plain number string ("2,125" → "2125")."""
    return normalize(str(value)) or str(value)


def normalize(text: str) -> str | None:
    """A captured number without thousands commas, "$" or trailing period; None if empty."""
    text = text.replace(",", "").replace("$", "").strip().rstrip(".")
    return text or None


def same_number(pred: str | None, target: str) -> bool:
    if pred is None:
        return False
    try:
        return float(pred) == float(target)
    except ValueError:
        return pred == target


def extract_strict(text: str, lang: str) -> str | None:
    """The number of the first answer sentence in the language's pattern (None: none)."""
    m = re.search(literal(lang, "strict"), text)
    return normalize(m.group(1)) if m else None


def extract_flexible(text: str) -> str | None:
    """The last number in the response, as lm-eval's flexible-extract."""
    found = FLEXIBLE.findall(text)
    if not found:
        return None
    a, b = found[-1]
    return normalize(a or b)


def score(prompt: GenerationPrompt, result: GenerationResult, lang: str) -> dict:
    strict = extract_strict(result.text, lang)
    flexible = extract_flexible(result.text)
    return {"strict_match": float(same_number(strict, prompt.target)),
            "flexible_extract": float(same_number(flexible, prompt.target)),
            "pred": strict, "flexible_pred": flexible, "parsed": strict is not None}


def answer_as_text(answer: str, lang: str) -> str:
    """A response in the exemplars' form: reasoning, then the language's answer sentence."""
    return "3 + 4 = 7. " + literal(lang, "says").format(answer)


def exemplars(obj: object, lang: str) -> list[dict]:
    """Rows of ``exemplars.json`` (``MGSM_EXEMPLARS[lang]["1".."8"] = {q, a}``)."""
    table = obj.get("MGSM_EXEMPLARS", {}).get(lang, {}) if isinstance(obj, dict) else {}
    return [{"question": table[k]["q"], "answer": table[k]["a"]} for k in sorted(table, key=int)]


TASK = Task(
    name="mgsm",
    version="1.0",
    title="MGSM (5-shot native chain-of-thought, strict match)",
    languages=tuple(LANGS),
    data=DataSource(
        hub_id="juletxara/mgsm",
        split="test",
        local="mgsm/mgsm_{lang}.tsv",
        fields=("question", "answer_number"),
        columns=("question", "answer_number"),
        licence="CC-BY-4.0",
        fewshot=FewShotSource(split="train", local="mgsm/exemplars.json", fields=("question", "answer"),
                              num=NUM_FEWSHOT, extract=exemplars),
    ),
    chance=0.0,
    render=render,
    lmeval_yaml="mgsm/native_cot/mgsm_native_cot_{lang}.yaml",
    output_type="generate",
    metrics=("strict_match", "flexible_extract"),
    scorer=score,
    answer_as_text=answer_as_text,
)
