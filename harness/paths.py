"""Where glotbench keeps its user-level caches (converted models, request cache)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$GLOTBENCH_CACHE``, else ``$XDG_CACHE_HOME/glotbench``, else ``~/.cache/glotbench``."""
    if env := os.environ.get("GLOTBENCH_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "glotbench"
