"""Streaming access to Hugging Face checkpoints in safetensors form, for merging.

Reading: a :class:`Checkpoint` parses the safetensors headers (sharded with an index, or a
single file) without loading anything, and reads row ranges of one tensor at a time with
``pread`` straight into a tensor's buffer, so the resident set stays at the size of the
chunks in flight however large the model: a merge of four 2.5 GB checkpoints never holds
10 GB. (A memory map does the same for one pass, but the merge reads some ranges more than
once — TIES takes three passes — and re-faulting every 4 KB page cost more system time than
the arithmetic: 400 s of it on the 1B-parameter TIES benchmark. ``pread`` copies from the
page cache in one call.)

Writing: :class:`ShardWriter` writes the safetensors format itself. The header (names,
dtypes, shapes, offsets) is known before any tensor is computed, so it goes first and each
tensor's bytes are appended chunk by chunk as they are produced; ``safetensors.save_file``
would need every tensor of a shard in memory at once. The bytes are hashed as written.

Format: 8-byte little-endian header length, a JSON header padded with spaces to a multiple
of 8, then the data; offsets are relative to the end of the header.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from glotbench.harness.core.errors import ModelError

# safetensors dtype names → torch dtypes (the floating and integer types checkpoints use).
DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")
INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives and what it is."""

    name: str
    dtype: str
    """safetensors dtype name (``BF16``, ``F32`` …)."""
    shape: tuple[int, ...]
    file: str
    """File name inside the checkpoint directory."""
    start: int
    """Absolute byte offset of the tensor's data in its file."""
    nbytes: int

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def rows(self) -> int:
        """Rows of the 2-D view used for chunking: dim 0 (a 1-D tensor is a column)."""
        return self.shape[0] if self.shape else 1

    @property
    def row_numel(self) -> int:
        return self.numel // self.rows if self.rows else 0


def read_header(path: Path) -> tuple[dict, int]:
    """The parsed JSON header of a safetensors file and the byte offset where data starts."""
    try:
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                raise ValueError("file shorter than the 8-byte header length")
            (n,) = struct.unpack("<Q", raw)
            if n > 100_000_000:
                raise ValueError(f"header length {n} is implausible")
            header = json.loads(f.read(n))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is not a readable safetensors file ({exc})",
                         "re-download or re-save the checkpoint") from None
    return header, 8 + n


class Checkpoint:
    """A checkpoint directory: its tensors (from the headers), config and files."""

    def __init__(self, path: Path, label: str | None = None):
        self.path = Path(path)
        self.label = label or str(path)
        if not self.path.is_dir():
            raise ModelError(f"model {self.label!r}: {self.path} is not a directory",
                             "give a local checkpoint directory, 'embedded' or a Hugging Face id")
        self.files = self._weight_files()
        self.tensors: dict[str, TensorInfo] = {}
        for fname in self.files:
            header, data_start = read_header(self.path / fname)
            for name, meta in header.items():
                if name == "__metadata__":
                    continue
                lo, hi = meta["data_offsets"]
                if meta["dtype"] not in DTYPES:
                    raise ModelError(f"model {self.label!r}: tensor {name} has dtype {meta['dtype']}, "
                                     f"which glotbench cannot merge", f"allowed: {', '.join(DTYPES)}")
                self.tensors[name] = TensorInfo(name, meta["dtype"], tuple(meta["shape"]), fname,
                                                data_start + lo, hi - lo)
        self.config = self._json("config.json")
        self._fds: dict[str, int] = {}

    def _weight_files(self) -> list[str]:
        index = self.path / INDEX_NAME
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (OSError, ValueError, KeyError) as exc:
                raise ModelError(f"model {self.label!r}: unreadable {index} ({exc})",
                                 "re-save the checkpoint with save_pretrained") from None
            files = sorted(set(weight_map.values()))
            missing = [f for f in files if not (self.path / f).is_file()]
            if missing:
                raise ModelError(f"model {self.label!r}: {index.name} names missing shard(s) "
                                 f"{', '.join(missing[:3])}", "complete the download")
            return files
        if (self.path / SINGLE_NAME).is_file():
            return [SINGLE_NAME]
        single = sorted(p.name for p in self.path.glob("*.safetensors"))
        if len(single) == 1:
            return single
        bins = sorted(p.name for p in self.path.glob("*.bin")) + sorted(p.name for p in self.path.glob("*.pt"))
        if bins:
            raise ModelError(
                f"model {self.label!r} has PyTorch pickle weights ({bins[0]}), which glotbench does not "
                "merge (pickles can run code and cannot be read a tensor at a time)",
                "convert it first: python -c \"from transformers import AutoModelForCausalLM as M; "
                f"M.from_pretrained('{self.path}').save_pretrained('{self.path}-safetensors')\"")
        raise ModelError(f"model {self.label!r}: no safetensors weights in {self.path}",
                         f"expected {SINGLE_NAME} or {INDEX_NAME} with its shards")

    def _json(self, name: str) -> dict:
        p = self.path / name
        if not p.is_file():
            return {}
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"model {self.label!r}: unreadable {p} ({exc})", "repair or re-download it") from None

    # -- reading ---------------------------------------------------------------------------

    def _fd(self, fname: str) -> int:
        fd = self._fds.get(fname)
        if fd is None:
            fd = self._fds[fname] = os.open(self.path / fname, os.O_RDONLY)
        return fd

    def _span(self, info: TensorInfo, r0: int, r1: int) -> tuple[int, int]:
        itemsize = DTYPES[info.dtype].itemsize
        row_bytes = info.row_numel * itemsize
        return info.start + r0 * row_bytes, (r1 - r0) * row_bytes

    def prefetch(self, name: str, r0: int, r1: int) -> None:
        """Ask the kernel to start reading rows [r0, r1) of a tensor (asynchronous readahead)."""
        info = self.tensors[name]
        offset, length = self._span(info, r0, r1)
        if hasattr(os, "posix_fadvise") and length:
            os.posix_fadvise(self._fd(info.file), offset, length, os.POSIX_FADV_WILLNEED)

    def read(self, name: str, r0: int, r1: int, dtype: torch.dtype) -> torch.Tensor:
        """Rows [r0, r1) of tensor ``name`` as a new 2-D ``dtype`` tensor (rows × row_numel)."""
        info = self.tensors[name]
        offset, length = self._span(info, r0, r1)
        buf = torch.empty(length, dtype=torch.uint8)
        view = memoryview(buf.numpy())
        fd, got = self._fd(info.file), 0
        while got < length:
            n = os.preadv(fd, [view[got:]], offset + got)
            if n <= 0:
                raise ModelError(f"model {self.label!r}: {info.file} ends inside tensor {name}",
                                 "the file is truncated: re-download or re-save the checkpoint")
            got += n
        out = buf.view(DTYPES[info.dtype]).reshape(r1 - r0, info.row_numel)
        return out if out.dtype == dtype else out.to(dtype)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


