"""Benchmark: held-out pairwise accuracy of the AlpacaEval reward model (chance 50 %).

Reproduces the number ``glotbench train reward`` reports for a trained RM: rebuilds the
held-out pairs from the config recorded in the RM's manifest (same data, seed and split,
so the same instructions), scores both answers of every pair with
``RewardModelScorer`` (served from the request cache when this machine computed them
before, recomputed otherwise) and prints a table beside the stage's own eval.json:
accuracy with its bootstrap 95 % CI over instructions, ties, the accuracy split by who wrote
the chosen answer, the "longer answer wins" reference, training time and tokens/s.

    python bench/bench_reward.py --rm /work/rm-alpacaeval          # evaluate a trained RM
    python bench/bench_reward.py --train --rm /tmp/rm               # train it first (~20 min on 2 CPU cores)
    python bench/bench_reward.py --rm DIR --fresh                   # recompute every score (no cache)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from glotbench.harness.run.cache import RequestCache
from glotbench.training.core.config import REPO_ROOT
from glotbench.training.core.stage import MANIFEST
from glotbench.training.reward.config import load_config
from glotbench.training.reward.evaluate import evaluate_pairs
from glotbench.training.reward.score import RewardModelScorer
from glotbench.training.reward.train import EVAL, run_stage
from glotbench.training.reward.trainer import prepare

RECIPE = REPO_ROOT / "training" / "recipes" / "examples" / "reward-alpacaeval.yaml"


def held_out_from_manifest(rm: Path) -> tuple[list, int]:
    """The RM's held-out pairs, rebuilt from the config its manifest records (paths in it are
    relative to the repository root, as in the shipped example)."""
    man = json.loads((rm / MANIFEST).read_text(encoding="utf-8"))
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        json.dump(man["config"], f)  # JSON is YAML
    conf = Path(f.name)
    try:
        cfg = load_config(conf)
        return prepare(cfg, conf).held_out, cfg.seed
    finally:
        conf.unlink()


def fmt(acc: dict) -> str:
    return f"{acc['accuracy']:.3f} [{acc['ci95'][0]:.3f}, {acc['ci95'][1]:.3f}] n={acc['n_pairs']}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rm", type=Path, default=REPO_ROOT / "results" / "rm-alpacaeval")
    ap.add_argument("--train", action="store_true", help=f"train --rm first from {RECIPE.name}")
    ap.add_argument("--config", type=Path, default=RECIPE)
    ap.add_argument("--fresh", action="store_true", help="score with an empty cache (recompute everything)")
    args = ap.parse_args(argv)
    if args.train:
        print(run_stage(args.config, args.rm, overwrite=True, progress=sys.stderr.isatty()))
    pairs, seed = held_out_from_manifest(args.rm)
    with tempfile.TemporaryDirectory() as tmp:
        cache = RequestCache(Path(tmp) / "fresh.sqlite") if args.fresh else RequestCache()
        scorer = RewardModelScorer(args.rm, cache=cache)
        started = time.time()
        got = evaluate_pairs(scorer, pairs, seed)
        seconds = time.time() - started
        cache.close()
    stage = json.loads((args.rm / EVAL).read_text(encoding="utf-8"))
    train = stage["training"]
    rows = [("held-out accuracy (this benchmark)", fmt(got)),
            ("held-out accuracy (eval.json)", fmt(stage["held_out"])),
            ("instructions / ties / unscored", f"{got['n_instructions']} / {got['ties']} / {got['unscored_pairs']}"),
            *((f"  chosen written by {a}", fmt(v)) for a, v in got["by_chosen_author"].items()),
            ("reference: longer answer wins", fmt(got["reference_longer_wins"])),
            ("training pairs / steps", f"{train['pairs'].get('pairs')} / {train['steps']} "
                                       f"({train['pairs'].get('truncated_pairs', 0)} truncated)"),
            ("training time, tokens/s", f"{train['seconds']:.0f} s, {train['tokens_per_second']}"),
            ("scoring: computed / cached, seconds", f"{scorer.stats['computed']} / {scorer.stats['cached']}, "
                                                    f"{seconds:.1f} s"),
            ("max_length, weights sha256", f"{scorer.max_length}, {scorer.identity['weights_sha256'][:12]}")]
    width = max(len(k) for k, _ in rows)
    print(f"reward model {args.rm} (chance 0.500)")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    same = abs(got["accuracy"] - stage["held_out"]["accuracy"]) < 1e-9
    print("reproduced: yes" if same else "reproduced: NO (scores differ from the stage's)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
