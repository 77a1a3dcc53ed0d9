"""Environment: where glotbench keeps its user-level caches, and whether the hub is offline."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$GLOTBENCH_CACHE``, else ``$XDG_CACHE_HOME/glotbench``, else ``~/.cache/glotbench``."""
    if env := os.environ.get("GLOTBENCH_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "glotbench"


def hub_offline() -> bool:
    """Hugging Face offline mode, as huggingface_hub itself reads it (at import time)."""
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:
        return os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def hub_failures() -> tuple[type[BaseException], ...]:
    """What a hub download raises when the *files* cannot be had: transport and HTTP errors, offline
    mode, a missing repository, config, split or file (OSError and its subclasses carry most of
    them in huggingface_hub and datasets), datasets' own errors, and ValueError for an unknown
    config or split name. Anything else (TypeError, KeyError, AttributeError …) is a bug in
    glotbench or a library and keeps its traceback instead of posing as a hub failure."""
    from datasets.exceptions import DatasetsError
    from huggingface_hub import errors as hub_errors

    kinds: list[type[BaseException]] = [OSError, ValueError, DatasetsError, hub_errors.EntryNotFoundError,
                                        hub_errors.RevisionResolutionError]
    try:
        import httpx

        kinds.append(httpx.HTTPError)
    except ImportError:  # huggingface_hub without httpx (older releases use requests: OSError)
        pass
    return tuple(kinds)


def check_writable(out: Path, kind: str = "file") -> None:
    """``out`` can be written as a ``kind`` ("file" or "directory"): a file path is not a
    directory, a directory path is not a file, and the nearest existing ancestor is a writable
    directory (missing directories are created when the output is written). Checked before
    the work that produces the output, so a mistake costs a second, not the whole run."""
    from glotbench.harness.core.errors import GlotbenchError

    out = Path(out)
    if kind == "file" and out.is_dir():
        raise GlotbenchError(f"cannot write {out}: it is a directory", "pass a file path, e.g. report.html")
    if kind == "directory" and out.exists() and not out.is_dir():
        raise GlotbenchError(f"cannot write into {out}: it is a file", "pass a directory path")
    parent = out if kind == "directory" and out.is_dir() else out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise GlotbenchError(f"cannot write {out}: {parent} is not a writable directory", "pass a writable path")
