"""Bad input on the ``glotbench run`` path: one line on stderr, exit 2, no traceback, nothing
half-written; bugs as one line with their own exit code; ``--debug`` before or after the verb;
partial directories of other hosts left alone; Ctrl-C, then the same command resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_resume import cached_rows

from glotbench.harness.cli.main import EXIT_INTERNAL, main
from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.run import execute as execute_mod
from glotbench.harness.run import plan as plan_mod
from glotbench.harness.store import rundir

REPO = Path(__file__).resolve().parent.parent
ANSWERS = REPO / "tasks" / "data" / "m-ArenaHard" / "en.jsonl"


def one_line_error(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("glotbench: error: ") and " — " in err, err
    return err


def leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_import_answers_refuses_a_non_utf8_file(tmp_path, capsys):
    bad = tmp_path / "answers.jsonl"
    bad.write_bytes(b'{"prompt_id": "1", "response": "ok"}\n{"prompt_id": "2", "response": "caf\xe9"}\n')
    out = tmp_path / "res" / "imported"
    code = main(["import-answers", str(bad), "--output", str(out), "--limit", "2"])
    err = one_line_error(capsys.readouterr().err)
    assert code == 2 and "is not UTF-8 text (line 2" in err and "iconv" in err
    assert leftovers(tmp_path / "res") == []


def test_existing_output_is_refused_before_anything_loads(tmp_path, capsys, monkeypatch):
    """Neither the data nor the model is touched: the check comes first, in well under a second
    here (the bound is generous for a loaded machine; what it guards is 'before the model')."""
    def never(*args, **kwargs):
        raise AssertionError("loaded before the --output check")

    monkeypatch.setattr(plan_mod, "plan", never)
    monkeypatch.setattr(execute_mod, "load_backend", never)
    (tmp_path / "out").mkdir()
    start = time.monotonic()
    code = main(["run", "--tasks", "xcopa", "--output", str(tmp_path / "out")])
    elapsed = time.monotonic() - start
    err = one_line_error(capsys.readouterr().err)
    assert code == 2 and "already exists" in err and elapsed < 5
    # the library path checks before the model loads too
    from glotbench.harness.run.config import RunConfig

    with pytest.raises(GlotbenchError, match="already exists"):
        execute_mod.execute(RunConfig(tasks=("xcopa",), output=str(tmp_path / "out")), [])


class SpyCache(execute_mod.RequestCache):
    opened: list[SpyCache] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.closed = False
        SpyCache.opened.append(self)

    def close(self) -> None:
        super().close()
        self.closed = True


@pytest.mark.parametrize("failure", ["user", "bug"])
def test_an_error_after_the_run_directory_opened_leaves_nothing(failure, tiny_model_dir, tmp_path, capsys,
                                                                 monkeypatch, isolated_cache):
    def fail(*args, **kwargs):
        if failure == "user":
            raise GlotbenchError("the backend refused", "a fix")
        raise RuntimeError("boom\nsecond line")

    SpyCache.opened = []
    monkeypatch.setattr(execute_mod, "RequestCache", SpyCache)
    monkeypatch.setattr(execute_mod, "answer_and_score", fail)
    res = tmp_path / "res"
    code = main(["run", "--model", f"hf:{tiny_model_dir}", "--tasks", "xcopa", "--langs", "et", "--limit", "2",
                 "--device", "cpu", "--no-progress", "--output", str(res / "deep" / "run")])
    err = capsys.readouterr().err
    if failure == "user":
        assert code == 2 and "the backend refused" in one_line_error(err)
    else:
        assert code == EXIT_INTERNAL and err == ("glotbench: internal error: RuntimeError: boom (a bug; rerun "
                                                 "with --debug for the traceback)\n")
    assert not res.exists(), leftovers(tmp_path)  # no .partial, not even the folders it created
    assert len(SpyCache.opened) == 1 and SpyCache.opened[0].closed


def test_a_corrupt_request_cache_is_one_line_and_leaves_nothing(tiny_model_dir, tmp_path, capsys, monkeypatch):
    db = tmp_path / "requests.sqlite"
    db.write_bytes(b"this is not a database" * 100)
    monkeypatch.setenv("GLOTBENCH_REQUEST_CACHE", str(db))
    res = tmp_path / "res"
    res.mkdir()
    code = main(["run", "--model", f"hf:{tiny_model_dir}", "--tasks", "xcopa", "--langs", "et", "--limit", "2",
                 "--device", "cpu", "--no-progress", "--results-dir", str(res)])
    err = one_line_error(capsys.readouterr().err)
    assert code == 2 and f"cannot open the request cache {db}" in err
    assert leftovers(res) == []


def test_debug_before_or_after_the_verb(tmp_path, monkeypatch, capsys):
    def bug(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(plan_mod, "plan", bug)
    args = ["--tasks", "xcopa", "--results-dir", str(tmp_path)]
    assert main(["run", *args]) == EXIT_INTERNAL
    assert "internal error: RuntimeError: boom" in capsys.readouterr().err
    for argv in (["run", "--debug", *args], ["--debug", "run", *args]):
        assert main(argv) == EXIT_INTERNAL  # the same exit code: CI reads it
        err = capsys.readouterr().err
        assert "Traceback" in err and "RuntimeError: boom" in err and "internal error" not in err


def test_run_debug_as_users_type_it_shows_the_traceback(tmp_path):
    """A real process: ``glotbench run --debug`` parses, and an error shows its traceback."""
    cmd = [sys.executable, "-m", "glotbench.harness.cli", "run", "--tasks", "xcopa", "--limit", "0",
           "--results-dir", str(tmp_path)]
    plain = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    debug = subprocess.run([*cmd, "--debug"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert debug.returncode == 2, "--debug keeps the exit code"
    assert "Traceback" in debug.stderr and "GlotbenchError: --limit must be >= 1" in debug.stderr
    assert "unrecognized arguments" not in debug.stderr


# --- partial directories --------------------------------------------------------------------

def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_partials_of_other_hosts_are_never_removed(tmp_path):
    parent = tmp_path / "results"
    partial = parent / rundir.PARTIAL
    partial.mkdir(parents=True)
    pid = dead_pid()
    mine_dead = partial / f"a.{pid}@{rundir.host_tag()}"
    mine_alive = partial / f"b.{os.getpid()}@{rundir.host_tag()}"
    other_host = partial / f"c.{pid}@another-host~4026531836"
    same_name_other_ns = partial / f"d.{pid}@{rundir.host_tag().split('~')[0]}~1"
    legacy = partial / f"e.{pid}"  # written before hosts were recorded: whose is unknown
    for d in (mine_dead, mine_alive, other_host, same_name_other_ns, legacy):
        (d / "samples").mkdir(parents=True)
    writer = rundir.RunWriter(parent / "new")
    assert not mine_dead.exists()
    assert mine_alive.exists() and other_host.exists() and same_name_other_ns.exists() and legacy.exists()
    assert writer.tmp.name == f"new.{os.getpid()}@{rundir.host_tag()}"
    writer.abort()
    assert partial.exists()  # still holds the others' directories


def test_finish_and_abort_remove_an_empty_partial_folder(tmp_path):
    writer = rundir.RunWriter(tmp_path / "res" / "run")
    writer.write_samples("xcopa", "et", [{"doc_id": 0}])
    writer.finish({"format": "glotbench-run/1"})
    assert leftovers(tmp_path / "res") == ["run", "run/run.json", "run/samples", "run/samples/xcopa",
                                           "run/samples/xcopa/et.jsonl"]
    rundir.RunWriter(tmp_path / "res" / "other").abort()
    assert leftovers(tmp_path / "res")[0] == "run"
    assert not (tmp_path / "res" / rundir.PARTIAL).exists()


# --- Ctrl-C, then the same command ----------------------------------------------------------

def test_ctrl_c_then_the_same_command_with_output_resumes(tiny_model_dir, tmp_path):
    """The hint printed on Ctrl-C ("rerun the same command to resume") holds with an explicit
    --output: nothing is left under that name, and the rerun reuses the cached answers."""
    db = tmp_path / "requests.sqlite"
    out = tmp_path / "results" / "run"
    args = ["run", "--model", f"hf:{tiny_model_dir}", "--tasks", "xcopa", "--langs", "et,zh", "--limit", "60",
            "--batch-size", "1", "--device", "cpu", "--no-progress", "--output", str(out)]
    cmd = [sys.executable, "-m", "glotbench.harness.cli", *args]
    env = {**os.environ, "GLOTBENCH_REQUEST_CACHE": str(db)}
    # A shell that starts jobs in the background ignores SIGINT, and children inherit that, so
    # Python would install no KeyboardInterrupt handler: the interrupted process restores it,
    # as a terminal has it, then runs the same command line.
    with_ctrl_c = [sys.executable, "-c", "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                   "from glotbench.harness.cli.main import main; sys.exit(main(sys.argv[1:]))", *args]
    proc = subprocess.Popen(with_ctrl_c, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while cached_rows(db) == 0 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == ("glotbench: interrupted; finished requests are cached, rerun the "
                                            "same command to resume")
    assert not out.exists() and leftovers(tmp_path / "results") == []
    before = cached_rows(db)
    assert 0 < before < 240

    again = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    requests = json.loads((out / "run.json").read_text())["provenance"]["requests"]
    assert requests["total"] == 240 and requests["from_cache"] >= before
    assert requests["from_cache"] + requests["computed"] == 240


def test_sigterm_cleans_up_like_ctrl_c(tiny_model_dir, tmp_path, capsys, monkeypatch, isolated_cache):
    """``kill`` (SIGTERM, a CI timeout) mid-run: the run removes its partial directory and says
    how to resume, instead of dying mid-write."""
    def killed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises in this thread at once
        raise AssertionError("SIGTERM was not turned into an exception")

    monkeypatch.setattr(execute_mod, "answer_and_score", killed)
    previous = signal.getsignal(signal.SIGTERM)
    res = tmp_path / "res"
    code = main(["run", "--model", f"hf:{tiny_model_dir}", "--tasks", "xcopa", "--langs", "et", "--limit", "2",
                 "--device", "cpu", "--no-progress", "--output", str(res / "run")])
    err = capsys.readouterr().err
    assert code == 143 and err.startswith("glotbench: terminated; finished requests are cached, rerun the same")
    assert not res.exists() and signal.getsignal(signal.SIGTERM) is previous


@pytest.mark.parametrize("langs", ["", ",,", " , "])
def test_langs_naming_no_language_is_one_line(capsys, langs):
    assert main(["run", "--langs", langs]) == 2
    assert one_line_error(capsys.readouterr().err).startswith("glotbench: error: --langs")
