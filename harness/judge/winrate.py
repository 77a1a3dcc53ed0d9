"""Statistics of pairwise LLM-judge comparisons, as pure seeded functions.

- :func:`summarize_pairwise` / :func:`per_language`: win-rates of model A against model B
  from judge verdicts, as the Aya Expanse report states them (wins / (wins + ties + losses));
  invalid verdicts are counted and reported but never in a denominator. The bootstrap
  resamples *prompts*: both presentation orders of a prompt stay together, because they
  share the prompt's difficulty and the two answers being compared.
- :func:`preference_win_rates`: AlpacaEval 2.0's leaderboard numbers from soft preferences.
- :func:`bradley_terry`: Elo-scale strengths for more than two models (Hunter's MM algorithm).

Nothing here calls a judge: verdicts arrive already mapped back from positions to models.
Rates are fractions in [0, 1], except AlpacaEval's, which are percentages as published.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from glotbench.harness.metrics.stats import BOOTSTRAP_RESAMPLES

ORDERS = ("ab", "ba")
OUTCOMES = ("a", "b", "tie", "invalid")
MATCH_OUTCOMES = ("i", "j", "tie")
LEVEL = 0.95
ELO_SCALE = 400 / math.log(10)
"""Elo points per unit of natural-log strength: P(i beats j) = 1 / (1 + 10^((s_j - s_i) / 400))."""
_CHUNK = 128
"""Bootstrap resamples drawn per block, bounding memory on pooled multilingual runs."""


class BradleyTerryError(ValueError):
    """The data admit no Bradley–Terry fit (no maximum of the likelihood, or no convergence)."""


@dataclass(frozen=True)
class Judgment:
    """One judge verdict on one prompt in one presentation order."""

    prompt_id: str
    """The prompt compared; ``(lang, prompt_id)`` is the bootstrap cluster."""
    lang: str
    order: Literal["ab", "ba"]
    """Which model was shown as "Answer (A)": ``ab`` = model A first, ``ba`` = model B first."""
    outcome: Literal["a", "b", "tie", "invalid"]
    """The winning *model* (not position), ``tie``, or ``invalid`` for an unparseable verdict."""

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ValueError(f"Judgment.order must be one of {ORDERS}, got {self.order!r}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"Judgment.outcome must be one of {OUTCOMES}, got {self.outcome!r}")


@dataclass(frozen=True)
class Match:
    """One game between two models, for :func:`bradley_terry`."""

    model_i: str
    model_j: str
    outcome: Literal["i", "j", "tie"]
    """Winner; a tie counts as half a win for each model."""
    prompt_id: str | None = None
    """Bootstrap cluster: matches sharing a prompt id are resampled together; None = alone."""

    def __post_init__(self) -> None:
        if self.outcome not in MATCH_OUTCOMES:
            raise ValueError(f"Match.outcome must be one of {MATCH_OUTCOMES}, got {self.outcome!r}")
        if self.model_i == self.model_j:
            raise ValueError(f"a match needs two different models, got {self.model_i!r} twice")


def summarize_pairwise(judgments: Sequence[Judgment], seed: int,
                       resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """Counts, rates, prompt-clustered bootstrap CIs and position bias of model A vs model B.

    ``n`` (= wins + ties + losses) is the denominator of every rate, so that
    :func:`glotbench.harness.metrics.stats.averages` applies; ``invalid`` and ``invalid_rate`` (over
    ``n_judgments``) report what it leaves out. ``*_ci95`` are 95 % percentile intervals and
    ``*_stderr`` the bootstrap standard deviation (ddof=1), from ``resamples`` resamples of
    prompts drawn with ``numpy.random.default_rng(seed)``; resamples that draw no valid
    verdict are left out of both. Position bias: ``order_flip_rate`` is the fraction of the
    ``n_paired_prompts`` prompts with a valid verdict in both orders whose two verdicts differ;
    ``first_position_win_rate`` the fraction of valid verdicts won by the model shown first.
    Undefined values are None.
    """
    table = by_prompt(judgments)
    counts = prompt_counts(table)
    wins, ties, losses = (int(c) for c in counts.sum(axis=0))
    n = wins + ties + losses
    invalid = len(judgments) - n
    out: dict = {
        "n_prompts": len(table), "n_judgments": len(judgments), "n": n,
        "wins": wins, "ties": ties, "losses": losses, "invalid": invalid,
        "invalid_rate": invalid / len(judgments) if judgments else None,
        "win_rate": wins / n if n else None,
        "win_rate_ties_half": (wins + 0.5 * ties) / n if n else None,
        "tie_rate": ties / n if n else None,
        "loss_rate": losses / n if n else None,
    }
    rates = bootstrap_rates(counts, np.random.default_rng(seed), resamples) if n else None
    for k, name in enumerate(("win_rate", "win_rate_ties_half")):
        ci, se = _interval(rates[:, k]) if rates is not None else (None, None)
        out[f"{name}_ci95"], out[f"{name}_stderr"] = ci, se
    out.update(_position_bias(table))
    out.update(seed=seed, resamples=resamples)
    return out


def per_language(judgments: Sequence[Judgment], seed: int,
                 resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """:func:`summarize_pairwise` per language, their macro average, and the pooled summary.

    ``macro`` averages ``win_rate`` and ``win_rate_ties_half`` over the languages that have a
    valid verdict (the others are listed under ``languages_excluded``); its CI and stderr come
    from a stratified bootstrap, prompts resampled within each language. ``pooled`` clusters
    on ``(lang, prompt_id)``: translations of one prompt count as different prompts.
    """
    by_lang: dict[str, list[Judgment]] = {}
    for j in judgments:
        by_lang.setdefault(j.lang, []).append(j)
    langs = sorted(by_lang)
    summaries = {lang: summarize_pairwise(by_lang[lang], seed, resamples) for lang in langs}
    kept = [lang for lang in langs if summaries[lang]["n"]]
    macro: dict = {"n_languages": len(kept),
                   "languages_excluded": [lang for lang in langs if lang not in kept]}
    rng = np.random.default_rng(seed)
    boot = [bootstrap_rates(prompt_counts(by_prompt(by_lang[lang])), rng, resamples)
            for lang in kept]
    for k, name in enumerate(("win_rate", "win_rate_ties_half")):
        macro[name] = sum(summaries[lang][name] for lang in kept) / len(kept) if kept else None
        ci, se = (None, None)
        if kept:
            per_lang = np.stack([b[:, k] for b in boot])  # (languages, resamples)
            valid = ~np.isnan(per_lang)
            with np.errstate(invalid="ignore"):
                means = np.where(valid, per_lang, 0).sum(axis=0) / valid.sum(axis=0)
            ci, se = _interval(means)
        macro[f"{name}_ci95"], macro[f"{name}_stderr"] = ci, se
    return {"languages": summaries, "macro": macro,
            "pooled": summarize_pairwise(judgments, seed, resamples)}


def preference_win_rates(preferences: Sequence[float | None]) -> dict:
    """AlpacaEval 2.0 leaderboard numbers from preferences p in [1, 2] (1 = baseline better,
    2 = model better, 1.5 = draw), reproducing ``alpaca_eval.metrics.get_winrate``:

    ``win_rate`` = 100·mean(p − 1); ``standard_error`` = 100·sem(p − 1) (std with ddof=1 over
    sqrt(n), pandas' ``sem``); ``n_wins`` / ``n_wins_base`` count p − 1 > 0.5 / < 0.5;
    ``n_draws`` counts p == 1.5 *exactly* (AlpacaEval sets exactly 1.5 when both outputs are
    identical; a judge's soft preference near 1.5 is a win for one side);
    ``discrete_win_rate`` = 100·(n_wins + ½·n_draws)/n_total. Missing preferences (None or
    NaN) leave every count, n_total included, as AlpacaEval drops them; they are reported as
    ``n_missing``. A 0 is AlpacaEval's legacy code for a draw and is read as 1.5. Values
    outside [1, 2] raise (AlpacaEval drops them silently).
    """
    p = np.array([math.nan if x is None else float(x) for x in preferences], dtype=float)
    p[p == 0] = 1.5
    missing = np.isnan(p)
    bad = p[~missing & ((p < 1) | (p > 2))]
    if len(bad):
        raise ValueError(f"preferences must lie in [1, 2] (or be 0, None, NaN); got {bad[:5]}")
    p = p[~missing]
    # p − 1 is exact for p in [1, 2] (Sterbenz), so the comparisons with 0.5 lose nothing.
    q = p - 1
    n = len(q)
    n_wins, n_base, n_draws = int((q > 0.5).sum()), int((q < 0.5).sum()), int((p == 1.5).sum())
    return {
        "win_rate": float(100 * q.mean()) if n else None,
        "standard_error": float(100 * q.std(ddof=1) / math.sqrt(n)) if n > 1 else None,
        "n_wins": n_wins, "n_wins_base": n_base, "n_draws": n_draws, "n_total": n,
        "n_missing": int(missing.sum()),
        "discrete_win_rate": 100 * (n_wins + 0.5 * n_draws) / n if n else None,
    }


def bradley_terry(matches: Sequence[Match | tuple], seed: int, resamples: int = 200,
                  anchor: str | None = None) -> dict:
    """Bradley–Terry strengths on the Elo scale, fitted by Hunter's (2004) MM algorithm.

    ``matches`` are :class:`Match` records or ``(model_i, model_j, outcome[, prompt_id])``
    tuples; a tie is half a win for each side. ``scores`` are 400·log10 of the strengths, so
    that P(i beats j) = :func:`elo_win_probability` (s_i, s_j), shifted to mean 0 over the
    models, or so that ``anchor`` scores 0. ``ci95`` / ``stderr`` come from ``resamples``
    bootstrap resamples of prompts (matches sharing a ``prompt_id`` together; a match without
    one alone) with ``numpy.random.default_rng(seed)``; a resample in which the maximum
    likelihood does not exist (some set of models never won or tied against the rest) is
    skipped and counted in ``resamples_skipped``. Raises :class:`BradleyTerryError` if the full
    data have no maximum (or there are no matches at all).
    """
    ms = [m if isinstance(m, Match) else Match(*m) for m in matches]
    if not ms:
        raise BradleyTerryError("no valid judgment to fit")
    models = sorted({m.model_i for m in ms} | {m.model_j for m in ms})
    if anchor is not None and anchor not in models:
        raise ValueError(f"anchor {anchor!r} is not one of the models {models}")
    index = {name: k for k, name in enumerate(models)}
    of = [(0, m.prompt_id) if m.prompt_id is not None else (1, str(i)) for i, m in enumerate(ms)]
    keys = sorted(set(of))
    cluster = {key: g for g, key in enumerate(keys)}
    # wins[g, i, j]: games of cluster g won by i against j, ties counting half to each side.
    wins = np.zeros((len(keys), len(models), len(models)))
    for m, key in zip(ms, of):
        g = cluster[key]
        a, b = index[m.model_i], index[m.model_j]
        share = {"i": 1.0, "j": 0.0, "tie": 0.5}[m.outcome]
        wins[g, a, b] += share
        wins[g, b, a] += 1 - share
    point = _fit_mm(wins.sum(axis=0))
    if point is None:
        raise BradleyTerryError("no Bradley–Terry maximum: some set of models never won or tied "
                         f"against the others (models {models})")
    rng, draws, skipped = np.random.default_rng(seed), [], 0
    for weights in _resample_counts(len(keys), rng, resamples):
        for w in weights:
            fit = _fit_mm(np.tensordot(w, wins, axes=1))
            if fit is None:
                skipped += 1
            else:
                draws.append(_elo(fit, models, anchor))
    boot = np.array(draws).reshape(-1, len(models))
    intervals = [_interval(boot[:, k]) for k in range(len(models))]
    return {
        "models": models, "anchor": anchor,
        "scores": dict(zip(models, (float(s) for s in _elo(point, models, anchor)))),
        "ci95": {name: iv[0] for name, iv in zip(models, intervals)},
        "stderr": {name: iv[1] for name, iv in zip(models, intervals)},
        "n_matches": len(ms), "n_clusters": len(keys),
        "seed": seed, "resamples": resamples, "resamples_skipped": skipped,
    }


def elo_win_probability(score_i: float, score_j: float) -> float:
    """Probability that i beats j (ties counting half) under Bradley–Terry on the Elo scale."""
    return 1 / (1 + 10 ** ((score_j - score_i) / 400))


def by_prompt(judgments: Sequence[Judgment]) -> dict[tuple[str, str], dict[str, str]]:
    """(language, prompt id) → {order: outcome}; two verdicts for one prompt and order are refused."""
    table: dict[tuple[str, str], dict[str, str]] = {}
    for j in judgments:
        orders = table.setdefault((j.lang, j.prompt_id), {})
        if j.order in orders:
            raise ValueError(f"two verdicts for prompt {j.prompt_id!r} ({j.lang}) in order "
                             f"{j.order!r}; keep one verdict per prompt and order")
        orders[j.order] = j.outcome
    return dict(sorted(table.items()))  # sorted: the bootstrap ignores the input order


def prompt_counts(table: dict[tuple[str, str], dict[str, str]]) -> np.ndarray:
    """(prompts, 3) array of valid wins, ties and losses of model A per prompt."""
    cols = ("a", "tie", "b")
    return np.array([[sum(o == c for o in orders.values()) for c in cols]
                     for orders in table.values()], dtype=float).reshape(-1, 3)


def _position_bias(table: dict[tuple[str, str], dict[str, str]]) -> dict:
    valid = [(order, o) for orders in table.values() for order, o in orders.items()
             if o != "invalid"]
    first = sum((order, o) in (("ab", "a"), ("ba", "b")) for order, o in valid)
    paired = [orders for orders in table.values()
              if all(orders.get(order, "invalid") != "invalid" for order in ORDERS)]
    flips = sum(orders["ab"] != orders["ba"] for orders in paired)
    return {"n_paired_prompts": len(paired),
            "order_flip_rate": flips / len(paired) if paired else None,
            "first_position_win_rate": first / len(valid) if valid else None}


def _resample_counts(n: int, rng: np.random.Generator, resamples: int) -> Iterator[np.ndarray]:
    """How often each of ``n`` clusters is drawn in each resample, in blocks of resamples."""
    p = np.full(n, 1.0 / n)
    for start in range(0, resamples, _CHUNK):
        yield rng.multinomial(n, p, size=min(_CHUNK, resamples - start)).astype(float)


def bootstrap_rates(counts: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """(resamples, 2) win_rate and win_rate_ties_half over resamples of the rows of
    ``counts``; NaN where a resample holds no valid verdict."""
    sums = np.concatenate([w @ counts for w in _resample_counts(len(counts), rng, resamples)])
    w, t, losses = sums.T
    n = w + t + losses
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([w / n, (w + 0.5 * t) / n], axis=1)


def _interval(samples: np.ndarray) -> tuple[list[float] | None, float | None]:
    """95 % percentile interval and standard deviation (ddof=1) of the non-NaN samples."""
    x = samples[~np.isnan(samples)]
    if len(x) == 0:
        return None, None
    lo, hi = np.quantile(x, [(1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2])
    return [float(lo), float(hi)], float(x.std(ddof=1)) if len(x) > 1 else None


def _fit_mm(wins: np.ndarray, tol: float = 1e-10, max_iter: int = 100_000) -> np.ndarray | None:
    """Log-strengths (mean 0) maximising the Bradley–Terry likelihood of the (models, models)
    half-win matrix, or None when no maximum exists. The maximum exists iff the graph
    "i won or tied against j" is strongly connected (Ford 1957; Hunter 2004, Assumption 1)."""
    k = len(wins)
    reach = (wins > 0) | np.eye(k, dtype=bool)
    for _ in range(max(1, math.ceil(math.log2(k)))):
        reach = (reach.astype(int) @ reach.astype(int)) > 0
    if not reach.all():
        return None
    games, total = wins + wins.T, wins.sum(axis=1)
    log_p = np.zeros(k)
    for _ in range(max_iter):
        p = np.exp(log_p)
        new = np.log(total / (games / (p[:, None] + p[None, :])).sum(axis=1))
        new -= new.mean()
        if np.max(np.abs(new - log_p)) < tol:
            return new
        log_p = new
    raise BradleyTerryError(f"Bradley–Terry MM did not converge in {max_iter} iterations")


def _elo(log_p: np.ndarray, models: list[str], anchor: str | None) -> np.ndarray:
    return ELO_SCALE * (log_p - (log_p.mean() if anchor is None else log_p[models.index(anchor)]))
