"""One offline DPO run with trl's stable DPOTrainer: the training half of the DPO stage, run in
the stage's process or on every rank under ``accelerate launch`` (training/core/launch.py).

Pairs are read by the reward stage's readers (training/reward/data.py: arbitrage's
pairs.jsonl, any ``{prompt|messages, chosen, rejected}`` jsonl, a hub dataset), filtered by
score gap (:func:`filter_gap`, every drop counted), checked against the evaluation sets and
split by source prompt id, so a prompt's translations are all on one side. The reference is
always loaded here and handed to trl as ``ref_model``: trl 1.16 would otherwise reload it
from the policy's ``name_or_path`` silently (or, with LoRA, use the adapter-disabled base).
On CPU bf16 and gradient checkpointing are off unless the config sets them (as for SFT).
Every rank calls ``trainer.save_model`` (ZeRO-3/FSDP gather); the main process writes
``metrics.json``: the loss, reward-accuracy and reward-margin curves from trl's logs, and the
held-out log-probability margin (chosen − rejected, summed over completion tokens) before
and after training.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError
from glotbench.training.core.stage import finish_trained
from glotbench.training.data.overlap import OverlapReport
from glotbench.training.dpo.config import DPOConfig, load_config
from glotbench.training.reward.data import (
    PairSet,
    PreferencePair,
    hub_pairs,
    jsonl_pairs,
    split_pairs,
)
from glotbench.training.reward.trainer import check_eval_overlap
from glotbench.training.sft.trainer import merge_adapter, peft_quiet

METRICS = "metrics.json"


@dataclass(frozen=True)
class Prepared:
    """The stage's data, built the same way in every process."""

    source: PairSet
    kept: tuple[PreferencePair, ...]
    train: list[PreferencePair]
    held_out: list[PreferencePair]
    counts: dict
    """read, kept, dropped_ties, dropped_small_gap, dropped_unscored, unscored_kept."""
    overlap: OverlapReport


def filter_gap(pairs: tuple[PreferencePair, ...], min_gap: float) -> tuple[tuple[PreferencePair, ...], dict]:
    """The pairs whose score gap reaches ``min_gap``, and what happened to the others: ties
    (equal scores) are always dropped; pairs without both scores are kept only when
    ``min_gap`` is 0 (there is no gap to compare)."""
    kept, counts = [], Counter({"read": len(pairs), "kept": 0, "dropped_ties": 0, "dropped_small_gap": 0,
                                "dropped_unscored": 0, "unscored_kept": 0})
    for p in pairs:
        if p.score_chosen is None or p.score_rejected is None:
            if min_gap > 0:
                counts["dropped_unscored"] += 1
                continue
            counts["unscored_kept"] += 1
        elif p.score_chosen == p.score_rejected:
            counts["dropped_ties"] += 1
            continue
        elif p.score_chosen - p.score_rejected < min_gap:
            counts["dropped_small_gap"] += 1
            continue
        counts["kept"] += 1
        kept.append(p)
    return tuple(kept), dict(counts)


def prepare(cfg: DPOConfig) -> Prepared:
    """Pairs read, filtered by gap, checked for evaluation overlap and split (seeded)."""
    if cfg.data.file is not None:
        source = jsonl_pairs(cfg.data.file)
    else:
        # Only these are required of every row; pair_of reads prompt_id, language and the scores when present.
        fields = {k: k for k in ("prompt", "chosen", "rejected")}
        source = hub_pairs(str(cfg.data.hub), cfg.data.config, cfg.data.split, fields)
    kept, counts = filter_gap(source.pairs, cfg.min_gap)
    if not kept:
        raise GlotbenchError(f"no preference pair of {source.source} is left after min_gap {cfg.min_gap} ({counts})",
                             "lower min_gap or give pairs with score_chosen/score_rejected")
    overlap = check_eval_overlap(PairSet(kept, source.source, counts), cfg.allow_eval_overlap)
    if cfg.eval_fraction > 0:
        train, held = split_pairs(kept, cfg.eval_fraction, cfg.seed)
    else:
        train, held = list(kept), []
    return Prepared(source, kept, train, held, counts, overlap)


def to_dataset(pairs: list[PreferencePair]):
    """trl's conversational preference format: prompt turns, one assistant turn each side."""
    from datasets import Dataset

    return Dataset.from_list([{"prompt": [{"role": m.role, "content": m.content} for m in p.messages],
                               "chosen": [{"role": "assistant", "content": p.chosen}],
                               "rejected": [{"role": "assistant", "content": p.rejected}]} for p in pairs])


def model_dirs(cfg: DPOConfig) -> tuple[Path, Path]:
    """(policy dir, reference dir): the reference defaults to the policy's starting weights."""
    from glotbench.training.merge.engine import resolve_model

    policy = resolve_model(cfg.policy)
    return policy, resolve_model(cfg.reference) if cfg.reference else policy


