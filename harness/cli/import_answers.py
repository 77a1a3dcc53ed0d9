"""``glotbench import-answers``: another tool's completions as a run directory to judge."""

from __future__ import annotations

import argparse
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError


def register(sub) -> None:
    m = sub.add_parser("import-answers", help="another tool's completions (arena-hard model_answer, "
                                              "or {prompt_id, response} lines) as a run directory to judge",
                       epilog="examples:\n  glotbench import-answers ../shared/data/arena_hard_v0.1/model_answer/"
                              "gpt-4-0314.jsonl --output results/gpt-4-0314\n"
                              "  glotbench judge --a results/gpt-4-0314 --b results/my-model",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("file", help="JSON-lines answer file")
    m.add_argument("--task", default="m_arenahard", help="open-ended task answered (default m_arenahard)")
    m.add_argument("--lang", default="en", help="language answered (default en)")
    m.add_argument("--output", required=True, help="run directory to write")
    m.add_argument("--model-name", default=None, help="model name (default: the file's 'model' field)")
    m.add_argument("--limit", type=int, default=None, help="only the first N prompts of the task")
    m.add_argument("--data", choices=("auto", "bundled", "local", "hub"), default="auto")
    m.add_argument("--data-dir", default=None)
    m.set_defaults(func=run)


def run(args) -> int:
    from glotbench.harness.store.importers import import_answers

    if args.limit is not None and args.limit < 1:
        raise GlotbenchError(f"--limit must be >= 1, got {args.limit}")
    path = import_answers(Path(args.file), args.task, args.lang, Path(args.output), model=args.model_name,
                          data=args.data, data_dir=Path(args.data_dir) if args.data_dir else None,
                          limit=args.limit)
    print(f"imported {args.file} as run {path}")
    return 0

