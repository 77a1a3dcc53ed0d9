"""User-facing errors.

A :class:`GlotbenchError` is a mistake the user can fix (bad flag, missing data, unreadable
model). The CLI prints it as one line and exits non-zero; anything else is a bug and keeps
its traceback (shown in full with ``--debug``).
"""


class GlotbenchError(Exception):
    """A problem in the user's input, with the fix in the message."""

    exit_code = 2

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} — {fix}" if fix else problem)


class DataError(GlotbenchError):
    """Benchmark data is missing, unreadable or malformed."""


class ModelError(GlotbenchError):
    """A model cannot be found or loaded."""


def close_match(value: str, allowed: list[str] | tuple[str, ...]) -> str:
    """A ' (did you mean X?)' suffix when a close match exists, else ''."""
    import difflib

    match = difflib.get_close_matches(value, list(allowed), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an exception's message (its type name when it has none),
    cut to ``limit`` characters: how a third-party error is quoted inside a one-line message."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__
