"""Fit a reward model with trl's RewardTrainer: the training half of the reward stage, which
runs in the stage's process or on every rank under ``accelerate launch`` (launch.py).

The pairs are tokenized here by :func:`glotbench.training.reward.encode.encode` (the
scorer's tokenisation) and handed to trl already tokenized (``chosen_ids``/``rejected_ids``),
so trl neither re-renders them nor filters by its own ``max_length``: sequences over
``train.max_length`` are truncated or their pair dropped by the config's ``overlong`` rule,
and counted. On CPU bf16 and gradient checkpointing are off (trl turns both on by default;
on CPU they make a step many times slower). Every rank calls ``trainer.save_model``: under
ZeRO-3 or FSDP2 the weights are sharded and only a collective save gathers them; the main
process then adds the rest (a LoRA adapter merged into full weights, the training log).
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import write_json_atomic
from glotbench.harness.core.records import ChatMessage
from glotbench.training.core.config import ConfigError, resolve_path
from glotbench.training.core.records import Prompt
from glotbench.training.data.overlap import OverlapReport, check_overlap
from glotbench.training.reward.config import RewardConfig
from glotbench.training.reward.data import PairSet, PreferencePair, load_pairs, split_pairs
from glotbench.training.reward.encode import encode

TRAIN_LOG = "train_log.json"


@dataclass(frozen=True)
class Prepared:
    """The stage's data, built the same way in every process."""

    source: PairSet
    train: list[PreferencePair]
    held_out: list[PreferencePair]
    data_path: Path
    overlap: OverlapReport
    """The evaluation-overlap check of every pair's prompt (the manifest's data entry keeps it)."""


def base_dir(cfg: RewardConfig, config_path: Path) -> Path:
    """The base model's local directory (``embedded`` or ``hf:<dir>``, relative to the config)."""
    from glotbench.training.merge.engine import resolve_model

    spec = cfg.base_model
    if spec.startswith("hf:"):
        spec = "hf:" + str(resolve_path(spec[3:], config_path))
    return resolve_model(spec)


def prepare(cfg: RewardConfig, config_path: Path) -> Prepared:
    """Pairs read, checked against the evaluation sets and split by instruction (seeded)."""
    path = resolve_path(cfg.data.location, config_path)
    pairs = load_pairs(cfg.data, path)
    overlap = check_eval_overlap(pairs, cfg.data.allow_eval_overlap)
    train, held = split_pairs(pairs.pairs, cfg.eval_fraction, cfg.seed, cfg.train_pairs, cfg.eval_pairs)
    return Prepared(pairs, train, held, path, overlap)


def check_eval_overlap(pairs: PairSet, allow: bool) -> OverlapReport:
    """The evaluation-overlap check on the user turns of every distinct prompt of ``pairs``: a
    one-line error when some are evaluation prompts, unless ``allow``."""
    prompts: dict[tuple[str, ...], Prompt] = {}
    for p in pairs.pairs:
        turns = tuple(m.content for m in p.messages if m.role == "user")
        if turns not in prompts:
            prompts[turns] = Prompt(prompt_id=p.pair_id, language="", messages=tuple(
                ChatMessage("user", t) for t in turns), source=pairs.source)
    return check_overlap(list(prompts.values()), f"reward data {pairs.source}", allow=allow, block="data")


def tokenized(tokenizer, pairs: list[PreferencePair], max_length: int, overlong: str) -> tuple[list[dict], dict]:
    """Rows ``{chosen_ids, rejected_ids}`` for trl, and what the length rule did (counted)."""
    rows, counts = [], Counter()
    for p in pairs:
        c = encode(tokenizer, p.messages, p.chosen, max_length)
        r = encode(tokenizer, p.messages, p.rejected, max_length)
        counts["tokens_before_truncation"] += c.full_length + r.full_length
        if c.ids is None or r.ids is None:
            counts["dropped_prompt_too_long"] += 1
        elif overlong == "drop" and (c.truncated or r.truncated):
            counts["dropped_overlong"] += 1
        else:
            counts["truncated_pairs"] += c.truncated or r.truncated
            counts["pairs"] += 1
            rows.append({"chosen_ids": list(c.ids), "rejected_ids": list(r.ids)})
    if not rows:
        raise GlotbenchError(f"no training pair fits max_length {max_length} ({dict(counts)})",
                             "raise train.max_length or use overlong: truncate")
    return rows, dict(counts)


def load_model(path: Path, seed: int):
    """The base as a one-output sequence classifier (its score head seeded) and its tokenizer
    with a pad token (the tokenizer's, else EOS: what trl would pick)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl.trainer.reward_trainer import suppress_seqcls_warning

    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not getattr(tok, "chat_template", None):
        raise ConfigError(f"base model {path} has no chat template", "give a chat model (its tokenizer has one)")
    torch.manual_seed(seed)  # the new score head is drawn here
    with suppress_seqcls_warning():
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.float32)
    model.config.get_text_config().pad_token_id = tok.pad_token_id
    return model, tok


def train_only_last(model, k: int) -> int:
    """Freeze all but the last ``k`` blocks, the final norm and the score head; the number of
    trainable parameters. Backward then stops at block ``n - k``: the cheap way to train on CPU."""
    base = model.base_model
    blocks = getattr(base, "layers", None)
    if blocks is None or k > len(blocks):
        raise ConfigError(f"train.train_last_layers {k}: the model has {len(blocks or [])} blocks in model.layers",
                          "give a smaller number, or remove the key to train every weight")
    for p in model.parameters():
        p.requires_grad_(False)
    for module in [*blocks[len(blocks) - k:], getattr(base, "norm", None), model.score]:
        if module is not None:
            for p in module.parameters():
                p.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def numel(p) -> int:
    """A parameter's size, also when ZeRO-3 has partitioned it away from this rank (``ds_numel``)."""
    return int(getattr(p, "ds_numel", p.numel()))


