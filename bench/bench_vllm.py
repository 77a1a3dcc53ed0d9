"""Benchmark (GPU): glotbench's vLLM backend against raw vLLM on the same prompts, and against
lm-eval 0.4.13's vllm backend, same model, data, settings, machine and run.

MGSM native chain-of-thought, 5-shot, plain text, greedy. One ``vllm.LLM`` is loaded through
glotbench's backend (in process, as on a GPU machine with vllm installed next to glotbench);
its prefix cache is emptied before each timed pass, so no pass reuses another's prompts:

- **raw vLLM**: the prompt strings and the same ``SamplingParams`` straight to ``LLM.generate``,
  all at once (what a user of vLLM alone would write);
- **glotbench**: ``execute`` of the same run (planning, tokenisation with lm-eval's rules,
  request cache commits, scoring, run directory) on that engine, at each ``--batch-size``
  (requests per engine call: ``GEN_CHUNK_BATCHES`` x batch size, on a GPU at least the
  backend's ``min_chunk``, 4 x the engine's ``max_num_seqs``);
- **lm-eval** (``--lmeval``): ``simple_evaluate(model="vllm")`` on the same files through its
  own MGSM configs; its time includes its own engine load, reported with glotbench's load.

Reported: generated tokens per second of each, glotbench's share of raw vLLM's (goal >= 90 %),
and how many texts are identical to raw vLLM's. ``--random-weights`` builds the model from
``--model``'s config and tokenizer with seeded random weights (for a machine the weights cannot
reach: throughput depends on the shapes, not the values; every row then runs to the token limit).

    python bench/bench_vllm.py --model DIR --random-weights --lmeval       # a GPU machine
    python bench/bench_vllm.py --langs en --limit 4 --max-new-tokens 16 --batch-size 16  # CPU check
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

MGSM_LANGS = "bn,de,en,es,fr,ja,ru,sw,te,th,zh"


def random_model(source: Path, out: Path, dtype: str, seed: int = 0) -> Path:
    """``source``'s config and tokenizer with seeded random weights, saved in ``out``."""
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(source)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.save_pretrained(out)
    for f in source.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "vocab", "merges", "generation_config", "chat_template")):
            shutil.copy(f, out / f.name)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model directory (default: the embedded model's)")
    ap.add_argument("--random-weights", action="store_true", help="--model's config with random weights")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--langs", default=MGSM_LANGS)
    ap.add_argument("--limit", type=int, default=250)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--batch-size", default="16", help="glotbench passes, comma-separated")
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.4,
                    help="each engine's share (glotbench's and lm-eval's run side by side)")
    ap.add_argument("--lmeval", action="store_true", help="also lm-eval's vllm backend")
    ap.add_argument("--out", default="bench/out/vllm.json")
    args = ap.parse_args()

    import torch

    from glotbench.harness.models.lmeval_ref import run_reference
    from glotbench.harness.models.vllm_backend import VLLMBackend
    from glotbench.harness.run.config import RunConfig
    from glotbench.harness.run.execute import execute
    from glotbench.harness.run.plan import generation_requests, plan
    from glotbench.harness.store.rundir import read_samples
    from glotbench.harness.taskapi.registry import get_task

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_mgsm_generation import hub_layout

    gpu = torch.cuda.is_available()
    langs = args.langs.split(",")
    sizes = [int(b) for b in args.batch_size.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="bench-vllm-"))
    if args.model is None:
        from glotbench.harness.models.embedded import converted_dir

        model_dir = converted_dir()
    else:
        model_dir = Path(args.model)
    if args.random_weights:
        model_dir = random_model(model_dir, tmp / "model", args.dtype)
    result: dict = {"gpu": torch.cuda.get_device_name(0) if gpu else "cpu", "model": str(model_dir),
                    "random_weights": args.random_weights, "dtype": args.dtype, "langs": langs,
                    "limit": args.limit, "max_new_tokens": args.max_new_tokens, "passes": {}}

    def save() -> None:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))

    t0 = time.time()
    backend = VLLMBackend(str(model_dir), dtype=args.dtype, batch_size=sizes[0],
                          gpu_memory_utilization=args.gpu_memory_utilization)
    result["glotbench_load_s"] = round(time.time() - t0, 1)
    llm, vllm = backend.engine.llm, backend.engine.vllm
    result.update(max_num_seqs=backend.engine.info["max_num_seqs"], min_chunk=backend.min_chunk)

    def config(batch_size: int, name: str) -> RunConfig:
        return RunConfig(tasks=("mgsm",), langs=tuple(langs), limit=args.limit, data="bundled", chat="off",
                         max_new_tokens=args.max_new_tokens, batch_size=batch_size, model=f"vllm:{model_dir}",
                         device="cuda" if gpu else "cpu", dtype=args.dtype, output=str(tmp / name),
                         cache_path=str(tmp / f"{name}.sqlite"))

    units = plan(config(sizes[0], "probe"))
    for unit in units:
        generation_requests(unit, config(sizes[0], "probe"), backend)
    requests = [reqs[0] for unit in units for reqs in unit.requests]
    prompts = [r.prompt for r in requests]
    params = [vllm.SamplingParams(max_tokens=r.max_new_tokens, temperature=0.0, stop=list(r.stop) or None,
                                  include_stop_str_in_output=False, skip_special_tokens=True) for r in requests]
    lengths = [len(backend.encoder.encode(p)) for p in prompts]
    result.update(requests=len(prompts), prompt_tokens=[min(lengths), max(lengths), sum(lengths)])
    llm.generate(prompts[:8], vllm.SamplingParams(max_tokens=8, temperature=0.0), use_tqdm=False)  # warm-up

    def raw_pass() -> tuple[float, int, list[str]]:
        llm.reset_prefix_cache()
        t = time.time()
        outs = llm.generate(prompts, params, use_tqdm=False)
        return time.time() - t, sum(len(o.outputs[0].token_ids) for o in outs), [o.outputs[0].text for o in outs]

    raw_s, raw_tokens, raw_texts = raw_pass()
    result["passes"]["raw"] = {"s": round(raw_s, 2), "tokens": raw_tokens, "tok_per_s": round(raw_tokens / raw_s)}
    save()
    for b in sizes:
        backend.batch_size = b
        name = f"glotbench-bs{b}"
        llm.reset_prefix_cache()
        t = time.time()
        path = execute(config(b, name), plan(config(b, name)), progress=False, backend=backend)
        s = time.time() - t
        texts = [r["response"] for lang in langs for r in read_samples(path, "mgsm", lang)]
        same = sum(a == b for a, b in zip(texts, raw_texts))
        result["passes"][name] = {"s": round(s, 2), "tok_per_s": round(raw_tokens / s),
                                  "share_of_raw": round(raw_s / s, 3), "identical_to_raw": same}
        save()
    raw2_s, _, _ = raw_pass()  # raw again: the spread between two raw passes is the noise
    result["passes"]["raw_again"] = {"s": round(raw2_s, 2), "tok_per_s": round(raw_tokens / raw2_s)}
    save()

    if args.lmeval:
        task = get_task("mgsm")
        files, pools = {}, {}
        for lang in langs:
            files[lang], pools[lang] = hub_layout(task, lang, args.limit, tmp)
        extra = f"dtype={args.dtype},gpu_memory_utilization={args.gpu_memory_utilization}"
        if not gpu:
            extra += ",max_model_len=2048,enforce_eager=True"
        ref = run_reference(task, model_dir, files, batch_size="auto", device="cuda" if gpu else "cpu",
                            backend="vllm", model_args=extra, fewshot_files=pools, max_gen_toks=args.max_new_tokens)
        ref_texts = [t for lang in langs for t in ref.responses[lang]]
        ours = result["passes"][f"glotbench-bs{sizes[0]}"]["s"] + result["glotbench_load_s"]
        result["passes"]["lm-eval-vllm"] = {
            "s_with_load": round(ref.seconds, 2), "glotbench_s_with_load": round(ours, 2),
            "speedup": round(ref.seconds / ours, 2), "identical_to_raw": sum(a == b for a, b in zip(ref_texts, raw_texts))}
        save()

    print(f"MGSM native CoT 5-shot, plain text, greedy, {result['gpu']}: {len(prompts)} prompts "
          f"({min(lengths)}-{max(lengths)} tokens), {args.max_new_tokens} new tokens, {args.dtype}"
          + (", random weights" if args.random_weights else ""))
    print("| pass | s | generated tok/s | share of raw vLLM | identical texts |")
    print("|---|---:|---:|---:|---:|")
    for name, p in result["passes"].items():
        if name == "lm-eval-vllm":
            print(f"| lm-eval vllm (load included) | {p['s_with_load']} | | glotbench {p['glotbench_s_with_load']} s "
                  f"with load: {p['speedup']}x | {p['identical_to_raw']}/{len(prompts)} |")
        else:
            print(f"| {name} | {p['s']} | {p['tok_per_s']} | {p.get('share_of_raw', '')} | "
                  f"{p.get('identical_to_raw', '')}{'/' + str(len(prompts)) if 'identical_to_raw' in p else ''} |")
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
