"""``glotbench compare``: paired significance between two runs (translation: chrF++)."""

from __future__ import annotations

import argparse
from pathlib import Path

from glotbench.harness.cli.common import names_list
from glotbench.harness.core.errors import GlotbenchError


def register(sub) -> None:
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
    c.set_defaults(func=run)


def run(args) -> int:
    import json

    from glotbench.harness.gate.compare import format_table, paired_translation

    if args.samples < 0:
        raise GlotbenchError(f"--samples must be >= 0, got {args.samples}", "0 uses sacrebleu's default")
    result = paired_translation(Path(args.baseline), Path(args.system), names_list(args.tasks), names_list(args.langs),
                                args.method, args.seed, args.samples)
    print(json.dumps(result, indent=1, ensure_ascii=False) if args.json else format_table(result))
    return 0
