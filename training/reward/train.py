"""``glotbench train reward CONFIG.yaml -o RM``: a reward model from preference pairs.

The stage reads and splits the pairs (by instruction, seeded), trains with trl's
RewardTrainer (trainer.py; under ``accelerate launch`` with ``--accelerate-config``),
then scores the held-out pairs with :class:`~glotbench.training.reward.score.RewardModelScorer`
on the saved checkpoint (the very scorer arbitrage uses) and writes, atomically, one
directory: the Hugging Face checkpoint, ``eval.json`` (held-out pairwise accuracy with a
bootstrap CI over instructions, ties counted, the loss curve) and ``training_manifest.json``
(base model and data hashes, the data's evaluation-overlap report, config, versions).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from glotbench.harness.core.hashing import dir_sha256, file_sha256, json_sha256, write_json_atomic
from glotbench.training.core.config import resolve_path
from glotbench.training.core.launch import check_accelerate_config, launch, refuse_inside_launch
from glotbench.training.core.stage import check_output, manifest, staged, write_manifest
from glotbench.training.data.overlap import describe
from glotbench.training.reward.config import load_config
from glotbench.training.reward.evaluate import evaluate_pairs
from glotbench.training.reward.score import RM_FILES, RewardModelScorer
from glotbench.training.reward.trainer import TRAIN_LOG, base_dir, fit, prepare

EVAL = "eval.json"


def run_stage(config: Path, out: Path, *, overwrite: bool, progress: bool,
              accelerate_config: Path | None = None) -> str:
    """Train, evaluate and write the reward model; returns a few summary lines."""
    started = time.time()
    cfg = load_config(config)
    refuse_inside_launch("reward")
    if accelerate_config is not None:
        check_accelerate_config(accelerate_config)
    base = base_dir(cfg, config)
    check_output(out, overwrite, inputs=(base, resolve_path(cfg.data.location, config)))
    prepared = prepare(cfg, config)
    with staged(out) as tmp:
        if accelerate_config is not None:
            import json

            launch("reward", accelerate_config, config, tmp, progress=progress)
            log = json.loads((tmp / TRAIN_LOG).read_text(encoding="utf-8"))
        else:
            log = fit(cfg, config, tmp, progress=progress)
        shutil.rmtree(tmp / "trainer", ignore_errors=True)
        _umask_modes(tmp)
        scorer = RewardModelScorer(tmp, batch_size=cfg.train.eval_batch_size, max_length=cfg.train.max_length)
        held = evaluate_pairs(scorer, prepared.held_out, cfg.seed)
        scores = held.pop("scores")
        result = {"held_out": held, "scorer": {**scorer.identity, "path": str(out)}, "scorer_stats": scorer.stats,
                  "training": log, "data": {"source": prepared.source.source, "counts": prepared.source.counts,
                                            "train_pairs": len(prepared.train),
                                            "held_out_pairs": len(prepared.held_out),
                                            "train_instructions": len({p.group for p in prepared.train}),
                                            "held_out_instructions": len({p.group for p in prepared.held_out})},
                  "held_out_scores": scores}
        write_json_atomic(tmp / EVAL, result, indent=2)
        inputs = [{"role": "base", "path": str(base), "spec": cfg.base_model, "sha256": dir_sha256(base, RM_FILES)},
                  {"role": "data", "path": str(prepared.data_path), "source": prepared.source.source,
                   "sha256": _data_sha256(prepared.data_path), "pairs_sha256": prepared.source.sha256,
                   "train_ids_sha256": json_sha256([p.pair_id for p in prepared.train]),
                   "held_out_ids_sha256": json_sha256([p.pair_id for p in prepared.held_out]),
                   "eval_overlap": prepared.overlap.to_json()}]
        outputs = {"weights_sha256": scorer.identity["weights_sha256"], "eval": EVAL, "train_log": TRAIN_LOG}
        write_manifest(tmp, manifest("reward", cfg.raw, inputs, outputs, started,
                                     reward={"max_length": cfg.train.max_length, "overlong": cfg.train.overlong},
                                     accelerate_config=str(accelerate_config) if accelerate_config else None,
                                     held_out={k: held[k] for k in ("accuracy", "ci95", "n_pairs", "n_instructions",
                                                                    "ties")}))
    return summary(out, held, log, len(prepared.train)) + "\n" + describe(prepared.overlap)


def _umask_modes(directory: Path) -> None:
    """Give the checkpoint's files the mode a plain open() gives (safetensors writes 0600; a
    reward model is for sharing, like every other result)."""
    umask = os.umask(0)
    os.umask(umask)
    for f in directory.iterdir():
        if f.is_file():
            f.chmod(0o666 & ~umask)


def _data_sha256(path: Path) -> str | None:
    """The source's files (None for a hub id: its pairs_sha256 covers the content)."""
    if path.is_dir():
        return dir_sha256(path, ("*.json", "*.jsonl", "*.parquet"))
    return file_sha256(path) if path.is_file() else None


def summary(out: Path, held: dict, log: dict, n_train: int) -> str:
    """The lines the CLI prints."""
    acc, ci = held["accuracy"], held["ci95"]
    ref = held["reference_longer_wins"]["accuracy"]
    losses = [p["loss"] for p in log.get("loss_curve", []) if "loss" in p]
    half = max(1, len(losses) // 2)
    trend = (f"mean logged loss {sum(losses[:half]) / half:.3f} (first half) → "
             f"{sum(losses[half:]) / max(1, len(losses) - half):.3f} (second half)") if len(losses) > 1 else \
        f"loss {log.get('train_loss')}"
    return "\n".join([
        f"reward model → {out}",
        f"trained on {log['pairs'].get('pairs', n_train)} pairs, {log['steps']} steps in {log['seconds']:.0f} s "
        f"({log.get('tokens_per_second')} tokens/s); {trend}",
        f"held-out pairwise accuracy {acc:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] on {held['n_pairs']} pairs "
        f"({held['n_instructions']} instructions; {held['ties']} ties counted ½, {held.get('unscored_pairs', 0)} of "
        f"them unscored: prompt over max_length); chance 0.5, longer-answer-wins {ref:.3f}",
        f"details: {out / EVAL}"])
