"""``glotbench train dpo CONFIG.yaml -o CKPT``: offline DPO with trl's DPOTrainer.

A function from (policy checkpoint, reference checkpoint, preference pairs, config) to one
checkpoint directory: weights, tokenizer, ``metrics.json`` (trainer.py) and
``training_manifest.json``: the policy (role ``base``) and the reference (role
``reference``) with their weights hashes, the data with its hash, the gap filter's counts and
the evaluation-overlap report. ``glotbench run --model hf:CKPT`` copies it into provenance.
With ``--accelerate-config`` the training runs under ``accelerate launch``; the checks and
the manifest stay in this process.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from glotbench.harness.core.hashing import dir_sha256, file_sha256, json_sha256
from glotbench.training.core.launch import check_accelerate_config, launch, refuse_inside_launch
from glotbench.training.core.stage import check_output, manifest, staged, write_manifest
from glotbench.training.data.overlap import describe
from glotbench.training.dpo.config import DPOConfig, load_config
from glotbench.training.dpo.trainer import METRICS, Prepared, model_dirs, prepare, train_unit
from glotbench.training.sft.train import WEIGHT_PATTERNS


def run_stage(config: Path, out: Path, *, overwrite: bool = False, progress: bool = False,
              accelerate_config: Path | None = None) -> str:
    """Run the DPO stage of ``config`` into ``out``; a few lines of summary."""
    refuse_inside_launch("dpo")
    started = time.time()
    cfg = load_config(config)
    out = Path(out)
    policy_dir, ref_dir = model_dirs(cfg)
    check_output(out, overwrite, inputs=tuple(p for p in (policy_dir, ref_dir, cfg.data.file) if p))
    if accelerate_config is not None:
        check_accelerate_config(accelerate_config)
    prepared = prepare(cfg)
    inputs = [{"role": "base", "model": cfg.policy, "path": str(policy_dir),
               "sha256": dir_sha256(policy_dir, WEIGHT_PATTERNS)},
              {"role": "reference", "model": cfg.reference or cfg.policy, "path": str(ref_dir),
               "sha256": dir_sha256(ref_dir, WEIGHT_PATTERNS)},
              data_entry(cfg, prepared)]
    with staged(out) as tmp:
        if accelerate_config is not None:
            launch("dpo", accelerate_config, config, tmp, progress=progress)
        else:
            train_unit(cfg, prepared, tmp, progress=progress)
        metrics = json.loads((tmp / METRICS).read_text())
        files = {p.name: file_sha256(p) for p in sorted(tmp.glob("*.safetensors"))}
        head = ("steps", "train_pairs", "held_out_pairs", "train_loss", "held_out_before", "held_out_after")
        write_manifest(tmp, manifest("dpo", cfg.raw, inputs, {"files": files, "metrics": METRICS,
                                                              **{k: metrics.get(k) for k in head}}, started,
                                     accelerate_config=str(accelerate_config) if accelerate_config else None))
    return summary(out, cfg, metrics, inputs[2])


def data_entry(cfg: DPOConfig, prepared: Prepared) -> dict:
    """The data's lineage: file hash, the kept pairs' content hash, the split and the counts."""
    path = cfg.data.file
    return {"role": "data", "path": str(path) if path else cfg.data.hub, "source": prepared.source.source,
            "sha256": file_sha256(path) if path else None,
            "pairs_sha256": pairs_sha256(prepared), "min_gap": cfg.min_gap, "counts": prepared.counts,
            "train_ids_sha256": json_sha256([p.pair_id for p in prepared.train]),
            "held_out_ids_sha256": json_sha256([p.pair_id for p in prepared.held_out]),
            "eval_overlap": prepared.overlap.to_json()}


def pairs_sha256(prepared: Prepared) -> str:
    """The content hash of the pairs trained on (after the gap filter)."""
    return json_sha256([[p.pair_id, [m.content for m in p.messages], p.chosen, p.rejected] for p in prepared.kept])


def summary(out: Path, cfg: DPOConfig, m: dict, data: dict) -> str:
    """Three lines: what was trained, how loss and margins moved, what the data filter did."""
    kind = "full" if not cfg.lora else ("LoRA, merged" if cfg.merge_lora else "LoRA adapter")
    loss, margin = m["loss_curve"], m["reward_margin_curve"]
    moved = f"loss {loss[0]['loss']:.4f} → {loss[-1]['loss']:.4f}" if loss else "no loss logged"
    if margin:
        moved += f", reward margin {margin[0]['rewards/margins']:.4f} → {margin[-1]['rewards/margins']:.4f}"
    b, a = m.get("held_out_before"), m.get("held_out_after")
    held = (f"; held-out log-prob margin {b['logp_margin']:.3f} → {a['logp_margin']:.3f}, loss {b['loss']:.4f} → "
            f"{a['loss']:.4f} ({m['held_out_pairs']} pairs)") if a and b else ""
    c = data["counts"]
    return (f"DPO ({kind}, loss {'+'.join(cfg.loss_type)}, beta {cfg.beta}, {m['processes']} process(es), "
            f"{m['device']}): {out}\n"
            f"  {m['train_pairs']} pairs, {m['steps']} steps, {moved}{held}, {m['wall_seconds']:.1f} s\n"
            f"  data: {c['read']} pairs read, {c['kept']} kept; dropped {c['dropped_ties']} ties, "
            f"{c['dropped_small_gap']} below min_gap {cfg.min_gap}, {c['dropped_unscored']} unscored; "
            f"{describe(data['eval_overlap'])}")
