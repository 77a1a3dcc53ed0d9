"""``glotbench merge``: merge checkpoints into a new checkpoint, streaming."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from glotbench.harness.cli.examples import (
    MERGE_EXAMPLES,
)
from glotbench.harness.core.errors import GlotbenchError


def register(sub) -> None:
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
    mg.set_defaults(func=run)


def run(args) -> int:
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

