"""Benchmark: ``glotbench merge`` vs mergekit 0.1.5 on four ~1.24B-parameter checkpoints, CPU.

Builds (once, cached under --workdir) four Llama-3.2-1B-shaped checkpoints with random
bfloat16 weights — hidden 2048, intermediate 8192, 16 layers, 32 heads, 8 KV heads, vocabulary
128256, tied embeddings: 1.24B parameters, ~2.5 GB each, saved as Hugging Face directories
(config.json, 2 GB safetensors shards, model.safetensors.index.json). Model 0 is N(0, 0.02²);
models 1-3 are model 0 plus N(0, 0.002²) "fine-tuning" noise, so task vectors are realistic.
Tensor names and shapes come from ``LlamaForCausalLM`` built on the meta device.

Measured, with the page cache warm (every input read once before timing, and again before
each merge; 10 GB of inputs fit in RAM), each merge in its own child process so that wall
time and peak RSS (``os.wait4`` rusage, ru_maxrss, of a grandchild started by a small launcher:
a child forked from this process would inherit its high-water mark) belong to that run alone:

- the floor: reading every tensor of the four inputs with ``safe_open().get_tensor`` one at a
  time, copied (in safetensors 0.8 ``get_tensor`` alone is a lazy view of the memory map), in
  this process; and ``cat`` of the files to /dev/null;
- ``glotbench merge`` for linear (weights 0.4/0.3/0.2/0.1), ties and dare_ties (base = model
  0, the three others weighted 0.3/0.2/0.1, density 0.5, ``convention: mergekit``), all in
  float32 with bfloat16 output;
- mergekit-yaml on the same configs (``--lazy-unpickle --no-cuda --no-copy-tokenizer``), and
  the ratios; for linear and ties the two outputs are compared tensor by tensor (max |Δ| in
  float32; TIES differs where bfloat16 deltas tie at the trim threshold, see training/merge/select.py).

glotbench records the sha256 of every input file in its manifest (memoised on path, size
and mtime in the glotbench cache directory). mergekit hashes nothing, so glotbench's timed
merges include that work: each runs with an empty ``GLOTBENCH_CACHE`` of its own and hashes
all its inputs (on a thread beside the merge, as ``glotbench merge`` does for files it has
not hashed before). The sha256 of the inputs alone is also timed, separately, for reference.
Timings are noisy when other work shares the 2 cores; use --repeat N (the minimum is kept).
Merged outputs are deleted after each method; inputs stay cached.

    python bench/bench_merge.py                          # everything (~2.5 GB x 4 built once)
    python bench/bench_merge.py --methods linear --chunk-mb 16 --repeat 3
    python bench/bench_merge.py --mergekit ''            # glotbench only
    python bench/bench_merge.py --tiny                   # a smoke test: 4 x 3 MB checkpoints
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
LLAMA = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
             num_key_value_heads=8, head_dim=64, vocab_size=128256, tie_word_embeddings=True,
             max_position_embeddings=131072, rms_norm_eps=1e-5)
TINY = dict(LLAMA, hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=2048, max_position_embeddings=512)
"""--tiny: the same tensor names at ~1.5M parameters, sharded at 1 MB (the index path too)."""
N_MODELS, SHARD_BYTES, TINY_SHARD_BYTES, SEED = 4, 2 * 1000**3, 1000**2, 1234
LINEAR_WEIGHTS = (0.4, 0.3, 0.2, 0.1)
GIB = 1024**3


def default_mergekit() -> str:
    """mergekit-yaml of the environment tests/test_merge_mergekit.py builds, if it is there."""
    from glotbench.harness.core.paths import cache_dir

    env = os.environ.get("GLOTBENCH_MERGEKIT_ENV")
    binary = (Path(env) if env else cache_dir() / "mergekit-0.1.5") / "bin" / "mergekit-yaml"
    return str(binary) if binary.is_file() else ""


def build_models(root: Path, arch: dict, shard_bytes: int) -> list[Path]:
    """Four checkpoint directories under ``root`` (built unless the marker says they are there)."""
    import safetensors.torch
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    spec = {**arch, "seed": SEED, "models": N_MODELS, "shard_bytes": shard_bytes, "version": 3}
    dirs = [root / f"m{i}" for i in range(N_MODELS)]
    marker = root / "COMPLETE.json"
    if marker.is_file() and json.loads(marker.read_text()) == spec:
        return dirs
    shutil.rmtree(root, ignore_errors=True)
    config = LlamaConfig(**arch, dtype="bfloat16", architectures=["LlamaForCausalLM"])
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()
              if not (config.tie_word_embeddings and k == "lm_head.weight")}
    shards, size = [[]], 0  # save_pretrained's split: in order, a new shard when the next would overflow
    for name, shape in shapes.items():
        nbytes = 2 * torch.Size(shape).numel()
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    n = len(shards)
    fnames = [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)] if n > 1 else ["model.safetensors"]
    total = sum(2 * torch.Size(s).numel() for s in shapes.values())
    index = {"metadata": {"total_size": total},
             "weight_map": {n: f for shard, f in zip(shards, fnames) for n in shard}}
    t0 = time.perf_counter()
    for m, d in enumerate(dirs):
        d.mkdir(parents=True)
        config.save_pretrained(d)
        if n > 1:
            (d / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
        for shard, fname in zip(shards, fnames):
            tensors = {}
            for name in shard:
                ti = list(shapes).index(name)
                if name.endswith("norm.weight"):
                    tensors[name] = torch.ones(shapes[name], dtype=torch.bfloat16)
                    continue
                g = torch.Generator().manual_seed(SEED * 1000 + ti)
                x = torch.randn(shapes[name], generator=g).mul_(0.02)
                if m:
                    g.manual_seed(SEED * 1000 + 100_000 * m + ti)
                    x.add_(torch.randn(shapes[name], generator=g), alpha=0.002)
                tensors[name] = x.to(torch.bfloat16)
                del x
            safetensors.torch.save_file(tensors, str(d / fname), metadata={"format": "pt"})
            del tensors
        print(f"  built {d} ({time.perf_counter() - t0:.0f} s)", flush=True)
    marker.write_text(json.dumps(spec))
    return dirs


def weight_files(d: Path) -> list[Path]:
    return sorted(d.glob("*.safetensors"))


def tensor_shapes(d: Path) -> dict[str, list[int]]:
    from safetensors import safe_open

    out = {}
    for f in weight_files(d):
        with safe_open(str(f), framework="pt") as sf:
            out.update({k: sf.get_slice(k).get_shape() for k in sf.keys()})
    return out


def numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def read_all(dirs: list[Path]) -> float:
    from safetensors import safe_open

    t0 = time.perf_counter()
    for d in dirs:
        for f in weight_files(d):
            with safe_open(str(f), framework="pt") as sf:
                for name in sf.keys():
                    sf.get_tensor(name).clone()  # get_tensor alone is a lazy view of the map
    return time.perf_counter() - t0


def cat_all(dirs: list[Path]) -> float:
    t0 = time.perf_counter()
    subprocess.run(["cat", *map(str, (f for d in dirs for f in weight_files(d)))],
                   stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


# Runs the command as its own child and reports that grandchild's rusage. A process forked from
# this (large) one would inherit our peak RSS into its ru_maxrss (Linux keeps the pre-exec
# high-water mark); the launcher is a small interpreter, so the floor is its ~15 MB.
LAUNCHER = """import json, os, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.Popen(sys.argv[2:])
_, status, ru = os.wait4(p.pid, 0)
json.dump({"wall": time.perf_counter() - t0, "status": status, "maxrss_kb": ru.ru_maxrss,
           "user": ru.ru_utime, "sys": ru.ru_stime}, open(sys.argv[1], "w"))
