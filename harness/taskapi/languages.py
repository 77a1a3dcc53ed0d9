"""One language, many codes: the table that lets one ``--langs`` select every task of a suite.

Tasks name their languages in the code their data uses: ISO 639-1 (``fr``: XCOPA, MGSM,
Global-MMLU, INCLUDE, m-ArenaHard), ISO 639-3 (``fra``: the Aya evaluation suite's Dolly),
a code of their own (``jp``: XWinograd) or FLORES-200 directions (``fra_Latn-eng_Latn``).
:data:`LANGUAGES` lists each language once with all its codes; :func:`task_codes` turns any
of them into the codes one task uses, so ``--langs ja`` runs XWinograd's ``jp`` and MGSM's
``ja``, and ``--langs fr`` runs both FLORES directions between French and English.
Results are always recorded under the task's own code. docs/languages.md has the rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from glotbench.harness.core.errors import GlotbenchError, close_match
from glotbench.harness.taskapi.spec import Task

ENGLISH_FLORES = "eng_Latn"
"""The pivot of translation directions: a bare language code selects X→en and en→X."""

# (ISO 639-1, ISO 639-3 codes, FLORES-200 codes, English name). ISO 639-3: the macrolanguage
# first, then the individual language that data sets use for it (Arabic ``ara`` / ``arb``,
# Persian ``fas`` / ``pes``); every code in a row selects the same language. FLORES-200:
# every script the release has for the language (Chinese: Simplified and Traditional), so a
# bare code selects all of them and a FLORES code selects its own script only. Macrolanguages
# whose FLORES varieties are different languages (Kurdish: ckb, kmr) list none: pass the
# FLORES code itself.
TABLE: tuple[tuple[str, str, str, str], ...] = (
    ("", "ace", "ace_Arab ace_Latn", "Acehnese"),
    ("af", "afr", "afr_Latn", "Afrikaans"),
    ("am", "amh", "amh_Ethi", "Amharic"),
    ("ar", "ara arb", "arb_Arab", "Arabic"),
    ("az", "aze azj", "azj_Latn", "Azerbaijani"),
    ("be", "bel", "bel_Cyrl", "Belarusian"),
    ("bg", "bul", "bul_Cyrl", "Bulgarian"),
    ("", "bjn", "bjn_Arab bjn_Latn", "Banjar"),
    ("bn", "ben", "ben_Beng", "Bengali"),
    ("ca", "cat", "cat_Latn", "Catalan"),
    ("", "ceb", "ceb_Latn", "Cebuano"),
    ("cs", "ces", "ces_Latn", "Czech"),
    ("cy", "cym", "cym_Latn", "Welsh"),
    ("da", "dan", "dan_Latn", "Danish"),
    ("de", "deu", "deu_Latn", "German"),
    ("el", "ell", "ell_Grek", "Greek"),
    ("en", "eng", "eng_Latn", "English"),
    ("eo", "epo", "epo_Latn", "Esperanto"),
    ("es", "spa", "spa_Latn", "Spanish"),
    ("et", "est ekk", "est_Latn", "Estonian"),
    ("eu", "eus", "eus_Latn", "Basque"),
    ("fa", "fas pes", "pes_Arab", "Persian"),
    ("fi", "fin", "fin_Latn", "Finnish"),
    ("", "fil", "", "Filipino"),
    ("fr", "fra", "fra_Latn", "French"),
    ("ga", "gle", "gle_Latn", "Irish"),
    ("gd", "gla", "gla_Latn", "Scottish Gaelic"),
    ("gl", "glg", "glg_Latn", "Galician"),
    ("gu", "guj", "guj_Gujr", "Gujarati"),
    ("ha", "hau", "hau_Latn", "Hausa"),
    ("he", "heb", "heb_Hebr", "Hebrew"),
    ("hi", "hin", "hin_Deva", "Hindi"),
    ("hr", "hrv", "hrv_Latn", "Croatian"),
    ("ht", "hat", "hat_Latn", "Haitian Creole"),
    ("hu", "hun", "hun_Latn", "Hungarian"),
    ("hy", "hye", "hye_Armn", "Armenian"),
    ("id", "ind", "ind_Latn", "Indonesian"),
    ("ig", "ibo", "ibo_Latn", "Igbo"),
    ("is", "isl", "isl_Latn", "Icelandic"),
    ("it", "ita", "ita_Latn", "Italian"),
    ("ja", "jpn", "jpn_Jpan", "Japanese"),
    ("jv", "jav", "jav_Latn", "Javanese"),
    ("ka", "kat", "kat_Geor", "Georgian"),
    ("kk", "kaz", "kaz_Cyrl", "Kazakh"),
    ("km", "khm", "khm_Khmr", "Khmer"),
    ("kn", "kan", "kan_Knda", "Kannada"),
    ("ko", "kor", "kor_Hang", "Korean"),
    ("kr", "kau", "knc_Arab knc_Latn", "Kanuri"),
    ("ks", "kas", "kas_Arab kas_Deva", "Kashmiri"),
    ("ku", "kur", "", "Kurdish"),
    ("ky", "kir", "kir_Cyrl", "Kyrgyz"),
    ("lb", "ltz", "ltz_Latn", "Luxembourgish"),
    ("lo", "lao", "lao_Laoo", "Lao"),
    ("lt", "lit", "lit_Latn", "Lithuanian"),
    ("lv", "lav lvs", "lvs_Latn", "Latvian"),
    ("mg", "mlg plt", "plt_Latn", "Malagasy"),
    ("mi", "mri", "mri_Latn", "Maori"),
    ("", "min", "min_Arab min_Latn", "Minangkabau"),
    ("mk", "mkd", "mkd_Cyrl", "Macedonian"),
    ("ml", "mal", "mal_Mlym", "Malayalam"),
    ("mn", "mon khk", "khk_Cyrl", "Mongolian"),
    ("", "mni", "mni_Beng", "Manipuri"),
    ("mr", "mar", "mar_Deva", "Marathi"),
    ("ms", "msa zsm", "zsm_Latn", "Malay"),
    ("mt", "mlt", "mlt_Latn", "Maltese"),
    ("my", "mya", "mya_Mymr", "Burmese"),
    ("ne", "nep npi", "npi_Deva", "Nepali"),
    ("nl", "nld", "nld_Latn", "Dutch"),
    ("no", "nor nob", "nob_Latn", "Norwegian"),
    ("", "nso", "nso_Latn", "Northern Sotho"),
    ("ny", "nya", "nya_Latn", "Chichewa"),
    ("pl", "pol", "pol_Latn", "Polish"),
    ("ps", "pus pbt", "pbt_Arab", "Pashto"),
    ("pt", "por", "por_Latn", "Portuguese"),
    ("qu", "que quy", "quy_Latn", "Quechua"),
    ("ro", "ron", "ron_Latn", "Romanian"),
    ("ru", "rus", "rus_Cyrl", "Russian"),
    ("sd", "snd", "snd_Arab", "Sindhi"),
    ("si", "sin", "sin_Sinh", "Sinhala"),
    ("sk", "slk", "slk_Latn", "Slovak"),
    ("sl", "slv", "slv_Latn", "Slovenian"),
    ("sm", "smo", "smo_Latn", "Samoan"),
    ("sn", "sna", "sna_Latn", "Shona"),
    ("so", "som", "som_Latn", "Somali"),
    ("sq", "sqi als", "als_Latn", "Albanian"),
    ("sr", "srp", "srp_Cyrl", "Serbian"),
    ("st", "sot", "sot_Latn", "Southern Sotho"),
    ("su", "sun", "sun_Latn", "Sundanese"),
    ("sv", "swe", "swe_Latn", "Swedish"),
    ("sw", "swa swh", "swh_Latn", "Swahili"),
    ("ta", "tam", "tam_Taml", "Tamil"),
    ("", "taq", "taq_Latn taq_Tfng", "Tamasheq"),
    ("te", "tel", "tel_Telu", "Telugu"),
    ("tg", "tgk", "tgk_Cyrl", "Tajik"),
    ("th", "tha", "tha_Thai", "Thai"),
    ("tl", "tgl", "tgl_Latn", "Tagalog"),
    ("tr", "tur", "tur_Latn", "Turkish"),
    ("uk", "ukr", "ukr_Cyrl", "Ukrainian"),
    ("ur", "urd", "urd_Arab", "Urdu"),
    ("uz", "uzb uzn", "uzn_Latn", "Uzbek"),
    ("vi", "vie", "vie_Latn", "Vietnamese"),
    ("xh", "xho", "xho_Latn", "Xhosa"),
    ("yi", "yid ydd", "ydd_Hebr", "Yiddish"),
    ("yo", "yor", "yor_Latn", "Yoruba"),
    ("zh", "zho cmn", "zho_Hans zho_Hant", "Chinese"),
    ("zu", "zul", "zul_Latn", "Zulu"),
)

# Codes outside the standards that a task's data uses: code → the ISO 639-1 code it means.
NONSTANDARD: dict[str, str] = {
    "jp": "ja",  # XWinograd (Muennighoff/xwinograd config and file names)
}


@dataclass(frozen=True)
class Language:
    """Every code of one language."""

    name: str
    iso1: str
    """ISO 639-1 code, or '' when the language has none (Filipino, Cebuano)."""
    iso3: tuple[str, ...]
    """ISO 639-3 codes, the macrolanguage first."""
    flores: tuple[str, ...]
    """FLORES-200 codes (``<ISO 639-3>_<Script>``), one per script of the release."""
    other: tuple[str, ...] = ()
    """Non-standard codes tasks use for it (``jp``)."""

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(c for c in (self.iso1, *self.other, *self.iso3, *self.flores) if c)


def _build() -> tuple[tuple[Language, ...], dict[str, Language]]:
    others: dict[str, list[str]] = {}
    for code, iso1 in NONSTANDARD.items():
        others.setdefault(iso1, []).append(code)
    langs = tuple(Language(name, iso1, tuple(iso3.split()), tuple(flores.split()), tuple(others.get(iso1, ())))
                  for iso1, iso3, flores, name in TABLE)
    index: dict[str, Language] = {}
    for lang in langs:
        for code in lang.codes:
            if code in index:  # one code, two languages: the table is wrong (a test guards it)
                raise ValueError(f"language code {code!r} is listed for {index[code].name} and {lang.name}")
            index[code] = lang
    return langs, index


LANGUAGES, _INDEX = _build()


def lookup(code: str) -> Language | None:
    """The language a code names (any of its codes; ISO codes case-insensitively), or None."""
    return _INDEX.get(code) or (_INDEX.get(code.lower()) if "_" not in code else None)


def _pairs(task: Task, flores: tuple[str, ...]) -> list[str]:
    """The task's directions between these FLORES codes and English, X→en first."""
    return [d for f in flores for d in (f"{f}-{ENGLISH_FLORES}", f"{ENGLISH_FLORES}-{f}") if task.supports(d)]


