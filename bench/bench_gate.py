"""Benchmark: error rates and sample use of the real fixed and sequential regression gates on
simulated paired data with known effects.

Data (one task × language per setting, ``--reps`` replications each):

- ``acc``: accuracy-like pairs. The baseline is right with probability p0; the candidate
  copies the baseline's outcome except on a random 20 % "churn" of examples, where it answers
  independently, right with probability p0 + Δ/0.2. The true effect is Δ and the pairs are
  correlated as real checkpoints are (6–10 % discordant at Δ = 0). Differences in [−1, 1].
- ``chrf``: chrF++-like sentence scores. Baseline 100·Beta(4, 4); 30 % of candidate outputs
  are identical (difference 0), the rest score clip(baseline + δ + N(0, 8²), 0, 100), with δ
  found by bisection on a fixed 10⁶-draw sample so that the mean difference is Δ. Differences
  in [−100, 100]. Stored to 4 decimals.

Effects Δ ∈ {0, −margin (the boundary: P(pass) is the type-I error), −2·margin (clear
regression), +margin/2 (clear improvement)}.

Gates, all at alpha = 0.05 per wrong decision, all glotbench's own code:

- ``fixed``: ``glotbench.harness.gate.fixed.gate`` on two run directories written with the
  store's ``RunWriter`` (run.json + per-example samples, as ``glotbench run`` writes them).
  Each replication is a task of its own with one language, so the gate's Benjamini–Hochberg
  step and pooled test see one cell and the task's verdict is that language's paired
  bootstrap test (1000 resamples, the policy default). Accuracies take the gate's accuracy
  path (McNemar beside it); the chrF-like scores are gated as a per-example mean under
  ``metrics:`` in the policy — the gate's path for xCOMET, not its corpus chrF++ path, which
  needs real hypotheses and references.
- ``seq``: ``glotbench.harness.gate.anytime`` (testing by betting at −margin, anytime-valid, for the
  population mean), random-order batches of 50; ``frac`` is the mean share of the n examples
  evaluated. ``settle`` (vectorised) is checked against ``run_shuffled`` (batch by batch) on
  the first replications of every setting.
- ``seq+fb``: what ``glotbench gate --sequential`` does: a stream that runs out unsettled
  falls back to ``paired_bootstrap_delta`` on all items at alpha/2 (the call
  ``harness/gate/sequential.py`` makes, same seed and resamples).
- ``wor``: the sequential test about the suite's own mean, sampled without replacement
  (``population=n``); ``err`` is the rate of decisions that contradict the realized suite
  mean (its own target), which, unlike its P(pass) at the boundary, should be ≤ alpha.

A second table settles a 10-language suite together, ``--reps`` / 5 replications: the
sequential gate at alpha/10 per stream (Bonferroni, ``anytime.bonferroni`` and ``run_suite``)
and the fixed gate on one run pair holding every replication as a task of 10 languages (its
real Benjamini–Hochberg across languages): P(any wrong decision), P(all correct) and the
share of the suite evaluated.

    python bench/bench_gate.py                 # 500 replications, ~11 CPU-minutes
    python bench/bench_gate.py --quick         # n = 500 settings, 60 replications, ~1 minute
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from glotbench.harness.gate.anytime import (
    SequentialTest,
    bonferroni,
    run_shuffled,
    run_suite,
    settle,
)
from glotbench.harness.gate.fixed import gate
from glotbench.harness.gate.paired_stats import paired_bootstrap_delta
from glotbench.harness.gate.policy import Policy
from glotbench.harness.store.rundir import RunWriter

ROOT = Path(__file__).resolve().parents[1]

ALPHA = 0.05
BATCH = 50
CHECKED = 5
"""Replications per setting also run batch by batch (run_shuffled) to check settle()."""
CHURN = 0.2
CHRF_SAME, CHRF_NOISE = 0.3, 8.0
SUITE_LANGS, SUITE_N, SUITE_MARGIN = 10, 1000, 0.05
METRIC = {"acc": "acc", "chrf": "sentence_chrf"}
"""The per-example field each simulated run stores (and the gate reads)."""
POLICY = Policy(alpha=ALPHA)
"""Seed and resamples of both gates (the policy defaults: 1234, 1000)."""


def acc_pairs(rng: np.random.Generator, reps: int, n: int, p0: float, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """reps × n paired 0/1 outcomes (baseline, candidate) with true mean difference ``delta``."""
    p1 = p0 + delta / CHURN
    if not 0.0 <= p1 <= 1.0:
        raise ValueError(f"p0={p0}, delta={delta} needs churn accuracy {p1} outside [0, 1]")
    base = rng.random((reps, n)) < p0
    churn = rng.random((reps, n)) < CHURN
    cand = np.where(churn, rng.random((reps, n)) < p1, base)
    return base.astype(float), cand.astype(float)


def chrf_draws(rng: np.random.Generator, shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(baseline score, paired noise, identical-output mask) for chrF-like pairs."""
    return 100 * rng.beta(4, 4, size=shape), rng.normal(0, CHRF_NOISE, size=shape), rng.random(shape) < CHRF_SAME


