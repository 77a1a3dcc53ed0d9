"""The sequential gate on real runs: what fraction of the suite it needs to decide.

Baseline: the embedded model (SmolLM2-135M-Instruct) on XWinograd (all 6 languages, 3,961
items) — a task where it is above chance on English. Candidates, each gated with
``glotbench gate --sequential`` (batches of 50 per stream, Bonferroni over the 6 streams):

- ``same``: the embedded model itself (a clear pass: every difference is 0);
- ``noisy``: the same weights with Gaussian noise added to every linear layer (std =
  ``--noise`` × that layer's own std): a real, degraded checkpoint (a clear regression where
  the baseline is above chance).

Reported per candidate: verdict, items evaluated / suite size, per-stream decisions, wall
time; for the noisy model also the fixed gate on the full suite (``--full``) as the reference
decision. Margin: 0.05 (5 accuracy points) for every stream. Requests are cached, so a re-run
costs little. Usage: ``python bench/bench_seqgate.py [--noise 0.5] [--full]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from glotbench.harness.cli.main import main  # noqa: E402


def noisy_model(out: Path, noise: float, seed: int = 0) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from glotbench.harness.models import embedded

    src = embedded.converted_dir()
    if (out / "config.json").is_file():
        return out
    model = AutoModelForCausalLM.from_pretrained(src, torch_dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                w = module.weight
                w.add_(torch.randn(w.shape, generator=gen) * w.std() * noise)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    return out


def run(argv: list[str]) -> tuple[int, float]:
    t0 = time.time()
    code = main(argv)
    return code, time.time() - t0


def main_bench() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="bench/out/seqgate")
    ap.add_argument("--noise", type=float, default=0.5)
    ap.add_argument("--full", action="store_true", help="also the noisy model's full run and the fixed gate")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    base = work / "baseline"
    if not (base / "run.json").is_file():
        code, secs = run(["run", "--tasks", "xwinograd", "--output", str(base), "--no-progress"])
        print(f"baseline run: exit {code}, {secs:.0f} s")
    policy = work / "policy.yaml"
    policy.write_text(json.dumps({"margins": {"xwinograd": 0.05}}))
    noisy = noisy_model(work / f"noisy-{args.noise}", args.noise)
    rows = []
    for name, model in (("same", "embedded"), (f"noisy {args.noise}", f"hf:{noisy}")):
        out = work / f"seq-{name.replace(' ', '-')}.json"
        code, secs = run(["gate", "--baseline", str(base), "--sequential", "--model", model, "--policy", str(policy),
                          "--json", str(out), "--no-progress"])
        r = json.loads(out.read_text())
        for note in r.get("notes", []):  # a baseline made elsewhere: its figures move a little
            print(f"{name}: note: {note}")
        rows.append((name, r["verdict"], r["n_used"], r["n_total"], r["fraction_used"], secs,
                     {k: f"{v['verdict']}{' (fallback)' if v['fallback'] else ''} {v['n_used']}/{v['n_total']}"
                      for k, v in r["streams"].items()}))
    if args.full:
        cand = work / f"noisy-run-{args.noise}"
        if not (cand / "run.json").is_file():
            run(["run", "--tasks", "xwinograd", "--model", f"hf:{noisy}", "--output", str(cand), "--no-progress"])
        out = work / "fixed-noisy.json"
        code, secs = run(["gate", "--baseline", str(base), "--candidate", str(cand), "--policy", str(policy),
                          "--json", str(out)])
        fixed = json.loads(out.read_text())
        print(f"fixed gate on the full suite, noisy model: {fixed['verdict']} (exit {code})")
    print("| candidate | verdict | items used | fraction | wall s | streams |")
    print("|---|---|---|---|---|---|")
    for name, verdict, used, total, frac, secs, streams in rows:
        print(f"| {name} | {verdict} | {used}/{total} | {100 * frac:.1f} % | {secs:.0f} | "
              + "; ".join(f"{k}: {v}" for k, v in streams.items()) + " |")


if __name__ == "__main__":
    main_bench()
