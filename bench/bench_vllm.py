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
- **lm-eval** (``--lmeval``): its vllm backend (``batch_size=auto``: every request at once) in
  its own engine, loaded second, then ``simple_evaluate`` on the same files through its own
  MGSM configs; its load and its evaluation are timed apart.

Reported: generated tokens per second of each (an ending EOS not counted, as glotbench counts),
glotbench's share of the faster of two raw passes (goal on a GPU: >= 90 %), its engine calls,
and how many texts are identical to raw vLLM's. ``--random-weights`` builds the model from
``--model``'s config and tokenizer with seeded random weights (for a machine the weights cannot
reach: throughput depends on the shapes, not the values).

Needs vllm, glotbench and lm-eval importable in one environment (raw vLLM shares glotbench's
in-process engine). On a GPU machine with no package registry, ``bench/gpu_carry.py`` prepares
them.

    python bench/bench_vllm.py --model DIR --random-weights --lmeval       # a GPU machine
    python bench/bench_vllm.py --dtype float32 --langs en,de,fr,es --limit 8 --max-new-tokens 64 --lmeval  # CPU
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
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(source)
    AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype)).save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)
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
    if not hasattr(backend.engine, "llm"):
        raise SystemExit("bench_vllm: vllm does not import here, so the engine runs in glotbench's worker "
                         "process and raw vLLM cannot share it: run this with the python of an environment "
                         "holding vllm, glotbench and lm-eval")
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

    def identical(texts: list[str], reference: list[str]) -> int:
        if len(texts) != len(reference):
            raise SystemExit(f"bench_vllm: {len(texts)} texts against {len(reference)} raw ones")
        return sum(a == b for a, b in zip(texts, reference))

    def raw_pass() -> tuple[float, int, list[str]]:
        """Generated tokens counted as glotbench counts them: an ending EOS is not a token."""
        llm.reset_prefix_cache()
        t = time.time()
        outs = llm.generate(prompts, params, use_tqdm=False)
        s = time.time() - t
        tokens = sum(len(o.outputs[0].token_ids) - (o.outputs[0].finish_reason == "stop"
                                                    and o.outputs[0].stop_reason is None) for o in outs)
        return s, tokens, [o.outputs[0].text for o in outs]

    raw_s, raw_tokens, raw_texts = raw_pass()
    result["passes"]["raw"] = {"s": round(raw_s, 2), "tokens": raw_tokens, "tok_per_s": round(raw_tokens / raw_s)}
    save()
    calls: list[int] = []
    generate = backend.generate

    def counted(batch):
        calls.append(len(batch))
        return generate(batch)

    backend.generate = counted
    ours: dict[int, tuple[float, int, list[str], list[int]]] = {}
    for b in sizes:
        backend.batch_size = b
        calls.clear()
        name = f"glotbench-bs{b}"
        llm.reset_prefix_cache()
        t = time.time()
        path = execute(config(b, name), plan(config(b, name)), progress=False, backend=backend)
        records = [r for lang in langs for r in read_samples(path, "mgsm", lang)]
        ours[b] = (time.time() - t, sum(r["n_tokens"] for r in records), [r["response"] for r in records], list(calls))
    raw2_s, raw2_tokens, _ = raw_pass()  # raw again: the spread between two raw passes is the noise
    result["passes"]["raw_again"] = {"s": round(raw2_s, 2), "tokens": raw2_tokens,
                                     "tok_per_s": round(raw2_tokens / raw2_s)}
    best_raw = max(raw_tokens / raw_s, raw2_tokens / raw2_s)  # glotbench is held to the faster raw pass
    for b, (s, tokens, texts, sizes_) in ours.items():
        result["passes"][f"glotbench-bs{b}"] = {
            "s": round(s, 2), "tokens": tokens, "tok_per_s": round(tokens / s),
            "share_of_raw": round(tokens / s / best_raw, 3), "identical_to_raw": identical(texts, raw_texts),
            "engine_calls": len(sizes_), "largest_call": max(sizes_)}
    save()

    if args.lmeval:
        from lm_eval.models.vllm_causallms import VLLM

        task = get_task("mgsm")
        files, pools = {}, {}
        for lang in langs:
            files[lang], pools[lang] = hub_layout(task, lang, args.limit, tmp)
        extra = {} if gpu else {"max_model_len": 2048, "enforce_eager": True}
        t0 = time.time()  # lm-eval's own engine, loaded second (vLLM's compile cache is warm by now)
        lm = VLLM(pretrained=str(model_dir), dtype=args.dtype, gpu_memory_utilization=args.gpu_memory_utilization,
                  batch_size="auto", **extra)
        load_s = time.time() - t0
        ref = run_reference(task, model_dir, files, batch_size="auto", device="cuda" if gpu else "cpu",
                            backend=lm, fewshot_files=pools, max_gen_toks=args.max_new_tokens)
        ref_texts = [t for lang in langs for t in ref.responses[lang]]
        first = ours[sizes[0]][0]
        result["passes"]["lm-eval-vllm"] = {
            "load_s": round(load_s, 1), "s": round(ref.seconds, 2), "speedup": round(ref.seconds / first, 2),
            "identical_to_raw": identical(ref_texts, raw_texts)}
        save()

    print(f"MGSM native CoT 5-shot, plain text, greedy, {result['gpu']}: {len(prompts)} prompts "
          f"({min(lengths)}-{max(lengths)} tokens), {args.max_new_tokens} new tokens, {args.dtype}"
          + (", random weights" if args.random_weights else ""))
    print("| pass | s | generated tok/s | share of raw vLLM | identical texts |")
    print("|---|---:|---:|---:|---:|")
    for name, p in result["passes"].items():
        if name == "lm-eval-vllm":
            print(f"| lm-eval vllm (its load {p['load_s']} s not included) | {p['s']} | | glotbench "
                  f"{p['speedup']}x faster | {p['identical_to_raw']}/{len(prompts)} |")
        else:
            calls = f", {p['engine_calls']} engine calls" if "engine_calls" in p else ""
            print(f"| {name}{calls} | {p['s']} | {p['tok_per_s']} | {p.get('share_of_raw', '')} | "
                  f"{p.get('identical_to_raw', '')}{'/' + str(len(prompts)) if 'identical_to_raw' in p else ''} |")
    print(f"glotbench's engine load: {result['glotbench_load_s']} s")
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
