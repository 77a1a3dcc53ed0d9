"""Distributed training: the training half of a stage under ``accelerate launch``.

``glotbench train sft|reward CONFIG -o OUT --accelerate-config FILE`` keeps the stage's
bookkeeping (output checks, staging directory, evaluation, manifest, merge) in the calling
process and runs ``python -m glotbench.training.core.launch STAGE CONFIG WORKDIR`` on every
rank with ``accelerate launch --config_file FILE``. Each rank builds the same data and model;
the Trainer's accelerator shards the batches; only the main process writes into WORKDIR.

CPU (gloo): accelerate 1.16 starts several CPU processes only through its torchrun launcher,
which its config calls ``distributed_type: MULTI_GPU``; the trainer then asks for the CPU
(``use_cpu``) and accelerate picks ``MULTI_CPU`` with the gloo backend
(training/recipes/accelerate/ddp-cpu-gloo.yaml).
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError

# stage → "module:function(config: Path, work_dir: Path, *, progress: bool)" run by each rank.
RANK_ENTRY = {
    "sft": "glotbench.training.sft.train:train_config",
    "reward": "glotbench.training.reward.trainer:train_config",
    "dpo": "glotbench.training.dpo.trainer:train_config",
}
LAUNCHED = "GLOTBENCH_LAUNCHED"
"""Set (to the stage) in every rank's environment: a stage started inside a launch refuses."""


def launch(stage: str, accelerate_config: Path, config: Path, work_dir: Path, *, progress: bool) -> None:
    """Train ``stage``'s config into ``work_dir`` under ``accelerate launch`` (blocking)."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config),
           "-m", "glotbench.training.core.launch", stage, str(Path(config).resolve()), str(Path(work_dir).resolve())]
    if progress:
        cmd.append("--progress")
    rc = subprocess.run(cmd, env={**os.environ, LAUNCHED: stage}, check=False).returncode
    if rc != 0:
        raise GlotbenchError(f"{stage} training under accelerate launch --config_file {accelerate_config} exited "
                             f"with status {rc} (its log is above)",
                             "fix the error it names, or run without --accelerate-config to see it in one process")


def refuse_inside_launch(stage: str) -> None:
    """A stage started by a distributed launcher would launch ranks of ranks: one line instead."""
    if os.environ.get(LAUNCHED) or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise GlotbenchError(f"glotbench train {stage} is running under a distributed launcher",
                             "run it in one process with --accelerate-config FILE: it launches the ranks itself")


def check_accelerate_config(path: Path) -> Path:
    """``path`` if it is a readable accelerate config file, else a one-line error."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise GlotbenchError(f"accelerate config {path} does not exist",
                             "give a file such as training/recipes/accelerate/ddp-cpu-gloo.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        data = None
    if not isinstance(data, dict) or "distributed_type" not in data:
        raise GlotbenchError(f"accelerate config {path} is not an accelerate config (no distributed_type)",
                             "write one with `accelerate config` or copy training/recipes/accelerate/*.yaml")
    return path


def main(argv: list[str] | None = None) -> int:
    """Entry point of each launched rank."""
    parser = argparse.ArgumentParser(prog="python -m glotbench.training.core.launch")
    parser.add_argument("stage", choices=sorted(RANK_ENTRY))
    parser.add_argument("config", type=Path)
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    module, _, function = RANK_ENTRY[args.stage].partition(":")
    getattr(importlib.import_module(module), function)(args.config, args.work_dir, progress=args.progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
