"""kill -9 at a chosen point, without timing races: a ``sitecustomize`` put on a subprocess's
path wraps the request cache's commit and SIGKILLs the process right after the commit that
brings the cache database ``KILL_DB`` to ``KILL_AT_ROWS`` rows (as a kill -9 would find it)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_KILLER = """
import os, signal, sqlite3
from glotbench.harness.run import cache

put_many = cache.RequestCache.put_many


def killing_put_many(self, model, items):
    put_many(self, model, items)  # committed: then the process dies, as a kill -9 would find it
    if str(self.path) == os.environ["KILL_DB"]:
        with sqlite3.connect(self.path) as db:
            rows = db.execute("SELECT count(*) FROM responses").fetchone()[0]
        if rows >= int(os.environ["KILL_AT_ROWS"]):
            os.kill(os.getpid(), signal.SIGKILL)


cache.RequestCache.put_many = killing_put_many
"""


def cache_killer_env(hook_dir: Path, db: Path, at_rows: int, base: dict | None = None) -> dict:
    """The environment of a subprocess that dies right after its cache ``db`` holds ``at_rows`` rows."""
    hook_dir.mkdir(parents=True, exist_ok=True)
    (hook_dir / "sitecustomize.py").write_text(CACHE_KILLER, encoding="utf-8")
    env = dict(os.environ if base is None else base)
    return {**env, "KILL_DB": str(db), "KILL_AT_ROWS": str(at_rows),
            "PYTHONPATH": os.pathsep.join([str(hook_dir), env.get("PYTHONPATH", "")])}
