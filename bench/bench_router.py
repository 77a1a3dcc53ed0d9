"""Benchmark: reward routing over a teacher pool and the learned router's reward kept vs
compute saved, on real completions.

Two sources of scored candidates:

- ``--alpaca-eval DIR`` (default ``../shared/data/alpaca_eval_2/annotations``): the 805
  AlpacaEval instructions answered by 6 real models. The score of a candidate is the GPT-4
  judge's published preference against the common baseline gpt4_1106_preview, minus 1
  (P(candidate beats the baseline); the baseline itself scores 0.5, a draw with itself). All
  candidates of a prompt are compared with the same baseline answer, so the scores rank them
  per prompt: an offline stand-in for a reward model. Prompt ids are ``alpaca-<row index>``
  (rows are checked to hold the same instruction in every file).
- ``--candidates FILE``: an arbitrage ``candidates.jsonl`` (prompt_id, language, teacher,
  sample, completion, score, finish), with its prompts from ``--config`` (the arbitrage
  config's ``prompts:`` block) or ``--prompts`` (a prompt jsonl file).

Prints the reward-routing table over all prompts (wins, mean score with 95 % CI per teacher),
then fits the learned router on a seeded share of the prompts (``--fit``) and evaluates it on
the rest, ``--repeats`` times with different splits: mean score of the router's pick, of the
per-language prior alone, of the best single teacher, of a random teacher and of the oracle
argmax; the share of the oracle's gain over random the router keeps; generations saved.

    python bench/bench_router.py [--alpaca-eval DIR | --candidates FILE (--config YAML | --prompts FILE)]
                                 [--fit 0.5] [--seed 0] [--repeats 5] [--first N] [--figure PATH] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from glotbench.harness.core.records import ChatMessage
from glotbench.training.arbitrage.figure import write_routing_figure
from glotbench.training.arbitrage.router import evaluate_router, fit_router
from glotbench.training.arbitrage.routing import choose, routing_stats
from glotbench.training.core.config import load_yaml
from glotbench.training.core.records import Candidate, Prompt
from glotbench.training.data.prompts import load_prompts

REPO = Path(__file__).resolve().parent.parent
ALPACA = REPO.parent / "shared" / "data" / "alpaca_eval_2" / "annotations"
BASELINE = "gpt4_1106_preview"


def alpaca_eval(folder: Path, first: int | None) -> tuple[dict[str, Prompt], list[Candidate]]:
    """Prompts and candidates (score = preference − 1) of the AlpacaEval annotation files."""
    files = sorted(folder.glob("*.json"))
    rows = {f.stem: json.loads(f.read_text(encoding="utf-8")) for f in files if f.stem != BASELINE}
    if not rows:
        sys.exit(f"bench_router: no annotation file in {folder}")
    ref = next(iter(rows.values()))
    n = min(len(ref), first or len(ref))
    prompts = {f"alpaca-{i}": Prompt(f"alpaca-{i}", "en", (ChatMessage("user", ref[i]["instruction"]),),
                                     f"{folder}#{i}") for i in range(n)}
    cands = []
    for i in range(n):
        pid = f"alpaca-{i}"
        for model, data in rows.items():
            row = data[i]
            if row["instruction"] != ref[i]["instruction"] or row["generator_2"] != model:
                sys.exit(f"bench_router: {model}.json row {i} is not aligned with the other files")
            if model == next(iter(rows)):
                cands.append(Candidate(pid, "en", BASELINE, 0, row["output_1"], None, 0.5))
            pref = row.get("preference")
            score = float(pref) - 1 if pref not in (None, "") and math.isfinite(float(pref)) else None
            cands.append(Candidate(pid, "en", model, 0, row["output_2"], None, score))
    return prompts, cands


def candidates_file(path: Path) -> list[Candidate]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            out.append(Candidate(r["prompt_id"], r["language"], r["teacher"], int(r["sample"]), r["completion"],
                                 r.get("finish"), r.get("score")))
    return out


def fmt(summary: dict) -> str:
    if summary.get("value") is None:
        return "–"
    ci = summary.get("ci95")
    return f"{summary['value']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{summary['value']:.3f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alpaca-eval", type=Path, default=ALPACA)
    ap.add_argument("--candidates", type=Path)
    ap.add_argument("--config", type=Path, help="arbitrage config whose prompts: block names the prompts")
    ap.add_argument("--prompts", type=Path, help="prompt jsonl file (prompt_id, language, prompt|messages)")
    ap.add_argument("--first", type=int, help="AlpacaEval: first N instructions only")
    ap.add_argument("--fit", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--figure", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    started = time.time()
    if args.candidates:
        cands = candidates_file(args.candidates)
        if args.config:
            block = load_yaml(args.config, "arbitrage config")["prompts"]
            prompts = load_prompts(block, args.config).by_id()
        elif args.prompts:
            prompts = load_prompts({"file": str(args.prompts), "allow_eval_overlap": True}).by_id()
        else:
            sys.exit("bench_router: --candidates needs --config or --prompts")
        source = str(args.candidates)
    else:
        prompts, cands = alpaca_eval(args.alpaca_eval, args.first)
        source = f"{args.alpaca_eval} (score = AlpacaEval GPT-4 preference vs {BASELINE} − 1)"
    cands = [c for c in cands if c.prompt_id in prompts]
    stats = routing_stats(cands, choose(cands, "reward"), seed=args.seed)
    print(f"source: {source}\nprompts: {len(prompts)}, candidates: {len(cands)}, "
          f"unscored: {stats['totals']['unscored']}, unrouted: {stats['totals']['unrouted']}\n")
    print("Reward routing (argmax over all teachers), all prompts")
    print(f"{'teacher':34} {'wins':>5} {'share':>6}  mean score [95% CI]")
    for t, cell in sorted(stats["per_teacher"].items(), key=lambda kv: -kv[1]["wins"]):
        print(f"{t:34} {cell['wins']:5d} {cell['win_share'] or 0:6.1%}  {fmt(cell['score'])}")
    if args.figure:
        print("figure:", ", ".join(str(p) for p in write_routing_figure(stats, args.figure)))

    reports = []
    ids = sorted(prompts)
    for r in range(args.repeats):
        order = np.random.default_rng(args.seed + r).permutation(len(ids))
        cut = int(round(args.fit * len(ids)))
        fit_ids, held_ids = {ids[i] for i in order[:cut]}, {ids[i] for i in order[cut:]}
        router = fit_router({p: prompts[p] for p in ids if p in fit_ids},
                            [c for c in cands if c.prompt_id in fit_ids], seed=args.seed + r)
        report = evaluate_router(router, {p: prompts[p] for p in ids if p in held_ids},
                                 [c for c in cands if c.prompt_id in held_ids], seed=args.seed + r)
        report["ridge"], report["n_fit"] = router.ridge, router.n_fit
        reports.append(report)
    first = reports[0]
    print(f"\nLearned router: fit {first['n_fit']} prompts, held-out {first['prompts']} "
          f"(skipped {first['skipped']}), split seed {args.seed}, ridge {first['ridge']}")
    print(f"{'policy':12} {'mean score [95% CI]':28} {'oracle gain kept [95% CI]':28}")
    for k in ("router", "prior", "best_single", "random", "oracle"):
        gain = first["oracle_gain_kept"].get(k) or {"value": {"random": 0.0, "oracle": 1.0}[k], "ci95": None}
        print(f"{k:12} {fmt(first['mean'][k]):28} {fmt(gain):28}")
    c = first["compute"]
    print(f"router − oracle: {fmt(first['vs_oracle'])}; router − best single: {fmt(first['vs_best_single'])}; "
          f"agreement with oracle: {first['agreement_with_oracle']:.1%}")
    print(f"compute saved: generations {c['generations_saved']:.1%} "
          f"({c['generations_router']} of {c['generations_all_teachers']}), completion characters "
          f"{c['completion_chars_saved']:.1%}")
    if args.repeats > 1:
        kept = [r["oracle_gain_kept"]["router"]["value"] for r in reports]
        prior = [r["oracle_gain_kept"]["prior"]["value"] for r in reports]
        print(f"\nover {args.repeats} splits: oracle gain kept by the router {np.mean(kept):.3f} "
              f"(min {min(kept):.3f}, max {max(kept):.3f}); by the prior alone {np.mean(prior):.3f}; "
              f"ridges chosen {[r['ridge'] for r in reports]}")
    print(f"\n{time.time() - started:.1f} s")
    if args.json:
        args.json.write_text(json.dumps({"source": source, "routing": stats, "router": reports}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