@dataclass(frozen=True)
class OutTensor:
    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        n = DTYPES[self.dtype].itemsize
        for d in self.shape:
            n *= d
        return n


def plan_shards(tensors: list[OutTensor], max_shard_bytes: int) -> list[list[OutTensor]]:
    """Split tensors (in order) into shards of at most ``max_shard_bytes`` (a bigger tensor alone)."""
    shards: list[list[OutTensor]] = [[]]
    size = 0
    for t in tensors:
        if shards[-1] and size + t.nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(t)
        size += t.nbytes
    return shards


def shard_names(n: int) -> list[str]:
    """Hugging Face's names: ``model.safetensors`` alone, else ``model-00001-of-0000N.safetensors``."""
    if n == 1:
        return [SINGLE_NAME]
    return [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]


class ShardWriter:
    """Writes one safetensors file whose tensors arrive in order, chunk by chunk."""

    def __init__(self, path: Path, tensors: list[OutTensor], metadata: dict[str, str] | None = None):
        self.path = Path(path)
        header: dict = {"__metadata__": {"format": "pt", **(metadata or {})}}
        offset = 0
        self._order = []
        for t in tensors:
            header[t.name] = {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
            self._order.append((t.name, t.nbytes))
            offset += t.nbytes
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)
        self._f = open(self.path, "wb")
        self._f.write(struct.pack("<Q", len(blob)) + blob)
        self.sha256 = hashlib.sha256()
        self.sha256.update(struct.pack("<Q", len(blob)) + blob)
        self._next = 0
        self._written = 0

    def write(self, name: str, chunk: torch.Tensor) -> None:
        """Append the next bytes of tensor ``name`` (chunks in row order, already in its dtype)."""
        expected, nbytes = self._order[self._next]
        if name != expected:
            raise RuntimeError(f"shard writer: got {name}, expected {expected}")
        data = chunk.contiguous().view(torch.uint8).numpy() if chunk.numel() else b""
        self._f.write(data)
        self.sha256.update(data)
        self._written += len(data) if isinstance(data, bytes) else data.nbytes
        if self._written == nbytes:
            self._next += 1
            self._written = 0
        elif self._written > nbytes:
            raise RuntimeError(f"shard writer: {name} got more than its {nbytes} bytes")

    def close(self) -> str:
        """Finish the file (fsync) and return its sha256."""
        if self._next != len(self._order):
            raise RuntimeError(f"shard writer: {self.path.name} closed before all tensors were written")
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        return self.sha256.hexdigest()

    def abort(self) -> None:
        if not self._f.closed:
            self._f.close()


def write_index(out_dir: Path, shards: list[list[OutTensor]], names: list[str], metadata: dict) -> None:
    """``model.safetensors.index.json`` mapping every tensor to its shard (sharded output only)."""
    weight_map = {t.name: fname for shard, fname in zip(shards, names) for t in shard}
    total = sum(t.nbytes for shard in shards for t in shard)
    index = {"metadata": {"total_size": total, **metadata}, "weight_map": dict(sorted(weight_map.items()))}
    (out_dir / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
