"""Benchmark: glotbench vs lm-eval 0.4.13 (hf backend) on MGSM generation, same model, data,
settings, machine and run.

MGSM native chain-of-thought, 5-shot, plain text (``--chat off``, as lm-eval without
``--apply_chat_template``), greedy, the embedded SmolLM2-135M-Instruct in float32, both tools
at the same batch size. glotbench runs its full ``run`` path with an empty request cache (the
fast generation path: each language's few-shot block computed once, finished rows dropped);
lm-eval runs ``simple_evaluate`` on the same files through its own MGSM configs. Reported:
wall time of each (model load included), the ratio, and whether every generated text is
identical.

    python bench/bench_mgsm_generation.py                     # en,es,de,fr x 16 problems, 96 tokens
    python bench/bench_mgsm_generation.py --langs en --limit 4 --max-new-tokens 32
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


def hub_layout(task, lang: str, n: int, out: Path) -> tuple[Path, Path]:
    """The bundled MGSM rows as the hub lays them out (test: answer null; train: exemplars)."""
    from glotbench.harness.taskapi import data

    loaded = data.load(task, lang, "bundled")
    test, train = out / f"{lang}-test.jsonl", out / f"{lang}-train.jsonl"
    test.write_text("".join(json.dumps({"question": s.fields["question"], "answer": None,
                                        "answer_number": int(s.fields["answer_number"].replace(",", "")),
                                        "equation_solution": None}, ensure_ascii=False) + "\n"
                            for s in loaded.samples[:n]), encoding="utf-8")
    train.write_text("".join(json.dumps({"question": s.fields["question"], "answer": s.fields["answer"],
                                         "answer_number": 0, "equation_solution": None}, ensure_ascii=False) + "\n"
                             for s in loaded.fewshot), encoding="utf-8")
    return test, train


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--langs", default="en,es,de,fr")
    ap.add_argument("--limit", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=16, help="both tools")
    ap.add_argument("--out", default="bench/out/mgsm_generation.json")
    args = ap.parse_args()

    # Both tools build on torch and transformers: whichever ran first would pay their import
    # (3-5 s here) for both. Imported before either clock starts; each tool still pays its own.
    import torch  # noqa: F401
    import transformers.models.llama.modeling_llama  # noqa: F401

    from glotbench.harness.models.embedded import converted_dir
    from glotbench.harness.models.hf import HFBackend
    from glotbench.harness.models.lmeval_ref import run_reference
    from glotbench.harness.run.config import RunConfig
    from glotbench.harness.run.execute import execute
    from glotbench.harness.run.plan import plan
    from glotbench.harness.store.rundir import read_run, read_samples
    from glotbench.harness.taskapi.registry import get_task

    task = get_task("mgsm")
    langs = args.langs.split(",")
    model_dir = converted_dir()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = RunConfig(tasks=("mgsm",), langs=tuple(langs), limit=args.limit, data="bundled", chat="off",
                        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, device="cpu",
                        output=str(Path(tmp) / "run"), cache_path=str(Path(tmp) / "c.sqlite"))
        t0 = time.time()
        path = execute(cfg, plan(cfg), progress=False)
        ours_s = time.time() - t0
        run = read_run(path)
        ours = {lang: [r["response"] for r in read_samples(path, "mgsm", lang)] for lang in langs}
        load1 = os.getloadavg()[0]

        files, pools = {}, {}
        for lang in langs:
            files[lang], pools[lang] = hub_layout(task, lang, args.limit, Path(tmp))
        t0 = time.time()
        ref = run_reference(task, model_dir, files, batch_size=args.batch_size, fewshot_files=pools,
                            max_gen_toks=args.max_new_tokens)
        ref_s = time.time() - t0
        load2 = os.getloadavg()[0]

    tok = HFBackend(str(model_dir), device="cpu").encoder
    lengths = []
    for lang in langs:
        from glotbench.harness.taskapi import data

        loaded = data.load(task, lang, "bundled")
        lengths += [len(tok.encode(task.prompt(s, loaded.fewshot).plain())) for s in loaded.samples[:args.limit]]
    same = sum(a == b for lang in langs for a, b in zip(ours[lang], ref.responses[lang]))
    n = sum(len(ours[lang]) for lang in langs)
    result = {"langs": langs, "limit": args.limit, "max_new_tokens": args.max_new_tokens,
              "batch_size": args.batch_size, "prompt_tokens": [min(lengths), max(lengths), sum(lengths)],
              "glotbench_s": round(ours_s, 1), "lmeval_s": round(ref_s, 1), "ratio": round(ref_s / ours_s, 2),
              "identical_texts": same, "requests": n, "load_avg_1min": [load0, load1, load2],
              "host": run["provenance"]["host"]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"MGSM native CoT 5-shot, plain text, greedy: {len(langs)} languages ({args.langs}) x {args.limit} "
          f"problems, {args.max_new_tokens} new tokens, batch size {args.batch_size}; prompts "
          f"{min(lengths)}-{max(lengths)} tokens; 1-min load average {load0:.1f} / {load1:.1f} / {load2:.1f}")
    print("| lm-eval s | glotbench s | speed-up | identical texts |")
    print("|---|---|---|---|")
    print(f"| {result['lmeval_s']} | {result['glotbench_s']} | {result['ratio']}x | {same}/{n} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
