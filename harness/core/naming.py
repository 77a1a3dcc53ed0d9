"""Names derived from free text: slugs for directory names and HTML ids, timestamped run names."""

from __future__ import annotations

import re
from datetime import datetime


def slug(text: str, keep: str = "-_", fallback: str = "x") -> str:
    """``text`` with every run of characters other than letters, digits and ``keep`` replaced
    by one ``-``, and no leading or trailing ``-``; ``fallback`` when nothing is left."""
    allowed = re.escape(keep)
    out = re.sub(rf"[^0-9A-Za-z{allowed}]+", "-", str(text)).strip("-")
    return out or fallback


def timestamped(name: str, keep: str = "-_") -> str:
    """``<slug of name>-YYYYmmdd-HHMMSS``: the default name of a run or judge directory."""
    return f"{slug(name, keep, fallback='run')}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