def chrf_candidate(draws: tuple[np.ndarray, np.ndarray, np.ndarray], shift: float) -> np.ndarray:
    base, noise, same = draws
    return np.where(same, base, np.clip(base + shift + noise, 0, 100))


@functools.cache
def chrf_shift(delta: float) -> float:
    """δ such that the mean chrF difference is ``delta`` (bisection on a fixed 10⁶-draw sample)."""
    draws = chrf_draws(np.random.default_rng(12345), 1_000_000)
    lo, hi = delta / (1 - CHRF_SAME) - 10, delta / (1 - CHRF_SAME) + 10
    for _ in range(40):
        mid = (lo + hi) / 2
        if (chrf_candidate(draws, mid) - draws[0]).mean() < delta:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def chrf_pairs(rng: np.random.Generator, reps: int, n: int, delta: float) -> tuple[np.ndarray, np.ndarray]:
    draws = chrf_draws(rng, (reps, n))
    return np.round(draws[0], 4), np.round(chrf_candidate(draws, chrf_shift(delta)), 4)


# ------------------------------------------------------------------ the real fixed gate


def write_runs(root: Path, metric: str, cells: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]) -> tuple[Path, Path]:
    """A baseline and a candidate run directory holding ``cells[task][lang] = (b, c)``."""
    paths = []
    for side, name in ((0, "baseline"), (1, "candidate")):
        writer = RunWriter(root / name)
        results: dict[str, dict] = {}
        prov: dict[str, dict] = {}
        for task, langs in cells.items():
            for lang, pair in langs.items():
                values = pair[side]
                writer.write_samples(task, lang, [{"doc_id": i, metric: float(v)} for i, v in enumerate(values)])
                results.setdefault(task, {})[lang] = {metric: float(values.mean()), "n": len(values)}
                prov.setdefault(task, {"version": "sim-1", "metrics": [metric], "languages": {}})
                prov[task]["languages"][lang] = {"data_source": "simulated", "data_sha256": f"sim:{task}/{lang}",
                                                 "prompt_sha256": "sim", "n_available": len(values)}
        paths.append(writer.finish({
            "format": "glotbench-run/1", "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": {"tasks": list(cells), "model": f"simulated-{name}"}, "results": results, "averages": {},
            "provenance": {"model": {"backend": "simulated", "name": name}, "tasks": prov}}))
    return paths[0], paths[1]


def fixed_gate(metric: str, cells: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]],
               margin: float) -> dict[str, dict[str, str]]:
    """``gate()`` on runs of ``cells``: the verdict of every task × language."""
    root = Path(tempfile.mkdtemp(prefix="bench-gate-"))
    try:
        baseline, candidate = write_runs(root, metric, cells)
        policy = Policy(alpha=ALPHA, margins=dict.fromkeys(cells, margin), metrics=dict.fromkeys(cells, (metric,)),
                        require_all=True, seed=POLICY.seed, resamples=POLICY.resamples, source="bench_gate.py")
        result = gate(baseline, candidate, policy)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {task: {lang: cell["verdict"] for lang, cell in t["metrics"][metric]["languages"].items()}
            for task, t in result["tasks"].items()}


