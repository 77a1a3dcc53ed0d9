"""Distributed reward training: the training half of the stage under ``accelerate launch``.

``glotbench train reward CONFIG -o OUT --accelerate-config FILE`` keeps the bookkeeping (output
checks, staging directory, held-out evaluation, manifest) in the calling process and runs
``python -m glotbench.training.reward.launch CONFIG WORKDIR`` on every rank with
``accelerate launch --config_file FILE`` (the SFT stage's launcher pattern and its accelerate
config check, training/sft/launch.py). Every rank builds the same pairs and model; the main
process writes the checkpoint and ``train_log.json`` into WORKDIR.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError
from glotbench.training.sft.launch import check_accelerate_config

__all__ = ["check_accelerate_config", "launch", "main"]


def launch(accelerate_config: Path, config: Path, work_dir: Path, *, progress: bool) -> None:
    """Train the config's reward model into ``work_dir`` under ``accelerate launch`` (blocking)."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config),
           "-m", "glotbench.training.reward.launch", str(Path(config).resolve()), str(Path(work_dir).resolve())]
    if progress:
        cmd.append("--progress")
    rc = subprocess.run(cmd, env={**os.environ, "GLOTBENCH_REWARD_LAUNCHED": "1"}, check=False).returncode
    if rc != 0:
        raise GlotbenchError(f"reward training under accelerate launch --config_file {accelerate_config} exited "
                             f"with status {rc} (its log is above)",
                             "fix the error it names, or run without --accelerate-config to see it in one process")


def main(argv: list[str] | None = None) -> int:
    """Entry point of each launched rank."""
    from glotbench.training.reward.config import load_config
    from glotbench.training.reward.trainer import fit

    parser = argparse.ArgumentParser(prog="python -m glotbench.training.reward.launch")
    parser.add_argument("config", type=Path)
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    fit(load_config(args.config), args.config, args.work_dir, progress=args.progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
