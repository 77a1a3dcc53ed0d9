"""Benchmark: SFT training throughput (tokens/s) of the embedded model (SmolLM2-135M-Instruct)
on CPU with glotbench's SFT trainer (training/sft/trainer.py), on real AlpacaEval outputs.

Settings:

- ``glotbench``: what ``glotbench train sft`` runs on CPU: float32, bf16 off, gradient
  checkpointing off.
- ``trl defaults``: trl 1.16's SFTConfig defaults kept on CPU: bf16 autocast and gradient
  checkpointing on (``--trl-defaults``; slow, so off unless asked).

Throughput counts every token of the batches (trl's ``num_tokens``: prompt and completion,
padding excluded) over the steps after the first (the first pays for allocation and the
optimizer's state). The machine's load average is printed with the table: on a shared CPU the
numbers move with it.

    python bench/bench_sft.py [--steps 4] [--rows 8] [--batch-size 4] [--max-length 256] [--trl-defaults]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from glotbench.training.merge.engine import resolve_model
from glotbench.training.sft.config import parse_config
from glotbench.training.sft.trainer import build_trainer

ANNOTATIONS = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca_eval_2" / "annotations"


def rows(n: int) -> list[dict]:
    data = json.loads((ANNOTATIONS / "gpt-3.5-turbo-1106.json").read_text())
    return [{"language": "en", "source": f"alpaca-{i}",
             "messages": [{"role": "user", "content": r["instruction"]},
                          {"role": "assistant", "content": r["output_2"]}]} for i, r in enumerate(data[:n])]


def measure(args, trl_defaults: bool) -> dict:
    from transformers import TrainerCallback

    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *_, **__):
            stamps.append(time.perf_counter())

    cfg = parse_config({"model": "embedded", "data": {"hub": "unused"}, "max_steps": args.steps,
                        "batch_size": args.batch_size, "max_length": args.max_length, "learning_rate": 2e-5})
    with tempfile.TemporaryDirectory() as tmp:
        trainer, _ = build_trainer(cfg, resolve_model("embedded"), rows(args.rows), Path(tmp), progress=False,
                                   trl_cpu_defaults=trl_defaults)
        trainer.add_callback(Clock())
        start = time.perf_counter()
        trainer.train()
    tokens = [h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h]
    steady = (tokens[-1] - tokens[0]) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")
    return {"setting": "trl defaults (bf16 + grad. ckpt)" if trl_defaults else "glotbench (fp32, no ckpt)",
            "steps": len(stamps), "tokens": tokens[-1], "first_step_s": stamps[0] - start,
            "step_s": (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1), "tokens_per_s": steady}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--trl-defaults", action="store_true", help="also measure trl's CPU defaults (slow)")
    args = parser.parse_args()
    results = [measure(args, False)] + ([measure(args, True)] if args.trl_defaults else [])
    print(f"SFT of the embedded model on CPU ({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}), "
          f"batch {args.batch_size} x max_length {args.max_length}, {args.steps} steps")
    print(f"{'setting':34} {'steps':>5} {'tokens':>7} {'first step s':>12} {'step s':>7} {'tokens/s':>9}")
    for r in results:
        print(f"{r['setting']:34} {r['steps']:>5} {r['tokens']:>7} {r['first_step_s']:>12.1f} {r['step_s']:>7.1f} "
              f"{r['tokens_per_s']:>9.1f}")
    if len(results) == 2:
        ratio = results[1]["tokens_per_s"] / results[0]["tokens_per_s"]
        print(f"trl defaults: {ratio:.2f}x glotbench's CPU throughput on this CPU "
              f"({'faster' if ratio > 1 else 'slower'})")


if __name__ == "__main__":
    main()
