"""The learned router: picks one teacher per prompt *before* generating, fitted on the scores
of prompts every teacher already answered (beyond the paper, which generates with every
teacher and keeps the argmax).

Model. The value of routing prompt p to teacher t is the best score among t's samples of p,
centred on the mean of that value over the teachers that answered p (so a prompt's
difficulty, shared by all teachers, does not enter the fit). The prediction is the
per-language prior (the teacher's mean centred value in the prompt's language: alone, it
picks the teacher with the best mean score per language) plus a ridge regression of the
residual on prompt features (:func:`features`): lengths, question mark, digits, non-ASCII,
code markers, dominant script, and a hashed bag of words (crc32 buckets, stable across
processes). The ridge strength is chosen by seeded k-fold cross-validation on the fit prompts,
by the mean score of the picks it would make; ``None`` (the prior alone) is a candidate, so
the features are used only when they help on held-out folds. A teacher that never answered a
language in the fit data is never picked for it; an unseen language falls back to the
pooled prior.

:func:`evaluate_router` measures on held-out prompts the reward it keeps and the generation
compute it saves (see its docstring).
"""

from __future__ import annotations

import math
import re
import unicodedata
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.metrics.stats import BOOTSTRAP_RESAMPLES, summarize
from glotbench.training.core.records import Candidate, Prompt

BUCKETS = 64
RIDGES: tuple[float | None, ...] = (0.1, 1.0, 10.0, 100.0, 1000.0, None)
"""Ridge strengths tried by cross-validation; None = the per-language prior alone."""
SCRIPTS = ("LATIN", "CYRILLIC", "GREEK", "CJK", "HANGUL", "HIRAGANA", "KATAKANA", "DEVANAGARI",
           "ARABIC", "HEBREW", "THAI")
CODE = re.compile(r"```|\bdef |\bimport |\breturn\b|[{};]\s*$|=>|\(\)|</?\w+>", re.MULTILINE)
WORD = re.compile(r"\w+")
DENSE = 8 + len(SCRIPTS) + 1


def features(prompt: Prompt, buckets: int = BUCKETS) -> np.ndarray:
    """The prompt's feature vector (dense features, dominant script one-hot, hashed words)."""
    text = prompt.text
    words = WORD.findall(text.casefold())
    letters = [ch for ch in text if ch.isalpha()]
    scripts = [next((s for s in SCRIPTS if unicodedata.name(ch, "").startswith(s)), "OTHER") for ch in letters]
    top = max(set(scripts), key=lambda s: (scripts.count(s), s)) if scripts else "OTHER"
    n = max(len(text), 1)
    dense = [math.log1p(len(text)), math.log1p(len(words)), math.log1p(text.count("\n")), float("?" in text),
             sum(ch.isdigit() for ch in text) / n, sum(ord(ch) > 127 for ch in text) / n,
             math.log1p(len(CODE.findall(text))), float(len(prompt.messages) > 1)]
    script = [float(top == s) for s in (*SCRIPTS, "OTHER")]
    bag = np.zeros(buckets)
    for w in set(words):
        bag[zlib.crc32(w.encode("utf-8")) % buckets] = 1.0
    return np.concatenate([dense, script, bag])


@dataclass(frozen=True)
class Router:
    """A fitted router; :meth:`pick` needs only the prompt (nothing is generated)."""

    teachers: tuple[str, ...]
    prior: dict[str, dict[str, float]]
    """language → teacher → mean centred value in the fit data (teachers that answered it)."""
    pooled: dict[str, float]
    """teacher → mean centred value over all fit prompts (for a language not seen in the fit)."""
    ridge: float | None
    """Chosen ridge strength; None = the prior alone."""
    weights: dict[str, list[float]]
    """teacher → coefficients on the standardised features (empty with the prior alone)."""
    mean: list[float]
    scale: list[float]
    buckets: int
    seed: int
    n_fit: int
    cv: dict[str, float]
    """ridge strength (as text) → mean centred value of its picks on the validation folds."""

    def predict(self, prompt: Prompt) -> dict[str, float]:
        """teacher → predicted centred value, for the teachers pickable in the prompt's language."""
        base = self.prior.get(prompt.language, self.pooled)
        if self.ridge is None:
            return dict(base)
        x = (features(prompt, self.buckets) - np.array(self.mean)) / np.array(self.scale)
        return {t: v + float(x @ np.array(self.weights[t])) for t, v in base.items()}

    def pick(self, prompt: Prompt) -> str:
        """The teacher to generate with (ties: the one listed first in ``teachers``)."""
        return _argmax(self.predict(prompt), self.teachers)

    def prior_pick(self, prompt: Prompt) -> str:
        """The per-language prior's pick alone (the baseline the features must beat)."""
        return _argmax(self.prior.get(prompt.language, self.pooled), self.teachers)

    def best_single(self, language: str) -> str:
        """The teacher with the best pooled value among those pickable in ``language``."""
        base = self.prior.get(language, self.pooled)
        return _argmax({t: self.pooled[t] for t in base}, self.teachers)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping) -> Router:
        return cls(**{**data, "teachers": tuple(data["teachers"])})


