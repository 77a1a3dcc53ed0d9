"""Resolve task names and suites through the literal registry in ``tasks/__init__.py``.

Listing names imports no benchmark module; a task module is imported when it is used.
"""

from __future__ import annotations

import importlib

from glotbench import tasks as catalogue
from glotbench.harness.core.errors import GlotbenchError, close_match
from glotbench.harness.taskapi.spec import Task


def task_names() -> list[str]:
    return list(catalogue.REGISTRY)


def get_task(name: str) -> Task:
    target = catalogue.REGISTRY.get(name)
    if target is None:
        raise GlotbenchError(
            f"unknown task {name!r}{close_match(name, task_names())}",
            f"choose from {', '.join(task_names())} (or a suite: {', '.join(catalogue.SUITES)})")
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def known_task(name: str) -> Task | None:
    """The task of that name, or None when this version of glotbench does not know it (a run
    written by another version)."""
    return get_task(name) if name in catalogue.REGISTRY else None


def expand(spec: str) -> list[str]:
    """``"xcopa,discriminative"`` → task names, suites expanded, order kept, no repeats."""
    names: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        for name in catalogue.SUITES.get(part, (part,)):
            get_task(name)  # validates
            if name not in names:
                names.append(name)
    if not names:
        raise GlotbenchError("--tasks is empty", f"name tasks or suites, e.g. --tasks {task_names()[0]}")
    return names
