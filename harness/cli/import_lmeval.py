"""``glotbench import-lmeval``: an lm-eval 0.4.x output directory as a run directory."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    m = sub.add_parser("import-lmeval", help="an lm-eval 0.4.x output directory (results_*.json + samples_*.jsonl) "
                                             "as a run directory (table, report, gate read it)",
                       epilog="examples:\n  lm_eval --model hf --model_args pretrained=DIR --tasks xcopa_it,"
                              "mgsm_native_cot_en --output_path out/ --log_samples\n"
                              "  glotbench import-lmeval out/ --output results/lmeval-mymodel\n"
                              "  glotbench table results/lmeval-mymodel --by-language",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("dir", help="lm-eval's --output_path (or the model folder inside it)")
    m.add_argument("--output", default=None, help="run directory to write (default results/lmeval-<model>)")
    m.add_argument("--samples-required", action="store_true",
                   help="refuse a task without a samples file (default: import lm-eval's aggregate alone, "
                        "marked aggregate_only, without per-example records)")
    m.add_argument("--seed", type=int, default=1234, help="seed of the bootstrap CIs (default 1234)")
    m.set_defaults(func=run)


def run(args) -> int:
    from glotbench.harness.store.lmeval_import import import_lmeval

    got = import_lmeval(Path(args.dir), Path(args.output) if args.output else None,
                        samples_required=args.samples_required, seed=args.seed)
    print(f"imported {got.source.results_file} as run {got.path}: {len(got.cells)} task/language cells "
          f"({', '.join(got.cells)})")
    if got.skipped:
        print(f"skipped {len(got.skipped)} lm-eval tasks glotbench does not know: {', '.join(got.skipped)}")
    if got.aggregate_only:
        print(f"{len(got.aggregate_only)} cells from the results file alone (no samples file): "
              f"{', '.join(got.aggregate_only)}")
    if got.source.older:
        print(f"{len(got.source.older)} older results files in {got.source.model_dir} not imported")
    if got.mismatches:
        print(f"lm-eval's reported numbers NOT reproduced ({len(got.mismatches)}): {'; '.join(got.mismatches)}")
    else:
        print("lm-eval's reported numbers reproduced from the per-example records")
    return 0
