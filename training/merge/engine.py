"""``glotbench merge``: stream a merge of Hugging Face checkpoints into a new checkpoint.

One tensor name at a time, in row chunks, across every input (memory-mapped safetensors),
so peak memory is about (inputs + 1) × one chunk — not the model size. The output is
written to a hidden sibling directory and renamed into place only when every shard, the
index, config, tokenizer and the manifest are complete: an interrupted merge never leaves a
directory that looks finished. Incompatible inputs (architecture, tensor names, shapes,
vocabulary) are refused before anything is written.

The math is in :mod:`glotbench.training.merge.methods`, the schema in :mod:`glotbench.training.merge.config`,
the file format in :mod:`glotbench.training.merge.safetensors_io`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from glotbench import harness
from glotbench.harness.core.errors import GlotbenchError, ModelError
from glotbench.harness.core.hashing import json_sha256, memo_file_sha256
from glotbench.harness.core.paths import hub_failures
from glotbench.harness.core.progress import progress_bar
from glotbench.training.core.stage import publish
from glotbench.training.merge.config import (
    MergeConfig,
    MergeConfigError,
    load_config,
    parse_config,
    resolve,
)
from glotbench.training.merge.methods import Source, TensorParams, merge_chunks, rereads
from glotbench.training.merge.safetensors_io import (
    DTYPE_NAMES,
    DTYPES,
    FLOAT_DTYPES,
    Checkpoint,
    OutTensor,
    ShardWriter,
    plan_shards,
    shard_names,
    write_index,
)

MANIFEST = "merge_manifest.json"
DEFAULT_CHUNK_ELEMENTS = 1 << 20  # 4 MB of float32 per input: cache-friendly, measured fastest
DEFAULT_SHARD_BYTES = 5 * 1000**3
# Files copied from the tokenizer source next to the merged weights.
COPY_PATTERNS = ("config.json", "generation_config.json", "tokenizer*", "special_tokens_map.json",
                 "added_tokens.json", "vocab.*", "merges.txt", "*.model", "chat_template*")
_TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16,
                 "float16": torch.float16}


@dataclass(frozen=True)
class MergeResult:
    out_dir: Path
    tensors: int
    bytes_written: int
    seconds: float
    files: dict[str, str]
    """Output weight file → sha256."""


def resolve_model(spec: str) -> Path:
    """A model reference → local directory: a path, ``embedded``, ``hf:<dir or id>`` or a hub id."""
    if spec == "embedded":
        from glotbench.harness.models.embedded import converted_dir

        return converted_dir()
    ref = spec[3:] if spec.startswith("hf:") else spec
    path = Path(ref).expanduser()
    if path.is_dir():
        return path
    if ref.count("/") == 1 and not ref.startswith((".", "/", "~")):
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(ref, allow_patterns=["*.safetensors", "*.json", "tokenizer*", "*.model",
                                                               "merges.txt", "vocab.*", "chat_template*"]))
        except hub_failures() as exc:  # offline, unknown or gated repo, bad id: user-fixable (a bug is not)
            raise ModelError(f"model {spec!r} is not a local directory and could not be fetched from the "
                             f"Hugging Face hub ({type(exc).__name__})",
                             "download it first or give a local checkpoint directory") from None
    raise ModelError(f"model {spec!r}: no such directory", "give a checkpoint directory, 'embedded' or a hub id")


def tensor_params(cfg: MergeConfig, name: str) -> TensorParams:
    """Resolve every parameter of ``cfg`` for one tensor name (filters applied, defaults filled)."""
    method, shared = cfg.merge_method, cfg.parameters

    def get(key, model=None, default=None):
        value = resolve(cfg.model_params(model).get(key), name) if model else None
        if value is None:
            value = resolve(shared.get(key), name)
        if value is None and default is None:
            raise MergeConfigError(f"parameter {key!r} has no value for tensor {name}",
                                   "add an entry without a filter (the default) to its filter list")
        return default if value is None else value

    merged = cfg.inputs if method == "linear" else cfg.inputs[1:]
    normalize_default = {"linear": True, "task_arithmetic": False, "ties": True, "dare_linear": False,
                         "dare_ties": cfg.convention == "paper", "slerp": False}[method]
    if method == "slerp":
        return TensorParams(method, cfg.convention, t=float(get("t")))
    return TensorParams(
        method, cfg.convention,
        weights=tuple(float(get("weight", m, 1.0)) for m in merged),
        densities=tuple(float(get("density", m, 1.0)) for m in merged),
        lam=float(get("lambda", default=1.0)), normalize=bool(get("normalize", default=normalize_default)),
        rescale=bool(get("rescale", default=True)))


def check_compatible(ckpts: list[Checkpoint]) -> None:
    """Refuse inputs that cannot be merged tensor by tensor, naming the first difference."""
    first = ckpts[0]
    for other in ckpts[1:]:
        pair = f"{first.label!r} and {other.label!r}"
        for key in ("model_type", "architectures", "vocab_size", "hidden_size", "num_hidden_layers"):
            a, b = first.config.get(key), other.config.get(key)
            if a is not None and b is not None and a != b:
                raise ModelError(f"models {pair} differ in {key} ({a} vs {b})",
                                 "merge checkpoints of the same architecture and size")
        missing = sorted(set(first.tensors) - set(other.tensors))
        extra = sorted(set(other.tensors) - set(first.tensors))
        if missing or extra:
            what = f"{other.label!r} lacks {missing[:3]}" if missing else f"{other.label!r} has extra {extra[:3]}"
            raise ModelError(f"models {pair} have different tensors: {what}",
                             "merge checkpoints of the same architecture (tied embeddings saved the same way)")
        for name, info in first.tensors.items():
            shape = other.tensors[name].shape
            if shape != info.shape:
                hint = " (different vocabularies)" if "embed" in name or "lm_head" in name else ""
                raise ModelError(f"models {pair}: tensor {name} has shape {list(info.shape)} vs {list(shape)}{hint}",
                                 "merge checkpoints with identical shapes")
        if _vocab(first) is not None and _vocab(other) is not None and _vocab(first) != _vocab(other):
            raise ModelError(f"models {pair} have different tokenizer vocabularies (tokenizer.json)",
                             "merge checkpoints that share one tokenizer")


def _vocab(ckpt: Checkpoint) -> str | None:
    p = ckpt.path / "tokenizer.json"
    if not p.is_file():
        return None
    try:
        tok = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return json_sha256([tok.get("model", {}).get("vocab"), [t.get("content") for t in tok.get("added_tokens", [])]])


def merge(config: MergeConfig | dict | str | Path, out_dir: str | Path, *, overwrite: bool = False,
          device: str = "cpu", chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
          max_shard_bytes: int = DEFAULT_SHARD_BYTES, progress: bool = False, dry_run: bool = False) -> MergeResult:
    """Merge the checkpoints of ``config`` into ``out_dir`` (see the module docstring).

    ``dry_run``: validate the config and the inputs and plan the output, writing nothing.
    """
    started = time.perf_counter()
    _keep_freed_memory_in_heap()
    cfg = config if isinstance(config, MergeConfig) else (
        parse_config(config) if isinstance(config, dict) else load_config(Path(config)))
    out = Path(out_dir).expanduser().absolute()
    paths = [resolve_model(spec) for spec in cfg.inputs]
    if any(out.resolve() == p.resolve() for p in paths):
        raise GlotbenchError(f"output directory {out} is one of the inputs", "write the merge somewhere else")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise GlotbenchError(f"output directory {out} already exists and is not empty",
                             "choose another -o or pass --overwrite")
    ckpts = [Checkpoint(p, label=spec) for p, spec in zip(paths, cfg.inputs)]
    check_compatible(ckpts)
    compute = _TORCH_DTYPES[cfg.dtype]
    dev = _device(device)
    base = ckpts[0]
    plan, params = [], {}
    for name in sorted(base.tensors):
        info = base.tensors[name]
        floating = all(c.tensors[name].dtype in FLOAT_DTYPES for c in ckpts)
        dtype = DTYPE_NAMES[_TORCH_DTYPES[cfg.out_dtype]] if cfg.out_dtype and floating else info.dtype
        plan.append(OutTensor(name, dtype, info.shape))
        params[name] = tensor_params(cfg, name) if floating else None
    shards = plan_shards(plan, max_shard_bytes)
    names = shard_names(len(shards))
    if dry_run:
        for c in ckpts:
            c.close()
        return MergeResult(out, len(plan), sum(t.nbytes for t in plan), time.perf_counter() - started,
                           dict.fromkeys(names, ""))

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    hasher = ThreadPoolExecutor(max_workers=1)
    input_hashes = {i: {f: hasher.submit(memo_file_sha256, c.path / f) for f in c.files} for i, c in enumerate(ckpts)}
    following = {a.name: b for a, b in zip(plan, plan[1:])}  # next tensor: read ahead while merging
    bar = progress_bar(sum(t.nbytes for t in plan), "merge", "B", progress, unit_scale=True, leave=False)
    writer = None
    try:
        files = {}
        for shard, fname in zip(shards, names):
            writer = ShardWriter(tmp / fname, shard, {"glotbench_merge": cfg.merge_method})
            for t in shard:
                _prefetch(following.get(t.name), ckpts, chunk_elements)
                _merge_tensor(t, params[t.name], ckpts, cfg, compute, dev, chunk_elements, writer)
                bar.update(t.nbytes)
            files[fname] = writer.close()
            writer = None
        if len(shards) > 1:
            write_index(tmp, shards, names, {"glotbench_merge": cfg.merge_method})
        source = ckpts[cfg.inputs.index(cfg.tokenizer_source)] if cfg.tokenizer_source else base
        _copy_side_files(source.path, tmp, cfg.out_dtype)
        manifest = _manifest(cfg, ckpts, input_hashes, params, files, plan, time.perf_counter() - started, source)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        publish(tmp, out)
    except BaseException:
        if writer is not None:
            writer.abort()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        bar.close()
        hasher.shutdown(wait=True, cancel_futures=True)
        for c in ckpts:
            c.close()
    return MergeResult(out, len(plan), sum(t.nbytes for t in plan), time.perf_counter() - started, files)


def _merge_tensor(t: OutTensor, p: TensorParams | None, ckpts: list[Checkpoint], cfg: MergeConfig,
                  compute: torch.dtype, dev: torch.device, chunk_elements: int, writer: ShardWriter) -> None:
    info = ckpts[0].tensors[t.name]
    chunk_rows = max(1, chunk_elements // max(1, info.row_numel))
    out_dtype = DTYPES[t.dtype]
    if p is None:  # integer/bool buffers: copied from the base (or first) model
        for r0 in range(0, info.rows, chunk_rows):
            writer.write(t.name, ckpts[0].read(t.name, r0, min(info.rows, r0 + chunk_rows), out_dtype))
        return

    single = chunk_rows >= info.rows and rereads(p)
    held: dict[int, torch.Tensor] = {}

    def read(i: int, r0: int, r1: int) -> torch.Tensor:
        # A tensor that fits in one chunk is read once per input and kept for the extra
        # passes of TIES, SLERP and mergekit's DARE rescale; bigger ones are re-read chunk by
        # chunk, so memory stays bounded by the chunk size.
        if single and i in held:
            return held[i]
        x = ckpts[i].read(t.name, r0, r1, compute).to(dev)
        if single:
            held[i] = x
        return x

    def read_native(i: int, r0: int, r1: int) -> torch.Tensor:
        x = ckpts[i].read(t.name, r0, r1, DTYPES[ckpts[i].tensors[t.name].dtype])
        return x.to(dev) if x.dtype.itemsize <= compute.itemsize else x.to(dev, compute)

    src = Source(read, len(ckpts), info.rows, chunk_rows, info.numel, t.name, cfg.seed, compute)
    src.read_native = read_native
    try:
        for chunk in merge_chunks(p, src):
            writer.write(t.name, chunk.to(out_dtype).cpu())
    except ValueError as exc:  # e.g. weights summing to zero for this tensor
        raise MergeConfigError(str(exc), "change the weights or set normalize: false") from None


def _prefetch(t: OutTensor | None, ckpts: list[Checkpoint], chunk_elements: int) -> None:
    """Start the kernel reading a tensor's first chunk (the next one) while this one is computed."""
    if t is None:
        return
    info = ckpts[0].tensors[t.name]
    rows = min(info.rows, max(1, chunk_elements // max(1, info.row_numel)))
    for c in ckpts:
        c.prefetch(t.name, 0, rows)


def _keep_freed_memory_in_heap() -> None:
    """Let glibc reuse freed chunk buffers instead of unmapping them.

    Each chunk allocates tensors of tens of MB; by default glibc serves those with fresh
    ``mmap``s and unmaps them on free, so every chunk pays a page fault per 4 KB again
    (measured: 64 MB allocated and filled 50 times, 3.2 s; with this setting 0.9 s — the
    difference was most of the system time of a TIES merge). Peak memory is unchanged: it
    is set by the chunks alive at once. No-op off glibc.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: serve allocations below 1 GiB from the heap
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GiB of freed heap for reuse
    except (OSError, AttributeError):
        pass


def _device(device: str) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise GlotbenchError("--device cuda: no CUDA device is visible", "use --device cpu")
    return torch.device(device)


def _copy_side_files(src: Path, dst: Path, out_dtype: str | None) -> None:
    for pattern in COPY_PATTERNS:
        for f in src.glob(pattern):
            if f.is_file() and not (dst / f.name).exists():
                shutil.copy2(f, dst / f.name)
    cfg_path = dst / "config.json"
    if out_dtype and cfg_path.is_file():
        config = json.loads(cfg_path.read_text())
        for key in ("torch_dtype", "dtype"):
            if key in config:
                config[key] = out_dtype
        cfg_path.write_text(json.dumps(config, indent=2) + "\n")


def _manifest(cfg, ckpts, input_hashes, params, files, plan, seconds, source) -> dict:
    distinct: dict[str, dict] = {}
    for name, p in params.items():
        key = json.dumps(asdict(p), sort_keys=True) if p else "copied"
        entry = distinct.setdefault(key, {"parameters": asdict(p) if p else "copied from the first input",
                                          "tensors": 0, "example": name})
        entry["tensors"] += 1
    roles = ["base" if cfg.base_model else "model"] + ["model"] * (len(ckpts) - 1)
    return {
        "format": "glotbench-merge/1",
        "glotbench_version": harness.__version__,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "method": cfg.merge_method, "convention": cfg.convention, "seed": cfg.seed,
        "dtype": cfg.dtype, "out_dtype": cfg.out_dtype or "per tensor, as the first input",
        "config": cfg.raw, "config_sha256": json_sha256(cfg.raw),
        "inputs": [{"model": c.label, "role": role, "path": str(c.path.resolve()),
                    "files": {f: fut.result() for f, fut in input_hashes[i].items()}}
                   for i, (c, role) in enumerate(zip(ckpts, roles))],
        "tokenizer_and_config_from": source.label,
        "resolved_parameters": list(distinct.values()),
        "output": {"tensors": len(plan), "bytes": sum(t.nbytes for t in plan), "files": files},
        "seconds": round(seconds, 3),
    }
