"""Aya Dolly — 200 held-out Dolly prompts, open-ended, judged pairwise.

Paper: Üstün et al. 2024 (Aya 101), Singh et al. 2024 (Aya dataset / evaluation suite); the
Aya Expanse report's Dolly win-rates (GPT-4o judge, Aya 101 pairwise prompt).
Data: HF ``CohereForAI/aya_evaluation_suite``, split ``test``, fields ``id, inputs, targets,
language, script, source_id``; one config holds every language:
``dolly_machine_translated`` (the 200 English prompts, ``id`` 1–200, machine-translated into
101 languages; ``dolly``) and ``dolly_human_edited`` (the same 200 post-edited by native
speakers for 6 languages; ``dolly_human``). ``id`` is the same prompt in every language;
Apache-2.0. Not bundled (hub only, or ``--data-dir`` with
``aya_evaluation_suite/<config>/<language>.jsonl`` in the hub schema).

Languages are the suite's ISO 639-3 codes (``fra``, ``zho``, ``pes``); a language written in
more than one script is selected as ``<code>_<Script>`` (``kas_Deva``). Default: the 23 Aya
languages (``dolly``), the 6 edited ones (``dolly_human``); any code of the suite with
``--langs``. The prompt (``inputs``) is the single user turn; greedy, up to 2048 new tokens;
the run records the completions (and the reference ``targets``) and the judge scores them.
"""

from __future__ import annotations

from glotbench.harness.core.errors import DataError
from glotbench.harness.core.records import GenerationPrompt, Sample
from glotbench.harness.taskapi.spec import DataSource, Task
from glotbench.tasks.arena import describe

MAX_NEW_TOKENS = 2048
HUB_ID = "CohereForAI/aya_evaluation_suite"

# The suite's language codes → English names (the judge prompt's language slot).
NAMES: dict[str, str] = {
    "afr": "Afrikaans", "sqi": "Albanian", "amh": "Amharic", "ara": "Arabic", "aze": "Azerbaijani",
    "bel": "Belarusian", "ben": "Bengali", "bul": "Bulgarian", "cat": "Catalan", "ceb": "Cebuano",
    "ces": "Czech", "kur": "Kurdish", "cym": "Welsh", "dan": "Danish", "deu": "German",
    "ell": "Greek", "eng": "English", "epo": "Esperanto", "est": "Estonian", "eus": "Basque",
    "fin": "Finnish", "fra": "French", "gla": "Scottish Gaelic", "gle": "Irish", "glg": "Galician",
    "guj": "Gujarati", "hat": "Haitian Creole", "hau": "Hausa", "heb": "Hebrew", "hin": "Hindi",
    "hun": "Hungarian", "hye": "Armenian", "ibo": "Igbo", "ind": "Indonesian", "isl": "Icelandic",
    "ita": "Italian", "jav": "Javanese", "jpn": "Japanese", "kan": "Kannada", "kat": "Georgian",
    "kaz": "Kazakh", "mon": "Mongolian", "khm": "Khmer", "kir": "Kyrgyz", "kor": "Korean",
    "lao": "Lao", "lit": "Lithuanian", "ltz": "Luxembourgish", "lav": "Latvian",
    "mal": "Malayalam", "mar": "Marathi", "mkd": "Macedonian", "mlt": "Maltese", "mri": "Maori",
    "mya": "Burmese", "nld": "Dutch", "nor": "Norwegian", "nep": "Nepali", "sot": "Southern Sotho",
    "pus": "Pashto", "pes": "Persian", "mlg": "Malagasy", "pol": "Polish", "por": "Portuguese",
    "ron": "Romanian", "rus": "Russian", "sin": "Sinhala", "slk": "Slovak", "slv": "Slovenian",
    "smo": "Samoan", "sna": "Shona", "snd": "Sindhi", "som": "Somali", "spa": "Spanish",
    "srp": "Serbian", "sun": "Sundanese", "swe": "Swedish", "swa": "Swahili", "tam": "Tamil",
    "tel": "Telugu", "tgk": "Tajik", "tha": "Thai", "tur": "Turkish", "ukr": "Ukrainian",
    "urd": "Urdu", "uzb": "Uzbek", "vie": "Vietnamese", "xho": "Xhosa", "yid": "Yiddish",
    "yor": "Yoruba", "zho": "Chinese", "msa": "Malay", "zul": "Zulu", "ace": "Acehnese",
    "bjn": "Banjar", "kas": "Kashmiri", "kau": "Kanuri", "min": "Minangkabau", "mni": "Manipuri",
    "taq": "Tamasheq", "nso": "Northern Sotho",
}
AYA23 = ("ara", "ces", "deu", "ell", "eng", "spa", "pes", "fra", "heb", "hin", "ind", "ita",
         "jpn", "kor", "nld", "pol", "por", "ron", "rus", "tur", "ukr", "vie", "zho")
HUMAN_EDITED = ("ara", "fra", "hin", "rus", "spa", "srp")


def _split(lang: str) -> tuple[str, str]:
    code, _, script = lang.partition("_")
    return code, script


def accepts(lang: str) -> bool:
    code, script = _split(lang)
    return code in NAMES and (not script or (len(script) == 4 and script.istitle()))


def language_name(lang: str) -> str:
    code, _ = _split(lang)
    if code not in NAMES:
        raise DataError(f"dolly has no language name for {lang!r}",
                        f"use one of the suite's codes: {', '.join(NAMES)}")
    return NAMES[code]


def select(rows: list[dict], lang: str) -> list[dict]:
    """The rows of one language (and script, if given) of the all-language hub config."""
    code, script = _split(lang)
    mine = [r for r in rows if r["language"] == code and (not script or r.get("script") == script)]
    if not mine:
        have = sorted({r["language"] for r in rows})
        raise DataError(f"the Dolly data has no rows for language {lang!r}",
                        f"choose from {', '.join(have)}")
    scripts = sorted({str(r.get("script")) for r in mine})
    if len(scripts) > 1:
        raise DataError(f"Dolly language {code!r} is written in several scripts ({', '.join(scripts)})",
                        f"select one: {', '.join(f'{code}_{s}' for s in scripts)}")
    return mine


def render(sample: Sample) -> GenerationPrompt:
    return GenerationPrompt(question=sample.fields["inputs"], target=sample.fields["targets"],
                            delimiter="", separator="", max_new_tokens=MAX_NEW_TOKENS)


def _task(name: str, config: str, title: str, languages: tuple[str, ...]) -> Task:
    return Task(
        name=name,
        version="1",
        title=title,
        languages=languages,
        data=DataSource(
            hub_id=HUB_ID,
            split="test",
            local=f"aya_evaluation_suite/{config}/{{lang}}.jsonl",
            fields=("id", "inputs", "targets", "language"),
            licence="Apache-2.0",
            hub_config=config,
            hub_select=select,
        ),
        chance=0.5,
        render=render,
        output_type="generate",
        metrics=("new_tokens", "truncated"),
        scorer=describe,
        accepts=accepts,
        accepts_hint="any language code of the Aya evaluation suite (e.g. swa, yor, kas_Deva)",
        judged=True,
        id_field="id",
        language_name=language_name,
    )


TASK = _task("dolly", "dolly_machine_translated", "Aya Dolly, machine-translated (judged pairwise)", AYA23)
TASK_HUMAN = _task("dolly_human", "dolly_human_edited", "Aya Dolly, human-edited (judged pairwise)",
                   HUMAN_EDITED)
