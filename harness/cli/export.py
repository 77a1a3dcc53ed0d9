"""``glotbench export``: a run directory in another tool's layout (lm-eval 0.4.x)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    e = sub.add_parser("export", help="a run directory in lm-eval 0.4.x's output layout "
                                      "(results_<ts>.json + samples_<task>_<ts>.jsonl)",
                       epilog="examples:\n  glotbench export --format lm-eval results/my-run -o lmeval-out/\n"
                              "  glotbench import-lmeval lmeval-out/ --output results/my-run-again",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("run", metavar="RUN", help="run directory")
    e.add_argument("--format", choices=("lm-eval",), default="lm-eval", help="output layout (lm-eval)")
    e.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="lm-eval --output_path to write into (a <model> folder is made inside)")
    e.set_defaults(func=run)


def run(args) -> int:
    from glotbench.harness.core.paths import check_writable
    from glotbench.harness.store.lmeval_export import export_lmeval

    check_writable(Path(args.output), "directory")
    got = export_lmeval(Path(args.run), Path(args.output))
    print(f"exported {len(got.tasks)} lm-eval tasks to {got.results_file}")
    if got.skipped:
        print(f"skipped {len(got.skipped)} (no lm-eval counterpart, or no per-example records): "
              f"{', '.join(got.skipped)}")
    return 0
