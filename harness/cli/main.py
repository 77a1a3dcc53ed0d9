"""The ``glotbench`` command: verb subcommands that parse flags and delegate.

Domain errors (:class:`GlotbenchError`) print as one line and exit 2; ``--debug`` shows
the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from glotbench.harness.cli.examples import GATE_EXAMPLES, JUDGE_EXAMPLES, MERGE_EXAMPLES, RUN_EXAMPLES
from glotbench.harness.core.errors import GlotbenchError

# Items per language of a generative task in the default run on CPU (see cmd_run).
CPU_DEFAULT_GEN_LIMIT = 2
# Completion length of open-ended (judged) tasks in the default run on CPU (their own is 2048+).
CPU_DEFAULT_OPEN_TOKENS = 256


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="glotbench", description="Measure multilingual LLMs (the Aya Expanse evaluation suite).",
        epilog="examples:\n  glotbench run\n  glotbench tasks\n  glotbench run --help",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="verb", metavar="VERB")

    r = sub.add_parser("run", help="evaluate a model on tasks and write a run directory",
                       epilog=RUN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--model", default="embedded",
                   help="'embedded' (default: SmolLM2-135M-Instruct) or hf:<dir or hub id>")
    r.add_argument("--tasks", default=None,
                   help="comma-separated tasks or suites (default: the offline suite: every task "
                        "with bundled or --data-dir data; generative tasks limited on CPU)")
    r.add_argument("--langs", default="all", help="comma-separated language codes, or 'all'")
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
    r.add_argument("--xcomet", nargs="?", const="Unbabel/XCOMET-XL", default=None, metavar="MODEL",
                   help="also score translation tasks with xCOMET (default model Unbabel/XCOMET-XL; or "
                        "a hub id or local COMET checkpoint), in an isolated COMET environment built "
                        "on first use")
    r.add_argument("--xcomet-batch-size", type=int, default=8)
    r.add_argument("--xcomet-fp16", action="store_true",
                   help="xCOMET in half precision, as the comet-score CLI runs it (faster on a GPU; "
                        "scores differ from float32 in the 4th decimal)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("compare", help="paired significance test between two runs (translation: chrF++)",
                       epilog="examples:\n  glotbench compare results/base results/new\n"
                              "  glotbench compare results/base results/new --langs deu_Latn-eng_Latn --method ar\n"
                              "  glotbench compare results/base results/new --json > pvalues.json",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("baseline", help="run directory of the baseline")
    c.add_argument("system", help="run directory of the system compared with it")
    c.add_argument("--tasks", default=None, help="comma-separated translation tasks (default: all shared)")
    c.add_argument("--langs", default=None, help="comma-separated directions (default: all shared)")
    c.add_argument("--method", choices=("bs", "ar"), default="bs",
                   help="bs: paired bootstrap resampling (1000); ar: approximate randomisation (10000)")
    c.add_argument("--samples", type=int, default=0, help="resamples / trials (0: sacrebleu's default)")
    c.add_argument("--seed", type=int, default=12345, help="seed (sacrebleu's default 12345)")
    c.add_argument("--json", action="store_true", help="print the full result as JSON")
    c.set_defaults(func=cmd_compare)

    j = sub.add_parser("judge", help="pairwise LLM-judge win-rates of one run's open-ended completions "
                                     "against other runs'",
                       epilog=JUDGE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    j.add_argument("--a", required=True, metavar="RUN_A", help="run directory of model A (the reference)")
    j.add_argument("--b", required=True, nargs="+", metavar="RUN_B",
                   help="run directory of model B (several: each against A, plus Bradley-Terry strengths)")
    j.add_argument("--judge", default=None,
                   help="openai:<model> (default openai:gpt-4o-2024-08-06, key from OPENAI_API_KEY), "
                        "embedded (offline, SmolLM2: exercises the path, useless as a judge) or hf:<dir>")
    j.add_argument("--judge-base-url", default=None, metavar="URL",
                   help="an OpenAI-compatible server for openai:<model> (e.g. http://localhost:8000/v1 "
                        "from vllm serve)")
    j.add_argument("--judge-prompt", default="aya101_pairwise", metavar="NAME|FILE",
                   help="judge prompt: aya101_pairwise (default, the report's), arena_hard_v0.1, or a YAML file")
    j.add_argument("--tasks", default=None, help="comma-separated open-ended tasks (default: all in the runs)")
    j.add_argument("--langs", default=None, help="comma-separated languages (default: all in the runs)")
    j.add_argument("--limit", type=int, default=None, help="first N prompts per language")
    j.add_argument("--concurrency", type=int, default=16, help="judge requests in flight")
    j.add_argument("--rpm", type=float, default=None, help="requests-per-minute limit")
    j.add_argument("--tpm", type=float, default=None, help="tokens-per-minute limit")
    j.add_argument("--timeout", type=float, default=120.0, help="seconds per judge request")
    j.add_argument("--attempts", type=int, default=6,
                   help="tries per request on 429/5xx/timeouts (exponential backoff with jitter)")
    j.add_argument("--parse-attempts", type=int, default=3,
                   help="judge replies per judgment while the verdict cannot be parsed; then 'invalid'")
    j.add_argument("--judge-max-tokens", type=int, default=1024)
    j.add_argument("--judge-price", default=None, metavar="IN,OUT",
                   help="USD per million input,output tokens for the cost estimate (default: list price "
                        "of known OpenAI models)")
    j.add_argument("--seed", type=int, default=1234, help="seed of the bootstrap CIs")
    j.add_argument("--output", default=None, help="output directory (default: results/judge-A-vs-B-<time>)")
    j.add_argument("--results-dir", default="results")
    j.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="local judges only")
    j.add_argument("--json", action="store_true", help="print judge.json instead of the table")
    j.add_argument("--no-progress", action="store_true")
    j.set_defaults(func=cmd_judge)

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
    m.set_defaults(func=cmd_import)

    tb = sub.add_parser("table", help="the report's Tables 2/3 from finished runs (Markdown, LaTeX or CSV)",
                        epilog="examples:\n  glotbench table results/a results/b\n"
                               "  glotbench table results/* --by-language --format latex > tables.tex",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    tb.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    tb.add_argument("--format", choices=("md", "latex", "csv"), default="md")
    tb.add_argument("--by-language", action="store_true", help="also every task × language matrix with CIs")
    tb.add_argument("--groups", action="store_true", help="also the X→en / en→X translation columns")
    tb.set_defaults(func=cmd_table)

    rp = sub.add_parser("report", help="one self-contained HTML leaderboard from runs and judge directories",
                        epilog="examples:\n  glotbench report results/a results/b results/judge-a-vs-b -o report.html\n"
                               "  glotbench report results/* -o report.html --figures figures/",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    rp.add_argument("paths", nargs="+", metavar="RUN_OR_JUDGE", help="run directories and judge directories")
    rp.add_argument("-o", "--output", required=True, help="HTML file to write")
    rp.add_argument("--title", default="glotbench report")
    rp.add_argument("--figures", default=None, metavar="DIR", help="also write every figure as PNG and SVG here")
    rp.set_defaults(func=cmd_report)

    g = sub.add_parser("gate", help="does a candidate checkpoint regress against a baseline? (exit 0 pass, "
                                    "1 regression, 2 usage/data error)",
                       epilog=GATE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    g.add_argument("--baseline", required=True, metavar="RUN", help="run directory of the baseline")
    g.add_argument("--candidate", default=None, metavar="RUN", help="run directory of the candidate")
    g.add_argument("--policy", default=None, metavar="FILE",
                   help="gate policy YAML (default: harness/gate/policy.yaml: alpha 0.05, margins from the "
                        "minimum detectable effect)")
    g.add_argument("--judgments", default=None, metavar="JUDGE_DIR",
                   help="a glotbench judge directory comparing the two runs (gates open-ended win-rates)")
    g.add_argument("--json", default=None, metavar="FILE", help="also write the full result as JSON")
    g.add_argument("--markdown", default=None, metavar="FILE", help="also write the summary (a CI comment)")
    g.add_argument("--sequential", action="store_true",
                   help="evaluate --model on the baseline's items in random-order batches and stop as soon as "
                        "an anytime-valid test settles every task")
    g.add_argument("--model", default=None, help="with --sequential: the candidate model (embedded, hf:<dir>)")
    g.add_argument("--batch", type=int, default=50, help="with --sequential: items per task/language per step")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    g.add_argument("--batch-size", type=int, default=16)
    g.add_argument("--no-progress", action="store_true")
    g.set_defaults(func=cmd_gate)

    mg = sub.add_parser("merge", help="merge checkpoints (linear, slerp, task_arithmetic, ties, dare_ties) into a "
                                      "new checkpoint, streaming", epilog=MERGE_EXAMPLES,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    mg.add_argument("config", metavar="CONFIG.yaml", help="merge config (schema: training/merge/config.py)")
    mg.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="directory of the merged checkpoint")
    mg.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it exists (swapped in at the end)")
    mg.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the arithmetic runs")
    mg.add_argument("--chunk-mb", type=int, default=4,
                    help="rows of a tensor processed at once, in MB of float32 per input (default 4)")
    mg.add_argument("--max-shard-gb", type=float, default=5.0, help="output shard size (default 5)")
    mg.add_argument("--dry-run", action="store_true", help="validate config and inputs, print the plan, write nothing")
    mg.add_argument("--no-progress", action="store_true")
    mg.set_defaults(func=cmd_merge)

    t = sub.add_parser("tasks", help="list tasks, languages and where their data is",
                       epilog="examples:\n  glotbench tasks\n  glotbench tasks --data-dir ../shared/data",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--data-dir", default=None)
    t.set_defaults(func=cmd_tasks)
    return p


def cmd_run(args) -> int:
    from glotbench.harness.taskapi import data as data_mod
    from glotbench.harness.taskapi import registry
    from glotbench.harness.run.execute import RunConfig, execute, plan

    data_dir = Path(args.data_dir) if args.data_dir else None
    task_limits: dict[str, int] = {}
    task_tokens: dict[str, int] = {}
    task_langs: dict[str, tuple[str, ...]] = {}
    if args.tasks is None:
        names = registry.expand("offline")
        if args.data in ("auto", "bundled", "local"):
            kept = []
            for name in names:
                task = registry.get_task(name)
                local = [lang for lang in task.languages if data_mod.available(task, lang, data_dir)]
                if local:
                    kept.append(name)
                    if len(local) < len(task.languages):
                        task_langs[name] = tuple(local)
                        print(f"note: {name} runs on {', '.join(local)} only (the other "
                              f"{len(task.languages) - len(local)} languages are on the hub: use --data hub "
                              f"or --data-dir)", file=sys.stderr)
                else:
                    print(f"note: skipping {name}: no local data (hub id {task.data.hub_id}; "
                          f"use --data hub or --data-dir)", file=sys.stderr)
            names = kept
        if args.limit is None and _on_cpu(args.device):
            for name in names:
                if registry.get_task(name).output_type == "generate":
                    task_limits[name] = CPU_DEFAULT_GEN_LIMIT
                    print(f"note: {name} limited to its first {CPU_DEFAULT_GEN_LIMIT} items per language on "
                          f"CPU (generation runs at tens of tokens/s); pass --limit or --tasks {name} "
                          f"for more", file=sys.stderr)
        if args.max_new_tokens is None and _on_cpu(args.device):
            for name in names:
                if registry.get_task(name).judged:
                    task_tokens[name] = CPU_DEFAULT_OPEN_TOKENS
                    print(f"note: {name} completions cut at {CPU_DEFAULT_OPEN_TOKENS} new tokens on CPU; "
                          f"pass --tasks {name} for the task's own length", file=sys.stderr)
    else:
        names = registry.expand(args.tasks)
    langs = None if args.langs.strip() in ("", "all") else tuple(
        x.strip() for x in args.langs.split(",") if x.strip())
    cfg = RunConfig(tasks=tuple(names), langs=langs, model=args.model, limit=args.limit,
                    data=args.data, data_dir=args.data_dir, batch_size=args.batch_size,
                    device=args.device, dtype=args.dtype, seed=args.seed, output=args.output,
                    results_dir=args.results_dir, chat=args.chat, fewshot_as=args.fewshot_as,
                    max_new_tokens=args.max_new_tokens, task_limits=task_limits,
                    task_max_new_tokens=task_tokens, task_langs=task_langs,
                    xcomet=args.xcomet, xcomet_batch_size=args.xcomet_batch_size,
                    xcomet_fp16=args.xcomet_fp16)
    units = plan(cfg)
    path = execute(cfg, units, progress=not args.no_progress)
    from glotbench.harness.store.rundir import read_run

    print(format_summary(read_run(path)))
    print(f"\nrun written to {path}")
    return 0


def format_summary(run: dict) -> str:
    width = max([5] + [len(lang) + 6 for langs in run["results"].values() for lang in langs])
    lines = [f"{'task':<14} {'lang':<{width}} {'metric':<16} {'value':>8} {'± se':>7} {'n':>6} {'unparsed':>8}"]
    for task, langs in run["results"].items():
        metrics = run["provenance"]["tasks"][task].get("metrics", ["acc"])
        for lang, cell in langs.items():
            for i, metric in enumerate(metrics):
                part = cell if i == 0 else cell["metrics"][metric]
                value = part[metric] if i == 0 else part["value"]
                se = f"{part['stderr']:.4f}" if part["stderr"] is not None else "-"
                bad = str(cell["unparsed"]) if "unparsed" in cell and i == 0 else ""
                lines.append(f"{task:<14} {lang:<{width}} {metric:<16} {_num(value):>8} {se:>7} {part['n']:>6} {bad:>8}")
        avg = run["averages"][task]
        for i, metric in enumerate(metrics):
            a = avg if i == 0 else avg["metrics"][metric]
            for name, part in [("", a), *((f" {g}", x) for g, x in a.get("groups", {}).items())]:
                for kind in ("macro", "micro"):
                    lines.append(f"{task:<14} {kind + name:<{width}} {metric:<16} {_num(part[kind]):>8} "
                                 f"{'':>7} {part['n']:>6}")
    return "\n".join(lines)


def _num(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _on_cpu(device: str) -> bool:
    if device != "auto":
        return device == "cpu"
    import torch

    return not torch.cuda.is_available()


def cmd_compare(args) -> int:
    import json

    from glotbench.harness.gate.compare import format_table, paired_translation

    if args.samples < 0:
        raise GlotbenchError(f"--samples must be >= 0, got {args.samples}", "0 uses sacrebleu's default")
    result = paired_translation(Path(args.baseline), Path(args.system), _names(args.tasks), _names(args.langs),
                                args.method, args.seed, args.samples)
    print(json.dumps(result, indent=1, ensure_ascii=False) if args.json else format_table(result))
    return 0


def _names(value: str | None) -> list[str] | None:
    return [x.strip() for x in value.split(",") if x.strip()] if value else None


def cmd_judge(args) -> int:
    import json

    from glotbench.harness.judge import engine as judge
    from glotbench.harness.judge.clients import DEFAULT_JUDGE
    from glotbench.harness.store.rundir import read_json

    price = None
    if args.judge_price:
        try:
            price = tuple(float(x) for x in args.judge_price.split(","))
        except ValueError:
            price = ()
        if len(price) != 2 or min(price) < 0:
            raise GlotbenchError(f"--judge-price {args.judge_price!r} is not IN,OUT",
                                 "give USD per million input and output tokens, e.g. 2.5,10")
    cfg = judge.JudgeConfig(
        run_a=args.a, runs_b=tuple(args.b), judge=args.judge or DEFAULT_JUDGE, base_url=args.judge_base_url,
        prompt=args.judge_prompt, tasks=_names(args.tasks) and tuple(_names(args.tasks)),
        langs=_names(args.langs) and tuple(_names(args.langs)), limit=args.limit,
        max_tokens=args.judge_max_tokens, concurrency=args.concurrency, rpm=args.rpm, tpm=args.tpm,
        timeout=args.timeout, attempts=args.attempts, parse_attempts=args.parse_attempts, price=price,
        seed=args.seed, output=args.output, results_dir=args.results_dir, device=args.device)
    meta, items, prompt = judge.plan(cfg)
    path = judge.execute(cfg, meta, items, prompt, progress=not args.no_progress)
    out = read_json(path / judge.JUDGE_FILE)
    print(json.dumps(out, indent=1, ensure_ascii=False) if args.json else judge.format_summary(out))
    print(f"\njudgments written to {path}", file=sys.stderr if args.json else sys.stdout)
    errors = out["counts"].get("api_errors", 0)
    if errors:
        print(f"glotbench: {errors} judgments failed after all retries (recorded as API errors, counted "
              f"invalid); rerun the same command to retry only those", file=sys.stderr)
        return 1
    return 0


def cmd_import(args) -> int:
    from glotbench.harness.store.importers import import_answers

    if args.limit is not None and args.limit < 1:
        raise GlotbenchError(f"--limit must be >= 1, got {args.limit}")
    path = import_answers(Path(args.file), args.task, args.lang, Path(args.output), model=args.model_name,
                          data=args.data, data_dir=Path(args.data_dir) if args.data_dir else None,
                          limit=args.limit)
    print(f"imported {args.file} as run {path}")
    return 0


def cmd_table(args) -> int:
    from glotbench.harness.report.tables import table_text

    print(table_text([Path(r) for r in args.runs], args.format, by_language=args.by_language, groups=args.groups))
    return 0


def cmd_report(args) -> int:
    from glotbench.harness.report.html import report_from_store

    out = report_from_store([Path(p) for p in args.paths], Path(args.output), args.title,
                            Path(args.figures) if args.figures else None)
    print(f"report written to {out['report']}" + (f" ({len(out['files']) - 1} figure files)" if args.figures else ""))
    return 0


def cmd_gate(args) -> int:
    import json

    from glotbench.harness.gate import fixed as gate
    from glotbench.harness.core.hashing import write_json_atomic

    policy = gate.load_policy(args.policy)
    if args.sequential:
        if not args.model or args.candidate:
            raise GlotbenchError("--sequential evaluates a model: pass --model SPEC (and no --candidate)",
                                 "e.g. glotbench gate --baseline results/base --sequential --model hf:/ckpt")
        from glotbench.harness.gate import sequential as seqgate

        result = seqgate.sequential_gate(Path(args.baseline), args.model, policy, batch=args.batch,
                                         device=args.device, batch_size=args.batch_size,
                                         progress=not args.no_progress)
        text = seqgate.format_markdown(result)
    else:
        if not args.candidate or args.model:
            raise GlotbenchError("the gate needs --candidate RUN (or --sequential --model SPEC)",
                                 "e.g. glotbench gate --baseline results/base --candidate results/new")
        result = gate.gate(Path(args.baseline), Path(args.candidate), policy,
                           Path(args.judgments) if args.judgments else None)
        text = gate.format_markdown(result)
    print(text)
    if args.json:
        write_json_atomic(Path(args.json), json.loads(json.dumps(result, default=str)), indent=1)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n", encoding="utf-8")
    return gate.exit_code(result)


def cmd_merge(args) -> int:
    # The CLI is the one place above both layers: it reaches training/ only through this verb.
    from glotbench.training.merge.engine import merge

    if args.chunk_mb < 1 or args.max_shard_gb <= 0:
        raise GlotbenchError(f"--chunk-mb {args.chunk_mb} / --max-shard-gb {args.max_shard_gb} must be positive",
                             "e.g. --chunk-mb 64 --max-shard-gb 5")
    result = merge(Path(args.config), Path(args.output), overwrite=args.overwrite, device=args.device,
                   chunk_elements=args.chunk_mb * (1 << 18), max_shard_bytes=int(args.max_shard_gb * 1000**3),
                   progress=not args.no_progress and sys.stderr.isatty(), dry_run=args.dry_run)
    size = f"{result.bytes_written / 1e9:.2f} GB"
    if args.dry_run:
        print(f"ok: {result.tensors} tensors, {size} in {len(result.files)} file(s) would be written to "
              f"{result.out_dir}")
    else:
        print(f"merged {result.tensors} tensors ({size}, {len(result.files)} file(s)) into {result.out_dir} "
              f"in {result.seconds:.1f} s")
    return 0


def cmd_tasks(args) -> int:
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
