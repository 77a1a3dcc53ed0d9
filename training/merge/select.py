"""Exact k-th largest magnitude of a tensor that only exists as a stream of chunks.

TIES keeps the ``k = density × numel`` largest entries of each task vector. A whole-tensor
``argsort`` (mergekit) or ``kthvalue`` needs the full tensor plus a sorted copy: 2 GB for
a 262M-entry embedding in float32. Here the threshold is found by radix selection over the
bit patterns of the magnitudes, which for non-negative IEEE floats order exactly like the
values: each pass histograms the next 16 bits of the entries that still match the prefix
found so far (2 passes for float32, 4 for float64), so memory is one chunk plus a 65,536-bin
histogram, and the result is independent of how the stream is chunked.

Exactly ``k`` entries survive. Magnitudes do tie at the threshold — bfloat16 checkpoints
have few distinct differences — and ties are broken by position (the first entries in
row-major order are kept), which like everything else here is independent of chunking.
mergekit breaks them by the order of torch's unstable ``argsort``, so on tied inputs the two
keep equally many entries but not always the same ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

_BITS = 16
_BINS = 1 << _BITS


def magnitude_bits(x: torch.Tensor) -> torch.Tensor:
    """|x| as integers that order like the magnitudes (float32 → int32 bits, float64 → int64)."""
    mag = x.abs()
    if mag.dtype == torch.float64:
        return mag.view(torch.int64)
    return mag.to(torch.float32).view(torch.int32)


def kth_largest_bits(chunks: Callable[[], Iterable[torch.Tensor]], k: int, width: int) -> tuple[int, int]:
    """Bit pattern of the k-th largest magnitude (1-based) over all chunks, and how many
    entries equal to it belong to the top k (the rest of the top k is strictly larger).

    ``chunks`` is called once per pass and must yield the same values each time (as
    :func:`magnitude_bits` outputs); ``width`` is 32 or 64.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    prefix = 0
    remaining = k
    for p in range(width // _BITS):
        shift = width - _BITS * (p + 1)
        hist = torch.zeros(_BINS, dtype=torch.int64)
        for bits in chunks():
            b = bits.reshape(-1)
            if p:
                b = b[(b >> (shift + _BITS)) == prefix]
            hist += torch.bincount((b >> shift) & (_BINS - 1), minlength=_BINS).cpu()
        # Walk bins from the largest down until the k-th entry is inside one.
        above = torch.flip(hist, [0]).cumsum(0)
        pos = int(torch.searchsorted(above, torch.tensor(remaining)))
        if pos >= _BINS:
            raise ValueError(f"k={k} is larger than the number of entries")
        digit = _BINS - 1 - pos
        remaining -= int(above[pos - 1]) if pos else 0
        prefix = (prefix << _BITS) | digit
    return prefix, remaining


class TopK:
    """Streaming mask of the top-k magnitudes: strictly larger than the threshold, plus the
    first ``take_equal`` entries equal to it in stream order. Feed chunks in order."""

    def __init__(self, bits: int, take_equal: int):
        self.bits, self.take_equal, self.seen_equal = bits, take_equal, 0

    def mask(self, mag_bits: torch.Tensor) -> torch.Tensor:
        if self.seen_equal >= self.take_equal:
            return mag_bits > self.bits
        keep = mag_bits >= self.bits
        equal = mag_bits == self.bits
        n_equal = int(equal.sum())
        if self.seen_equal + n_equal > self.take_equal:  # only part of the tied entries belong
            rank = equal.reshape(-1).cumsum(0).reshape(equal.shape) + self.seen_equal
            keep &= ~equal | (rank <= self.take_equal)
        self.seen_equal += n_equal
        return keep
