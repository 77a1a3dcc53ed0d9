"""One SFT run with trl's SFTTrainer: a base checkpoint and chat rows in, a checkpoint out.

Runs on every process of a distributed launch (each builds the same dataset and model; the
Trainer's accelerator shards batches and averages gradients); only the main process writes
``out_dir`` (weights, tokenizer with the chat template trained with, ``metrics.json``).
On CPU, bf16 autocast and gradient checkpointing are off unless the config sets them: trl
1.16 defaults both on, and whether they pay depends on the CPU (slower without bf16 matmul
units, where a 17x slowdown was reported; on this project's AVX-512 VM bench/bench_sft.py
measured them 1.4x *faster* when idle, 1.6x slower when loaded). Off is the float32-exact
default; ``bf16: true`` / ``gradient_checkpointing: true`` in the config turn them on.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError
from glotbench.training.core.stage import finish_trained
from glotbench.training.sft.config import SFTConfig
from glotbench.training.sft.data import split_eval, to_dataset

METRICS = "metrics.json"


@contextmanager
def peft_quiet() -> Iterator[None]:
    """peft 0.21 reads transformers 5's deprecated ``is_gradient_checkpointing`` alias (a
    FutureWarning between two libraries, not about our code; the test suite makes warnings errors)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def loss_mode(template: str | None, loss: str) -> str:
    """How trl is asked for the loss (see training/sft/data.py): ``messages`` with trl's
    ``assistant_only_loss`` when the template marks generations, ``prompt_completion`` with
    ``completion_only_loss`` otherwise, plain ``messages`` for ``loss: all``."""
    from trl.chat_template_utils import has_generation_markers

    if loss == "all":
        return "messages"
    return "messages" if template and has_generation_markers(template) else "prompt_completion"


