"""``glotbench report``: one self-contained HTML leaderboard."""

from __future__ import annotations

import argparse
from pathlib import Path

from glotbench.harness.core.paths import check_writable


def register(sub) -> None:
    rp = sub.add_parser("report", help="one self-contained HTML leaderboard from runs and judge directories",
                        epilog="examples:\n  glotbench report results/a results/b results/judge-a-vs-b -o report.html\n"
                               "  glotbench report results/* -o report.html --figures figures/",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    rp.add_argument("paths", nargs="+", metavar="RUN_OR_JUDGE", help="run directories and judge directories")
    rp.add_argument("-o", "--output", required=True, help="HTML file to write")
    rp.add_argument("--title", default="glotbench report")
    rp.add_argument("--figures", default=None, metavar="DIR", help="also write every figure as PNG and SVG here")
    rp.set_defaults(func=run)


def run(args) -> int:
    from glotbench.harness.report.collect import report_from_store

    check_writable(Path(args.output))  # before the report is built
    if args.figures:
        check_writable(Path(args.figures), "directory")
    out = report_from_store([Path(p) for p in args.paths], Path(args.output), args.title,
                            Path(args.figures) if args.figures else None)
    print(f"report written to {out['report']}" + (f" ({len(out['files']) - 1} figure files)" if args.figures else ""))
    return 0

