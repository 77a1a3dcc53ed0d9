"""The results store: one self-describing directory per run, written atomically.

Layout of a finished run ``<results>/<name>/``::

    run.json                      config, provenance, results[task][lang], averages
    samples/<task>/<lang>.jsonl   one record per example

A run is assembled in ``<results>/.partial/<name>.<pid>@<host>/`` and renamed into place
only when complete, so a directory without the dot prefix is always a finished run. A
killed run leaves only its partial directory; the next run on the same host removes it once
that process is gone. Process ids mean something on one host only (and in one PID
namespace), so on a ``results/`` shared between machines a partial directory of another
host, or one without a host in its name, is never removed: it may belong to a live run.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import write_json_atomic
from glotbench.harness.core.naming import slug
from glotbench.harness.store.schema import RUN_FILE, RunRecord, read_records

PARTIAL = ".partial"


def host_tag() -> str:
    """This host as it appears in partial directory names: the host name, and the PID
    namespace when there is one to read (containers on one host share its name)."""
    name = slug(socket.gethostname(), keep="-_.", fallback="host")
    try:
        ns = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return name
    return f"{name}~{''.join(ch for ch in ns if ch.isdigit())}"


def check_new(path: Path) -> None:
    """A run directory must not exist yet (checked before any work, and again when the run is
    renamed into place, in case another run took the name meanwhile)."""
    if Path(path).exists():
        raise GlotbenchError(f"output directory {path} already exists",
                             "choose a new --output, or remove the old run first")


class RunWriter:
    """Writes one run directory in a partial directory, renamed into place by :meth:`finish`;
    :meth:`abort` leaves nothing behind (not even the directories it had to create)."""

    def __init__(self, final: Path):
        self.final = Path(final)
        check_new(self.final)
        parent = self.final.parent
        self.created = [d for d in (*reversed(parent.parents), parent) if not d.exists()]
        try:
            (parent / PARTIAL).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GlotbenchError(f"cannot create {exc.filename or parent / PARTIAL}: {exc.strerror}",
                                 "pass a writable --output") from None
        clean_stale_partials(parent)
        self.tmp = parent / PARTIAL / f"{self.final.name}.{os.getpid()}@{host_tag()}"
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)  # parents: another run may just have removed an empty .partial

    def write_samples(self, task: str, lang: str, records: list[dict]) -> None:
        self.write_records(f"samples/{task}/{lang}.jsonl", records)

    def write_records(self, relpath: str, records: list[dict]) -> None:
        """One JSON-lines file at ``relpath`` inside the directory."""
        path = self.tmp / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(rec, ensure_ascii=False) + "\n" for rec in records)

    def finish(self, run: dict, file: str = RUN_FILE) -> Path:
        write_json_atomic(self.tmp / file, run, indent=1)
        try:
            os.rename(self.tmp, self.final)
        except OSError:
            raise GlotbenchError(f"output directory {self.final} appeared while the run was going",
                                 f"the finished run is kept in {self.tmp}; move it where you want it") from None
        _remove_if_empty(self.tmp.parent)
        return self.final

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        _remove_if_empty(self.tmp.parent)
        for d in reversed(self.created):  # innermost first; only folders this writer created
            if not _remove_if_empty(d):
                break


def _remove_if_empty(d: Path) -> bool:
    try:
        d.rmdir()
    except OSError:  # not empty (another run is using it) or already gone
        return not d.exists()
    return True


def clean_stale_partials(parent: Path) -> None:
    """Remove the partial directories of this host's runs whose process is gone."""
    mine = host_tag()
    for d in (parent / PARTIAL).glob("*.*@*"):
        stem, _, tag = d.name.rpartition("@")
        pid = stem.rpartition(".")[2]
        if tag == mine and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_run(path: Path) -> dict:
    """A finished run's ``run.json``, validated (see :class:`~glotbench.harness.store.schema.RunRecord`)."""
    return RunRecord.read(path).data


def read_samples(path: Path, task: str, lang: str) -> list[dict]:
    """The per-example records of one task × language of a run."""
    return read_records(Path(path) / "samples" / task / f"{lang}.jsonl", f"run {path} ({task}/{lang})")


def read_json(file: Path) -> dict:
    return json.loads(Path(file).read_text(encoding="utf-8"))