# ------------------------------------------------------------------------- one setting


def settings(quick: bool) -> list[dict]:
    out = []
    for p0 in (0.5, 0.8):
        for n in (500, 2000):
            for margin in (0.02, 0.05):
                for k, delta in (("0", 0.0), ("-m", -margin), ("-2m", -2 * margin), ("+m/2", margin / 2)):
                    out.append(dict(metric="acc", p0=p0, n=n, margin=margin, effect=k, delta=delta))
    for n in (500, 2000):
        for margin in (1.0, 2.0):
            for k, delta in (("0", 0.0), ("-m", -margin), ("-2m", -2 * margin), ("+m/2", margin / 2)):
                out.append(dict(metric="chrf", p0=None, n=n, margin=margin, effect=k, delta=delta))
    return [s for s in out if s["n"] == 500] if quick else out


def simulate(setting: dict, reps: int, seed: int) -> dict:
    """Every gate on ``reps`` replications of one setting."""
    rng = np.random.default_rng(seed)
    n, margin, delta = setting["n"], setting["margin"], setting["delta"]
    if setting["metric"] == "acc":
        (base, cand), bounds = acc_pairs(rng, reps, n, setting["p0"], delta), (-1.0, 1.0)
    else:
        (base, cand), bounds = chrf_pairs(rng, reps, n, delta), (-100.0, 100.0)
    data = cand - base
    tasks = [f"rep{r:04d}" for r in range(reps)]
    fixed = fixed_gate(METRIC[setting["metric"]], {t: {"xx": (base[r], cand[r])} for r, t in enumerate(tasks)},
                       margin)
    seq = SequentialTest(margin=margin, alpha=ALPHA, bounds=bounds)
    wor = SequentialTest(margin=margin, alpha=ALPHA, bounds=bounds, population=n)
    counts = {g: {"pass": 0, "regression": 0, "inconclusive": 0} for g in ("fixed", "seq", "seq_fb", "wor")}
    used = {"seq": 0, "wor": 0}
    wor_wrong = 0
    for r, task in enumerate(tasks):
        d = data[r]
        counts["fixed"][fixed[task]["xx"]] += 1
        order = np.random.default_rng(seed * 100_003 + r).permutation(n)
        run, wrun = settle(seq, d[order], BATCH), settle(wor, d[order], BATCH)
        if r < CHECKED:  # the vectorised settle() is what the batch-by-batch runner reaches
            for test, got in ((seq, run), (wor, wrun)):
                ref = run_shuffled(test, d, BATCH, seed=seed * 100_003 + r)
                if (ref.verdict, ref.n_used) != (got.verdict, got.n_used):
                    raise RuntimeError(f"settle {got} != run_shuffled {ref.verdict, ref.n_used} in {setting}")
        counts["seq"][run.verdict] += 1
        counts["seq_fb"][fallback(base[r], cand[r], margin) if run.exhausted else run.verdict] += 1
        used["seq"] += run.n_used
        counts["wor"][wrun.verdict] += 1
        used["wor"] += wrun.n_used
        suite_mean = float(d.mean())
        wor_wrong += (wrun.verdict == "pass" and suite_mean <= -margin) or (
            wrun.verdict == "regression" and suite_mean >= -margin)
    rates = {g: {k: v / reps for k, v in c.items()} for g, c in counts.items()}
    return {**setting, "reps": reps, "rates": rates, "frac": {g: u / (reps * n) for g, u in used.items()},
            "wor_err_vs_suite": wor_wrong / reps}


