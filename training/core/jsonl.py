"""The one JSON-lines reader of training data: every line an object, every mistake one line.

Prompt files, SFT chat rows and preference pairs all read through :func:`read_jsonl`: a
missing file, bytes that are not UTF-8, a line that is not JSON or not an object is a
:class:`~glotbench.harness.core.errors.DataError` naming ``file:line`` (exit 2); blank lines
are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from glotbench.harness.core.errors import DataError


def read_jsonl(path: Path, kind: str, example: str) -> Iterator[tuple[str, dict]]:
    """``(where, row)`` per non-blank line of ``path``; ``where`` is ``file:line``.
    ``kind`` names the file in errors ("prompt file"), ``example`` shows one valid line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{kind} {path} does not exist", f"give the path of a JSON-lines file of {example}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise DataError(f"{kind} {path}:{line} is not UTF-8 text (byte {exc.start})",
                        "convert the file to UTF-8 (e.g. iconv -t UTF-8)") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise DataError(f"{where} is not valid JSON ({getattr(exc, 'msg', exc)})",
                            f"fix the line: one JSON object per line, e.g. {example}") from None
        if not isinstance(row, dict):
            raise DataError(f"{where} is not a JSON object", f"write one object per line, e.g. {example}")
        yield where, row
