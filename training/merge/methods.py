"""Merge methods: pure functions from input tensors (read in row chunks) to the merged tensor.

Every method sees one tensor name at a time through a :class:`Source` (input 0 is the base
model for the task-vector methods, SLERP's t=0 endpoint, or simply the first model for
``linear``) and yields the output in the same row chunks. Statistics that need the whole
tensor — SLERP's norms and angle, TIES's magnitude threshold, the L1 norms of mergekit's
DARE rescale — are gathered in extra passes first, as per-row float64 sums or integer
histograms, so the result does not depend on the chunk size.

Methods (one parametrised implementation backs the task-vector family):

- ``linear``: Σ wᵢθᵢ / Σ wᵢ (``normalize``, default true) or Σ wᵢθᵢ.
- ``slerp``: spherical interpolation of the two flattened tensors by ``t``; when they are
  (anti)parallel (|cos| > 0.9995) it falls back to linear interpolation (1−t)a + t·b, as
  mergekit does. A zero-norm tensor has no direction: glotbench interpolates linearly
  (default); ``convention: mergekit`` reproduces mergekit, which keeps the zero vector's
  norm at 1 and so scales the other by sin(tπ/2).
- ``task_arithmetic``: base + λ Σ wᵢδᵢ with δᵢ = θᵢ − base (normalize default false).
- ``ties`` (Yadav et al. 2023): trim each δᵢ to its ``density`` largest magnitudes
  (exactly k = max(1, ⌊density·numel⌋); ties at the threshold broken by position, see
  training/merge/select.py), elect a sign per entry, take the disjoint mean over the
  entries that agree with it, add λ times that to the base.
- ``dare_ties`` / ``dare_linear`` (Yu et al. 2023): drop each δᵢ entry with probability
  p = 1 − density and rescale the survivors, then TIES sign election + disjoint mean, or a
  plain weighted sum.

The two TIES conventions (they agree when all weights are equal):

- ``paper`` (default): the sign is elected on the *unweighted* trimmed task vectors
  (γ = sign Σᵢ τ̂ᵢ, as in the paper, which has no weights); the merge is the mean over the
  agreeing entries, weighted: Σ_{agree} wᵢτ̂ᵢ / Σ_{agree} wᵢ. DARE rescales by 1/(1−p).
  ``normalize`` defaults to true for ties and dare_ties.
- ``mergekit``: the sign is elected on the *weighted* deltas Σᵢ wᵢτ̂ᵢ and the sum of the
  agreeing weighted deltas is divided by the agreeing weights; DARE rescales each dropped
  vector to its original L1 norm; ``normalize`` defaults as in mergekit (ties true,
  dare_ties false).

An elected sign of exactly zero counts as positive in both (mergekit's rule; the paper's
code breaks such ties by the majority sign of the whole model, which a per-tensor stream
cannot see; it only matters where the trimmed deltas cancel exactly).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from glotbench.training.merge.select import TopK, kth_largest_bits, magnitude_bits

DOT_THRESHOLD = 0.9995
EPS = 1e-8
L1_EPS = 1e-7  # mergekit's tolerance for the L1 rescale


@dataclass(frozen=True)
class TensorParams:
    """Resolved parameters of one tensor (filters already applied)."""

    method: str
    convention: str = "paper"
    weights: tuple[float, ...] = ()
    """Per merged input: every input for linear, every non-base input otherwise."""
    densities: tuple[float, ...] = ()
    t: float = 0.5
    lam: float = 1.0
    normalize: bool = True
    rescale: bool = True


class Source:
    """The inputs of one tensor, read in row chunks of a 2-D view (rows × row_numel)."""

    def __init__(self, read: Callable[[int, int, int], torch.Tensor], n_inputs: int, rows: int,
                 chunk_rows: int, numel: int, name: str, seed: int, dtype: torch.dtype):
        self.read, self.n_inputs, self.rows, self.numel = read, n_inputs, rows, numel
        self.name, self.seed, self.dtype = name, seed, dtype
        self.read_native: Callable[[int, int, int], torch.Tensor] | None = None
        """Optional: the same rows in the file's own dtype (saves a conversion pass where a
        kernel widens them itself; the numbers are identical)."""
        step = max(1, chunk_rows)
        self.ranges = [(r, min(rows, r + step)) for r in range(0, rows, step)] or [(0, 0)]

    def rng(self, i: int) -> np.random.Generator:
        """DARE's drop stream for input i: a function of (seed, tensor name, input) only."""
        digest = hashlib.sha256(self.name.encode()).digest()
        key = np.random.SeedSequence([self.seed, int.from_bytes(digest[:8], "little"), i])
        return np.random.Generator(np.random.SFC64(key))


