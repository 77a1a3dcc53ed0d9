"""Demonstration: the recipe's preference stages on the embedded model (SmolLM2-135M-Instruct),
measured on held-out prompts by the reward model of the reward example.

Stages compared, each sampled with the same seeds on the same held-out prompts and scored by
the same reward model:

- ``base``: the embedded model;
- ``sft``: after SFT on the arbitrage example's data (``results/sft-embedded``), the reference
  of the win-rates;
- ``offline dpo``: after offline DPO on the arbitrage pairs (``results/dpo-embedded``);
- ``online 1..N``: after each online iteration (``glotbench train online-dpo``, started
  from the offline-DPO checkpoint).

Per stage: the held-out mean reward with its seeded bootstrap 95 % CI, per language, the mean
completion length, the KL estimate to the offline-DPO policy (online stages), and the
win-rate against the SFT model (the reward model's score compared per prompt and sample;
a scalar RM needs no second order). Prompts: OASST human-translated prompts, which none of
the SFT, DPO or reward-model data holds. The online run resumes if interrupted (rerun the
same command with the same ``--out``).

    python bench/bench_online_dpo.py [--out results/bench-online-dpo] [--iterations 3] [--first 30]
        [--languages en es fr] [--samples 4] [--max-new-tokens 64] [--steps 15]

Needs ``results/sft-embedded``, ``results/dpo-embedded`` and ``results/rm-alpacaeval`` (the
training examples; docs/training.md).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import yaml

from glotbench.harness.run.cache import RequestCache
from glotbench.training.arbitrage.scorers import build_scorer
from glotbench.training.data.prompts import load_prompts
from glotbench.training.merge.engine import resolve_model
from glotbench.training.online import metrics, sampling
from glotbench.training.online.config import load_config
from glotbench.training.online.loop import run_stage, split
from glotbench.training.online.state import read_jsonl
from glotbench.training.online.steps import EVAL_SEED

REPO = Path(__file__).resolve().parents[1]
NEEDED = {"sft": "results/sft-embedded", "dpo": "results/dpo-embedded", "rm": "results/rm-alpacaeval"}


def write_config(out: Path, args) -> Path:
    cfg = {"policy": f"hf:{REPO / NEEDED['dpo']}",
           "prompts": {"oasst_hplt": str(REPO.parent / "shared" / "data" / "oasst_hplt_parallel"),
                       "languages": args.languages, "first": args.first},
           "held_out": 1 / 3, "iterations": args.iterations, "samples_per_prompt": args.samples,
           "sampling": {"temperature": 0.8, "max_new_tokens": args.max_new_tokens, "seed": 0}, "eval_samples": 2,
           "scorer": {"reward_model": str(REPO / NEEDED["rm"]), "batch_size": 8}, "min_gap": 0.05,
           "dpo": {"beta": 0.1, "learning_rate": 5.0e-6, "max_steps": args.steps, "batch_size": 4, "max_length": 384},
           "seed": 0, "batch_size": 8, "device": "auto", "dtype": "float32"}
    path = out / "online.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def measure(config: Path, run: Path, model: str) -> list[dict]:
    """``model``'s held-out rows, sampled and scored exactly as the loop measures its policies."""
    cfg = load_config(config)
    prompts = load_prompts(cfg.prompts, cfg.path)
    _, held = split(prompts.prompts, cfg.held_out, cfg.seed)
    scorer = build_scorer(cfg.scorer, cfg.path, progress=False)
    cache = RequestCache(run / "requests.sqlite")
    try:
        samples, _ = sampling.generate(cfg, resolve_model(model), held, cfg.eval_samples,
                                       cfg.sampling.seed + EVAL_SEED, cache, lambda n: None)
    finally:
        cache.close()
    samples = sampling.score(scorer, prompts.by_id(), samples)
    return [{"prompt_id": c.prompt_id, "language": c.language, "sample": c.sample, "completion": c.completion,
             "finish": c.finish, "score": c.score, "tokens": n, "logp_policy": 0.0, "logp_initial": 0.0}
            for c, n in zip(samples.candidates, samples.lengths)]


def fmt(s: dict) -> str:
    ci = s["ci95"]
    return "n/a" if s["value"] is None else f"{s['value']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{s['value']:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "results" / "bench-online-dpo")
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--first", type=int, default=30, help="OASST source prompts (a third held out)")
    ap.add_argument("--languages", nargs="+", default=["en", "es", "fr"])
    ap.add_argument("--samples", type=int, default=4, help="K samples per training prompt")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--steps", type=int, default=15, help="DPO steps per iteration (batch 4)")
    args = ap.parse_args()
    missing = [p for p in NEEDED.values() if not (REPO / p).is_dir()]
    if missing:
        raise SystemExit(f"bench_online_dpo: missing {', '.join(missing)}: run the training examples first "
                         "(docs/training.md)")
    args.out.mkdir(parents=True, exist_ok=True)
    config, run = write_config(args.out, args), args.out / "online"
    started = time.time()
    print(run_stage(config, run, progress=False), flush=True)
    online_seconds = time.time() - started
    seed = load_config(config).seed
    rows = {"base": measure(config, run, "embedded"), "sft": measure(config, run, f"hf:{REPO / NEEDED['sft']}"),
            "offline dpo": read_jsonl(run / "iter-0" / "eval.jsonl")}
    for n in range(1, args.iterations + 1):
        rows[f"online {n}"] = read_jsonl(run / f"iter-{n}" / "eval.jsonl")
    langs = sorted({r["language"] for r in rows["sft"]})
    table = {}
    print(f"\n| stage | held-out reward [95 % CI] | {' | '.join(langs)} | tokens | KL to offline DPO | "
          "win-rate vs SFT [95 % CI] |")
    print(f"|---|---|{'---|' * len(langs)}---|---|---|")
    for stage, r in rows.items():
        h = metrics.held_out(r, seed)
        win = metrics.win_rate(r, rows["sft"], seed)
        kl = h["kl_to_initial"]["value"] if stage.startswith("online") else None
        table[stage] = {"held_out": h, "win_rate_vs_sft": win}
        print(f"| {stage} | {fmt(h['reward'])} | "
              + " | ".join(f"{h['reward_by_language'][lang]['value']:.3f}" for lang in langs)
              + f" | {h['length_tokens']['value']:.1f} | {'' if kl is None else f'{kl:.2f}'} | "
              + ("—" if stage == "sft" else fmt(win)) + " |")
    m = json.loads((run / "metrics.json").read_text())
    print("\n| iteration | β | pairs kept / prompts | DPO loss first → last | DPO reward accuracy (last) | "
          "sample tokens | seconds: sample / train / held-out |")
    print("|---|---|---|---|---|---|---|")
    for it in m["iterations"]:
        d, w = it["dpo"][str(it["seeds"][0])], it["wall_seconds"]
        print(f"| {it['iteration']} | {it['beta']:g} | {it['pairs']['kept']} / {it['pairs']['prompts']} | "
              f"{d['loss']['first']:.4f} → {d['loss']['last']:.4f} | {d['reward_accuracy']['last']} | "
              f"{it['tokens']['samples']} | {w.get('sample.generate', 0) + w.get('sample.score', 0):.0f} / "
              f"{w.get('train.train', 0):.0f} / {w.get('evaluate.generate', 0) + w.get('evaluate.score', 0):.0f} |")
    print(f"\nonline run {online_seconds:.0f} s (resumed runs count only this process); load average "
          f"{os.getloadavg()[0]:.2f}; {len(rows['sft'])} held-out completions per stage")
    (args.out / "bench.json").write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
