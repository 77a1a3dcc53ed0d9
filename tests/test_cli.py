"""The run verb end to end on a tiny model: store layout, provenance, bad input, concurrency."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from glotbench.harness.cli.main import main
from glotbench.harness.store.rundir import read_run, read_samples

REPO = Path(__file__).resolve().parent.parent


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_run_writes_self_describing_store(tiny_model_dir, tmp_path, isolated_cache, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(["run", "--model", f"hf:{tiny_model_dir}", "--tasks", "xcopa,xwinograd",
                               "--langs", "et,zh,en", "--limit", "5", "--output", str(out),
                               "--no-progress", "--device", "cpu"], capsys)
    assert code == 0, stdout
    run = read_run(out)
    assert set(run["results"]) == {"xcopa", "xwinograd"}
    assert set(run["results"]["xcopa"]) == {"et", "zh"} and set(run["results"]["xwinograd"]) == {"en", "zh"}
    cell = run["results"]["xcopa"]["et"]
    assert cell["n"] == 5 and 0 <= cell["acc"] <= 1 and cell["stderr"] is not None and len(cell["ci95"]) == 2
    avg = run["averages"]["xcopa"]
    assert avg["n"] == 10 and avg["macro"] == pytest.approx(
        (run["results"]["xcopa"]["et"]["acc"] + run["results"]["xcopa"]["zh"]["acc"]) / 2)
    prov = run["provenance"]
    assert prov["model"]["weights_sha256"] and prov["model"]["device"] == "cpu"
    lang_prov = prov["tasks"]["xcopa"]["languages"]["et"]
    assert lang_prov["data_source"].startswith("bundled:") and len(lang_prov["data_sha256"]) == 64
    assert len(lang_prov["prompt_sha256"]) == 64 and prov["tasks"]["xcopa"]["version"]
    assert prov["requests"] == {"total": 40, "from_cache": 0, "computed": 40}
    recs = read_samples(out, "xcopa", "et")
    assert [r["doc_id"] for r in recs] == list(range(5))
    r = recs[0]
    assert set(r) >= {"doc_id", "target", "target_text", "pred", "acc", "choices"}
    assert len(r["choices"]) == 2 and {"logprob", "is_greedy", "n_tokens"} <= set(r["choices"][0])
    assert "xcopa" in stdout and "run written to" in stdout
    # Same command again: everything from the cache, same results.
    out2 = tmp_path / "run2"
    code, _, _ = run_cli(["run", "--model", f"hf:{tiny_model_dir}", "--tasks", "xcopa,xwinograd",
                          "--langs", "et,zh,en", "--limit", "5", "--output", str(out2), "--no-progress",
                          "--device", "cpu"], capsys)
    run2 = read_run(out2)
    assert run2["provenance"]["requests"] == {"total": 40, "from_cache": 40, "computed": 0}
    assert run2["results"] == run["results"]


BAD = [
    (["--tasks", "xcopaa"], "unknown task 'xcopaa' (did you mean 'xcopa'?)"),
    (["--tasks", "xcopa", "--langs", "etx"], "no language 'etx'"),
    (["--tasks", "xcopa", "--data-dir", "/nonexistent/data"], "is not a directory"),
    (["--tasks", "xstorycloze", "--data", "bundled"], "no bundled data for xstorycloze"),
    (["--tasks", "xcopa", "--limit", "0"], "--limit must be >= 1"),
    (["--tasks", "xcopa", "--model", "hf:/nonexistent/model"], "does not exist"),
    (["--tasks", "xcopa", "--model", "gguf:foo"], "unknown model backend 'gguf'"),
]


@pytest.mark.parametrize("args,message", BAD)
def test_bad_input_is_one_line_and_writes_nothing(args, message, tmp_path, isolated_cache, capsys):
    code, stdout, stderr = run_cli(["run", "--results-dir", str(tmp_path / "res"), "--limit", "2",
                                    "--device", "cpu", *args], capsys)
    assert code == 2
    assert message in stderr and stderr.count("\n") == 1 and "Traceback" not in stderr
    assert stderr.startswith("glotbench: error: ") and " — " in stderr  # problem — fix
    res = tmp_path / "res"
    assert not res.exists()  # not even an empty .partial


def test_malformed_data_file(tmp_path, isolated_cache, capsys):
    bad = tmp_path / "data" / "xcopa" / "et"
    bad.mkdir(parents=True)
    (bad / "test.et.jsonl").write_text('{"premise": "A.", "choice1": "b", "choice2": "c", '
                                       '"question": "cause", "label": 0}\n{not json\n')
    code, _, stderr = run_cli(["run", "--tasks", "xcopa", "--langs", "et", "--data-dir", str(tmp_path / "data"),
                               "--output", str(tmp_path / "out")], capsys)
    assert code == 2 and "line 2 is not valid JSON" in stderr and not (tmp_path / "out").exists()


def test_existing_output_is_refused(tiny_model_dir, tmp_path, isolated_cache, capsys):
    (tmp_path / "out").mkdir()
    code, _, stderr = run_cli(["run", "--model", f"hf:{tiny_model_dir}", "--tasks", "xcopa", "--langs", "et",
                               "--limit", "2", "--output", str(tmp_path / "out"), "--device", "cpu"], capsys)
    assert code == 2 and "already exists" in stderr


def test_tasks_verb(capsys):
    code, stdout, _ = run_cli(["tasks"], capsys)
    assert code == 0
    assert "xcopa" in stdout and "et*" in stdout and "xstorycloze" in stdout and "en-" in stdout


def test_console_script_and_concurrent_runs_share_the_cache(tiny_model_dir, tmp_path):
    """Two processes on one cache at once: both succeed, with identical results."""
    env = {**os.environ, "GLOTBENCH_REQUEST_CACHE": str(tmp_path / "shared.sqlite")}
    cmd = [sys.executable, "-m", "glotbench.harness.cli", "run", "--model", f"hf:{tiny_model_dir}", "--tasks", "xcopa",
           "--limit", "15", "--batch-size", "4", "--no-progress", "--device", "cpu"]
    procs = [subprocess.Popen(cmd + ["--output", str(tmp_path / f"r{i}")], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    a, b = (json.loads((tmp_path / f"r{i}" / "run.json").read_text()) for i in range(2))
    assert a["results"] == b["results"]


# The default run's plan (cuts, --full, the line it starts with): tests/test_default_run.py


def test_a_closed_pipe_ends_quietly():
    """``glotbench tasks | head -1``: the reader leaves early; no traceback, no error line."""
    proc = subprocess.Popen([sys.executable, "-m", "glotbench.harness.cli", "tasks"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == "", err
