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
