"""``glotbench gate``: does a candidate regress against a baseline? (exit 0 pass, 1 regression, 2 error)"""

from __future__ import annotations

import argparse
from pathlib import Path

from glotbench.harness.cli.examples import GATE_EXAMPLES
from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.paths import check_writable


def register(sub) -> None:
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
    g.set_defaults(func=run)


def run(args) -> int:
    import json

    from glotbench.harness.core.hashing import write_text_atomic
    from glotbench.harness.gate.fixed import exit_code, gate
    from glotbench.harness.gate.markdown import format_markdown
    from glotbench.harness.gate.policy import load_policy

    policy = load_policy(args.policy)
    for out in (Path(f) for f in (args.json, args.markdown) if f):
        check_writable(out)  # before the gate runs (the sequential one takes minutes)
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
        result = gate(Path(args.baseline), Path(args.candidate), policy,
                      Path(args.judgments) if args.judgments else None)
        text = format_markdown(result)
    print(text)
    outputs = [(args.json, json.dumps(json.loads(json.dumps(result, default=str)), indent=1, ensure_ascii=False)
                + "\n"), (args.markdown, text + "\n")]
    for out, content in ((Path(f), c) for f, c in outputs if f):
        try:
            write_text_atomic(out, content)
        except OSError as exc:
            raise GlotbenchError(f"cannot write {out}: {exc.strerror}", "pass a writable path") from None
    return exit_code(result)