def task_codes(task: Task, code: str) -> tuple[str, ...]:
    """The codes ``task`` uses for the requested ``code`` (empty when it has that language in
    none of them). Order of preference: the code itself if the task takes it; codes of the
    same language in the task's default set; then codes the task accepts beyond it, in the
    first code system the task takes (ISO 639-1, ISO 639-3, FLORES-200 code, FLORES-200
    directions with English)."""
    if task.supports(code):
        return (code,)
    lang = lookup(code)
    if lang is None:  # a FLORES-200 code outside the table (ckb_Arab): its directions, if any
        return tuple(_pairs(task, (code,))) if "_" in code else ()
    # A FLORES code keeps its script; any other code means every script of the language.
    flores = (code,) if code in lang.flores else lang.flores
    pairs = {f"{f}-{ENGLISH_FLORES}" for f in flores} | {f"{ENGLISH_FLORES}-{f}" for f in flores}
    own = set(lang.codes) - set(lang.flores) | set(flores) | pairs
    default = tuple(c for c in task.languages if c in own)
    if default:
        return default
    for kind in ((lang.iso1, *lang.other), lang.iso3):
        found = [c for c in kind if c and task.supports(c)]
        if found:
            return (found[0],)  # alternatives of one kind are the same language: take one
    found = [c for c in flores if task.supports(c)] or _pairs(task, flores)
    return tuple(found)


