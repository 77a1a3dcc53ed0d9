"""What ``glotbench run`` runs with no ``--tasks``: every task with local data, cut on a CPU so
the run fits a coffee break (``--full``: everything), and how long it should take.

The cuts come from the cost model in run/eta.py (measured on this project's 2-core CPU with
the embedded model; the table is in docs/running.md, "The default run"). Expected time on
the idle machine, in forward-token units × 0.002 s:

- log-likelihood: XCOPA 11 languages × 30 items × 2 choices and XWinograd 6 × 30 × 2, about
  1,000 requests of ~38 tokens: ~80 s;
- FLORES: one segment per direction (46), cut at 128 new tokens: ~130 s;
- MGSM: one problem in each language whose 5-shot native chat prompt is under ~1,300 tokens
  (en 676, es 956, fr 1,008, de 1,014, sw 1,075, zh 1,266; the others run 1,691 to 6,177 and
  one such row makes its whole batch decode at that context), cut at 256 new tokens: ~70 s;
- open-ended: 2 prompts at 256 new tokens (pooled with MGSM at the same length): ~15 s.

About five minutes in all, half the ten-minute goal, leaving room for a busy machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from glotbench.harness.run.eta import SECONDS_PER_UNIT, approx_tokens, generation_units

DEFAULT_TASKS = ("xcopa", "xstorycloze", "xwinograd", "global_mmlu", "include_loglik", "mgsm", "flores",
                 "m_arenahard", "dolly")
"""Every family the default run covers when its data is local: 0-shot log-likelihood,
knowledge (log-likelihood), math, translation, open-ended generation (not judged)."""


@dataclass(frozen=True)
class Cut:
    """The default run's share of one task on a CPU."""

    items: int
    """First N items per language."""
    langs: tuple[str, ...] | None = None
    """Languages kept (None: every language with local data)."""
    max_new_tokens: int | None = None
    """Generation length (None: the task's own)."""


CPU_CUTS: dict[str, Cut] = {
    "xcopa": Cut(30),
    "xstorycloze": Cut(20),
    "xwinograd": Cut(30),
    "global_mmlu": Cut(5),
    "include_loglik": Cut(5),
    "mgsm": Cut(1, ("en", "es", "fr", "de", "sw", "zh"), 256),
    "flores": Cut(1, None, 128),
    "m_arenahard": Cut(2, None, 256),
    "dolly": Cut(1, None, 256),
}


@dataclass
class DefaultPlan:
    """The RunConfig fields of a default run, and the notes that explain them."""

    tasks: list[str] = field(default_factory=list)
    task_limits: dict[str, int] = field(default_factory=dict)
    task_langs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    task_max_new_tokens: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def default_plan(data: str, data_dir: Path | None, cut_items: bool, cut_tokens: bool,
                 langs_given: bool = False) -> DefaultPlan:
    """Tasks with local data (all of them with ``data='hub'``), each cut to its :data:`CPU_CUTS`
    share: items and languages when ``cut_items`` (a CPU run without --full or --limit),
    generation lengths when ``cut_tokens`` (a CPU run without --full or --max-new-tokens).
    ``langs_given``: --langs chose the languages, so no cut drops any of them."""
    from glotbench.harness.taskapi import data as data_mod
    from glotbench.harness.taskapi import registry

    out = DefaultPlan()
    for name in DEFAULT_TASKS:
        task = registry.get_task(name)
        langs = list(task.languages)
        if data in ("auto", "bundled", "local"):
            langs = [lang for lang in langs if data_mod.available(task, lang, data_dir)]
            if not langs:
                out.notes.append(f"skipping {name}: no local data (hub id {task.data.hub_id}; use --data hub "
                                 f"or --data-dir)")
                continue
            if len(langs) < len(task.languages):
                out.notes.append(f"{name} runs on {', '.join(langs)} only (the other "
                                 f"{len(task.languages) - len(langs)} languages are on the hub: use --data hub "
                                 f"or --data-dir)")
        out.tasks.append(name)
        c = CPU_CUTS.get(name)
        said = []
        if c is not None and cut_items:
            out.task_limits[name] = c.items
            said.append(f"first {c.items} item{'s' if c.items > 1 else ''} per language")
            if c.langs is not None and not langs_given:
                kept = [lang for lang in langs if lang in c.langs] or langs[:1]
                if len(kept) < len(langs):
                    said.append(f"languages {', '.join(kept)}")
                langs = kept
        if c is not None and c.max_new_tokens is not None and cut_tokens:
            out.task_max_new_tokens[name] = c.max_new_tokens
            said.append(f"{c.max_new_tokens} new tokens at most")
        if len(langs) < len(task.languages):
            out.task_langs[name] = tuple(langs)
        if said:
            out.notes.append(f"{name} on CPU: {', '.join(said)} (--full for all)")
    return out


def announce(units, cfg, count: Callable[[str], int] = approx_tokens, embedded: bool = True,
             full: bool = False) -> str:
    """The line the default run starts with: items per task and the expected time here."""
    items: dict[str, int] = {}
    units_total = 0.0
    for unit in units:
        items[unit.task.name] = items.get(unit.task.name, 0) + len(unit.prompts)
        units_total += expected_units(unit, cfg, count)
    what = ", ".join(f"{n} {name}" for name, n in items.items())
    minutes = units_total * SECONDS_PER_UNIT / 60
    when = (f"about {max(1, round(minutes))} minutes on this machine's CPU" if embedded
            else "time depends on the model")
    head = "full run" if full else "default run"
    tail = "" if full else "; --full runs everything"
    return f"{head}: {sum(items.values())} items of these tasks ({what}), {when}{tail}"


def expected_units(unit, cfg, count: Callable[[str], int] = approx_tokens) -> float:
    """A planned unit's expected cost in forward-token units (run/eta.py), from its prompts:
    log-likelihood pairs as they are, generations as their plain-text prompt at the length
    the run will use (as plan.generation_requests chooses it)."""
    total = 0.0
    for prompt in unit.prompts:
        pairs = getattr(prompt, "pairs", None)
        if pairs is not None:
            total += sum(count(r.context + r.continuation) for r in pairs)
        else:
            length = cfg.max_new_tokens or cfg.task_max_new_tokens.get(unit.task.name) or prompt.max_new_tokens
            total += generation_units(count(prompt.plain()), length)
    return total


def embedded_counter() -> Callable[[str], int]:
    """The embedded model's tokenizer as a token counter (the estimate's units are its tokens)."""
    from transformers import AutoTokenizer

    from glotbench.harness.models.embedded import converted_dir

    tok = AutoTokenizer.from_pretrained(str(converted_dir()))
    return lambda text: max(1, len(tok.encode(text, add_special_tokens=False)))
