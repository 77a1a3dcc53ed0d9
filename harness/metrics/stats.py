"""Summary statistics: every number carries n, a standard error (ddof=1) and a seeded CI.

Failures are data: a summary whose bootstrap has no finite replicate says so (``ci95``
None and ``ci95_note``) rather than crashing or printing NaN bounds, and an average that
leaves out a language without a value names it under ``missing``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 1000


def summarize(values: Sequence[float], seed: int, resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """Mean, n, stderr (sample std with ddof=1 over sqrt(n), as lm-eval) and a 95 %
    percentile bootstrap CI from ``resamples`` resamples drawn with ``seed``."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return {"value": None, "n": 0, "stderr": None, "ci95": None}
    with np.errstate(invalid="ignore", over="ignore"):
        mean = float(x.mean())
        stderr = float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else None
    ci = bootstrap_ci(x, seed, resamples)
    out = {"value": mean, "n": n, "stderr": stderr, "ci95": ci}
    if ci is None:
        bad = int((~np.isfinite(x)).sum())
        out["ci95_note"] = (f"no finite bootstrap replicate ({bad} of {n} values are not finite)" if bad
                            else "no finite bootstrap replicate")
    return out


def bootstrap_ci(x: np.ndarray, seed: int, resamples: int = BOOTSTRAP_RESAMPLES,
                 level: float = 0.95) -> list[float] | None:
    """Percentile bootstrap CI of the mean; None when any replicate is not finite (a NaN or
    inf among the values): percentiles of the finite replicates alone would be biased
    towards the resamples that happened to miss the bad values."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(resamples, len(x)))
    with np.errstate(invalid="ignore", over="ignore"):
        means = x[idx].mean(axis=1)
    if not np.isfinite(means).all():
        return None
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return [float(lo), float(hi)]


def averages(per_lang: dict[str, dict], metric: str, group=None) -> dict:
    """Macro (mean over languages) and micro (size-weighted) averages of one metric; with
    ``group`` (language → group name), the same per group under ``groups``. A language
    whose value is missing or not finite is left out and named under ``missing`` (the key is
    absent when none is)."""
    out = _average(per_lang, metric)
    if group is not None:
        names: dict[str, dict[str, dict]] = {}
        for lang, v in per_lang.items():
            names.setdefault(group(lang), {})[lang] = v
        out["groups"] = {g: _average(cells, metric) for g, cells in sorted(names.items())}
    return out


def _usable(value) -> bool:
    return value is not None and math.isfinite(value)


def _average(per_lang: dict[str, dict], metric: str) -> dict:
    cells = [(v[metric], v["n"]) for v in per_lang.values() if _usable(v.get(metric))]
    missing = [lang for lang, v in per_lang.items() if not _usable(v.get(metric))]
    if not cells:
        out = {"macro": None, "micro": None, "n": 0, "languages": 0}
    else:
        total = sum(n for _, n in cells)
        out = {
            "macro": sum(v for v, _ in cells) / len(cells),
            "micro": sum(v * n for v, n in cells) / total if total else None,
            "n": total,
            "languages": len(cells),
        }
    if missing:
        out["missing"] = missing
    return out
