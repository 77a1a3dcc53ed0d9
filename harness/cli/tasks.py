"""``glotbench tasks``: list tasks, languages and where their data is."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    t = sub.add_parser("tasks", help="list tasks, languages and where their data is",
                       epilog="examples:\n  glotbench tasks\n  glotbench tasks --data-dir ../shared/data",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--data-dir", default=None)
    t.set_defaults(func=run)


def run(args) -> int:
    from glotbench.harness.taskapi import data as data_mod
    from glotbench.harness.taskapi import registry

    data_dir = Path(args.data_dir) if args.data_dir else None
    print(f"{'task':<12} {'version':<8} {'hub id':<26} languages (local data: * bundled, + --data-dir, - hub only)")
    for name in registry.task_names():
        task = registry.get_task(name)
        marks = {"bundled": "*", "local": "+", None: "-"}
        langs = " ".join(f"{lang}{marks[data_mod.available(task, lang, data_dir)]}" for lang in task.languages)
        print(f"{name:<12} {task.version:<8} {task.data.hub_id:<26} {langs}")
    from glotbench import tasks as catalogue

    for suite, members in catalogue.SUITES.items():
        print(f"suite {suite}: {', '.join(members)}")
    return 0

