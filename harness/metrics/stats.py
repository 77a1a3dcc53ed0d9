"""Summary statistics: every number carries n, a standard error (ddof=1) and a seeded CI."""

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
    mean = float(x.mean())
    stderr = float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else None
    return {"value": mean, "n": n, "stderr": stderr, "ci95": bootstrap_ci(x, seed, resamples)}


def bootstrap_ci(x: np.ndarray, seed: int, resamples: int = BOOTSTRAP_RESAMPLES,
                 level: float = 0.95) -> list[float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(resamples, len(x)))
    means = x[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return [float(lo), float(hi)]


def averages(per_lang: dict[str, dict], metric: str, group=None) -> dict:
    """Macro (mean over languages) and micro (size-weighted) averages of one metric; with
    ``group`` (language → group name), the same per group under ``groups``."""
    out = _average(per_lang, metric)
    if group is not None:
        names: dict[str, dict[str, dict]] = {}
        for lang, v in per_lang.items():
            names.setdefault(group(lang), {})[lang] = v
        out["groups"] = {g: _average(cells, metric) for g, cells in sorted(names.items())}
    return out


def _average(per_lang: dict[str, dict], metric: str) -> dict:
    cells = [(v[metric], v["n"]) for v in per_lang.values() if v.get(metric) is not None]
    if not cells:
        return {"macro": None, "micro": None, "n": 0, "languages": 0}
    total = sum(n for _, n in cells)
    return {
        "macro": sum(v for v, _ in cells) / len(cells),
        "micro": sum(v * n for v, n in cells) / total,
        "n": total,
        "languages": len(cells),
    }