def _argmax(values: Mapping[str, float], order: Sequence[str]) -> str:
    return max(sorted(values, key=order.index), key=lambda t: values[t])


def teacher_values(candidates: Sequence[Candidate]) -> dict[str, dict[str, float]]:
    """prompt_id → teacher → the best score among the teacher's scored samples of the prompt."""
    out: dict[str, dict[str, float]] = {}
    for c in candidates:
        if c.score is not None:
            row = out.setdefault(c.prompt_id, {})
            row[c.teacher] = max(row.get(c.teacher, -math.inf), c.score)
    return out


def _by_id(prompts: Mapping[str, Prompt] | Sequence[Prompt]) -> Mapping[str, Prompt]:
    return prompts if isinstance(prompts, Mapping) else {p.prompt_id: p for p in prompts}


def fit_router(prompts: Mapping[str, Prompt] | Sequence[Prompt], candidates: Sequence[Candidate], seed: int, *,
               buckets: int = BUCKETS, ridges: Sequence[float | None] = RIDGES, folds: int = 5) -> Router:
    """Fit on the prompts (by id, or a sequence) that have scored candidates (see the module docstring)."""
    prompts = _by_id(prompts)
    values = teacher_values(candidates)
    pids = [p for p in prompts if values.get(p)]
    if not pids:
        raise GlotbenchError(f"cannot fit a router: none of the {len(prompts)} fit prompts has a scored candidate",
                             "score the candidates first (scorer:) or give the router more prompts (routing.fit)")
    teachers = tuple(dict.fromkeys(c.teacher for c in candidates))
    x = np.stack([features(prompts[p], buckets) for p in pids])
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    x = (x - mean) / scale
    langs = [prompts[p].language for p in pids]
    # y[i, t]: centred value; NaN where teacher t did not answer prompt i.
    y = np.array([[values[p].get(t, math.nan) for t in teachers] for p in pids])
    y = y - np.nanmean(y, axis=1, keepdims=True)
    order = np.random.default_rng(seed).permutation(len(pids))
    k = min(folds, len(pids))
    cv: dict[str, float] = {}
    if k >= 2:
        for ridge in ridges:
            got = []
            for f in range(k):
                val = order[f::k]
                train = np.setdiff1d(order, val)
                prior, pooled, w = _fit(x[train], y[train], [langs[i] for i in train], teachers, ridge)
                for i in val:
                    pred = _predict(x[i], langs[i], prior, pooled, w, teachers)
                    got.append(y[i, teachers.index(_argmax(pred, teachers))])
            cv[str(ridge)] = float(np.nanmean(got))
    # Best validation value; ties go to the stronger ridge (None, the prior alone, last in RIDGES).
    ridge = max(reversed(list(ridges)), key=lambda r: cv.get(str(r), -math.inf)) if cv else None
    prior, pooled, w = _fit(x, y, langs, teachers, ridge)
    return Router(teachers=teachers, prior=prior, pooled=pooled, ridge=ridge,
                  weights={t: [float(v) for v in w[:, j]] for j, t in enumerate(teachers)} if w is not None else {},
                  mean=[float(v) for v in mean], scale=[float(v) for v in scale], buckets=buckets, seed=seed,
                  n_fit=len(pids), cv=cv)


def _fit(x: np.ndarray, y: np.ndarray, langs: list[str], teachers: tuple[str, ...], ridge: float | None):
    """(prior, pooled, weights (features, teachers) or None) from centred values ``y``."""
    prior: dict[str, dict[str, float]] = {}
    for lang in sorted(set(langs)):
        rows = y[[i for i, g in enumerate(langs) if g == lang]]
        prior[lang] = {t: float(np.nanmean(rows[:, j])) for j, t in enumerate(teachers)
                       if not np.isnan(rows[:, j]).all()}
    pooled = {t: float(np.nanmean(y[:, j])) for j, t in enumerate(teachers) if not np.isnan(y[:, j]).all()}
    if ridge is None:
        return prior, pooled, None
    w = np.zeros((x.shape[1], len(teachers)))
    for j, t in enumerate(teachers):
        seen = ~np.isnan(y[:, j])
        if not seen.any():
            continue
        r = y[seen, j] - np.array([prior[g][t] for g, s in zip(langs, seen) if s])
        xs = x[seen]
        w[:, j] = np.linalg.solve(xs.T @ xs + ridge * np.eye(x.shape[1]), xs.T @ r)
    return prior, pooled, w


def _predict(x, lang, prior, pooled, w, teachers) -> dict[str, float]:
    base = prior.get(lang, pooled)
    return {t: v + (float(x @ w[:, teachers.index(t)]) if w is not None else 0.0) for t, v in base.items()}


