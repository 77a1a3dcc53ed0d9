"""The ``glotbench`` command: verb subcommands that parse flags and delegate.

Domain errors (:class:`GlotbenchError`) print as one line and exit 2; ``--debug`` shows
the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys

from glotbench.harness.cli import (
    compare,
    gate,
    import_answers,
    judge,
    merge,
    report,
    run,
    table,
)
from glotbench.harness.cli import tasks as tasks_verb
from glotbench.harness.core.errors import GlotbenchError

# The verbs in the order ``glotbench --help`` lists them; each module has register() and run().
VERBS = (run, compare, judge, import_answers, table, report, gate, merge, tasks_verb)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="glotbench", description="Measure multilingual LLMs (the Aya Expanse evaluation suite).",
        epilog="examples:\n  glotbench run\n  glotbench tasks\n  glotbench run --help",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS:
        verb.register(sub)
    return p



def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.verb:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except GlotbenchError as exc:
        if args.debug:
            raise
        print(f"glotbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("glotbench: interrupted; finished requests are cached, rerun the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
