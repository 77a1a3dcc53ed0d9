"""``glotbench train STAGE CONFIG.yaml -o OUT``: the post-training stages of the recipe.

Stages: ``arbitrage`` (teacher pool → reward routing → SFT data and preference pairs),
``reward`` (a reward model with trl's RewardTrainer), ``sft`` (trl's SFTTrainer, per-cluster
training and merging), ``dpo`` (offline DPO with trl's DPOTrainer), ``online-dpo`` (iterative
DPO on the policy's own scored samples), ``translated-pairs`` (native vs translated preference
pairs). Each stage is a function from a config and its inputs to one output directory with a manifest (training/core/stage.py); this module parses and delegates only.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from glotbench.harness.cli.examples import TRAIN_EXAMPLES

# stage → (module of training/ with run_stage(), help line, takes an accelerate config).
STAGES = {
    "arbitrage": ("glotbench.training.arbitrage.engine",
                  "generate with a teacher pool, score every completion, keep the best per prompt", False),
    "reward": ("glotbench.training.reward.train", "train a reward model on preference pairs (trl RewardTrainer)", True),
    "sft": ("glotbench.training.sft.train",
            "supervised fine-tuning (trl SFTTrainer), per language cluster, then a merge", True),
    "dpo": ("glotbench.training.dpo.train", "offline DPO on preference pairs (trl DPOTrainer)", True),
    "translated-pairs": ("glotbench.training.translate.build",
                         "preference pairs: a strong model's native answer vs a weak English answer translated", False),
    "online-dpo": ("glotbench.training.online.loop",
                   "online iterative DPO: sample, score, pair best/worst, train, merge; resumable", True),
}


def register(sub) -> None:
    tr = sub.add_parser("train", help="post-training stages: " + ", ".join(STAGES), epilog=TRAIN_EXAMPLES,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    stages = tr.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for name, (_, help_line, distributed) in STAGES.items():
        st = stages.add_parser(name, help=help_line, description=help_line, epilog=TRAIN_EXAMPLES,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        st.add_argument("config", metavar="CONFIG.yaml", help="stage config (docs/training.md; examples in "
                                                              "training/recipes/examples/)")
        st.add_argument("-o", "--output", required=True, metavar="OUT", help="output directory (written atomically)")
        st.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (swapped in at the end)")
        st.add_argument("--no-progress", action="store_true")
        if distributed:
            st.add_argument("--accelerate-config", metavar="FILE", type=Path,
                            help="run under `accelerate launch` with this config (DDP, DeepSpeed ZeRO-2/3, FSDP2: "
                                 "examples in training/recipes/accelerate/)")
        st.set_defaults(func=run)


def run(args) -> int:
    # The CLI is the one place above both layers: it reaches training/ through verbs only.
    module = importlib.import_module(STAGES[args.stage][0])
    summary = module.run_stage(Path(args.config), Path(args.output), overwrite=args.overwrite,
                               progress=not args.no_progress and sys.stderr.isatty(),
                               **({"accelerate_config": args.accelerate_config}
                                  if STAGES[args.stage][2] else {}))
    print(summary)
    return 0
