"""``glotbench table``: the report's Tables 2/3 from finished runs."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    tb = sub.add_parser("table", help="the report's Tables 2/3 from finished runs (Markdown, LaTeX or CSV)",
                        epilog="examples:\n  glotbench table results/a results/b\n"
                               "  glotbench table results/* --by-language --format latex > tables.tex\n"
                               "  glotbench table results/* --strict --format latex > paper-table.tex",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    tb.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    tb.add_argument("--format", choices=("md", "latex", "csv"), default="md")
    tb.add_argument("--by-language", action="store_true", help="also every task × language matrix with CIs")
    tb.add_argument("--groups", action="store_true", help="also the X→en / en→X translation columns")
    tb.add_argument("--strict", action="store_true",
                    help="Discriminative only where XCOPA, XStoryCloze and XWinograd all ran (the report's "
                         "number, for paper tables); by default a mean over fewer is shown, marked with "
                         "what it lacks")
    tb.set_defaults(func=run)


def run(args) -> int:
    from glotbench.harness.report.tables import table_text

    print(table_text([Path(r) for r in args.runs], args.format, by_language=args.by_language, groups=args.groups,
                     strict=args.strict))
    return 0