def fallback(base: np.ndarray, cand: np.ndarray, margin: float) -> str:
    """The sequential gate's verdict for a stream that ran out unsettled (its fixed fallback)."""
    t = paired_bootstrap_delta(base, cand, margin, alpha=ALPHA / 2, seed=POLICY.seed, resamples=POLICY.resamples)
    return "regression" if t.p_regression < ALPHA / 2 else "pass" if t.p_noninferior < ALPHA / 2 else "inconclusive"


# ------------------------------------------------------------------- a 10-language suite

SUITES = {
    "all +m/2": [SUITE_MARGIN / 2] * SUITE_LANGS,
    "all 0": [0.0] * SUITE_LANGS,
    "9 × 0, 1 × -2m": [0.0] * (SUITE_LANGS - 1) + [-2 * SUITE_MARGIN],
    "all -m (boundary)": [-SUITE_MARGIN] * SUITE_LANGS,
}


def _wrong(verdict: str, delta: float, margin: float) -> bool:
    return (verdict == "pass" and delta <= -margin) or (verdict == "regression" and delta >= -margin)


def _right(verdict: str, delta: float, margin: float) -> bool:
    return verdict == ("pass" if delta > -margin else "regression" if delta < -margin else "inconclusive")


def simulate_suite(name: str, reps: int, seed: int) -> dict:
    """A 10-language suite (p0 = 0.8, n = 1000 each) settled together."""
    deltas, margin = SUITES[name], SUITE_MARGIN
    keys = [f"lang{i}" for i in range(len(deltas))]
    tests = bonferroni(SequentialTest(margin=margin, alpha=ALPHA), keys)
    rng = np.random.default_rng(seed)
    pairs = [{k: tuple(x[0] for x in acc_pairs(rng, 1, SUITE_N, 0.8, dl)) for k, dl in zip(keys, deltas)}
             for _ in range(reps)]
    tasks = [f"rep{r:04d}" for r in range(reps)]
    fixed = fixed_gate("acc", dict(zip(tasks, pairs)), margin)
    stats = {g: {"any_wrong": 0, "all_right": 0} for g in ("fixed_bh", "seq")}
    used = 0
    for r, task in enumerate(tasks):
        suite = run_suite(tests, {k: c - b for k, (b, c) in pairs[r].items()}, BATCH, seed=seed * 100_003 + r)
        used += suite.n_used
        for g, verdicts in (("fixed_bh", [fixed[task][k] for k in keys]), ("seq", [suite.runs[k].verdict for k in keys])):
            stats[g]["any_wrong"] += any(_wrong(v, dl, margin) for v, dl in zip(verdicts, deltas))
            stats[g]["all_right"] += all(_right(v, dl, margin) for v, dl in zip(verdicts, deltas))
    return {"suite": name, "languages": len(deltas), "n_per_language": SUITE_N, "margin": margin,
            "reps": reps, **{f"{g}_{k}": v / reps for g, s in stats.items() for k, v in s.items()},
            "seq_frac": used / (reps * SUITE_N * len(deltas))}


# --------------------------------------------------------------------------- reporting


def _triple(r: dict) -> str:
    return f"{r['pass']:.3f} / {r['regression']:.3f} / {r['inconclusive']:.3f}"


