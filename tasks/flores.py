"""FLORES-200 — translation X↔English, chrF++ (and xCOMET with ``--xcomet``).

Paper: NLLB Team 2022, "No Language Left Behind"; Goyal et al. 2022 (FLORES-101).
Data: HF ``facebook/flores`` (config = the pair, e.g. ``deu_Latn-eng_Latn``; columns
``sentence_<code>``; splits ``dev`` 997, ``devtest`` 1012); CC-BY-SA-4.0. The newer
community-maintained release is ``openlanguagedata/flores_plus`` (corrected segments, so its
scores are not comparable with FLORES-200's). Bundled: the 23 Aya languages + English, both
splits (NLLB release, via Helsinki-NLP/OPUS-MT-testsets).
Languages: a task language is a *direction* ``<source>-<target>``; the default set is the
Aya Expanse report's: each of the 23 Aya languages into and out of English (46 directions);
any pair of FLORES-200 codes may be selected with --langs (data from --data-dir or the hub).
Setting: ``devtest``; 0-shot (``flores_5shot``: the first 5 ``dev`` pairs as examples);
greedy; the instruction and the labelled source go through the chat template for instruct
models. Metric: corpus chrF++ (sacrebleu, see glotbench.harness.metrics.chrf), averaged per group
(X→en, en→X) and overall; chance ~0.

Post-processing (documented, pinned by tests): generation stops at the first newline (a
FLORES segment is one line) or EOS; the response is stripped and its first non-empty line is
the hypothesis. An empty hypothesis counts as unparsed and scores against the reference as
an empty string (chrF++ 0), never dropped.
"""

from __future__ import annotations

import dataclasses

from glotbench.harness.core.errors import DataError
from glotbench.harness.core.records import GenerationPrompt, GenerationResult, Sample, Shot
from glotbench.harness.metrics import chrf as mt_metrics
from glotbench.harness.taskapi.spec import DataSource, FewShotSource, Task
from glotbench.tasks.flores_codes import AYA23, FLORES200

ENGLISH = "eng_Latn"
NUM_FEWSHOT = 5
# Above the longest devtest reference of any bundled language in SmolLM2's byte-level
# tokenizer (418 tokens, hin_Deva; English 82); generation usually ends at the newline.
MAX_NEW_TOKENS = 512
INSTRUCTION = "Translate the following sentence from {src} to {tgt}. Reply with the translation only."
DIRECTIONS = tuple(f"{c}-{ENGLISH}" for c in AYA23) + tuple(f"{ENGLISH}-{c}" for c in AYA23)


def sides(direction: str) -> tuple[str, str]:
    """``deu_Latn-eng_Latn`` → ("deu_Latn", "eng_Latn"); unknown codes fail loudly."""
    src, sep, tgt = direction.partition("-")
    for code in (src, tgt):
        if code not in FLORES200:
            raise DataError(f"flores: {code!r} in {direction!r} is not a FLORES-200 code",
                            "use <source>-<target> with codes such as deu_Latn, zho_Hans (see tasks/flores_codes.py)")
    return src, tgt


def is_pair(direction: str) -> bool:
    src, sep, tgt = direction.partition("-")
    return bool(sep) and src != tgt and src in FLORES200 and tgt in FLORES200


def group(direction: str) -> str:
    src, tgt = sides(direction)
    return "X→en" if tgt == ENGLISH else "en→X" if src == ENGLISH else "X→Y"


def _turn(src: str, tgt: str, text: str) -> str:
    s, t = FLORES200[src], FLORES200[tgt]
    return INSTRUCTION.format(src=s, tgt=t) + "\n" + f"{s}: {text}\n{t}:"


def render(sample: Sample, pool: tuple[Sample, ...] = ()) -> GenerationPrompt:
    src, tgt = sides(sample.lang)
    shots = tuple(Shot(_turn(src, tgt, s.fields["source"]), s.fields["target"]) for s in pool[:NUM_FEWSHOT])
    return GenerationPrompt(question=_turn(src, tgt, sample.fields["source"]), target=sample.fields["target"],
                            shots=shots, delimiter=" ", separator="\n\n", stop=("\n",),
                            max_new_tokens=MAX_NEW_TOKENS)


def hypothesis(text: str) -> str:
    """The response's first non-empty line, stripped."""
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


def score(prompt: GenerationPrompt, result: GenerationResult, lang: str) -> dict:
    hyp = hypothesis(result.text)
    stats, sentence = mt_metrics.chrf_segment(hyp, prompt.target)
    return {"chrf++": sentence, "chrf_stats": stats, "pred": hyp, "parsed": bool(hyp)}


def aggregate(scores: list[dict], seed: int) -> dict[str, dict]:
    return {"chrf++": mt_metrics.chrf_summary([s["chrf_stats"] for s in scores], seed)}


def answer_as_text(answer: str, lang: str) -> str:
    return answer + "\n"


def _sides(direction: str) -> dict[str, str]:
    src, tgt = sides(direction)
    return {"source": src, "target": tgt}


TASK = Task(
    name="flores",
    version="1.0",
    title="FLORES-200 devtest X↔English (0-shot, chrF++)",
    languages=DIRECTIONS,
    data=DataSource(
        hub_id="facebook/flores",
        split="devtest",
        local="flores200/devtest/{lang}.devtest",
        fields=("source", "target"),
        licence="CC-BY-SA-4.0",
        parallel=_sides,
        hub_field="sentence_{lang}",
    ),
    chance=0.0,
    render=render,
    output_type="generate",
    metrics=("chrf++",),
    scorer=score,
    answer_as_text=answer_as_text,
    accepts=is_pair,
    accepts_hint="any <source>-<target> pair of FLORES-200 codes (tasks/flores_codes.py)",
    group=group,
    aggregate=aggregate,
    source_field="source",
)

TASK_FEWSHOT = dataclasses.replace(
    TASK, name="flores_5shot", title="FLORES-200 devtest X↔English (5-shot from dev, chrF++)",
    data=dataclasses.replace(TASK.data, fewshot=FewShotSource(
        split="dev", local="flores200/dev/{lang}.dev", fields=("source", "target"), num=NUM_FEWSHOT)))