"""


def run_child(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> dict:
    """Run ``cmd``: wall seconds, its own peak RSS (GiB) and exit status."""
    load = os.getloadavg()[0]
    stats = log.with_suffix(".rusage.json")
    with open(log, "w") as out:
        subprocess.run([sys.executable, "-c", LAUNCHER, str(stats), *cmd], stdout=out, stderr=subprocess.STDOUT,
                       cwd=ROOT, check=True, env=env)
    ru = json.loads(stats.read_text())
    rc = os.waitstatus_to_exitcode(ru["status"])
    res = {"wall_s": round(ru["wall"], 2), "peak_rss_gib": round(ru["maxrss_kb"] * 1024 / GIB, 3),
           "user_s": round(ru["user"], 1), "sys_s": round(ru["sys"], 1), "rc": rc, "loadavg_before": round(load, 2)}
    if rc:
        res["log_tail"] = log.read_text(errors="replace")[-2000:]
        print(f"  FAILED ({rc}): {' '.join(cmd)}\n{res['log_tail']}", flush=True)
    return res


def configs(method: str, dirs: list[Path]) -> tuple[dict, dict]:
    """(glotbench config, mergekit config) for one method."""
    common = {"dtype": "float32", "out_dtype": "bfloat16"}
    if method == "linear":
        mk = {"merge_method": "linear", **common,
              "models": [{"model": str(d), "parameters": {"weight": w}} for d, w in zip(dirs, LINEAR_WEIGHTS)]}
        return mk, dict(mk)
    mk = {"merge_method": method, "base_model": str(dirs[0]), **common,
          "models": [{"model": str(d), "parameters": {"weight": w, "density": 0.5}}
                     for d, w in zip(dirs[1:], LINEAR_WEIGHTS[1:])]}
    return {**mk, "convention": "mergekit"}, mk


def compare(a: Path, b: Path) -> dict:
    """Tensor-by-tensor comparison of two merged checkpoints (float32)."""
    from safetensors import safe_open

    def where(d: Path) -> dict[str, Path]:
        out = {}
        for f in weight_files(d):
            with safe_open(str(f), framework="pt") as sf:
                out.update(dict.fromkeys(sf.keys(), f))
        return out

    wa, wb = where(a), where(b)
    res = {"only_glotbench": sorted(set(wa) - set(wb)), "only_mergekit": sorted(set(wb) - set(wa)),
           "max_abs_diff": 0.0, "worst_tensor": None, "tensors_differing": 0, "elements_differing": 0,
           "elements": 0, "dtypes_differing": []}
    for name in sorted(set(wa) & set(wb)):
        with safe_open(str(wa[name]), framework="pt") as fa, safe_open(str(wb[name]), framework="pt") as fb:
            x, y = fa.get_tensor(name), fb.get_tensor(name)
        if x.dtype != y.dtype:
            res["dtypes_differing"].append(f"{name}: {x.dtype} vs {y.dtype}")
        diff = (x.float() - y.float()).abs()
        n = int((diff > 0).sum())
        res["elements"] += diff.numel()
        res["elements_differing"] += n
        res["tensors_differing"] += n > 0
        if float(diff.max()) > res["max_abs_diff"]:
            res["max_abs_diff"], res["worst_tensor"] = float(diff.max()), name
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/tmp/glotbench-bench-merge")
    ap.add_argument("--methods", default="linear,ties,dare_ties")
    ap.add_argument("--chunk-mb", type=int, default=None, help="passed to glotbench merge (its default: 4)")
    ap.add_argument("--mergekit", default=None,
                    help="mergekit-yaml binary ('' to skip; default: the one tests/test_merge_mergekit.py "
                         "builds under the glotbench cache, if present)")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs of each thing (the minimum is reported)")
    ap.add_argument("--layers", type=int, default=None, help="number of layers (default 16; 2 with --tiny)")
    ap.add_argument("--tiny", action="store_true", help="a smoke test: 4 checkpoints of ~3 MB each")
    ap.add_argument("--out", default="bench/out/merge.json")
    args = ap.parse_args()
    import yaml

    if args.mergekit is None:
        args.mergekit = default_mergekit()
    arch = dict(TINY if args.tiny else LLAMA)
    if args.layers is not None:
        arch["num_hidden_layers"] = args.layers
    work = Path(args.workdir) / ("tiny" if args.tiny else "")
    methods = args.methods.split(",")
    print(f"building / reusing {N_MODELS} checkpoints under {work}/models", flush=True)
    dirs = build_models(work / "models", arch, TINY_SHARD_BYTES if args.tiny else SHARD_BYTES)
    files = [f for d in dirs for f in weight_files(d)]
    input_bytes = sum(f.stat().st_size for f in files)
    shapes = tensor_shapes(dirs[0])
    params = sum(numel(s) for s in shapes.values())
    largest = max((2 * numel(s), name) for name, s in shapes.items())
    print(f"inputs: {len(files)} files, {input_bytes / 1e9:.2f} GB; {params / 1e9:.3f}B parameters per model; "
          f"largest tensor {largest[1]} {largest[0] / 1e6:.0f} MB", flush=True)

    from glotbench.harness.core.hashing import file_sha256

    read_all(dirs)
    cat_all(dirs)  # warm the page cache
    t0 = time.perf_counter()  # for reference: every merge below does this work again, timed
    for f in files:
        file_sha256(f)
    hash_s = time.perf_counter() - t0
    print(f"sha256 of the inputs alone (one thread, warm page cache): {hash_s:.1f} s; glotbench's timed merges "
          "include it (each starts with an empty hash memo)", flush=True)
    read_s = min(read_all(dirs) for _ in range(args.repeat))
    cat_s = min(cat_all(dirs) for _ in range(args.repeat))
    print(f"warm page cache: safetensors get_tensor of all inputs {read_s:.1f} s; cat > /dev/null {cat_s:.1f} s",
          flush=True)
    result = {"host": {"cpus": os.cpu_count(), "ram_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB, 1),
                       "python": platform.python_version()},
              "models": N_MODELS, "layers": arch["num_hidden_layers"], "tiny": args.tiny, "params_per_model": params,
              "input_bytes": input_bytes, "largest_tensor": {"name": largest[1], "bytes": largest[0]},
              "page_cache": "warm", "input_hash_s": round(hash_s, 2), "merge_includes_input_hashing": True, "read_safetensors_s": round(read_s, 2), "cat_s": round(cat_s, 2),
              "chunk_mb": args.chunk_mb, "repeat": args.repeat, "mergekit": args.mergekit or None, "runs": []}
    if not args.mergekit:
        print("note: no mergekit-yaml given or found; skipping the comparison", flush=True)
    for method in methods:
        ours_cfg, mk_cfg = configs(method, dirs)
        outs = {}
        for tool in ("glotbench", "mergekit") if args.mergekit else ("glotbench",):
            cfg_path, out = work / f"{tool}-{method}.yaml", work / f"out-{tool}-{method}"
            cfg_path.write_text(yaml.safe_dump(ours_cfg if tool == "glotbench" else mk_cfg, sort_keys=False))
            if tool == "glotbench":
                cmd = [sys.executable, "-m", "glotbench.harness.cli", "merge", str(cfg_path), "-o", str(out),
                       "--overwrite", "--no-progress"] + (["--chunk-mb", str(args.chunk_mb)] if args.chunk_mb else [])
            else:
                cmd = [args.mergekit, str(cfg_path), str(out), "--lazy-unpickle", "--no-cuda", "--no-copy-tokenizer",
                       "--random-seed", "0", "--quiet"]
            runs = []
            for k in range(args.repeat):
                shutil.rmtree(out, ignore_errors=True)
                env = None
                if tool == "glotbench":  # an empty hash memo: this merge hashes its inputs, timed
                    memo = work / f"glotbench-cache-{method}-{k}"
                    shutil.rmtree(memo, ignore_errors=True)
                    env = {**os.environ, "GLOTBENCH_CACHE": str(memo)}
                cat_all(dirs)  # re-warm: outputs written meanwhile may have pushed inputs out
                runs.append(run_child(cmd, work / f"{tool}-{method}.log", env))
                print(f"  {method:9s} {tool:9s} {runs[-1]['wall_s']:7.1f} s  peak RSS {runs[-1]['peak_rss_gib']:.2f} GiB",
                      flush=True)
            ok = [r for r in runs if r["rc"] == 0]
            best = min(ok, key=lambda r: r["wall_s"]) if ok else runs[-1]
            result["runs"].append({"method": method, "tool": tool, "cmd": cmd, **best,
                                   "peak_rss_gib": max(r["peak_rss_gib"] for r in runs),
                                   "all_wall_s": [r["wall_s"] for r in runs]})
            outs[tool] = out if ok else None
        if method in ("linear", "ties") and outs.get("mergekit") and outs.get("glotbench"):
            c = compare(outs["glotbench"], outs["mergekit"])
            result.setdefault("output_diff", {})[method] = c
            print(f"  {method}: glotbench vs mergekit max |Δ| {c['max_abs_diff']:.3g} ({c['worst_tensor']}); "
                  f"{c['elements_differing']}/{c['elements']} elements differ", flush=True)
        for out in outs.values():
            if out:
                shutil.rmtree(out, ignore_errors=True)

    by = {(r["method"], r["tool"]): r for r in result["runs"]}
    size = f"{params / 1e9:.2f}B" if params >= 1e8 else f"{params / 1e6:.1f}M"
    lines = [f"{N_MODELS} x {size}-parameter bf16 checkpoints, {input_bytes / 1e9:.3g} GB of inputs "
             f"(largest tensor {largest[0] / 1e6:.0f} MB), page cache warm, {os.cpu_count()} CPUs; "
             "glotbench's wall time includes the sha256 of all its inputs (mergekit hashes nothing)",
             "| method | tool | wall s | x safetensors read | peak RSS GiB | wall vs mergekit | RSS vs mergekit |",
             "|---|---|---|---|---|---|---|",
             f"| (read inputs) | safetensors get_tensor | {read_s:.1f} | 1.00 | - | - | - |",
             f"| (read inputs) | cat > /dev/null | {cat_s:.1f} | {cat_s / read_s:.2f} | - | - | - |",
             f"| (hash inputs) | sha256, one thread | {hash_s:.1f} | {hash_s / read_s:.2f} | - | - | - |"]
    for r in result["runs"]:
        mk = by.get((r["method"], "mergekit"))
        good = r["rc"] == 0 and mk and mk["rc"] == 0
        rw = f"{r['wall_s'] / mk['wall_s']:.2f}" if good and r["tool"] == "glotbench" else "-"
        rm = f"{r['peak_rss_gib'] / mk['peak_rss_gib']:.2f}" if good and r["tool"] == "glotbench" else "-"
        wall = f"{r['wall_s']:.1f}" if r["rc"] == 0 else f"failed (rc {r['rc']})"
        tool = "glotbench (incl. input sha256)" if r["tool"] == "glotbench" else r["tool"]
        lines.append(f"| {r['method']} | {tool} | {wall} | {r['wall_s'] / read_s:.2f} | "
                     f"{r['peak_rss_gib']:.2f} | {rw} | {rm} |")
    for method, c in result.get("output_diff", {}).items():
        lines.append(f"\n{method}: glotbench vs mergekit output, max |Δ| (float32) {c['max_abs_diff']:.3g} in "
                     f"{c['worst_tensor']}; {c['tensors_differing']} tensors, {c['elements_differing']} of "
                     f"{c['elements']} elements differ; names only in one: {c['only_glotbench'] + c['only_mergekit']}")
    result["table"] = "\n".join(lines)
    print("\n" + result["table"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {args.out}; peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
