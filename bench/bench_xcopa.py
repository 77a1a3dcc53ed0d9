"""Benchmark: glotbench vs lm-eval 0.4.13 (hf backend) on XCOPA, same model, data, machine, run.

Both tools score the same bundled XCOPA files with the embedded SmolLM2-135M-Instruct in
float32. glotbench runs its full ``run`` path (data, prompts, scoring, store) with an empty
request cache; lm-eval runs ``simple_evaluate`` on the same files through its own XCOPA
configs. Reported: wall time, tokens/s (the tokens both tools must score: context plus
continuation minus one, per request), the ratio, and whether every prediction agrees.

Also counted, from hooks on each tool's model: the positions each tool ran through the
transformer body and through the LM head, turned into the arithmetic of their matrix
products. Their ratio is the speed-up glotbench would have if both tools spent all their time
multiplying, at the same rate. ``floor s`` times glotbench's products alone on this machine
with the model's own weights: about what its run would take if nothing but the matrix
products cost time (an estimate, priced at the median call's shape, not a strict bound).

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
    from glotbench.harness.run.execute import execute, start_backend
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
        backend = start_backend(cfg)
        ours_count = Arithmetic.attach(backend.model)
        path = execute(cfg, units, progress=False, backend=backend)
        ours_s = time.time() - t0
        ours_count.detach()
        floor_s = ours_count.floor_seconds(backend.model)
        backend.release()
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
        from lm_eval.models.huggingface import HFLM

        t0 = time.time()
        lm = HFLM(pretrained=str(model_dir), dtype="float32", batch_size=bs, device="cpu")
        ref_count = Arithmetic.attach(lm.model)
        ref = run_reference(task, model_dir, files, limit=args.limit, batch_size=bs, backend=lm)
        ref_s = time.time() - t0
        ref_count.detach()
        del lm
        diffs = {lang: float(np.abs(np.array(ours[lang]) - np.array(ref.loglikelihoods[lang])).max()) for lang in langs}
        same = all((np.argmax(ours[lang], 1) == np.argmax(ref.loglikelihoods[lang], 1)).all() for lang in langs)
        rows.append({"lmeval_batch_size": bs, "lmeval_s": round(ref_s, 1), "glotbench_s": round(ours_s, 1),
                     "ratio": round(ref_s / ours_s, 2), "lmeval_tok_s": round(n_tokens / ref_s),
                     "glotbench_tok_s": round(n_tokens / ours_s), "predictions_identical": bool(same),
                     "max_abs_ll_diff": diffs,
                     "arithmetic": {"lmeval": ref_count.summary(), "glotbench": ours_count.summary(),
                                    "ratio": round(ref_count.flops() / ours_count.flops(), 3)},
                     "glotbench_floor_s": round(floor_s, 1), "ratio_at_floor": round(ref_s / floor_s, 2)})
    result = {"langs": langs, "limit": args.limit, "requests": n_requests, "tokens": n_tokens,
              "glotbench_batch_size": args.batch_size, "glotbench_requests": run["provenance"]["requests"],
              "host": run["provenance"]["host"], "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"XCOPA, {len(langs)} languages x {args.limit} items = {n_requests} requests, {n_tokens} tokens; "
          f"glotbench batch size {args.batch_size}")
    print("| lm-eval batch | lm-eval s | glotbench s | speed-up | lm-eval tok/s | glotbench tok/s | same predictions "
          "| max abs Δll | arithmetic ratio | glotbench floor s | speed-up at floor |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['lmeval_batch_size']} | {r['lmeval_s']} | {r['glotbench_s']} | {r['ratio']}x | "
              f"{r['lmeval_tok_s']} | {r['glotbench_tok_s']} | {r['predictions_identical']} | "
              f"{max(r['max_abs_ll_diff'].values()):.1e} | {r['arithmetic']['ratio']}x | "
              f"{r['glotbench_floor_s']} | {r['ratio_at_floor']}x |")
    for r in rows:
        a = r["arithmetic"]
        print(f"batch {r['lmeval_batch_size']}: lm-eval {a['lmeval']}; glotbench {a['glotbench']}")
    return 0


class Arithmetic:
    """Positions a causal LM ran through its body (every fed position, padding included) and
    through its LM head, counted by forward hooks; their matrix-product FLOPs (2 x the
    weights a position multiplies; attention's score products, which grow with the
    segments' lengths and are a few per cent here, left out)."""

    def __init__(self, model) -> None:
        import torch

        head = model.get_output_embeddings()
        self.head_weights = head.weight.numel()
        self.body_weights = sum(m.weight.numel() for m in model.modules()
                                if isinstance(m, torch.nn.Linear) and m is not head)
        self.body_positions = self.head_positions = 0
        self.body_calls: list[int] = []  # positions per call
        self.head_calls: list[int] = []
        self.hooks: list = []

    @classmethod
    def attach(cls, model) -> Arithmetic:
        count = cls(model)
        base = getattr(model, model.base_model_prefix)

        def body(_module, args, kwargs):
            ids = kwargs.get("input_ids", args[0] if args else None)
            n = ids.numel() if ids is not None else kwargs["inputs_embeds"].shape[:-1].numel()
            count.body_positions += n
            count.body_calls.append(n)

        def head(_module, args):
            n = args[0].numel() // args[0].shape[-1]
            count.head_positions += n
            count.head_calls.append(n)

        count.hooks = [base.register_forward_pre_hook(body, with_kwargs=True),
                       model.get_output_embeddings().register_forward_pre_hook(head)]
        return count

    def detach(self) -> None:
        for hook in self.hooks:
            hook.remove()

    def flops(self) -> float:
        return 2.0 * (self.body_positions * self.body_weights + self.head_positions * self.head_weights)

    def summary(self) -> dict:
        return {"body_positions": self.body_positions, "head_positions": self.head_positions,
                "gflop": round(self.flops() / 1e9, 1)}

    def floor_seconds(self, model) -> float:
        """These products alone, timed on this machine with the model's own weights in its
        module order (float32, as many positions per product as the median call had, so that
        a backend's few tiny check calls do not shrink the shape; best of 3 after a warm-up)
        and priced per position: about what the run would take if nothing else cost time."""
        import statistics

        import torch

        head = model.get_output_embeddings()
        body = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not head]
        rows = max(1, round(statistics.median(self.body_calls or [1])))
        head_rows = max(1, round(statistics.median(self.head_calls or [1])))

        def best(layers, n: int) -> float:
            inputs = {m.in_features: torch.randn(n, m.in_features) for m in layers}
            times = []
            with torch.inference_mode():
                for _ in range(4):
                    t = time.perf_counter()
                    for m in layers:
                        m(inputs[m.in_features])
                    times.append(time.perf_counter() - t)
            return min(times[1:]) / n

        return best(body, rows) * self.body_positions + best([head], head_rows) * self.head_positions


if __name__ == "__main__":
    sys.exit(main())