def rereads(p: TensorParams) -> bool:
    """Whether the method reads its inputs more than once (statistics passes first)."""
    if p.method == "slerp":
        return True
    if p.method == "ties":
        return any(d < 1 for d in p.densities)
    if p.method.startswith("dare_"):
        return p.convention == "mergekit" and p.rescale and any(d < 1 for d in p.densities)
    return False


def merge_chunks(p: TensorParams, src: Source) -> Iterator[torch.Tensor]:
    """The merged tensor, chunk by chunk (in ``src.ranges`` order, compute dtype)."""
    if p.method == "linear":
        return _linear(p, src)
    if p.method == "slerp":
        return _slerp(p, src)
    return _task_vectors(p, src)


def _linear(p: TensorParams, src: Source) -> Iterator[torch.Tensor]:
    total = sum(p.weights)
    if p.normalize and abs(total) < EPS:
        raise ValueError(f"{src.name}: the weights sum to {total}; normalising would divide by zero")
    read = src.read_native or src.read
    for r0, r1 in src.ranges:
        acc = None
        for i, w in enumerate(p.weights):
            x = read(i, r0, r1)
            if acc is None:
                acc = torch.zeros(x.shape, dtype=src.dtype, device=x.device)
            acc.add_(x, alpha=w)  # a bfloat16 x is widened inside the kernel (exactly)
            del x
        yield acc.div_(total) if p.normalize else acc


def slerp_coefficients(t: float, dot: float, norm_a: float, norm_b: float, convention: str) -> tuple[float, float]:
    """Coefficients (ca, cb) of a and b, from the raw dot product and the two norms."""
    if norm_a <= EPS or norm_b <= EPS:
        if convention != "mergekit":
            return 1.0 - t, t
        norm_a, norm_b = (norm_a if norm_a > EPS else 1.0), (norm_b if norm_b > EPS else 1.0)
    cos = min(1.0, max(-1.0, dot / (norm_a * norm_b)))
    if abs(cos) > DOT_THRESHOLD:
        return 1.0 - t, t
    theta = math.acos(cos)
    s = math.sin(theta)
    return math.sin((1.0 - t) * theta) / s, math.sin(t * theta) / s


def _slerp(p: TensorParams, src: Source) -> Iterator[torch.Tensor]:
    # Per-row sums, preallocated (a list of small per-chunk tensors fragments the heap around
    # the large temporaries) and summed once at the end: independent of the chunking.
    dots, na, nb = (torch.empty(src.rows, dtype=torch.float64) for _ in range(3))
    for r0, r1 in src.ranges:
        a, b = src.read(0, r0, r1).double(), src.read(1, r0, r1).double()
        dots[r0:r1] = (a * b).sum(1).cpu()
        na[r0:r1] = (a * a).sum(1).cpu()
        nb[r0:r1] = (b * b).sum(1).cpu()
        del a, b
    dot = float(dots.sum())
    norm_a, norm_b = math.sqrt(float(na.sum())), math.sqrt(float(nb.sum()))
    ca, cb = slerp_coefficients(p.t, dot, norm_a, norm_b, p.convention)
    for r0, r1 in src.ranges:
        yield ca * src.read(0, r0, r1) + cb * src.read(1, r0, r1)


def _delta(src: Source, i: int, r0: int, r1: int) -> torch.Tensor:
    return src.read(i, r0, r1) - src.read(0, r0, r1)


def _task_vectors(p: TensorParams, src: Source) -> Iterator[torch.Tensor]:
    n = src.n_inputs - 1
    trims = _trim_thresholds(p, src) if p.method == "ties" else [None] * n
    dare = p.method.startswith("dare_")
    scales = _dare_scales(p, src) if dare else [1.0] * n
    rngs = [src.rng(i + 1) for i in range(n)] if dare else []
    consensus = p.method in ("ties", "dare_ties")
    for r0, r1 in src.ranges:
        base = src.read(0, r0, r1)
        deltas = torch.empty((n, *base.shape), dtype=base.dtype, device=base.device)
        for i in range(n):
            d = deltas[i]
            torch.sub(src.read(i + 1, r0, r1), base, out=d)
            if trims[i] is not None:
                d.mul_(trims[i].mask(magnitude_bits(d)))
            elif dare and p.densities[i] < 1:
                d.mul_(_keep(rngs[i], d, p.densities[i])).mul_(scales[i])
        yield base + _combine(p, deltas, consensus)
        del base, deltas


