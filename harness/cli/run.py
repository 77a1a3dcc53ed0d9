"""``glotbench run``: evaluate a model on tasks and write a run directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from glotbench.harness.cli.common import names_list, on_cpu
from glotbench.harness.cli.examples import RUN_EXAMPLES
from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.run.eta import approx_tokens
from glotbench.harness.store.schema import RunRecord


def register(sub) -> None:
    r = sub.add_parser("run", help="evaluate a model on tasks and write a run directory",
                       epilog=RUN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--model", default="embedded",
                   help="'embedded' (default: SmolLM2-135M-Instruct), hf:<dir or hub id>, vllm:<dir, hub id or "
                        "embedded>, or openai:<served model id> with --base-url (key from OPENAI_API_KEY; none "
                        "needed for a local server)")
    r.add_argument("--base-url", default=None, metavar="URL",
                   help="openai:<name>: the OpenAI-compatible server (e.g. http://localhost:8000/v1 from "
                        "vllm serve; default: the OpenAI API)")
    r.add_argument("--tasks", default=None,
                   help="comma-separated tasks or suites (default: the offline suite: every task "
                        "with bundled or --data-dir data; generative tasks limited on CPU)")
    r.add_argument("--langs", default="all",
                   help="comma-separated language codes, or 'all'; any task takes ISO 639-1 (fr), ISO "
                        "639-3 (fra) or FLORES-200 (fra_Latn: both directions with English) codes "
                        "(docs/languages.md)")
    r.add_argument("--limit", type=int, default=None, help="first N items per language")
    r.add_argument("--output", default=None, help="run directory (default: results/<model>-<time>)")
    r.add_argument("--results-dir", default="results", help="parent of default run directories")
    r.add_argument("--batch-size", type=int, default=16)
    r.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    r.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto")
    r.add_argument("--data", choices=("auto", "bundled", "local", "hub"), default="auto",
                   help="data source (auto: --data-dir if given, else bundled, else hub)")
    r.add_argument("--data-dir", default=None, help="local data in the layout of ../shared/data")
    r.add_argument("--seed", type=int, default=1234, help="seed of the bootstrap CIs")
    r.add_argument("--chat", choices=("auto", "on", "off"), default="auto",
                   help="generative tasks through the model's chat template (auto: when it has one)")
    r.add_argument("--fewshot-as", choices=("multiturn", "single-turn"), default="multiturn",
                   help="with the chat template: few-shot examples as user/assistant turns, or all "
                        "in one user turn")
    r.add_argument("--max-new-tokens", type=int, default=None,
                   help="override the generation length of generative tasks")
    r.add_argument("--max-model-len", type=int, default=None, metavar="N",
                   help="vllm: the engine's context length (default: the model's; 2048 on CPU)")
    r.add_argument("--tensor-parallel-size", type=int, default=1, metavar="N",
                   help="vllm: GPUs one model replica spans")
    r.add_argument("--gpu-memory-utilization", type=float, default=0.9, metavar="F",
                   help="vllm: share of each GPU's memory the engine may take")
    r.add_argument("--data-parallel", type=int, default=1, metavar="N",
                   help="N backend replicas answering the requests, as Ray actors (one GPU each on a GPU "
                        "cluster, a share of the cores on CPU); same predictions and scores as 1 "
                        "(default: 1, in this process, no Ray); needs pip install 'glotbench[ray]'")
    r.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="with --data-parallel: an existing Ray cluster (its head's HOST:6379, or auto); "
                        "default: a local Ray started for the run (docs/running.md, multi-node runs)")
    r.add_argument("--xcomet", nargs="?", const="Unbabel/XCOMET-XL", default=None, metavar="MODEL",
                   help="also score translation tasks with xCOMET (default model Unbabel/XCOMET-XL; or "
                        "a hub id or local COMET checkpoint), in an isolated COMET environment built "
                        "on first use")
    r.add_argument("--xcomet-batch-size", type=int, default=8)
    r.add_argument("--xcomet-fp16", action="store_true",
                   help="xCOMET in half precision, as the comet-score CLI runs it (faster on a GPU; "
                        "scores differ from float32 in the 4th decimal)")
    r.add_argument("--full", action="store_true",
                   help="with no --tasks: every task and language with local data, every item (on a CPU "
                        "the default run takes a few items of each: docs/running.md, the default run)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(func=run)


def run(args) -> int:
    from glotbench.harness.store.rundir import check_new

    if args.data_parallel < 1:
        raise GlotbenchError(f"--data-parallel {args.data_parallel} must be >= 1",
                             "give the number of backend replicas (1: this process only)")
    if args.ray_address and args.data_parallel == 1:
        raise GlotbenchError(f"--ray-address {args.ray_address} without --data-parallel > 1 has nothing to run",
                             "add --data-parallel N (replicas on that cluster), or drop --ray-address")
    if args.data_parallel > 1:
        from glotbench.harness.run.parallel import import_ray

        import_ray()  # missing Ray fails now, not after loading the data
    if args.output:
        check_new(Path(args.output))  # at once: not after minutes of loading data and the model
    from glotbench.harness.run.config import RunConfig
    from glotbench.harness.run.defaults import default_plan
    from glotbench.harness.run.execute import execute
    from glotbench.harness.run.plan import plan
    from glotbench.harness.taskapi import registry

    if args.langs.strip() == "all":
        langs = None
    elif not names_list(args.langs):
        raise GlotbenchError(f"--langs {args.langs!r} names no language",
                             "give comma-separated codes (e.g. --langs fr,de) or all (the default)")
    else:
        langs = tuple(names_list(args.langs))
    data_dir = Path(args.data_dir) if args.data_dir else None
    task_limits: dict[str, int] = {}
    task_tokens: dict[str, int] = {}
    task_langs: dict[str, tuple[str, ...]] = {}
    default = args.tasks is None
    if args.full and (not default or args.limit is not None):
        raise GlotbenchError(f"--full runs the whole default suite; it cannot go with "
                             f"{'--tasks' if not default else '--limit'}",
                             "drop --full (--tasks and --limit already choose what runs)")
    if default:  # every task with local data; cut on a CPU to fit a coffee break (run/defaults.py)
        cut = not args.full and on_cpu(args.device)
        chosen = default_plan(args.data, data_dir, cut and args.limit is None, cut and args.max_new_tokens is None,
                              langs_given=langs is not None)
        names, task_limits, task_tokens, task_langs = (chosen.tasks, chosen.task_limits,
                                                       chosen.task_max_new_tokens, chosen.task_langs)
        for note in chosen.notes:
            print(f"note: {note}", file=sys.stderr)
    else:
        names = registry.expand(args.tasks)
    cfg = RunConfig(tasks=tuple(names), langs=langs, model=args.model, limit=args.limit,
                    data=args.data, data_dir=args.data_dir, batch_size=args.batch_size,
                    device=args.device, dtype=args.dtype, seed=args.seed, output=args.output,
                    results_dir=args.results_dir, chat=args.chat, fewshot_as=args.fewshot_as,
                    max_new_tokens=args.max_new_tokens, task_limits=task_limits,
                    task_max_new_tokens=task_tokens, task_langs=task_langs,
                    max_model_len=args.max_model_len, tensor_parallel_size=args.tensor_parallel_size,
                    gpu_memory_utilization=args.gpu_memory_utilization, base_url=args.base_url,
                    xcomet=args.xcomet, xcomet_batch_size=args.xcomet_batch_size,
                    xcomet_fp16=args.xcomet_fp16, data_parallel=args.data_parallel,
                    ray_address=args.ray_address)
    notes: list[str] = []
    try:
        units = plan(cfg, notes)
    finally:  # the notes explain an error too (e.g. which tasks lacked the languages)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
    if default:
        print(default_line(cfg, units, full=args.full or not cut), file=sys.stderr)
    path = execute(cfg, units, progress=not args.no_progress)
    run = RunRecord.read(path)
    print(format_summary(run))
    for note in summary_notes(run):
        print(f"note: {note}")
    print(f"\nrun written to {path}")
    return 0


def default_line(cfg, units, full: bool) -> str:
    """The default run's first line: what it runs and how long that should take here."""
    from glotbench.harness.run.defaults import announce, embedded_counter

    # The cost model is the embedded model's on this CPU: no minutes for another model or a GPU.
    embedded = cfg.model == "embedded" and on_cpu(cfg.device)
    return announce(units, cfg, embedded_counter() if embedded else approx_tokens, embedded=embedded, full=full)


