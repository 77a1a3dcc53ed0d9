"""Persistent request cache: one SQLite file shared by every run on the machine.

Keyed by the model's identity (weights hash, dtype, device) and the request's full content
(including decoding settings), so a cached value can only ever be reused for the exact
same computation. SQLite in WAL mode gives atomic commits (a ``kill -9`` loses at most the
batch in flight) and lets concurrent runs read and write the same file safely.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import json_sha256
from glotbench.harness.core.paths import cache_dir
from glotbench.harness.core.records import GenerationRequest, LoglikelihoodRequest

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    model TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (model, key)
) WITHOUT ROWID
"""


def request_key(request: LoglikelihoodRequest | GenerationRequest) -> str:
    """Content hash of a request: its type and every field."""
    return json_sha256([type(request).__name__, asdict(request)])


class RequestCache:
    def __init__(self, path: Path | None = None):
        default = os.environ.get("GLOTBENCH_REQUEST_CACHE") or cache_dir() / "requests.sqlite"
        self.path = Path(path) if path else Path(default)
        if self.path.is_dir():
            raise GlotbenchError(f"the request cache {self.path} is a directory",
                                 "point GLOTBENCH_REQUEST_CACHE at a file path (created on first use)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=60000")
            self._retry(lambda: self._db.execute(SCHEMA))
        except sqlite3.DatabaseError as exc:  # not a database (a stray file, a truncated copy)
            self._db.close()
            raise GlotbenchError(f"cannot open the request cache {self.path}: {exc}",
                                 "remove or move that file (it is rebuilt on the next run), or point "
                                 "GLOTBENCH_REQUEST_CACHE elsewhere") from None

    def get_many(self, model: str, keys: list[str]) -> dict[str, dict]:
        found: dict[str, dict] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT key, value FROM responses WHERE model = ? AND key IN ({marks})"
            params = [model, *chunk]
            rows = self._retry(lambda q=query, p=params: self._db.execute(q, p).fetchall())
            found.update((k, json.loads(v)) for k, v in rows)
        return found

    def put_many(self, model: str, items: Iterable[tuple[str, dict]]) -> None:
        now = time.time()
        rows = [(model, k, json.dumps(v), now) for k, v in items]

        def write():
            with self._db:  # one transaction: all of the batch or none of it
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)", rows)

        self._retry(write)

    def close(self) -> None:
        self._db.close()

    @staticmethod
    def _retry(fn, attempts: int = 8):
        # busy_timeout covers most contention; a lock error past it is retried with backoff.
        for i in range(attempts):
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or i == attempts - 1:
                    raise
                time.sleep(0.05 * 2 ** i)
