"""A training stage's output: one directory, written atomically, with a manifest.

A stage writes into a hidden ``.NAME.partial-PID@HOST`` beside the target and renames it into
place last, so an interrupted stage leaves nothing that looks finished (``--overwrite`` swaps
an old output out only at the end). The manifest (``training_manifest.json``) is the stage's
lineage: what it is, its config and that config's hash, its inputs (parents: checkpoints and
data files, each with its hash) and the versions of the libraries that produced it.
``glotbench run --model hf:DIR`` copies it into the run's provenance
(harness/run/provenance.py reads the file by this name).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from glotbench import harness
from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import json_sha256, write_json_atomic
from glotbench.harness.core.versions import library_versions

MANIFEST = "training_manifest.json"
FORMAT = "glotbench-training/1"
TRAINING_LIBRARIES = ("torch", "transformers", "tokenizers", "trl", "peft", "accelerate", "datasets",
                      "safetensors", "numpy")


def check_output(out: Path, overwrite: bool, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse, before any work, an output that exists (without ``overwrite``) or is an input."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise GlotbenchError(f"output {out} already exists", "choose another -o, or pass --overwrite")
    if out.exists() and not out.is_dir():
        raise GlotbenchError(f"output {out} exists and is not a directory", "choose another -o")
    for src in inputs:
        if Path(src).exists() and Path(src).resolve() == out.resolve():
            raise GlotbenchError(f"output {out} is also an input", "write to another directory")
    parent = out.resolve().parent
    if not parent.is_dir():
        raise GlotbenchError(f"the parent of {out} does not exist", f"create {parent} first")
    if not os.access(parent, os.W_OK):
        raise GlotbenchError(f"cannot write in {parent}", "choose an -o in a writable directory")


@contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A temporary directory that becomes ``out`` when the block ends without an exception
    (and is removed when it raises). Partial directories that a killed stage (``kill -9``,
    a lost machine) left for the same output on this host are removed first: a checkpoint's
    leftovers are hundreds of MB."""
    out = Path(out)
    host = socket.gethostname()
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}@{host}"
    for stale in out.parent.glob(f".{out.name}.partial-*@{host}"):
        pid = stale.name.rsplit(".partial-", 1)[1].split("@", 1)[0]
        if stale != tmp and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    publish(tmp, out)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def publish(tmp: Path, out: Path) -> None:
    """Rename the finished directory into place (swapping out an old one)."""
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def manifest(stage: str, config: dict, inputs: list[dict], outputs: dict[str, Any], started: float,
             **extra: Any) -> dict:
    """The manifest of one stage. ``inputs``: ``{"role", "path", "sha256", ...}`` per parent
    (checkpoint or data file); ``outputs``: what the stage wrote (files and their hashes, counts)."""
    return {
        "format": FORMAT,
        "stage": stage,
        "glotbench_version": harness.__version__,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.time() - started, 3),
        "host": socket.gethostname(),
        "config": config,
        "config_sha256": json_sha256(config),
        "inputs": inputs,
        "outputs": outputs,
        "versions": library_versions(TRAINING_LIBRARIES),
        **extra,
    }


def write_manifest(directory: Path, data: dict) -> Path:
    path = Path(directory) / MANIFEST
    write_json_atomic(path, data, indent=2)
    return path


def finish_trained(trainer, work: Path, out_dir: Path, metrics: dict, metrics_name: str) -> dict | None:
    """After a Trainer saved into ``out_dir`` on every rank: wait for all ranks; on the main
    process remove the scratch directory ``work`` and trl's pickled ``training_args.bin`` (the
    manifest records the config) and write the metrics file. The metrics there, None elsewhere."""
    import json

    trainer.accelerator.wait_for_everyone()
    if not trainer.is_world_process_zero():
        return None
    shutil.rmtree(work, ignore_errors=True)
    (Path(out_dir) / "training_args.bin").unlink(missing_ok=True)
    (Path(out_dir) / metrics_name).write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
