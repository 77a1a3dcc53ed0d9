"""One language, many codes: the table, each task's alias map, ``--langs`` across a suite
(notes, never a silent drop), and the task's own code in the results."""

from __future__ import annotations

import pytest

from glotbench.harness.cli.main import main
from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.run.config import RunConfig
from glotbench.harness.run.plan import plan
from glotbench.harness.taskapi import languages as L
from glotbench.harness.taskapi.registry import get_task, task_names
from glotbench.tasks import dolly
from glotbench.tasks.flores_codes import FLORES200


def test_every_code_names_one_language_and_flores_codes_are_real():
    seen: dict[str, str] = {}
    for lang in L.LANGUAGES:
        assert lang.iso1 == "" or len(lang.iso1) == 2
        assert lang.iso3 and all(len(c) == 3 for c in lang.iso3)
        for code in lang.codes:
            assert code not in seen, f"{code} is {seen[code]} and {lang.name}"
            seen[code] = lang.name
        assert all(f in FLORES200 for f in lang.flores), lang
    assert L.lookup("jp").name == L.lookup("ja").name == L.lookup("jpn_Jpan").name == "Japanese"
    assert L.lookup("FR").name == "French" and L.lookup("xx") is None


@pytest.mark.parametrize("name", task_names())
def test_every_default_language_of_every_task_is_in_the_table(name):
    """Each task's alias map is complete: every code a task uses resolves to one language,
    and that language's ISO 639-1 (or 639-3) code selects it back."""
    task = get_task(name)
    for own in task.languages:
        side = next((s for s in own.split("-") if s != L.ENGLISH_FLORES), own) if "-" in own else own
        lang = L.lookup(side)
        assert lang is not None, f"{name}: {own} is not in harness/taskapi/languages.py"
        assert own in L.task_codes(task, lang.iso1 or lang.iso3[0])


def test_dolly_suite_codes_are_in_the_table():
    assert [c for c in dolly.NAMES if L.lookup(c) is None] == []


CASES = [
    ("xwinograd", "ja", ("jp",)), ("xwinograd", "jpn", ("jp",)), ("xwinograd", "jp", ("jp",)),
    ("mgsm", "jp", ("ja",)), ("mgsm", "jpn_Jpan", ("ja",)),
    ("dolly", "fr", ("fra",)), ("dolly", "fa", ("pes",)), ("dolly", "sw", ("swa",)),
    ("dolly", "kas_Deva", ("kas_Deva",)), ("dolly", "ar", ("ara",)),
    ("xcopa", "zho_Hant", ("zh",)), ("xcopa", "swa", ("sw",)), ("xcopa", "de", ()),
    ("flores", "fr", ("fra_Latn-eng_Latn", "eng_Latn-fra_Latn")),
    ("flores", "fra", ("fra_Latn-eng_Latn", "eng_Latn-fra_Latn")),
    ("flores", "zh", ("zho_Hans-eng_Latn", "zho_Hant-eng_Latn", "eng_Latn-zho_Hans", "eng_Latn-zho_Hant")),
    ("flores", "zho_Hant", ("zho_Hant-eng_Latn", "eng_Latn-zho_Hant")),
    ("flores", "sw", ("swh_Latn-eng_Latn", "eng_Latn-swh_Latn")),  # beyond the default set
    ("flores", "deu_Latn-fra_Latn", ("deu_Latn-fra_Latn",)),
    ("flores", "en", ()),
    ("flores", "ckb_Arab", ("ckb_Arab-eng_Latn", "eng_Latn-ckb_Arab")),  # FLORES code outside the table
    ("m_arenahard", "deu", ("de",)),
    ("include", "tl", ("tl",)), ("global_mmlu", "fil", ("fil",)), ("global_mmlu", "tl", ()),
]


@pytest.mark.parametrize(("task", "code", "own"), CASES)
def test_task_codes(task, code, own):
    assert L.task_codes(get_task(task), code) == own


def test_select_maps_notes_and_never_drops_silently():
    tasks = [get_task(n) for n in ("xwinograd", "mgsm", "xcopa", "flores")]
    sel = L.select(tasks, ("ja", "et"))
    assert sel.codes["xwinograd"] == {"jp": ("ja",)} and sel.codes["mgsm"] == {"ja": ("ja",)}
    assert sel.codes["xcopa"] == {"et": ("et",)}
    # Estonian is in no default direction, but FLORES-200 has est_Latn: a bare code reaches it
    assert sel.codes["flores"] == {"jpn_Jpan-eng_Latn": ("ja",), "eng_Latn-jpn_Jpan": ("ja",),
                                   "est_Latn-eng_Latn": ("et",), "eng_Latn-est_Latn": ("et",)}
    notes = "\n".join(sel.notes)
    assert "--langs ja is xwinograd jp, flores jpn_Jpan-eng_Latn + eng_Latn-jpn_Jpan" in notes
    assert "--langs et is flores est_Latn-eng_Latn + eng_Latn-est_Latn" in notes
    assert "xwinograd has no et; it runs jp" in notes and "xcopa has no ja; it runs et" in notes