def table(rows: list[dict]) -> str:
    head = ("| metric | p0 | n | margin | Δ | fixed pass / regr / inc | seq pass / regr / inc | seq frac "
            "| seq+fb pass / regr / inc | wor pass / regr / inc | wor frac | wor err |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        rt = r["rates"]
        lines.append(f"| {r['metric']} | {r['p0'] if r['p0'] is not None else '-'} | {r['n']} | {r['margin']:g} "
                     f"| {r['effect']} ({r['delta']:+g}) | {_triple(rt['fixed'])} | {_triple(rt['seq'])} "
                     f"| {r['frac']['seq']:.3f} | {_triple(rt['seq_fb'])} | {_triple(rt['wor'])} "
                     f"| {r['frac']['wor']:.3f} | {r['wor_err_vs_suite']:.3f} |")
    return "\n".join(lines)


def suite_table(rows: list[dict]) -> str:
    lines = ["| suite (10 langs × 1000, margin 0.05) | fixed+BH any wrong | fixed+BH all right "
             "| seq any wrong | seq all right | seq frac |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['suite']} | {r['fixed_bh_any_wrong']:.3f} | {r['fixed_bh_all_right']:.3f} "
                     f"| {r['seq_any_wrong']:.3f} | {r['seq_all_right']:.3f} | {r['seq_frac']:.3f} |")
    return "\n".join(lines)


def summary(rows: list[dict]) -> dict:
    """Type-I errors (mean and worst over the boundary settings: the worst of 12 noisy rates
    is biased upwards), and the sequential gate's sample use where the fixed gate is right in
    ≥ 99 % of replications (the clear cases)."""
    boundary = [r for r in rows if r["effect"] == "-m"]
    clear = [r for r in rows if r["delta"] != -r["margin"]
             and r["rates"]["fixed"]["pass" if r["delta"] > -r["margin"] else "regression"] >= 0.99]
    return {
        **{f"mean_type1_{g}": float(np.mean([r["rates"][g]["pass"] for r in boundary])) for g in ("fixed", "seq", "seq_fb")},
        "max_type1_fixed": max(r["rates"]["fixed"]["pass"] for r in boundary),
        "max_type1_seq": max(r["rates"]["seq"]["pass"] for r in boundary),
        "max_type1_seq_fb": max(r["rates"]["seq_fb"]["pass"] for r in boundary),
        "max_wrong_regression_fixed": max(r["rates"]["fixed"]["regression"] for r in boundary),
        "max_wrong_regression_seq_fb": max(r["rates"]["seq_fb"]["regression"] for r in boundary),
        "max_wor_err_vs_suite": max(r["wor_err_vs_suite"] for r in rows),
        "clear_settings": len(clear),
        "clear_seq_right": min((r["rates"]["seq"]["pass" if r["delta"] > -r["margin"] else "regression"]
                                for r in clear), default=None),
        "clear_seq_frac_mean": float(np.mean([r["frac"]["seq"] for r in clear])) if clear else None,
        "clear_seq_frac_le_0.2": sum(r["frac"]["seq"] <= 0.2 for r in clear),
        "clear_seq_frac_le_0.2_n2000": sum(r["frac"]["seq"] <= 0.2 for r in clear if r["n"] == 2000),
        "clear_settings_n2000": sum(r["n"] == 2000 for r in clear),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--reps", type=int, default=None, help="replications per setting (default 500; 60 with --quick)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "gate.json")
    ap.add_argument("--quick", action="store_true", help="n = 500 settings only, 60 replications")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    reps = args.reps or (60 if args.quick else 500)
    if reps < 1:
        ap.error(f"--reps must be >= 1, got {reps}")
    t0 = time.perf_counter()
    rows = []
    for i, s in enumerate(settings(args.quick)):
        rows.append(simulate(s, reps, seed=args.seed * 1000 + i))
        print(f"  {i + 1} settings, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    suites = [simulate_suite(name, max(1, reps // 5), seed=args.seed * 1000 + 900 + i)
              for i, name in enumerate(SUITES)]
    wall = time.perf_counter() - t0
    summ = summary(rows)
    print(f"alpha = {ALPHA} per wrong decision, batches of {BATCH}, {reps} replications per setting, "
          f"fixed gate: glotbench.harness.gate.fixed.gate ({POLICY.resamples} resamples)\n")
    print(table(rows))
    print()
    print(suite_table(suites))
    print()
    print("\n".join(f"- {k}: {v:.3f}" if isinstance(v, float) else f"- {k}: {v}" for k, v in summ.items()))
    print(f"wall time: {wall:.1f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"alpha": ALPHA, "batch": BATCH, "reps": reps, "seed": args.seed,
                                    "resamples": POLICY.resamples, "settings": rows, "suites": suites,
                                    "summary": summ, "wall_s": round(wall, 2)}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