def format_summary(run: RunRecord) -> str:
    """The table ``glotbench run`` prints: every metric of every cell, then the averages."""
    width = max([5] + [len(lang) + 6 for task in run.tasks() for lang in run.languages(task)])
    lines = [f"{'task':<14} {'lang':<{width}} {'metric':<16} {'value':>8} {'± se':>7} {'n':>6} {'unparsed':>8}"]
    for task in run.tasks():
        metrics = run.metrics(task) or ["acc"]
        for lang in run.languages(task):
            for i, metric in enumerate(metrics):
                m = run.metric(task, lang, metric)
                value, se, n = (m.value, m.stderr, m.n) if m else (None, None, run.n(task, lang) or 0)
                unparsed = run.cell(task, lang).get("unparsed")
                bad = str(unparsed) if unparsed is not None and i == 0 else ""
                lines.append(f"{task:<14} {lang:<{width}} {metric:<16} {_num(value):>8} "
                             f"{'-' if se is None else f'{se:.4f}':>7} {n:>6} {bad:>8}")
        for metric in metrics:
            avg = run.averages(task, metric)
            for name, part in [("", avg), *((f" {g}", x) for g, x in avg.get("groups", {}).items())]:
                for kind in ("macro", "micro"):
                    lines.append(f"{task:<14} {kind + name:<{width}} {metric:<16} {_num(part.get(kind)):>8} "
                                 f"{'':>7} {part.get('n', 0):>6}")
    return "\n".join(lines)


def summary_notes(run: RunRecord) -> list[str]:
    """What the table alone would hide: languages left out of an average, NaN
    log-likelihoods, confidence intervals that could not be computed."""
    notes = []
    for task in run.tasks():
        for lang in run.languages(task):
            cell = run.cell(task, lang)
            if cell.get("nan_logprobs"):
                notes.append(f"{task}/{lang}: {cell['nan_logprobs']} of {cell['n']} items had a NaN "
                             f"log-likelihood (never picked; such an item scores as wrong)")
            if cell.get("ci95_note"):
                notes.append(f"{task}/{lang}: {cell['ci95_note']}")
        avg = run.averages(task)
        parts = [("", avg), *((f" {g}", x) for g, x in avg.get("groups", {}).items())]
        parts += [(f" {m}", x) for m, x in avg.get("metrics", {}).items()]
        for name, part in parts:
            if part.get("missing"):
                notes.append(f"{task}{name} macro/micro leave out {', '.join(part['missing'])} (no value)")
    return notes


def _num(value) -> str:
    return "-" if value is None else f"{value:.4f}"


