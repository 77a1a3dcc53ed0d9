"""The ``glotbench`` command: verb subcommands that parse flags and delegate.

Exit codes: 0 success; 2 a mistake the user can fix (:class:`GlotbenchError`: one line
``glotbench: error: <problem> — <fix>``); 1 a verdict of the verb (gate: a regression; judge:
API errors after all retries, or the ``--max-cost`` stop); 74 an operating-system error (disk
full, permission denied: one line, EX_IOERR); 70 an internal error, i.e. a bug (one line
``glotbench: internal error: …``, EX_SOFTWARE of sysexits.h); 130 interrupted (Ctrl-C), 143
terminated (SIGTERM; both clean up and say how to resume); 141 the reader of stdout went
away (``glotbench … | head``: silent). ``--debug``
(before or after the verb) shows the full traceback instead of the one line, with the same exit code.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback

from glotbench.harness.cli import (
    compare,
    export,
    gate,
    import_answers,
    import_lmeval,
    judge,
    merge,
    recipe,
    report,
    run,
    table,
    train,
)
from glotbench.harness.cli import tasks as tasks_verb
from glotbench.harness.core.errors import GlotbenchError, first_line

# The verbs in the order ``glotbench --help`` lists them; each module has register() and run().
VERBS = (run, compare, judge, import_answers, import_lmeval, export, table, report, gate, merge, train, recipe, tasks_verb)

EXIT_OS_ERROR = 74  # EX_IOERR of sysexits.h; 1 stays the gate's "regression"
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left
DEBUG_HELP = "show the full traceback of an error"
# Verbs whose answers go to a request cache as they come: rerunning one resumes it.
RESUMABLE = ("run", "judge", "train", "recipe")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="glotbench", description="Measure multilingual LLMs (the Aya Expanse evaluation suite).",
        epilog="examples:\n  glotbench run\n  glotbench tasks\n  glotbench run --help",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = p.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS:
        verb.register(sub)
    # Users type the flag after the verb too (``glotbench run --debug``); SUPPRESS keeps a
    # --debug given before the verb from being reset by the verb's default.
    for verb_parser in sub.choices.values():
        verb_parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return p


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a CI timeout), raised like Ctrl-C so that a run cleans up after itself
    (no partial directory, the cache closed) instead of dying mid-write."""


def _terminate(signum, frame):
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    # The tokenizers library forks badly once its thread pool has run (a warning per process);
    # glotbench batches itself. Set here so the console script and python -m agree.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.verb:
        parser.print_help()
        return 2
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main else None
    try:
        return dispatch(args)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def dispatch(args: argparse.Namespace) -> int:
    """Run the verb; every failure becomes one line and an exit code (see the module docstring).
    With ``--debug`` the traceback is printed instead of the one line, and the exit code stays
    the same: a CI step reading the code must not see a usage error as a regression."""
    try:
        return args.func(args)
    except GlotbenchError as exc:
        return _fail(args, exc.exit_code, f"glotbench: error: {exc}")
    except KeyboardInterrupt as exc:
        how = "terminated" if isinstance(exc, Terminated) else "interrupted"
        return _fail(args, EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED,
                     f"glotbench: {how}" + ("; finished requests are cached, rerun the same command to resume"
                                            if args.verb in RESUMABLE else ""))
    except BrokenPipeError:  # `glotbench … | head`: the reader has what it wanted; end quietly
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:  # the machine's, not glotbench's: disk full, permissions
        return _fail(args, EXIT_OS_ERROR, f"glotbench: error: {one_line(exc)} (rerun with --debug for the traceback)")
    except Exception as exc:  # a bug: say so in one line; --debug has the traceback
        return _fail(args, EXIT_INTERNAL, f"glotbench: internal error: {one_line(exc)} (a bug; rerun with --debug "
                                          "for the traceback)")


def _fail(args: argparse.Namespace, code: int, line: str) -> int:
    """Report the exception being handled: one line, or its traceback under ``--debug``."""
    if args.debug:
        traceback.print_exc()
    else:
        print(line, file=sys.stderr)
    return code


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured in tests)
        pass


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``, at most 300 characters."""
    text = first_line(exc, 300)
    text = type(exc).__name__ if text == type(exc).__name__ else f"{type(exc).__name__}: {text}"
    return text if len(text) <= 300 else text[:299] + "…"


if __name__ == "__main__":
    sys.exit(main())
