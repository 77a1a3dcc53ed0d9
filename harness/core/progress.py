"""The one progress bar of the project: tqdm on stderr, or a silent stand-in."""

from __future__ import annotations

import sys


class _Silent:
    """What a disabled bar is: the same two calls, doing nothing (tqdm is not even imported)."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, unit: str, enabled: bool = True, *, unit_scale: bool = False,
                 leave: bool = True):
    """A progress bar over ``total`` units on stderr (``update(n)``, ``close()``)."""
    if not enabled:
        return _Silent()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale, leave=leave, file=sys.stderr,
                dynamic_ncols=True)
