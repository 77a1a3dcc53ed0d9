"""The results store: one self-describing directory per run, written atomically.

Layout of a finished run ``<results>/<name>/``::

    run.json                      config, provenance, results[task][lang], averages
    samples/<task>/<lang>.jsonl   one record per example

A run is assembled in ``<results>/.partial/<name>.<pid>/`` and renamed into place only when
complete, so a directory without the dot prefix is always a finished run; a killed run
leaves only a partial directory, removed by the next run once its process is gone.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import write_json_atomic
from glotbench.harness.store.schema import RUN_FILE, RunRecord, read_records

PARTIAL = ".partial"


class RunWriter:
    def __init__(self, final: Path):
        self.final = Path(final)
        if self.final.exists():
            raise GlotbenchError(f"output directory {self.final} already exists",
                                 "choose a new --output, or remove the old run first")
        parent = self.final.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            (parent / PARTIAL).mkdir(exist_ok=True)
        except OSError as exc:
            raise GlotbenchError(f"cannot create results directory {parent}: {exc.strerror}",
                                 "pass a writable --output") from None
        clean_stale_partials(parent)
        self.tmp = parent / PARTIAL / f"{self.final.name}.{os.getpid()}"
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir()

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
        return self.final

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def clean_stale_partials(parent: Path) -> None:
    for d in (parent / PARTIAL).glob("*.*"):
        pid = d.suffix.lstrip(".")
        if pid.isdigit() and not _alive(int(pid)):
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