def evaluate_router(router: Router, prompts: Mapping[str, Prompt] | Sequence[Prompt], candidates: Sequence[Candidate], *,
                    seed: int = 0, tokens: Mapping[tuple[str, str, int], int] | None = None) -> dict:
    """Reward kept and compute saved by ``router`` on held-out ``prompts`` (every teacher answered).

    Evaluated: the prompts where every teacher pickable in their language has a scored
    candidate (the others are counted under ``skipped``). A policy's value on a prompt is the
    best score among its teacher's samples. Policies: ``router``, ``prior`` (per-language prior
    alone), ``best_single`` (the best teacher overall), ``random`` (a uniform pick: the mean
    over the teachers), ``oracle`` (the argmax of the full arbitrage). Each mean carries n,
    stderr and a seeded bootstrap CI; ``vs_*`` are paired differences (router − other).
    ``oracle_gain_kept`` = (router − random) / (oracle − random), ratio of means with a seeded
    bootstrap CI over prompts: scale- and shift-free, so it also reads reward-model logits;
    ``reward_kept`` = router / oracle, defined only when no score is negative. Compute: the
    generations avoided (``1 − Σ K(pick) / Σ K(all teachers)``, K = samples per teacher), and
    the same in completion tokens when ``tokens`` maps (prompt_id, teacher, sample) → count,
    else in completion characters (a proxy, labelled so)."""
    prompts = _by_id(prompts)
    values = teacher_values(candidates)
    rows, skipped = [], 0
    for pid, prompt in prompts.items():
        pickable = router.prior.get(prompt.language, router.pooled)
        v = values.get(pid, {})
        if not pickable or any(t not in v for t in pickable):
            skipped += 1
            continue
        picks = {"router": router.pick(prompt), "prior": router.prior_pick(prompt),
                 "best_single": router.best_single(prompt.language)}
        rows.append((pid, {**{k: v[t] for k, t in picks.items()}, "random": float(np.mean([v[t] for t in pickable])),
                           "oracle": max(v[t] for t in pickable)}, picks["router"], set(pickable)))
    if not rows:
        raise GlotbenchError(f"no held-out prompt to evaluate the router on ({skipped} lack a teacher's score)",
                             "give the router a holdout share every teacher answers (routing.holdout)")
    table = {k: np.array([r[1][k] for r in rows]) for k in ("router", "prior", "best_single", "random", "oracle")}
    out: dict = {"prompts": len(rows), "skipped": skipped, "seed": seed,
                 "mean": {k: summarize(v, seed) for k, v in table.items()},
                 **{f"vs_{k}": summarize(table["router"] - table[k], seed)
                    for k in ("oracle", "best_single", "prior", "random")},
                 "agreement_with_oracle": float(np.mean(table["router"] == table["oracle"]))}
    for k in ("router", "prior", "best_single"):
        out.setdefault("oracle_gain_kept", {})[k] = _gain_kept(table[k], table["random"], table["oracle"], seed)
    nonneg = all((table[k] >= 0).all() for k in table)
    out["reward_kept"] = (float(table["router"].mean() / table["oracle"].mean())
                          if nonneg and table["oracle"].mean() > 0 else None)
    if out["reward_kept"] is None:
        out["reward_kept_note"] = "undefined: some scores are negative (see oracle_gain_kept)"
    out["compute"] = _compute(rows, candidates, tokens)
    return out


def _gain_kept(policy: np.ndarray, random: np.ndarray, oracle: np.ndarray, seed: int) -> dict:
    num, den = policy - random, oracle - random
    if den.mean() <= 0:
        return {"value": None, "note": "the oracle does no better than a random pick"}
    idx = np.random.default_rng(seed).integers(0, len(num), size=(BOOTSTRAP_RESAMPLES, len(num)))
    n, d = num[idx].mean(axis=1), den[idx].mean(axis=1)
    ratios = n[d > 0] / d[d > 0]
    lo, hi = np.quantile(ratios, [0.025, 0.975])
    return {"value": float(num.mean() / den.mean()), "n": len(num), "ci95": [float(lo), float(hi)]}


def _compute(rows: list, candidates: Sequence[Candidate], tokens) -> dict:
    size: dict[tuple[str, str], list[float]] = {}
    for c in candidates:
        amount = tokens[(c.prompt_id, c.teacher, c.sample)] if tokens is not None else len(c.completion)
        cell = size.setdefault((c.prompt_id, c.teacher), [0, 0])
        cell[0] += 1
        cell[1] += amount
    full = [sum(size[(pid, t)][k] for t in pickable) for pid, _, _, pickable in rows for k in (0, 1)]
    used = [size[(pid, pick)][k] for pid, _, pick, _ in rows for k in (0, 1)]
    gens_full, amount_full = sum(full[0::2]), sum(full[1::2])
    gens_used, amount_used = sum(used[0::2]), sum(used[1::2])
    unit = "tokens" if tokens is not None else "completion_chars"
    return {"generations_all_teachers": gens_full, "generations_router": gens_used,
            "generations_saved": 1 - gens_used / gens_full,
            f"{unit}_all_teachers": amount_full, f"{unit}_router": amount_used,
            f"{unit}_saved": 1 - amount_used / amount_full if amount_full else None}
