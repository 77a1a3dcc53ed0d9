"""From paired comparisons to verdicts, for one task metric: each language's margin (the policy's,
else the minimum detectable effect), its one-sided tests, Benjamini–Hochberg across languages,
the stratified pooled test, and the rules that keep a verdict honest (no pass on a margin as
wide as the metric's range; dropped bootstrap replicates named)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.gate.paired_stats import (
    DeltaTest,
    benjamini_hochberg,
    delta_test,
    mde,
)
from glotbench.harness.gate.policy import Policy

VERDICT_RANK = {"pass": 0, "inconclusive": 1, "regression": 2}


@dataclass(frozen=True)
class Cell:
    """One language's paired comparison before margins and multiplicity are applied."""

    n: int
    baseline: float
    candidate: float
    replicates: np.ndarray
    se: float
    """Paired SE of Δ from the data (0 for identical runs)."""
    se_floor: float
    extra: dict


# The largest drop a metric can show (Δ = candidate − baseline): a margin this wide passes
# any candidate, so it is not a test. Default margins get that wide with a handful of items
# (the MDE floor at n = 2 is ~1.08 for an accuracy).
LARGEST_DROP = {"accuracy": 1.0, "win_rate": 0.5, "chrf": 100.0}


def _no_pass_beyond_range(v: dict, kind: str, where: str, warnings: list[str]) -> None:
    """A pass whose margin is at least the largest possible drop is no evidence: inconclusive."""
    largest = LARGEST_DROP.get(kind)
    if largest is not None and v["margin"] >= largest and v["verdict"] == "pass":
        v["verdict"] = "inconclusive"
        v["margin_too_wide"] = True
        warnings.append(f"{where}: margin {v['margin']:.3g} ({v['margin_source']}) is at least the largest "
                        f"possible drop ({largest:g}): too few items to pass it; inconclusive")


def family(cells: dict[str, Cell], fixed: float | None, policy: Policy, where: str,
            warnings: list[str]) -> dict:
    """Margins, tests, BH across languages, pooled test and verdict of one task metric."""
    alpha, out, ses = policy.alpha, {}, []
    for lang, cell in cells.items():
        se, source = (cell.se, "mde") if cell.se > 1e-12 else (cell.se_floor, "mde-floor")
        margin, source = (fixed, "policy") if fixed is not None else (mde(se, alpha, policy.power), source)
        ses.append(se)
        t = delta_test(cell.candidate - cell.baseline, cell.replicates, margin, alpha)
        _name_dropped(t, f"{where}/{lang}", warnings)
        out[lang] = {"n": cell.n, "baseline": cell.baseline, "candidate": cell.candidate, "delta": t.delta,
                     "ci": None if t.ci is None else list(t.ci), "se": se, "margin": margin,
                     "margin_source": source, "p_noninferior": t.p_noninferior, "p_regression": t.p_regression,
                     "replicates": t.resamples, "replicates_dropped": t.dropped, **cell.extra}
    for key in ("p_noninferior", "p_regression"):
        for lang, p in zip(out, benjamini_hochberg([v[key] for v in out.values()])):
            out[lang][f"{key}_bh"] = p
    kind = next(iter(cells.values())).extra["kind"]
    for lang, v in out.items():
        v["verdict"] = ("regression" if v["p_regression_bh"] < alpha
                        else "pass" if v["p_noninferior_bh"] < alpha else "inconclusive")
        _no_pass_beyond_range(v, kind, f"{where}/{lang}", warnings)
    reps = np.stack([c.replicates for c in cells.values()])  # stratified: languages resampled apart
    valid = np.isfinite(reps)
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled_reps = np.where(valid, reps, 0).sum(axis=0) / valid.sum(axis=0)
    se = math.sqrt(sum(s * s for s in ses)) / len(ses)
    margin = fixed if fixed is not None else mde(se, alpha, policy.power)
    t = delta_test(float(np.mean([v["delta"] for v in out.values()])), pooled_reps, margin, alpha)
    _name_dropped(t, f"{where}/pooled", warnings)
    pooled = {"n": sum(c.n for c in cells.values()), "n_languages": len(cells),
              "baseline": float(np.mean([c.baseline for c in cells.values()])),
              "candidate": float(np.mean([c.candidate for c in cells.values()])),
              "delta": t.delta, "ci": None if t.ci is None else list(t.ci), "se": se, "margin": margin,
              "margin_source": "policy" if fixed is not None else "mde",
              "p_noninferior": t.p_noninferior, "p_regression": t.p_regression,
              "replicates": t.resamples, "replicates_dropped": t.dropped,
              "verdict": "regression" if t.p_regression < alpha else "pass" if t.p_noninferior < alpha
              else "inconclusive"}
    _no_pass_beyond_range(pooled, kind, f"{where}/pooled", warnings)
    if pooled["verdict"] == "regression" or any(v["verdict"] == "regression" for v in out.values()):
        verdict = "regression"
    else:
        verdict = "pass" if pooled["verdict"] == "pass" else "inconclusive"
    return {"kind": kind, "verdict": verdict, "pooled": pooled, "languages": out}


def _name_dropped(t: DeltaTest, where: str, warnings: list[str]) -> None:
    """Resamples left out of a test are said, never silent."""
    total = t.resamples + t.dropped
    if t.resamples == 0:
        warnings.append(f"{where}: no finite bootstrap replicate among {total} resamples (none drew a valid "
                        "verdict): both p-values 1, inconclusive")
    elif t.dropped:
        warnings.append(f"{where}: {t.dropped} of {total} bootstrap resamples had no finite Δ (no valid "
                        "verdict drawn) and were left out of the test")


def policy_margins(policy: Policy, task: str, metrics: list[str]) -> dict[str, float | None]:
    """The policy's margin per gated metric (a plain number is the first metric's)."""
    m = policy.margins.get(task)
    if not isinstance(m, dict):
        return {name: m if k == 0 else None for k, name in enumerate(metrics)}
    unknown = [name for name in m if name not in metrics]
    if unknown:
        raise GlotbenchError(f"policy {policy.source}: margins for {task} name {', '.join(unknown)}, "
                             f"not gated (gated: {', '.join(metrics)})", "name a gated metric")
    return {name: m.get(name) for name in metrics}
