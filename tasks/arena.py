"""m-ArenaHard — open-ended prompts, judged pairwise against another model's completions.

Paper: Aya Expanse report (Dang et al. 2024), Figures 1, 2 and 4: win-rates judged by GPT-4o
with the Aya 101 pairwise prompt (``glotbench judge``, prompt ``aya101_pairwise``).
Data: HF ``CohereForAI/m-ArenaHard`` (config = language, split ``test``, 500 prompts each,
fields ``question_id, category, cluster, prompt``): the 500 Arena-Hard-Auto v0.1 prompts
(Li et al. 2024) machine-translated into 22 languages, plus the English originals;
Apache-2.0. Bundled: the English prompts (lmarena/arena-hard-auto, ``uid`` renamed
``question_id`` as on the hub), so the offline suite runs the English comparison.
Languages: the 23 Aya languages. ``question_id`` is the same prompt in every language.

A run generates one completion per prompt: the prompt as the single user turn of the
model's chat template (plain text with --chat off), greedy, up to 4096 new tokens (Arena-Hard's
generation setting), no stop string but EOS. The run's own metrics only describe the
completions (new tokens, the fraction cut at the token limit, empty ones counted as
unparsed); the score is the pairwise win-rate computed by ``glotbench judge``. No chance
level: a win-rate's reference point is 0.5 (two equal models).
"""

from __future__ import annotations

from glotbench.harness.core.errors import DataError
from glotbench.harness.core.records import GenerationPrompt, GenerationResult, Sample
from glotbench.harness.taskapi.spec import DataSource, Task

MAX_NEW_TOKENS = 4096

# m-ArenaHard config → English name (the judge prompt's language slot).
LANGS: dict[str, str] = {
    "ar": "Arabic", "cs": "Czech", "de": "German", "el": "Greek", "en": "English",
    "es": "Spanish", "fa": "Persian", "fr": "French", "he": "Hebrew", "hi": "Hindi",
    "id": "Indonesian", "it": "Italian", "ja": "Japanese", "ko": "Korean", "nl": "Dutch",
    "pl": "Polish", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "tr": "Turkish",
    "uk": "Ukrainian", "vi": "Vietnamese", "zh": "Chinese",
}


def language_name(lang: str) -> str:
    try:
        return LANGS[lang]
    except KeyError:
        raise DataError(f"m_arenahard has no language name for {lang!r}",
                        f"languages: {', '.join(LANGS)}") from None


def render(sample: Sample) -> GenerationPrompt:
    """The prompt verbatim as the only user turn."""
    return GenerationPrompt(question=sample.fields["prompt"], target="", delimiter="", separator="",
                            max_new_tokens=MAX_NEW_TOKENS)


def describe(prompt: GenerationPrompt, result: GenerationResult, lang: str) -> dict:
    """What a run can say about a completion on its own (the judge scores it later)."""
    return {"new_tokens": result.n_tokens, "truncated": float(result.finish == "length"),
            "pred": None, "parsed": bool(result.text.strip())}


TASK = Task(
    name="m_arenahard",
    version="1",
    title="m-ArenaHard (open-ended, judged pairwise)",
    languages=tuple(LANGS),
    data=DataSource(
        hub_id="CohereForAI/m-ArenaHard",
        split="test",
        local="m-ArenaHard/{lang}.jsonl",
        fields=("question_id", "prompt"),
        licence="Apache-2.0",
    ),
    chance=0.5,
    render=render,
    output_type="generate",
    metrics=("new_tokens", "truncated"),
    scorer=describe,
    judged=True,
    id_field="question_id",
    language_name=language_name,
)
