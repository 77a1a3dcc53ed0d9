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
    tasks = [registry.get_task(name) for name in registry.task_names()]
    w_name = max(len("task"), *(len(t.name) for t in tasks))
    w_hub = max(len("hub id"), *(len(t.data.hub_id) for t in tasks))
    print(f"{'task':<{w_name}} {'version':<8} {'hub id':<{w_hub}} languages (local data: * bundled, "
          "+ --data-dir, - hub only)")
    marks = {"bundled": "*", "local": "+", None: "-"}
    for task in tasks:
        langs = " ".join(f"{lang}{marks[data_mod.available(task, lang, data_dir)]}" for lang in task.languages)
        print(f"{task.name:<{w_name}} {task.version:<8} {task.data.hub_id:<{w_hub}} {langs}")
    from glotbench import tasks as catalogue

    for suite, members in catalogue.SUITES.items():
        print(f"suite {suite}: {', '.join(members)}")
    print_aliases(tasks)
    return 0


def print_aliases(tasks) -> None:
    """The codes --langs takes for each task beyond its own (from the one language table)."""
    from glotbench.harness.taskapi.languages import ENGLISH_FLORES, aliases

    print("\n--langs takes ISO 639-1 (fr), ISO 639-3 (fra) or FLORES-200 (fra_Latn) codes for every "
          "task (docs/languages.md); where a task's own code differs:")
    for task in tasks:
        shown = []
        for code, own in aliases(task).items():
            if all("-" in c for c in own):  # translation directions: name the other side once
                sides = dict.fromkeys(s for c in own for s in c.split("-") if s != ENGLISH_FLORES)
                shown.append(f"{code}→{'+'.join(sides)}⇄en")
            else:
                shown.append(f"{code}→{'+'.join(own)}")
        if shown:
            print(f"  {task.name:<12} {' '.join(shown)}")

