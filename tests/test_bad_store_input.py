"""Bad store input to every verb that reads runs: a corrupt, truncated or missing ``run.json``
(table, report, gate, compare, judge), a run without its samples (compare, gate), a truncated
samples file (gate, compare), a damaged judge directory (gate). Each is one line on stderr
(``glotbench: error: <problem> — <fix>``), exit 2, no traceback, and nothing written: no
output file, no judge directory, no partial directory.

The runs are copies of the committed reference run (real run.json and samples files)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from glotbench.harness.cli.main import main

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "results" / "reference-embedded"
FLORES_FIRST = "arb_Arab-eng_Latn"
"""The first direction both the gate (sorted) and compare (run order) read."""


def copy_run(root: Path, name: str) -> Path:
    return Path(shutil.copytree(REFERENCE, root / name))


def truncate(file: Path, keep: float = 0.5) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: int(len(data) * keep)])


CORRUPTIONS = {
    "truncated": lambda f: truncate(f),
    "cut at the last brace": lambda f: f.write_bytes(f.read_bytes().rstrip()[:-1]),
    "not UTF-8": lambda f: f.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00" + os.urandom(64)),
    "empty": lambda f: f.write_bytes(b""),
    "missing": lambda f: f.unlink(),
}
MESSAGES = {"truncated": "is not valid JSON", "cut at the last brace": "is not valid JSON",
            "not UTF-8": "is not UTF-8 text", "empty": "is not valid JSON",
            "missing": "no run.json"}


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def verb_args(verb: str, good: Path, bad: Path, out: Path) -> list[str]:
    """A command of ``verb`` reading ``bad`` (and ``good``), asking to write under ``out``."""
    return {
        "table": ["table", str(good), str(bad)],
        "report": ["report", str(good), str(bad), "-o", str(out / "report.html"), "--figures", str(out / "figs")],
        "gate": ["gate", "--baseline", str(good), "--candidate", str(bad), "--json", str(out / "gate.json"),
                 "--markdown", str(out / "gate.md")],
        "compare": ["compare", str(good), str(bad), "--json"],
        "judge": ["judge", "--a", str(good), "--b", str(bad), "--judge", "embedded", "--yes",
                  "--output", str(out / "judge"), "--results-dir", str(out / "results"), "--no-progress"],
    }[verb]


def assert_one_line_error(code: int, err: str, *expected: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("glotbench: error: ") and " — " in lines[0], err
    assert "Traceback" not in err
    for text in expected:
        assert text in lines[0], (text, lines[0])


@pytest.fixture()
def store(tmp_path):
    """A good run, a copy to damage, and an empty output folder; the store's listing before."""
    good, bad = copy_run(tmp_path, "good"), copy_run(tmp_path, "bad")
    out = tmp_path / "out"
    out.mkdir()
    return good, bad, out


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
@pytest.mark.parametrize("verb", ["table", "report", "gate", "compare", "judge"])
def test_a_bad_run_json_is_one_line_and_writes_nothing(store, capsys, verb, corruption):
    good, bad, out = store
    CORRUPTIONS[corruption](bad / "run.json")
    before = listing(good.parent)
    code = main(verb_args(verb, good, bad, out))
    captured = capsys.readouterr()
    assert_one_line_error(code, captured.err, str(bad), MESSAGES[corruption])
    assert captured.out == "" and listing(good.parent) == before  # nothing written, nothing half-written


def test_a_foreign_run_json_is_one_line(store, capsys):
    good, bad, out = store
    (bad / "run.json").write_text(json.dumps({"results": {"xcopa": {}}, "config_general": {}}))
    for verb in ("table", "gate", "compare"):
        assert_one_line_error(main(verb_args(verb, good, bad, out)), capsys.readouterr().err,
                              "is not a glotbench run (format None)")


def test_compare_on_a_run_without_samples(store, capsys):
    good, bad, out = store
    shutil.rmtree(bad / "samples")
    before = listing(good.parent)
    code = main(["compare", str(good), str(bad)])
    captured = capsys.readouterr()
    assert_one_line_error(code, captured.err, f"run {bad} (flores/{FLORES_FIRST}) lacks its per-example records")
    assert captured.out == "" and listing(good.parent) == before


def test_gate_on_a_run_without_samples(store, capsys):
    good, bad, out = store
    shutil.rmtree(bad / "samples")
    code = main(verb_args("gate", good, bad, out))
    assert_one_line_error(code, capsys.readouterr().err, "lacks its per-example records")
    assert not (out / "gate.json").exists() and not (out / "gate.md").exists()


