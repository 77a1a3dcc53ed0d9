"""``glotbench judge``: pairwise LLM-judge win-rates of open-ended completions."""

from __future__ import annotations

import argparse
import sys

from glotbench.harness.cli.common import names_list
from glotbench.harness.cli.examples import JUDGE_EXAMPLES
from glotbench.harness.core.errors import GlotbenchError


def register(sub) -> None:
    j = sub.add_parser("judge", help="pairwise LLM-judge win-rates of one run's open-ended completions "
                                     "against other runs'",
                       epilog=JUDGE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    j.add_argument("--a", required=True, metavar="RUN_A", help="run directory of model A (the reference)")
    j.add_argument("--b", required=True, nargs="+", metavar="RUN_B",
                   help="run directory of model B (several: each against A, plus Bradley-Terry strengths)")
    j.add_argument("--judge", default=None,
                   help="openai:<model> (default openai:gpt-4o-2024-08-06, key from OPENAI_API_KEY), "
                        "embedded (offline, SmolLM2: exercises the path, useless as a judge), hf:<dir>, or "
                        "rm:<dir> (a scalar reward model, e.g. from glotbench train reward: each completion "
                        "scored once, the higher score wins)")
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
    j.add_argument("--yes", "-y", action="store_true",
                   help="send the requests to a paid judge (the OpenAI API) without asking; needed when "
                        "stdin is not a terminal (the estimated cost is printed first)")
    j.add_argument("--max-cost", type=float, default=None, metavar="USD",
                   help="consent to spend up to USD (estimated) and stop once the requests sent would "
                        "exceed it; finished judgments stay cached, so rerunning resumes")
    j.add_argument("--rm-tie-margin", type=float, default=0.0, metavar="X",
                   help="rm:<dir> judges: a pair whose scores differ by at most X is a tie (default 0: "
                        "a tie only on equal scores)")
    j.add_argument("--rm-max-length", type=int, default=None, metavar="TOKENS",
                   help="rm:<dir> judges: tokens scored per answer (default: the RM's trained max_length, "
                        "else all)")
    j.add_argument("--seed", type=int, default=1234, help="seed of the bootstrap CIs")
    j.add_argument("--output", default=None, help="output directory (default: results/judge-A-vs-B-<time>)")
    j.add_argument("--results-dir", default="results")
    j.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="local judges only")
    j.add_argument("--json", action="store_true", help="print judge.json instead of the table")
    j.add_argument("--no-progress", action="store_true")
    j.set_defaults(func=run)


def run(args) -> int:
    import json

    from glotbench.harness.judge.config import DEFAULT_JUDGE, JUDGE_FILE, JudgeConfig
    from glotbench.harness.judge.execute import execute
    from glotbench.harness.judge.pairing import plan
    from glotbench.harness.judge.spend import Spending
    from glotbench.harness.judge.summary import format_summary
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
    cfg = JudgeConfig(
        run_a=args.a, runs_b=tuple(args.b), judge=args.judge or DEFAULT_JUDGE, base_url=args.judge_base_url,
        prompt=args.judge_prompt, tasks=names_list(args.tasks) and tuple(names_list(args.tasks)),
        langs=names_list(args.langs) and tuple(names_list(args.langs)), limit=args.limit,
        max_tokens=args.judge_max_tokens, concurrency=args.concurrency, rpm=args.rpm, tpm=args.tpm,
        timeout=args.timeout, attempts=args.attempts, parse_attempts=args.parse_attempts, price=price,
        seed=args.seed, output=args.output, results_dir=args.results_dir, device=args.device,
        rm_tie_margin=args.rm_tie_margin, rm_max_length=args.rm_max_length)
    spending = Spending(yes=args.yes, max_cost=args.max_cost,
                        interactive=sys.stdin is not None and sys.stdin.isatty())
    meta, items, prompt = plan(cfg)

    def say(line: str) -> None:  # the estimate; stdout is judge.json's alone under --json
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    path = execute(cfg, meta, items, prompt, progress=not args.no_progress, spending=spending, say=say)
    out = read_json(path / JUDGE_FILE)
    print(json.dumps(out, indent=1, ensure_ascii=False) if args.json else format_summary(out))
    print(f"\njudgments written to {path}", file=sys.stderr if args.json else sys.stdout)
    errors = out["counts"].get("api_errors", 0)
    if errors:
        print(f"glotbench: {errors} judgments failed after all retries or got an unreadable reply (recorded "
              f"as API errors, counted invalid); rerun the same command to retry only those", file=sys.stderr)
        return 1
    return 0