def _combine(p: TensorParams, deltas: torch.Tensor, consensus: bool) -> torch.Tensor:
    """Σ wᵢδᵢ over the agreeing entries (consensus) or all of them, normalised and scaled.

    ``deltas`` (stacked: inputs × rows × cols) is overwritten. These are mergekit's
    operations in its order, done in place where that gives the same numbers."""
    shape = (-1, *([1] * (deltas.dim() - 1)))
    weights = torch.tensor(p.weights, dtype=deltas.dtype, device=deltas.device).reshape(shape)
    if consensus:
        if p.convention == "mergekit":
            deltas.mul_(weights)  # the sign is elected on the weighted deltas
        positive = deltas.sum(0) >= 0  # majority sign +1 (a zero sum counts as +1)
        mask = torch.where(positive, deltas > 0, deltas < 0)  # sign(δ) == majority, in bools
        if p.convention != "mergekit":
            deltas.mul_(weights)
        mixed = deltas.mul_(mask).sum(0)
        divisor = torch.zeros_like(mixed)
        for i, w in enumerate(p.weights):  # Σᵢ wᵢ·maskᵢ in mergekit's order, without an n-fold temporary
            divisor.add_(mask[i], alpha=w)
        divisor[divisor == 0] = 1
    else:
        mixed = deltas.mul_(weights).sum(0)
        divisor = weights.sum(0).expand_as(mixed).clone()
        divisor[divisor.abs() < EPS] = 1
    if p.normalize:
        mixed = mixed / divisor
    if p.lam != 1:
        mixed = mixed * p.lam
    return mixed


def _trim_thresholds(p: TensorParams, src: Source) -> list[TopK | None]:
    """Per non-base input, the mask of its k largest |δ| (None: keep everything)."""
    out: list[TopK | None] = []
    width = 64 if src.dtype == torch.float64 else 32
    for i in range(1, src.n_inputs):
        density = p.densities[i - 1]
        if density >= 1 or src.numel == 0:
            out.append(None)
            continue
        k = max(1, int(density * src.numel))

        def chunks(i=i):
            for r0, r1 in src.ranges:
                yield magnitude_bits(_delta(src, i, r0, r1))

        out.append(TopK(*kth_largest_bits(chunks, k, width)))
    return out


def _keep(rng: np.random.Generator, like: torch.Tensor, density: float) -> torch.Tensor:
    """Bernoulli(density) mask: one raw 64-bit draw per entry, in row-major order, so the
    mask is the same however the tensor is chunked."""
    raw = rng.bit_generator.random_raw(like.numel())
    keep = raw < np.uint64(min(2**64 - 1, int(density * 2**64)))
    return torch.from_numpy(keep).reshape(like.shape).to(like.device, like.dtype)


def _dare_scales(p: TensorParams, src: Source) -> list[float]:
    """Survivor rescale per input: 1/density (paper) or the L1-norm ratio (mergekit)."""
    scales = []
    for i in range(1, src.n_inputs):
        density = p.densities[i - 1]
        if not p.rescale or density >= 1:
            scales.append(1.0)
        elif p.convention != "mergekit":
            scales.append(1.0 / density)
        else:
            rng = src.rng(i)
            before, after = (torch.empty(src.rows, dtype=torch.float64) for _ in range(2))
            for r0, r1 in src.ranges:
                d = _delta(src, i, r0, r1)
                before[r0:r1] = d.abs().sum(1, dtype=torch.float64).cpu()
                after[r0:r1] = d.mul_(_keep(rng, d, density)).abs().sum(1, dtype=torch.float64).cpu()
                del d
            b, a = float(before.sum()), float(after.sum())
            scales.append(1.0 if b < L1_EPS or a < L1_EPS else b / a)
    return scales


# -- whole tensors (tests, notebooks) -------------------------------------------------------

def merge_tensors(p: TensorParams, inputs: list[torch.Tensor], *, name: str = "tensor", seed: int = 0,
                  dtype: torch.dtype = torch.float32, chunk_rows: int | None = None) -> torch.Tensor:
    """Merge in-memory tensors with the same code path as a streamed merge.

    ``inputs[0]`` is the base (task-vector methods) or t=0 endpoint (slerp).
    """
    shape = inputs[0].shape
    rows = shape[0] if len(shape) else 1
    views = [x.reshape(rows, -1) if x.numel() else x.reshape(rows, 0) for x in inputs]

    def read(i: int, r0: int, r1: int) -> torch.Tensor:
        return views[i][r0:r1].to(dtype, copy=True)

    src = Source(read, len(inputs), rows, chunk_rows or rows, inputs[0].numel(), name, seed, dtype)
    return torch.cat(list(merge_chunks(p, src))).reshape(shape)