def build_trainer(cfg: SFTConfig, base_dir: Path, rows: list[dict], work_dir: Path, *, progress: bool,
                  trl_cpu_defaults: bool = False):
    """(trainer, eval_rows): an SFTTrainer ready to train ``rows`` from ``base_dir``.

    ``trl_cpu_defaults``: keep trl's bf16 and gradient checkpointing on even on CPU (only
    bench/bench_sft.py, which measures what turning them off buys)."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig as TrlSFTConfig
    from trl import SFTTrainer

    cpu = not torch.cuda.is_available()
    if not progress:
        import datasets

        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(base_dir)
    if cfg.chat_template:
        tok.chat_template = cfg.chat_template
    if not tok.chat_template:
        raise GlotbenchError(f"model {base_dir} has no chat template", "set chat_template: FILE.jinja in the SFT config")
    mode = loss_mode(tok.chat_template, cfg.loss)
    train_rows, eval_rows = split_eval(rows, cfg.eval_fraction, cfg.seed)
    transformers.set_seed(cfg.seed)  # the LoRA init and any head init draw from it
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=getattr(torch, cfg.dtype))
    bf16 = (cfg.bf16 is True) if cpu else (cfg.bf16 if cfg.bf16 is not None else torch.cuda.is_bf16_supported())
    checkpointing = cfg.gradient_checkpointing
    if trl_cpu_defaults and cpu:
        bf16 = checkpointing = True
    args = TrlSFTConfig(
        output_dir=str(work_dir), report_to="none", save_strategy="no", disable_tqdm=not progress,
        use_cpu=cpu, bf16=bf16, fp16=False, activation_checkpointing=checkpointing,
        seed=cfg.seed, data_seed=cfg.seed, max_steps=cfg.max_steps or -1, num_train_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler, warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay, per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        max_length=cfg.max_length, packing=cfg.packing, logging_steps=cfg.logging_steps,
        eval_strategy="steps" if cfg.eval_steps and eval_rows else "no", eval_steps=cfg.eval_steps,
        eval_on_start=bool(eval_rows),  # inside train(): an evaluate() before it would skip the DDP wrapping
        assistant_only_loss=cfg.loss == "assistant" and mode == "messages",
        completion_only_loss=mode == "prompt_completion", dataloader_num_workers=0, ddp_find_unused_parameters=False,
    )
    peft_config = None
    if cfg.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=cfg.lora["r"], lora_alpha=cfg.lora["alpha"], lora_dropout=cfg.lora["dropout"],
                                 target_modules=cfg.lora["target_modules"], task_type="CAUSAL_LM")
    with peft_quiet():
        trainer = SFTTrainer(model=model, args=args, train_dataset=to_dataset(train_rows, mode),
                             eval_dataset=to_dataset(eval_rows, mode) if eval_rows else None,
                             processing_class=tok, peft_config=peft_config)
    if not progress:  # the summary and metrics.json carry the numbers; keep stdout for them
        trainer.remove_callback(transformers.trainer_callback.PrinterCallback)
    return trainer, eval_rows


def train_unit(cfg: SFTConfig, base_dir: Path, rows: list[dict], out_dir: Path, *, progress: bool) -> dict | None:
    """Train on ``rows`` and write the checkpoint to ``out_dir`` (main process only); the
    metrics on the main process, None on the others."""
    import torch

    out_dir = Path(out_dir)
    work = out_dir / ".trainer"  # inside the staged output: a failed run leaves nothing behind
    trainer, eval_rows = build_trainer(cfg, base_dir, rows, work, progress=progress)
    started = time.perf_counter()
    result = trainer.train()
    wall = time.perf_counter() - started
    eval_after = trainer.evaluate()["eval_loss"] if eval_rows else None
    trainer.save_model(str(out_dir))  # gathers ZeRO-3/FSDP shards; writes on the main process only
    main = trainer.is_world_process_zero()
    if main and cfg.lora and cfg.merge_lora:
        merge_adapter(base_dir, out_dir, cfg.dtype)
    history = trainer.state.log_history
    eval_before = next((h["eval_loss"] for h in history if "eval_loss" in h), None)
    tokens = max((h.get("num_tokens", 0) for h in history), default=0)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    metrics = {
        "loss_curve": [{"step": h["step"], "loss": h["loss"]} for h in history if "loss" in h],
        "eval_curve": [{"step": h["step"], "eval_loss": h["eval_loss"]} for h in history if "eval_loss" in h],
        "eval_loss_before": eval_before, "eval_loss_after": eval_after,
        "train_rows": len(rows) - len(eval_rows), "eval_rows": len(eval_rows),
        "steps": trainer.state.global_step, "train_loss": result.training_loss, "tokens": int(tokens),
        "tokens_per_second": round(tokens / wall, 2) if wall else None, "wall_seconds": round(wall, 3),
        "processes": trainer.accelerator.num_processes, "device": "cpu" if not torch.cuda.is_available() else "cuda",
        "bf16": trainer.args.bf16, "gradient_checkpointing": trainer.args.gradient_checkpointing,
        "loss_mode": "all tokens" if cfg.loss == "all" else (
            "assistant_only_loss" if trainer.args.assistant_only_loss else "completion_only_loss"),
        "trainable_parameters": trainable, "lora_merged": bool(cfg.lora and cfg.merge_lora),
    }
    return finish_trained(trainer, work, out_dir, metrics, METRICS)


def merge_adapter(base_dir: Path, out_dir: Path, dtype: str) -> None:
    """Replace the LoRA adapter in ``out_dir`` by base + adapter merged into full weights (so
    ``glotbench run --model hf:OUT`` and ``glotbench merge`` read it like any checkpoint)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=getattr(torch, dtype))
    with peft_quiet():
        merged = PeftModel.from_pretrained(base, str(out_dir)).merge_and_unload()
    for name in ("adapter_model.safetensors", "adapter_config.json", "adapter_model.bin", "README.md"):
        (out_dir / name).unlink(missing_ok=True)
    merged.save_pretrained(out_dir)