def aliases(task: Task) -> dict[str, tuple[str, ...]]:
    """For ``glotbench tasks``: every table code that selects a default language of ``task``
    under another code → the task's codes it selects (``ja`` → ``('jp',)`` for XWinograd)."""
    out: dict[str, tuple[str, ...]] = {}
    for lang in LANGUAGES:
        code = lang.iso1 or lang.iso3[0]
        own = tuple(c for c in task_codes(task, code) if c in task.languages)
        if own and own != (code,):
            out[code] = own
    return out


@dataclass(frozen=True)
class Selection:
    """What one ``--langs`` selects in each task."""

    codes: dict[str, dict[str, tuple[str, ...]]]
    """Task name → {the task's own code → the requested codes that selected it}, in request order."""
    notes: tuple[str, ...]
    """The mapping where a task uses another code, and the tasks or languages not selected."""


def select(tasks: list[Task], requested: tuple[str, ...]) -> Selection:
    """Each task's own codes for the requested ones. A code that no task takes and the table
    does not know is a one-line error (a typo); a task without any of the languages is a
    note, never a silent drop."""
    for code in requested:
        if lookup(code) is None and not any(task_codes(t, code) for t in tasks):
            known = sorted({c for t in tasks for c in t.languages} | set(_INDEX))
            names = ", ".join(t.name for t in tasks)
            raise GlotbenchError(
                f"no language {code!r} in {names}{close_match(code, known)}",
                "use a code of 'glotbench tasks': ISO 639-1 (fr), ISO 639-3 (fra) or FLORES-200 "
                "(fra_Latn, or a direction fra_Latn-eng_Latn); docs/languages.md")
    codes: dict[str, dict[str, tuple[str, ...]]] = {}
    mapped: dict[str, list[str]] = {}
    notes: list[str] = []
    for task in tasks:
        mine: dict[str, list[str]] = {}
        lacking = []
        for code in requested:
            own = task_codes(task, code)
            if not own:
                lacking.append(code)
            for c in own:
                mine.setdefault(c, []).append(code)
            if own and own != (code,):
                mapped.setdefault(code, []).append(f"{task.name} {' + '.join(own)}")
        codes[task.name] = {c: tuple(r) for c, r in mine.items()}
        if not mine:
            notes.append(f"not running {task.name}: it has none of {', '.join(requested)} "
                         f"(its languages: {_short(task.languages)}; see glotbench tasks)")
        elif lacking:
            notes.append(f"{task.name} has no {', '.join(lacking)}; it runs {', '.join(mine)}")
    shown = [f"--langs {code} is {', '.join(where)}" for code, where in mapped.items()]
    return Selection(codes, tuple(shown + notes))


def _short(codes: tuple[str, ...], keep: int = 12) -> str:
    return " ".join(codes[:keep]) + (f" … ({len(codes)} in all)" if len(codes) > keep else "")