@pytest.mark.parametrize("verb", ["gate", "compare"])
def test_a_truncated_samples_file_is_one_line(store, capsys, verb):
    good, bad, out = store
    samples = bad / "samples" / "flores" / f"{FLORES_FIRST}.jsonl"
    truncate(samples, keep=0.7)  # inside the second record
    before = listing(good.parent)
    code = main(verb_args(verb, good, bad, out))
    captured = capsys.readouterr()
    assert_one_line_error(code, captured.err, f"{samples} line 2 is not valid JSON")
    assert captured.out == "" and listing(good.parent) == before


def test_a_samples_file_cut_at_a_line_boundary_is_a_different_item_set(store, capsys):
    good, bad, out = store
    samples = bad / "samples" / "xcopa" / "et.jsonl"
    samples.write_text(samples.read_text(encoding="utf-8").splitlines(keepends=True)[0], encoding="utf-8")
    # gated tasks are read in sorted order: flores first, then xcopa
    assert_one_line_error(main(verb_args("gate", good, bad, out)), capsys.readouterr().err,
                          "xcopa/et: the runs scored different examples (2 vs 1 doc_ids, 1 shared)")


def test_gate_with_a_damaged_judge_directory(store, capsys):
    good, bad, out = store
    judge = out / "judge"
    judge.mkdir()
    (judge / "judge.json").write_text('{"format": "glotbench-judge/1", "config": {"run_a"')
    code = main([*verb_args("gate", good, bad, out), "--judgments", str(judge)])
    assert_one_line_error(code, capsys.readouterr().err, f"{judge / 'judge.json'} is not valid JSON")
    assert listing(out) == {"judge", "judge/judge.json"}


def test_gate_outputs_that_cannot_be_written_are_refused_first(store, capsys):
    good, bad, out = store
    (out / "a-file").write_text("")
    for flag, target in (("--json", out / "a-file" / "gate.json"), ("--markdown", out)):
        code = main(["gate", "--baseline", str(good), "--candidate", str(bad), flag, str(target)])
        assert_one_line_error(code, capsys.readouterr().err, f"cannot write {target}")
    assert listing(out) == {"a-file"}
    code = main(["gate", "--baseline", str(good), "--candidate", str(bad), "--json", str(out / "new" / "g.json"),
                 "--markdown", str(out / "new" / "g.md")])
    assert code == 0 and {"new/g.json", "new/g.md"} <= listing(out)  # missing folders are created


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["run.json", "samples"])
def test_sequential_gate_on_a_damaged_baseline(store, capsys, damage):
    good, bad, out = store
    target = bad / "run.json" if damage == "run.json" else bad / "samples" / "xcopa" / "et.jsonl"
    truncate(target)
    code = main(["gate", "--baseline", str(bad), "--sequential", "--model", "embedded", "--no-progress",
                 "--json", str(out / "seq.json")])
    assert_one_line_error(code, capsys.readouterr().err, str(target))
    assert listing(out) == set()


def test_no_traceback_in_a_real_process(store):
    """The installed entry point in a fresh interpreter, as a user or a CI job runs it."""
    good, bad, out = store
    truncate(bad / "run.json")
    for verb in ("gate", "compare", "table"):
        proc = subprocess.run([sys.executable, "-m", "glotbench.harness.cli", *verb_args(verb, good, bad, out)],
                              capture_output=True, text=True, timeout=300, cwd=out)
        assert_one_line_error(proc.returncode, proc.stderr, str(bad / "run.json"), "is not valid JSON")
        assert proc.stdout == ""
    assert listing(out) == set()


@pytest.mark.parametrize("args", [["-o", "{out}"], ["-o", "{out}/r.html", "--figures", "{out}/r.html.txt"]])
def test_report_outputs_that_cannot_be_written_are_refused_first(store, capsys, args):
    """-o naming a directory (or --figures naming a file) is one line before the report is built."""
    good, _, out = store
    (out / "r.html.txt").write_text("a file, not a folder")
    before = listing(out)
    code = main(["report", str(good), *(a.format(out=out) for a in args)])
    assert_one_line_error(code, capsys.readouterr().err, "cannot write")
    assert listing(out) == before


def test_results_are_readable_by_the_other_users_of_a_shared_results_directory(store):
    """Atomic writes go through a mkstemp file (mode 0600); the result takes the umask's mode."""
    good, _, out = store
    old = os.umask(0o022)
    try:
        assert main(["gate", "--baseline", str(good), "--candidate", str(good), "--json", str(out / "g.json"),
                     "--markdown", str(out / "g.md")]) == 0
        assert main(["report", str(good), "-o", str(out / "r.html")]) == 0
    finally:
        os.umask(old)
    for name in ("g.json", "g.md", "r.html"):
        assert (out / name).stat().st_mode & 0o777 == 0o644, name