def merge_adapter(base: Path, work_dir: Path, seed: int) -> None:
    """Replace the LoRA adapter ``trainer.save_model`` wrote in ``work_dir`` by base + adapter
    merged into full weights (the score head comes from the adapter's saved modules)."""
    from peft import PeftModel

    model, _ = load_model(base, seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        merged = PeftModel.from_pretrained(model, str(work_dir)).merge_and_unload()
    for name in ("adapter_model.safetensors", "adapter_model.bin", "adapter_config.json", "README.md"):
        (work_dir / name).unlink(missing_ok=True)
    merged.save_pretrained(work_dir, safe_serialization=True)


def train_config(config: Path, work_dir: Path, *, progress: bool) -> dict:
    """:func:`fit` of the config at ``config`` (run by each rank of a launch, training/core/launch.py)."""
    from glotbench.training.reward.config import load_config

    return fit(load_config(config), config, work_dir, progress=progress)


def fit(cfg: RewardConfig, config_path: Path, work_dir: Path, *, progress: bool) -> dict:
    """Train on the config's training pairs and save the model and its tokenizer into
    ``work_dir`` (a collective save on every rank); the main process also writes
    ``train_log.json`` (loss curve, counts, time, tokens) and returns it, the others ``{}``."""
    import torch
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import RewardConfig as TrlRewardConfig
    from trl import RewardTrainer

    prepared = prepare(cfg, config_path)
    base = base_dir(cfg, config_path)
    model, tok = load_model(base, cfg.seed)
    parameters = sum(numel(p) for p in model.parameters())
    t = cfg.train
    rows, length_counts = tokenized(tok, prepared.train, t.max_length, t.overlong)
    if t.train_last_layers:
        train_only_last(model, t.train_last_layers)
    peft_config = None
    if t.lora is not None:
        from peft import LoraConfig

        peft_config = LoraConfig(task_type="SEQ_CLS", r=t.lora.r, lora_alpha=t.lora.alpha,
                                 lora_dropout=t.lora.dropout, target_modules=list(t.lora.target_modules) or None)
    gpu = torch.cuda.is_available()
    args = TrlRewardConfig(
        output_dir=str(work_dir / "trainer"), seed=cfg.seed, data_seed=cfg.seed,
        per_device_train_batch_size=t.batch_size, gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.learning_rate, num_train_epochs=t.epochs, max_steps=t.steps or -1,
        max_length=None,  # lengths are handled above, by the stage's rule
        bf16=gpu and torch.cuda.is_bf16_supported(), activation_checkpointing=False, use_cpu=not gpu,
        logging_steps=t.logging_steps, logging_first_step=True, save_strategy="no", eval_strategy="no",
        report_to="none", disable_tqdm=not progress, dataloader_num_workers=0, log_level="warning")
    with warnings.catch_warnings():
        # peft 0.21 reads transformers' deprecated is_gradient_checkpointing: its noise, not the user's.
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
                                peft_config=peft_config)
    if not progress:
        trainer.remove_callback(PrinterCallback)  # the stage prints its own summary
    trainable = sum(numel(p) for p in trainer.model.parameters() if p.requires_grad)
    started = time.time()
    result = trainer.train()
    seconds = time.time() - started
    # Every rank: under ZeRO-3/FSDP2 the save gathers the shards (a collective); the main
    # process writes the weights (the adapter under LoRA) and the tokenizer.
    trainer.save_model(str(work_dir))
    if not trainer.is_world_process_zero():
        return {}
    (work_dir / "training_args.bin").unlink(missing_ok=True)  # a pickle; the manifest records the config
    if peft_config is not None:
        merge_adapter(base, work_dir, cfg.seed)
    curve = [{k: h[k] for k in ("step", "epoch", "loss", "accuracy", "margin", "learning_rate") if k in h}
             for h in trainer.state.log_history if "loss" in h]
    # trl logs the running count of attended tokens (chosen and rejected rows) as num_tokens.
    tokens = int(max((h.get("num_tokens", 0) for h in trainer.state.log_history), default=0))
    log = {"pairs": length_counts, "steps": trainer.state.global_step, "seconds": round(seconds, 2),
           "train_loss": result.training_loss, "loss_curve": curve, "tokens": tokens,
           "tokens_per_second": round(tokens / seconds, 1) if seconds > 0 else None,
           "trainable_parameters": trainable, "parameters": parameters,
           "world_size": trainer.accelerator.num_processes, "device": str(trainer.args.device)}
    write_json_atomic(work_dir / TRAIN_LOG, log, indent=2)
    return log
