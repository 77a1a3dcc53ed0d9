"""Translation metrics through sacrebleu: chrF++ (corpus level) and paired significance tests.

chrF++ is sacrebleu's ``CHRF(word_order=2)``: character n-grams up to 6 and word n-grams up
to 2, beta 2, whitespace ignored for the character n-grams. It is a *corpus* metric: the
n-gram statistics of all segments are summed, then one F-score is computed, exactly as
``sacrebleu REF -i HYP -m chrf --chrf-word-order 2`` does (the tests check this on real
outputs). lm-eval's ``chrf`` is plain chrF (word order 0), a different number.

Per segment, glotbench keeps the 24 sufficient statistics (so the corpus score of any
subset, and bootstrap resamples, are exact sums) and the sentence-level chrF++ for reading.

No extra tokenisation is applied for Chinese or Japanese (or Thai): like the sacrebleu CLI,
character n-grams are taken over the raw characters, which works for any script; the word
n-grams split on whitespace, so for unsegmented scripts they are clause-long "words" that
rarely match, and chrF++ there is close to chrF. The report's numbers are computed the same
way; segmenting first (e.g. with jieba or MeCab) would give different, non-comparable numbers.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Literal

import numpy as np

WORD_ORDER = 2
BOOTSTRAP_RESAMPLES = 1000


def _chrf():
    from sacrebleu.metrics import CHRF

    return CHRF(word_order=WORD_ORDER)


@functools.cache
def signature() -> str:
    """sacrebleu's signature of the metric (one reference), recorded with every score."""
    metric = _chrf()
    metric.corpus_score(["a"], [["a"]])  # sacrebleu signs a metric only once it has seen references
    return str(metric.get_signature())


def chrf_segment(hypothesis: str, reference: str) -> tuple[list[int], float]:
    """One segment's chrF++ statistics and its sentence-level chrF++ (0–100)."""
    metric = _chrf()
    stats = metric._extract_corpus_statistics([hypothesis], [[reference]])[0]
    return [int(x) for x in stats], float(metric._compute_score_from_stats(list(stats)).score)


def chrf_from_stats(stats: Sequence[Sequence[int]]) -> float:
    """Corpus chrF++ of segments given their statistics (the statistics are summed)."""
    total = np.asarray(stats, dtype=np.int64).sum(axis=0)
    return float(_chrf()._compute_score_from_stats([int(x) for x in total]).score)


def corpus_chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF++ straight through sacrebleu (the reference computation)."""
    return float(_chrf().corpus_score(list(hypotheses), [list(references)]).score)


def chrf_summary(stats: Sequence[Sequence[int]], seed: int, resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """Corpus chrF++ with n, a bootstrap standard error and a seeded 95 % percentile CI
    (segments resampled with replacement, statistics re-summed: the corpus metric itself is
    resampled, not a mean of sentence scores)."""
    x = np.asarray(stats, dtype=np.int64)
    n = len(x)
    if n == 0:
        return {"value": None, "n": 0, "stderr": None, "ci95": None}
    value = chrf_from_stats(x)
    if n == 1:
        return {"value": value, "n": 1, "stderr": None, "ci95": None, "signature": signature()}
    rng = np.random.default_rng(seed)
    metric = _chrf()
    scores = np.empty(resamples)
    for i in range(resamples):
        total = x[rng.integers(0, n, size=n)].sum(axis=0)
        scores[i] = metric._compute_score_from_stats([int(v) for v in total]).score
    lo, hi = np.quantile(scores, [0.025, 0.975])
    return {"value": value, "n": n, "stderr": float(scores.std(ddof=1)), "ci95": [float(lo), float(hi)],
            "signature": signature()}


@contextmanager
def _sacrebleu_seed(seed: int):
    # sacrebleu's paired tests read their seed from the environment (as the CLI does).
    old = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SACREBLEU_SEED", None)
        else:
            os.environ["SACREBLEU_SEED"] = old


def paired_test(baseline: Sequence[str], system: Sequence[str], references: Sequence[str],
                method: Literal["bs", "ar"] = "bs", seed: int = 12345, samples: int = 0) -> dict:
    """sacrebleu's paired significance test of ``system`` against ``baseline`` on chrF++:
    paired bootstrap resampling (``bs``, 1000 resamples by default) or approximate
    randomisation (``ar``, 10000 trials). Same numbers as ``sacrebleu REF -i BASE SYS -m chrf
    --chrf-word-order 2 --paired-bs`` (or ``--paired-ar``) with ``SACREBLEU_SEED=seed``."""
    from sacrebleu.significance import PairedTest

    if method not in ("bs", "ar"):
        raise ValueError(f"method must be 'bs' or 'ar', got {method!r}")
    if not len(baseline) == len(system) == len(references):
        raise ValueError(f"paired test needs aligned outputs: {len(baseline)} baseline, "
                         f"{len(system)} system, {len(references)} references")
    with _sacrebleu_seed(seed):
        test = PairedTest([("baseline", list(baseline)), ("system", list(system))],
                          {"chrf": _chrf()}, [list(references)], test_type=method, n_samples=samples)
        sigs, scores = test()
    (name,) = [k for k in scores if k != "System"]
    base, sys_ = scores[name]
    out = {"metric": "chrF++", "method": method, "n": len(references), "seed": seed,
           "samples": test.n_samples, "signature": str(sigs[name]),
           "baseline": base.score, "system": sys_.score, "delta": sys_.score - base.score,
           "p_value": sys_.p_value}
    if method == "bs":
        out["baseline_mean"], out["baseline_ci"] = base.mean, base.ci
        out["system_mean"], out["system_ci"] = sys_.mean, sys_.ci
    # sacrebleu hands back numpy scalars (its own JSON output trips over them): plain floats.
    out = {k: None if v is None else float(v) if isinstance(v, (float, np.floating)) else v
           for k, v in out.items()}
    if out["p_value"] is not None and math.isnan(out["p_value"]):
        out["p_value"] = None
    return out
