"""The translated-pairs config: parallel prompts, three models, a translation prompt, a check.

```yaml
prompts: {alpaca_eval_multilingual: ../shared/data/alpaca_eval_multilingual, first: 5}
languages: [de, ru, zh]        # target languages L; the pivot (English) is added to the prompts
pivot: en
translate_prompts: false       # true: a source id without an L prompt gets the pivot prompt translated
strong: {name: smollm2, model: embedded, max_new_tokens: 96}          # answers the L prompt in L
weak: {name: alpaca-7b, published: ../shared/data/alpaca_eval_2/annotations/alpaca-7b.json,
       generator: alpaca-7b, match: parallel}                         # answers the pivot prompt
translator: {name: smollm2-mt, model: embedded, max_new_tokens: 160}  # pivot → L
translation_prompt: "Translate the following text into {language}. ...\\n\\n{text}"
language_check: {min_letters: 20, script_share: 0.5, drop_rejected: false}
batch_size: 8                   # also device, dtype; sampling seeds are the teachers' own (seed: in each)
```

``strong``, ``weak`` and ``translator`` are teacher entries as in the arbitrage config
(:func:`glotbench.training.arbitrage.config.parse_teacher`): ``model: embedded | hf:<dir> |
openai:<name>`` (with ``base_url``) or ``published: FILE``; the translator must be a model.
Each gives one completion per prompt (``samples: 1``). ``{language}`` in the translation
prompt is the English name of L from the harness's language table (``language_names``
overrides it), ``{text}`` the text to translate. Every rule broken is one line naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glotbench.harness.taskapi.languages import lookup
from glotbench.training.arbitrage.config import TeacherConfig, parse_teacher
from glotbench.training.core.config import ConfigError, check_keys, load_yaml, typed
from glotbench.training.translate.language import checkable

TOP_KEYS = ("prompts", "languages", "pivot", "translate_prompts", "strong", "weak", "translator",
            "translation_prompt", "language_names", "language_check", "batch_size", "device", "dtype")
CHECK_KEYS = ("min_letters", "script_share", "drop_rejected")
DEFAULT_TRANSLATION_PROMPT = (
    "Translate the following text into {language}. Keep its meaning, formatting, code and names. "
    "Reply with the translation only.\n\n{text}")


@dataclass(frozen=True)
class LanguageCheck:
    min_letters: int = 20
    """Fewer letters (code removed; Han/kana/Hangul count 3) cannot be identified: dropped as too short."""
    script_share: float = 0.5
    """Least share of the letters in L's script."""
    drop_rejected: bool = False
    """Also drop a pair whose translated rejected completion is not in L (always counted)."""


@dataclass(frozen=True)
class TranslatedPairsConfig:
    prompts: dict
    languages: tuple[str, ...]
    pivot: str
    translate_prompts: bool
    strong: TeacherConfig
    weak: TeacherConfig
    translator: TeacherConfig
    translation_prompt: str
    language_names: dict[str, str]
    check: LanguageCheck
    batch_size: int
    device: str
    dtype: str
    raw: dict
    path: Path | None = None

    def translation_request(self, text: str, language: str) -> str:
        """The translator's user turn for ``text`` into ``language``."""
        return self.translation_prompt.format(language=self.language_names[language], text=text)


def load_config(path: Path) -> TranslatedPairsConfig:
    return parse_config(load_yaml(path, "translated-pairs config"), Path(path))


def parse_config(raw: Any, path: Path | None = None) -> TranslatedPairsConfig:
    where = str(path or "translated-pairs config")
    check_keys(raw, TOP_KEYS, where, required=("prompts", "languages", "strong", "weak", "translator"))
    if not isinstance(raw["prompts"], dict):
        raise ConfigError(f"{where}: prompts must be a mapping", "e.g. prompts: {oasst_hplt: DIR, first: 10}")
    pivot = typed(raw, "pivot", str, where, "en")
    languages = typed(raw, "languages", list, where)
    if not languages or not all(isinstance(x, str) and x for x in languages) or len(set(languages)) != len(languages):
        raise ConfigError(f"{where}: languages must be a non-empty list of distinct codes, not {languages!r}",
                          "list the target languages, e.g. languages: [de, zh]")
    if pivot in languages:
        raise ConfigError(f"{where}: languages include the pivot {pivot!r}",
                          "list only target languages; the pivot's prompts are read anyway")
    for lang in languages:
        if why := checkable(lang):
            raise ConfigError(f"{where}: language {lang!r} cannot be checked: {why}",
                              "use a language langid.py knows or one with a non-Latin script")
    names = _names(raw, where, [pivot, *languages])
    template = typed(raw, "translation_prompt", str, where, DEFAULT_TRANSLATION_PROMPT)
    try:
        probe = template.format(language="\0L", text="\0T")
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{where}: translation_prompt is not a template with {{language}} and {{text}} ({exc!r})",
                          "write braces that are not placeholders as {{ and }}") from None
    if "\0L" not in probe or "\0T" not in probe:
        raise ConfigError(f"{where}: translation_prompt must contain {{language}} and {{text}}",
                          f"e.g. {DEFAULT_TRANSLATION_PROMPT!r}")
    models = {role: parse_teacher(raw[role], f"{where}: {role}", path) for role in ("strong", "weak", "translator")}
    if models["translator"].published is not None:
        raise ConfigError(f"{where}: translator is a published file", "the translator must be a model "
                          "(embedded, hf:<dir> or openai:<name>)")
    for role, t in models.items():
        if t.samples != 1:
            raise ConfigError(f"{where}: {role} has samples: {t.samples}", "one completion per prompt: samples: 1")
    if len({models["strong"].name, models["weak"].name}) == 1:
        raise ConfigError(f"{where}: strong and weak are both named {models['strong'].name!r}",
                          "name them apart: the names mark chosen and rejected in pairs.jsonl")
    return TranslatedPairsConfig(
        prompts=raw["prompts"], languages=tuple(languages), pivot=pivot,
        translate_prompts=typed(raw, "translate_prompts", bool, where, False), **models,
        translation_prompt=template, language_names=names, check=_check(raw.get("language_check", {}), where),
        batch_size=typed(raw, "batch_size", int, where, 8),
        device=typed(raw, "device", str, where, "auto"), dtype=typed(raw, "dtype", str, where, "auto"),
        raw=raw, path=path)


def _names(raw: dict, where: str, codes: list[str]) -> dict[str, str]:
    given = typed(raw, "language_names", dict, where, {})
    for code, name in given.items():
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}: language_names.{code} must be a language name, not {name!r}",
                              "e.g. language_names: {de: German}")
    names = {}
    for code in codes:
        lang = lookup(code)
        if code not in given and lang is None:
            raise ConfigError(f"{where}: no English name for language {code!r}",
                              f"add language_names: {{{code}: <name>}}")
        names[code] = given.get(code) or lang.name
    return names


def _check(block: Any, where: str) -> LanguageCheck:
    where = f"{where}: language_check"
    check_keys(block, CHECK_KEYS, where)
    min_letters = typed(block, "min_letters", int, where, 20)
    share = float(typed(block, "script_share", float, where, 0.5))
    if min_letters < 1:
        raise ConfigError(f"{where}: min_letters must be at least 1, not {min_letters}", "e.g. min_letters: 20")
    if not 0 < share <= 1:
        raise ConfigError(f"{where}: script_share must be in (0, 1], not {share}", "e.g. script_share: 0.5")
    return LanguageCheck(min_letters, share, typed(block, "drop_rejected", bool, where, False))