def test_select_notes_a_task_with_none_of_the_languages():
    sel = L.select([get_task("xcopa"), get_task("mgsm")], ("de",))
    assert sel.codes["xcopa"] == {} and sel.codes["mgsm"] == {"de": ("de",)}
    assert any(n.startswith("not running xcopa: it has none of de") for n in sel.notes)


def test_unknown_code_is_one_line_with_a_close_match():
    with pytest.raises(GlotbenchError, match=r"no language 'frx' in xcopa, mgsm \(did you mean 'fr'\?\)"):
        L.select([get_task("xcopa"), get_task("mgsm")], ("frx",))


def test_plan_records_the_tasks_own_code(tmp_path):
    notes: list[str] = []
    cfg = RunConfig(tasks=("xwinograd", "mgsm", "flores"), langs=("ja",), limit=2, data="bundled")
    units = plan(cfg, notes)
    assert [(u.task.name, u.lang, u.requested) for u in units] == [
        ("xwinograd", "jp", ("ja",)), ("mgsm", "ja", ("ja",)),
        ("flores", "jpn_Jpan-eng_Latn", ("ja",)), ("flores", "eng_Latn-jpn_Jpan", ("ja",))]
    assert notes and notes[0].startswith("--langs ja is xwinograd jp")


def test_plan_errors_in_one_line_when_no_task_remains():
    with pytest.raises(GlotbenchError, match=r"no task has any of the selected languages \(de\)"):
        plan(RunConfig(tasks=("xcopa", "xwinograd"), langs=("de",), limit=2))


def test_cli_names_what_it_cannot_run(tmp_path, capsys, isolated_cache):
    """Offline, neither Dolly nor m-ArenaHard has German data: the error names both."""
    code = main(["run", "--langs", "de", "--tasks", "dolly,m_arenahard", "--results-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 + err.count("note: ") and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("glotbench: error: cannot load the data of dolly/deu, m_arenahard/de")
    assert "note: --langs de is dolly deu" in err and not (tmp_path / "r").exists()


def test_cli_note_then_error_when_no_task_has_the_language(tmp_path, capsys, isolated_cache):
    code = main(["run", "--langs", "de", "--tasks", "xcopa,xwinograd", "--results-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[0].startswith("note: not running xcopa: it has none of de")
    assert err[1].startswith("note: not running xwinograd: it has none of de")
    assert err[2].startswith("glotbench: error: no task has any of the selected languages (de)")


def test_tasks_verb_shows_aliases(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "xwinograd    ja→jp" in out and "fr→fra_Latn⇄en" in out and "de→deu" in out


@pytest.mark.slow
def test_one_langs_runs_both_tasks(tmp_path, capsys, isolated_cache, tiny_model_dir):
    """The issue's acceptance command, on the tiny model: XWinograd's jp and MGSM's ja."""
    from glotbench.harness.store.rundir import read_run

    out = tmp_path / "run"
    code = main(["run", "--tasks", "xwinograd,mgsm", "--langs", "ja", "--limit", "2", "--model",
                 f"hf:{tiny_model_dir}", "--max-new-tokens", "4", "--device", "cpu", "--no-progress",
                 "--output", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "note: --langs ja is xwinograd jp" in captured.err
    run = read_run(out)
    assert {t: list(v) for t, v in run["results"].items()} == {"xwinograd": ["jp"], "mgsm": ["ja"]}
    langs = run["provenance"]["tasks"]["xwinograd"]["languages"]
    assert langs["jp"]["requested_as"] == ["ja"]
    assert "requested_as" not in run["provenance"]["tasks"]["mgsm"]["languages"]["ja"]


def test_the_docs_table_is_the_module_table():
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "languages.md").read_text(encoding="utf-8")
    table = doc.split("## The table", 1)[1]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines()
            if line.startswith("| ") and not line.startswith("| language")]
    want = [[lang.name, lang.iso1 or "–", " ".join(lang.iso3), " ".join(lang.flores) or "–", " ".join(lang.other)]
            for lang in L.LANGUAGES]
    assert rows == want, "docs/languages.md: regenerate the table from harness/taskapi/languages.py"


def test_default_run_notes_languages_without_local_data():
    """The default run keeps each task's languages with local data (task_langs): --langs
    names what that leaves out instead of reaching for the hub."""
    notes: list[str] = []
    units = plan(RunConfig(tasks=("m_arenahard", "mgsm"), langs=("de", "en"), limit=1,
                           task_langs={"m_arenahard": ("en",)}), notes)
    assert [(u.task.name, u.lang) for u in units] == [("m_arenahard", "en"), ("mgsm", "de"), ("mgsm", "en")]
    assert "m_arenahard: no local data for de; it runs en" in notes
    notes = []
    plan(RunConfig(tasks=("m_arenahard", "mgsm"), langs=("de",), limit=1, task_langs={"m_arenahard": ("en",)}),
         notes)
    assert "not running m_arenahard: no local data for de (use --data hub or --data-dir)" in notes
