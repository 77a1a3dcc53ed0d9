"""kill -9 in the middle of a run, run the same command again: nothing finished is recomputed
and the scores equal an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ARGS = ["run", "--tasks", "xcopa", "--langs", "et,zh", "--limit", "40", "--batch-size", "4",
        "--no-progress", "--device", "cpu"]


def cached_rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=30) as con:
            return con.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def launch(out: Path, db: Path) -> subprocess.Popen:
    env = {**os.environ, "GLOTBENCH_REQUEST_CACHE": str(db)}
    return subprocess.Popen([sys.executable, "-m", "glotbench.harness.cli", *ARGS, "--output", str(out)], env=env,
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_kill_9_then_resume(tmp_path, embedded_dir):
    db = tmp_path / "requests.sqlite"
    out = tmp_path / "run"
    proc = launch(out, db)
    deadline = time.time() + 240
    while cached_rows(db) == 0 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = cached_rows(db)
    assert 0 < before < 160
    assert not out.exists(), "a killed run must not look finished"
    [partial] = (tmp_path / ".partial").iterdir()  # the killed run leaves only a partial directory
    assert partial.name.startswith(f"run.{proc.pid}@"), "named with the pid and the host that own it"

    proc = launch(out, db)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    resumed = json.loads((out / "run.json").read_text())
    assert resumed["provenance"]["requests"] == {"total": 160, "from_cache": before, "computed": 160 - before}
    # this host's dead run's partial directory is cleaned up, and the emptied .partial with it
    assert not (tmp_path / ".partial").exists(), "stale partial directories are cleaned up"

    clean_out = tmp_path / "clean"
    proc = launch(clean_out, tmp_path / "fresh.sqlite")
    proc.communicate(timeout=600)
    clean = json.loads((clean_out / "run.json").read_text())
    assert clean["provenance"]["requests"]["computed"] == 160
    assert resumed["results"] == clean["results"]
