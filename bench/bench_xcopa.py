"""Benchmark: glotbench vs lm-eval 0.4.13 (hf backend) on XCOPA, same model, data, machine, run.

Both tools score the same bundled XCOPA files with the embedded SmolLM2-135M-Instruct in
float32. glotbench runs its full ``run`` path (data, prompts, scoring, store) with an empty
request cache; lm-eval runs ``simple_evaluate`` on the same files through its own XCOPA
configs. Reported: wall time, tokens/s (the tokens both tools must score: context plus
continuation minus one, per request), the ratio, and whether every prediction agrees.

    python bench/bench_xcopa.py                       # 11 languages x 100 items, batch 16
    python bench/bench_xcopa.py --langs et,zh --limit 30 --lmeval-batch-sizes 16,1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--langs", default="all")
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=16, help="glotbench batch size")
    ap.add_argument("--lmeval-batch-sizes", default="16", help="comma-separated; lm-eval's default is 1")
    ap.add_argument("--out", default="bench/out/xcopa.json")
    args = ap.parse_args()

    # Both tools build on torch and transformers: whichever ran first would pay their import
    # (3-5 s here) for both. Imported before either clock starts; each tool still pays its own.
    import numpy as np
    import torch  # noqa: F401
    import transformers.models.llama.modeling_llama  # noqa: F401

    from glotbench.harness.models.embedded import converted_dir
    from glotbench.harness.models.lmeval_ref import run_reference
    from glotbench.harness.run.config import RunConfig
    from glotbench.harness.run.execute import execute
    from glotbench.harness.run.plan import plan
    from glotbench.harness.store.rundir import read_run, read_samples
    from glotbench.harness.taskapi import data
    from glotbench.harness.taskapi.registry import get_task

    task = get_task("xcopa")
    langs = list(task.languages) if args.langs == "all" else args.langs.split(",")
    model_dir = converted_dir()

    with tempfile.TemporaryDirectory() as tmp:
        cfg = RunConfig(tasks=("xcopa",), langs=tuple(langs), limit=args.limit, batch_size=args.batch_size,
                        device="cpu", output=str(Path(tmp) / "run"), cache_path=str(Path(tmp) / "c.sqlite"))
        t0 = time.time()
        units = plan(cfg)
        path = execute(cfg, units, progress=False)
        ours_s = time.time() - t0
        run = read_run(path)
        ours = {lang: [[c["logprob"] for c in r["choices"]] for r in read_samples(path, "xcopa", lang)]
                for lang in langs}

    from glotbench.harness.models.hf import HFBackend

    tok = HFBackend(str(model_dir), device="cpu")
    n_tokens = 0
    for lang in langs:
        for s in data.load(task, lang, "bundled").samples[: args.limit]:
            for p in task.render(s).pairs:
                n_tokens += len(tok.encode_pair(p.context, p.continuation).tokens) - 1
    n_requests = 2 * args.limit * len(langs)
    files = {lang: data.local_file(task, lang, data.BUNDLED_DIR) for lang in langs}

    rows = []
    for bs in (int(x) for x in args.lmeval_batch_sizes.split(",")):
        t0 = time.time()
        ref = run_reference(task, model_dir, files, limit=args.limit, batch_size=bs)
        ref_s = time.time() - t0
        diffs = {lang: float(np.abs(np.array(ours[lang]) - np.array(ref.loglikelihoods[lang])).max()) for lang in langs}
        same = all((np.argmax(ours[lang], 1) == np.argmax(ref.loglikelihoods[lang], 1)).all() for lang in langs)
        rows.append({"lmeval_batch_size": bs, "lmeval_s": round(ref_s, 1), "glotbench_s": round(ours_s, 1),
                     "ratio": round(ref_s / ours_s, 2), "lmeval_tok_s": round(n_tokens / ref_s),
                     "glotbench_tok_s": round(n_tokens / ours_s), "predictions_identical": bool(same),
                     "max_abs_ll_diff": diffs})
    result = {"langs": langs, "limit": args.limit, "requests": n_requests, "tokens": n_tokens,
              "glotbench_batch_size": args.batch_size, "glotbench_requests": run["provenance"]["requests"],
              "host": run["provenance"]["host"], "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"XCOPA, {len(langs)} languages x {args.limit} items = {n_requests} requests, {n_tokens} tokens; "
          f"glotbench batch size {args.batch_size}")
    print("| lm-eval batch | lm-eval s | glotbench s | speed-up | lm-eval tok/s | glotbench tok/s | same predictions | max abs Δll |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['lmeval_batch_size']} | {r['lmeval_s']} | {r['glotbench_s']} | {r['ratio']}x | "
              f"{r['lmeval_tok_s']} | {r['glotbench_tok_s']} | {r['predictions_identical']} | "
              f"{max(r['max_abs_ll_diff'].values()):.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
