"""Content hashes for provenance and cache keys (files, directories, JSON-able values)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from glotbench.harness.core.paths import cache_dir


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def memo_file_sha256(path: Path) -> str:
    """:func:`file_sha256`, memoised on (path, size, mtime) in the user cache.

    Model weights are hundreds of MB; hashing them on every run would dominate start-up.
    """
    path = Path(path).resolve()
    st = path.stat()
    memo = cache_dir() / "file-hashes.json"
    key = f"{path}:{st.st_size}:{st.st_mtime_ns}"
    known = _read_json(memo)
    if key in known:
        return known[key]
    digest = file_sha256(path)
    known = _read_json(memo)  # re-read: another process may have added entries meanwhile
    known[key] = digest
    write_json_atomic(memo, known)
    return digest


def dir_sha256(path: Path, patterns: tuple[str, ...]) -> str:
    """Hash of the files in ``path`` matching ``patterns``: names and contents, order-free."""
    h = hashlib.sha256()
    files = sorted({p for pat in patterns for p in Path(path).glob(pat) if p.is_file()})
    for f in files:
        h.update(f.name.encode() + b"\0" + memo_file_sha256(f).encode() + b"\n")
    return h.hexdigest()


def json_sha256(value: Any) -> str:
    """Hash of a JSON-able value in canonical form (sorted keys, no whitespace)."""
    blob = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_json_atomic(path: Path, data: Any, indent: int | None = None) -> None:
    """Write JSON via a temporary file and rename: readers never see half a file."""
    write_text_atomic(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` via a temporary file and rename: a reader sees the old file or the new
    one, never half of one. The file gets the mode a plain ``open()`` would give it (the
    umask's), or the mode of the file it replaces — results are for sharing, and mkstemp's
    0600 would hide them from the other users of a shared results directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.is_file() else 0o666 & ~umask)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
