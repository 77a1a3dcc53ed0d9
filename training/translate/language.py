"""Is a completion written in language L? A script check and langid.py, in that order.

1. **Code is set aside**: fenced blocks (```` ``` ````) and inline `` `code` `` are removed
   first, since a Chinese answer with a Python snippet is still a Chinese answer.
2. **Enough letters**: fewer than ``min_letters`` alphabetic characters left (an answer that
   is a number, a formula, a URL) cannot be identified: ``too_short``. A Han, kana or Hangul
   character counts as 3 letters (it carries about a Latin word's syllable or more).
3. **Script**: the share of letters in the script(s) of L — from the FLORES-200 codes of the
   harness's language table (``zho_Hans`` → Han, ``hin_Deva`` → Devanagari, ``deu_Latn`` →
   Latin), a letter's script read from its Unicode name — must reach ``script_share``:
   otherwise ``wrong_script`` (an English answer to a Russian prompt, a Chinese one to a
   German prompt).
4. **Language ID**: langid.py (Lui & Baldwin 2012; PyPI ``langid``, a naive Bayes model over
   byte n-grams for 97 languages, bundled in the wheel, offline) over all 97 languages; its
   top language must be L (or a written standard of the same language: ``no``/``nb``/``nn``;
   ``ms``/``id``), or L must have probability at least 0.25 (a close second on a short text):
   otherwise ``wrong_language`` (English, French and German share a script).
   For a language langid.py does not know, the script check alone decides, which only a
   non-Latin script can do (:func:`checkable` says which languages are supported).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from glotbench.harness.taskapi.languages import lookup

# FLORES-200 script code → prefixes of the Unicode character names of its letters.
SCRIPT_NAMES: dict[str, tuple[str, ...]] = {
    "Latn": ("LATIN",), "Cyrl": ("CYRILLIC",), "Grek": ("GREEK",), "Hans": ("CJK",), "Hant": ("CJK",),
    "Jpan": ("CJK", "HIRAGANA", "KATAKANA"), "Hang": ("HANGUL",), "Deva": ("DEVANAGARI",),
    "Beng": ("BENGALI",), "Arab": ("ARABIC",), "Hebr": ("HEBREW",), "Thai": ("THAI",), "Taml": ("TAMIL",),
    "Telu": ("TELUGU",), "Knda": ("KANNADA",), "Mlym": ("MALAYALAM",), "Gujr": ("GUJARATI",),
    "Guru": ("GURMUKHI",), "Orya": ("ORIYA",), "Geor": ("GEORGIAN",), "Armn": ("ARMENIAN",),
    "Ethi": ("ETHIOPIC",), "Khmr": ("KHMER",), "Laoo": ("LAO",), "Mymr": ("MYANMAR",), "Sinh": ("SINHALA",),
    "Tibt": ("TIBETAN",),
}
# Written standards langid.py tells apart that are one language for this check.
SAME_LANGUAGE = ({"no", "nb", "nn"}, {"ms", "id"})
SECOND_OPINION = 0.25
"""langid.py probability of L from which a text is in L even when another language ranks first."""
REASONS = ("empty", "too_short", "wrong_script", "wrong_language")
WIDE = ("CJK", "HIRAGANA", "KATAKANA", "HANGUL")
CODE = re.compile(r"```.*?(```|\Z)|`[^`\n]*`", re.DOTALL)


@dataclass(frozen=True)
class Verdict:
    """The check of one text against one language."""

    ok: bool
    reason: str | None
    """None when ok; else one of :data:`REASONS`."""
    script_share: float | None
    """Share of the letters written in the language's script (None: no letters)."""
    detected: str | None = None
    """langid.py's top language (None when it did not run)."""
    probability: float | None = None
    """langid.py's normalised probability of ``detected``."""
    probability_language: float | None = None
    """langid.py's normalised probability of the checked language (its written standards summed)."""

    def to_json(self) -> dict:
        return {"ok": self.ok, "reason": self.reason, "script_share": self.script_share,
                "detected": self.detected, "probability": self.probability,
                "probability_language": self.probability_language}