def build_trainer(cfg: DPOConfig, prepared: Prepared, work_dir: Path, *, progress: bool):
    """A DPOTrainer with the policy, the explicit reference and the prepared pairs."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig as TrlDPOConfig
    from trl import DPOTrainer

    cpu = not torch.cuda.is_available()
    if not progress:
        import datasets

        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
    policy_dir, ref_dir = model_dirs(cfg)
    tok = AutoTokenizer.from_pretrained(policy_dir)
    if not tok.chat_template:
        raise GlotbenchError(f"policy {policy_dir} has no chat template", "give a chat checkpoint (the SFT output)")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    transformers.set_seed(cfg.seed)  # the LoRA init draws from it
    dtype = getattr(torch, cfg.dtype)
    model = AutoModelForCausalLM.from_pretrained(policy_dir, dtype=dtype)
    ref_model = AutoModelForCausalLM.from_pretrained(ref_dir, dtype=dtype)
    bf16 = (cfg.bf16 is True) if cpu else (cfg.bf16 if cfg.bf16 is not None else torch.cuda.is_bf16_supported())
    args = TrlDPOConfig(
        output_dir=str(work_dir), report_to="none", save_strategy="no", disable_tqdm=not progress,
        use_cpu=cpu, bf16=bf16, fp16=False, activation_checkpointing=cfg.gradient_checkpointing,
        seed=cfg.seed, data_seed=cfg.seed, max_steps=cfg.max_steps or -1, num_train_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate, per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        max_length=cfg.max_length, beta=cfg.beta, loss_type=list(cfg.loss_type), logging_steps=cfg.logging_steps,
        eval_strategy="no", eval_on_start=bool(prepared.held_out),  # inside train(): keeps the DDP wrapping
        dataloader_num_workers=0, ddp_find_unused_parameters=False,
    )
    peft_config = None
    if cfg.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=cfg.lora["r"], lora_alpha=cfg.lora["alpha"], lora_dropout=cfg.lora["dropout"],
                                 target_modules=cfg.lora["target_modules"], task_type="CAUSAL_LM")
    with peft_quiet():
        trainer = DPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=to_dataset(prepared.train),
                             eval_dataset=to_dataset(prepared.held_out) if prepared.held_out else None,
                             processing_class=tok, peft_config=peft_config)
    if not progress:
        trainer.remove_callback(transformers.trainer_callback.PrinterCallback)
    return trainer


def held_out(entry: dict | None) -> dict | None:
    """The held-out numbers of one evaluation log entry (policy log-prob margin and DPO loss)."""
    if entry is None:
        return None
    return {"logp_margin": entry["eval_logps/chosen"] - entry["eval_logps/rejected"], "loss": entry["eval_loss"],
            "reward_accuracy": entry.get("eval_rewards/accuracies"), "reward_margin": entry.get("eval_rewards/margins")}


def train_unit(cfg: DPOConfig, prepared: Prepared, out_dir: Path, *, progress: bool) -> dict | None:
    """Train and write the checkpoint to ``out_dir``; the metrics on the main process, None elsewhere."""
    import torch

    out_dir = Path(out_dir)
    work = out_dir / ".trainer"  # inside the staged output: a failed run leaves nothing behind
    trainer = build_trainer(cfg, prepared, work, progress=progress)
    started = time.perf_counter()
    with peft_quiet():  # trl's DPO loss reads the same deprecated alias (is_gradient_checkpointing) as peft
        result = trainer.train()
        wall = time.perf_counter() - started
        after = trainer.evaluate() if prepared.held_out else None
    if not progress:  # the trainer's run turns transformers' bars back on ("Writing model shards")
        import transformers

        transformers.utils.logging.disable_progress_bar()
    trainer.save_model(str(out_dir))  # every rank: gathers ZeRO-3/FSDP shards, writes on the main process
    main = trainer.is_world_process_zero()
    if main and cfg.lora and cfg.merge_lora:
        merge_adapter(model_dirs(cfg)[0], out_dir, cfg.dtype)
    history = trainer.state.log_history
    steps = [h for h in history if "loss" in h and "eval_loss" not in h]

    def curve(key: str) -> list[dict]:
        return [{"step": h["step"], key: h[key]} for h in steps if key in h]

    metrics = {
        "loss_curve": curve("loss"), "reward_accuracy_curve": curve("rewards/accuracies"),
        "reward_margin_curve": curve("rewards/margins"),
        "held_out_before": held_out(next((h for h in history if "eval_loss" in h), None)),
        "held_out_after": held_out(after),
        "train_pairs": len(prepared.train), "held_out_pairs": len(prepared.held_out),
        "steps": trainer.state.global_step, "train_loss": result.training_loss, "wall_seconds": round(wall, 3),
        "processes": trainer.accelerator.num_processes, "device": "cuda" if torch.cuda.is_available() else "cpu",
        "bf16": trainer.args.bf16, "gradient_checkpointing": trainer.args.gradient_checkpointing,
        "beta": cfg.beta, "loss_type": list(cfg.loss_type), "lora_merged": bool(cfg.lora and cfg.merge_lora),
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
    }
    return finish_trained(trainer, work, out_dir, metrics, METRICS)


def train_config(config: Path, work_dir: Path, *, progress: bool) -> None:
    """Each rank of a launch: the same data and models, trained into ``work_dir``."""
    cfg = load_config(config)
    train_unit(cfg, prepare(cfg), work_dir, progress=progress)
