"""The tiny recipe, end to end on this machine: training/recipes/tiny-cpu.yaml timed from a
fresh request cache, then a rerun (no work), then the DPO stage's beta edited (exactly DPO,
the merge after it, online DPO and their evaluations rerun).

Reports per stage: training seconds, evaluation seconds (eval run, judging, gate), the
Figure-3 point (win-rate against the fixed opponent with its 95 % CI), the XCOPA macro and the
gate verdict; the rerun's wall time; which stages the edit reran and how long it took. The
numbers are of a 135M model trained for a few steps, judged by a 135M reward model on 16
prompts: the point is that the pipeline measures itself, not the size of any gain.

    python bench/bench_recipe.py [--out results/bench-recipe] [--keep-cache]

Needs results/rm-alpacaeval and results/arenahard-smollm2-16 (the commands are in the
recipe's header). Writes OUT/bench.json and prints a markdown table (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "training" / "recipes" / "tiny-cpu.yaml"


def recipe_run(recipe: Path, out: Path, env: dict, label: str) -> float:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "glotbench.harness.cli", "recipe", "run", str(recipe), "-o",
                           str(out), "--no-progress"], cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    (out.parent / f"{out.name}.{label}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"recipe run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return round(seconds, 1)


def record(out: Path) -> dict:
    return json.loads((out / "recipe.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "results" / "bench-recipe")
    ap.add_argument("--keep-cache", action="store_true",
                    help="use the user's request cache (default: a fresh one in OUT's parent: cold timings)")
    args = ap.parse_args()
    for need in ("results/rm-alpacaeval", "results/arenahard-smollm2-16"):
        if not (REPO / need).is_dir():
            sys.exit(f"{need} is missing: make it with the command in {RECIPE.relative_to(REPO)}'s header")
    out = args.out.resolve()
    if out.exists():
        shutil.rmtree(out)
    env = dict(os.environ)
    if not args.keep_cache:
        cache = out.parent / f"{out.name}-cache.sqlite"
        cache.unlink(missing_ok=True)
        env["GLOTBENCH_REQUEST_CACHE"] = str(cache)

    first = recipe_run(RECIPE, out, env, "first")
    rss_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2
    rec = record(out)
    rerun = recipe_run(RECIPE, out, env, "rerun")
    same = {n: s["output"] for n, s in record(out)["stages"].items()} == {n: s["output"] for n, s in rec["stages"].items()}

    edited = yaml.safe_load(RECIPE.read_text())
    edited["stages"]["dpo"]["config"]["beta"] = 0.2
    edited_path = out.parent / f"{out.name}-beta.yaml"
    edited_path.write_text(yaml.safe_dump(edited, sort_keys=False))
    edit = recipe_run(edited_path, out, env, "beta-edit")
    after = record(out)
    reran = [n for n in after["order"] if after["stages"][n]["output"] != rec["stages"][n]["output"]]
    evals_redone = [n for n in after["order"] if (after["stages"][n].get("eval") or {}).get("run_sha256")
                    != (rec["stages"][n].get("eval") or {}).get("run_sha256")]

    fig = {p["stage"]: p for p in json.loads((out / "figure3.json").read_text())["points"]}
    rows = []
    for name in rec["order"]:
        s = rec["stages"][name]
        ev = s.get("eval") or {}
        point = fig.get(name)
        rows.append({"stage": name, "kind": s["kind"], "seconds": s["seconds"],
                     "eval_seconds": ev.get("seconds") or {},
                     "win_rate": point and point.get("win_rate_ties_half"),  # ties as ½, as the status line
                     "ci": point and point.get("win_rate_ties_half_ci95"), "n": point and point.get("n"),
                     "xcopa": point and point["suite"].get("xcopa", {}).get("value"),
                     "gate": (ev.get("gate") or {}).get("verdict"),
                     "baseline": (ev.get("gate") or {}).get("baseline")})
    result = {"recipe": str(RECIPE.relative_to(REPO)), "cold_cache": not args.keep_cache, "first_run_s": first,
              "peak_rss_gb": round(rss_gb, 1), "rerun_s": rerun, "rerun_did_no_work": same,
              "beta_edit_s": edit, "beta_edit_reran": reran, "beta_edit_evals_redone": evals_redone,
              "stages": rows, "figure3_after_edit": json.loads((out / "figure3.json").read_text())["points"]}
    (out / "bench.json").write_text(json.dumps(result, indent=1))

    print(f"tiny-cpu.yaml, {'fresh' if not args.keep_cache else 'warm'} request cache: {first:.0f} s wall "
          f"({first / 60:.1f} min), peak RSS {rss_gb:.1f} GB; rerun {rerun:.1f} s (no work: {same}); "
          f"DPO beta 0.1 → 0.2: {edit:.0f} s, reran {', '.join(reran)} (evals: {', '.join(evals_redone)})\n")
    print("| stage | kind | train s | eval s (run + judge + gate) | win-rate vs opponent [95% CI] (n) "
          "| XCOPA it/sw | gate (baseline) |")
    print("|---|---|---:|---:|---|---:|---|")
    for r in rows:
        ev = r["eval_seconds"]
        evs = f"{sum(ev.values()):.0f} ({' + '.join(f'{v:.0f}' for v in ev.values())})" if ev else ""
        wr = (f"{100 * r['win_rate']:.1f} % [{100 * r['ci'][0]:.1f}, {100 * r['ci'][1]:.1f}] ({r['n']})"
              if r["win_rate"] is not None else "")  # ties as ½
        xc = f"{r['xcopa']:.3f}" if r["xcopa"] is not None else ""
        gate = f"{r['gate']} ({r['baseline']})" if r["baseline"] else (r["gate"] or "")
        print(f"| {r['stage']} | {r['kind']} | {r['seconds']:.0f} | {evs} | {wr} | {xc} | {gate} |")


if __name__ == "__main__":
    main()