@lru_cache(maxsize=1)
def _identifier():
    # Our own identifier object: langid.classify() shares a module-level one that
    # langid.set_languages() would restrict for every other caller in the process.
    from langid.langid import LanguageIdentifier, model

    return LanguageIdentifier.from_modelstring(model, norm_probs=True)


def library() -> dict:
    """The language-ID library's name and version (recorded in the manifest)."""
    from importlib.metadata import version

    return {"library": "langid", "version": version("langid")}


def langid_languages() -> frozenset[str]:
    return frozenset(_identifier().nb_classes)


def scripts(language: str) -> tuple[str, ...]:
    """The FLORES-200 script codes of ``language`` (empty when the table does not know it)."""
    lang = lookup(language)
    if lang is None:
        return ()
    return tuple(dict.fromkeys(code.split("_", 1)[1] for code in lang.flores))


def checkable(language: str) -> str | None:
    """None when ``language`` can be checked; else why not (one line for a config error)."""
    known = scripts(language)
    if known and not all(s in SCRIPT_NAMES for s in known):
        return f"its script ({', '.join(known)}) is not one the check reads"
    if language in langid_languages() or _iso1(language) in langid_languages():
        return None if known else f"{language!r} is not in the language table (harness/taskapi/languages.py)"
    if not known:
        return f"{language!r} is neither in the language table nor among langid.py's 97 languages"
    if known == ("Latn",):
        return f"langid.py does not know {language!r} and its Latin script alone cannot tell it from English"
    return None


def _iso1(language: str) -> str:
    lang = lookup(language)
    return lang.iso1 if lang is not None and lang.iso1 else language


def letter_script_share(text: str, script_codes: tuple[str, ...]) -> tuple[int, float | None]:
    """(letters, with a Han/kana/Hangul character counted as 3; share of the letters, by
    count, whose Unicode name starts with a prefix of the scripts)."""
    prefixes = tuple(p for s in script_codes for p in SCRIPT_NAMES.get(s, ()))
    # Vowel signs and viramas (Devanagari, Bengali, …) are marks, not letters, yet they carry a
    # syllable: counted as letters, or a Hindi sentence is "too short" where English is not.
    names = [unicodedata.name(c, "") for c in text if c.isalpha() or unicodedata.category(c) in ("Mn", "Mc")]
    if not names:
        return 0, None
    inside = sum(n.startswith(prefixes) for n in names)
    return sum(3 if n.startswith(WIDE) else 1 for n in names), inside / len(names)


def check(text: str, language: str, *, min_letters: int = 20, script_share: float = 0.5) -> Verdict:
    """Whether ``text`` is written in ``language`` (see the module docstring for the steps)."""
    prose = CODE.sub(" ", text).strip()
    if not prose:
        return Verdict(False, "empty", None)
    n, share = letter_script_share(prose, scripts(language))
    share = None if share is None else round(share, 4)
    if n < min_letters:
        return Verdict(False, "too_short", share)
    if share is None or share < script_share:
        return Verdict(False, "wrong_script", share)
    code = language if language in langid_languages() else _iso1(language)
    if code not in langid_languages():
        return Verdict(True, None, share)
    ranked = _identifier().rank(prose)
    detected, prob = ranked[0]
    group = next((g for g in SAME_LANGUAGE if code in g), {code})
    p_lang = sum(p for lang, p in ranked if lang in group)
    # A close second is not a wrong language: short texts split langid's mass between near
    # languages (a 4-word Russian question: uk 0.59, ru 0.41).
    ok = detected in group or p_lang >= SECOND_OPINION
    return Verdict(ok, None if ok else "wrong_language", share, detected, round(float(prob), 4),
                   round(float(p_lang), 4))
