"""``glotbench gate``: does a candidate checkpoint regress against a baseline? (reads the store only;
the user's reference, with measured error rates and what is guaranteed, is docs/gate.md)

Comparability first (runs are read through :class:`~glotbench.harness.store.schema.RunRecord`;
the check is :func:`~glotbench.harness.store.schema.differences`). For every task and language
present in both runs the task version, ``data_sha256`` and ``prompt_sha256`` must agree, and
both runs must hold the same ``doc_id`` set; anything else is a one-line
:class:`GlotbenchError` naming the task/language and what differs (exit 2). Prompts include the chat template, which differs between model families:
the policy's ``allow_prompt_change: true`` turns that one check into a warning. Tasks or
languages in only one run, and open-ended tasks without a judge directory, are listed as
"not compared" (an error under ``require_all: true``). Library versions, host, device or
dtype that differ between the runs (:func:`~glotbench.harness.store.schema.environment_differences`)
are not an error but a note in the result and the Markdown: float32 results move slightly
with them.

The test, per task × gated metric × language. Δ = candidate − baseline on the paired
examples. H0: Δ ≤ −margin (worse by at least the margin) against H1: Δ > −margin
(non-inferior), one-sided at ``alpha``. Every Δ is resampled by a seeded *paired* bootstrap
(``resamples`` draws of example indices with replacement, ``numpy.random.default_rng``
seeded by ``[seed, crc32("task/metric/lang")]`` so that cells are independent and stable):

- accuracies (per-example values all 0/1): Δ of means; the two-sided exact McNemar p-value
  (H0: Δ = 0, binomial test on the discordant pairs) is reported beside it;
- chrF++: Δ of *corpus* chrF++, each resample re-summing the segments' sacrebleu sufficient
  statistics (``chrf_stats``); the point Δ equals sacrebleu's exactly, and sacrebleu's own
  paired bootstrap p-value (H0: Δ = 0) on the stored hypotheses (``pred``) beside it;
- other per-example scores (xCOMET): Δ of means;
- open-ended tasks (a ``glotbench judge`` directory of the two runs, either one as --a):
  Δ = candidate's win-rate with ties counting ½ minus 0.5, invalid verdicts left out and
  counted, prompts resampled with both presentation orders together (glotbench.harness.judge.winrate).

p_noninferior = (1 + #{Δ* ≤ −margin}) / (B + 1); p_regression (H0: Δ ≥ −margin) =
(1 + #{Δ* ≥ −margin}) / (B + 1); the CI is the two-sided (1 − 2·alpha) percentile interval,
so "p_regression < alpha" is, up to bootstrap discreteness, "its upper bound < −margin".
Resamples without a finite Δ (a win-rate resample that drew only invalid verdicts) are left
out and counted (``replicates``, ``replicates_dropped``, and a warning); with none finite
both p-values are 1, the CI is None and the cell is inconclusive, said in a warning.

Margins come from the policy (a number per task, for its first gated metric, or a mapping
metric → number), in the metric's own units: fractions for accuracies and win-rates
(0.02 = 2 points), chrF++ points, xCOMET's 0–1. Absent, the margin is the minimum detectable
effect at that n: MDE = (z_{1−alpha} + z_{power})·SE_Δ, with SE_Δ the paired standard error
(sd(d, ddof=1)/√n for means; the bootstrap sd for chrF++ and win-rates). Identical runs have
SE_Δ = 0; the floor is then the SE of an unpaired difference between two runs as good as the
baseline: √2·√(p(1−p)/n) for accuracies (p the baseline accuracy, clipped to [½/n, 1 − ½/n]),
√2·sd/√n for means, √2·(bootstrap SE of the baseline's corpus chrF++), and 0.5/√n_prompts
for win-rates. Every cell reports its margin and ``margin_source`` (policy | mde | mde-floor).

Verdicts. Benjamini–Hochberg adjusts both p-values across the languages of a task metric;
a language is ``regression`` if its adjusted p_regression < alpha, ``pass`` if its adjusted
p_noninferior < alpha, else ``inconclusive``. The pooled test is a stratified bootstrap of
the macro mean Δ over languages (the per-language resamples averaged; margin from the policy
or the MDE of √ΣSE²/L). A task metric regresses if a language or the pooled test does;
passes if the pooled test passes and no language regresses; else is inconclusive. A task
takes its worst metric; the run regresses if any task does. Inconclusive exits 0 or 1 as
the policy's ``on_inconclusive`` says, and is listed in the summary either way.

Result (JSON): ``verdict``; ``tasks[task] = {verdict, metrics[metric] = {kind, verdict,
pooled, languages[lang]}}`` where a language holds n, baseline, candidate, delta, ci, se,
margin, margin_source, p_noninferior(_bh), p_regression(_bh), verdict and, by kind,
p_mcnemar + discordant counts, p_sacrebleu, or win/tie/loss/invalid counts;
``inconclusive``, ``not_compared``, ``warnings``, ``notes`` and ``environment`` (the
environment differences), ``policy`` and ``provenance`` (both runs' paths, model names,
weights and run.json hashes; the judge directory).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from glotbench import harness
from glotbench.harness.core.errors import DataError, GlotbenchError
from glotbench.harness.gate.paired_stats import (
    bootstrap_deltas,
    chrf_corpus,
    mcnemar_exact,
)
from glotbench.harness.gate.policy import Policy
from glotbench.harness.gate.verdicts import VERDICT_RANK, Cell, family, policy_margins
from glotbench.harness.judge.winrate import (
    ORDERS,
    Judgment,
    bootstrap_rates,
    by_prompt,
    prompt_counts,
)
from glotbench.harness.metrics import chrf as mt_metrics
from glotbench.harness.store.schema import (
    EnvironmentDifference,
    JudgeRecord,
    RunRecord,
    differences,
    environment_differences,
)

WIN_RATE = "win_rate"
"""The gated metric of open-ended tasks: the candidate's win-rate, ties counting half."""
DRIFT = ("float32 results move slightly with library versions and CPUs (log-likelihoods by about "
         "1e-4 to 1e-3, now and then a greedy generation); margins sized for real regressions absorb "
         "that (docs/gate.md)")
OUTCOMES = ("a", "b", "tie", "invalid")




@dataclass(frozen=True)
class _JudgePair:
    """The judgments that compare the two runs, and which side the candidate was on."""

    record: JudgeRecord
    pair: str
    candidate_side: Literal["a", "b"]
    names: dict[str, str]
    """baseline / candidate → the run's name in the judge directory."""


def gate(baseline: Path, candidate: Path, policy: Policy, judgments: Path | None = None) -> dict:
    """Gate ``candidate`` against ``baseline`` (run directories; ``judgments`` a judge directory
    of the two runs for open-ended tasks). Returns a JSON-serialisable result; input that
    cannot be compared raises :class:`GlotbenchError`."""
    runs = {"baseline": RunRecord.read(baseline), "candidate": RunRecord.read(candidate)}
    base, cand = runs["baseline"], runs["candidate"]
    warnings: list[str] = []
    not_compared: list[dict] = []
    judge = _judge_pair(Path(judgments), runs, warnings) if judgments else None
    units: dict[str, list[str]] = {}
    open_ended = set()
    for task in sorted(set(base.tasks()) | set(cand.tasks())):
        only = [k for k, r in runs.items() if not r.has(task)]
        if only:
            not_compared.append({"task": task, "lang": None, "reason": f"only in the {_other(only[0])} run"})
            continue
        for d in differences(base, cand, task, kinds=("version",)):
            raise GlotbenchError(f"{task}: task version differs (baseline {d.a}, candidate {d.b})",
                                 "compare runs made with the same task version")
        if base.open_ended(task) or cand.open_ended(task):
            open_ended.add(task)
        for lang in sorted(set(base.languages(task)) | set(cand.languages(task))):
            only = [k for k, r in runs.items() if not r.has(task, lang)]
            if only:
                not_compared.append({"task": task, "lang": lang, "reason": f"only in the {_other(only[0])} run"})
                continue
            _refuse_differences(base, cand, task, lang, policy, warnings)
            if task in open_ended and judge is None:
                reason = "open-ended: pass the judge directory of the two runs"
            elif task in open_ended and not judge.record.judgments_file(judge.pair, task, lang).is_file():
                reason = f"open-ended: not judged in {judgments}"
            else:
                units.setdefault(task, []).append(lang)
                continue
            not_compared.append({"task": task, "lang": lang, "reason": reason})
    if policy.require_all and not_compared:
        listed = ", ".join(f"{x['task']}/{x['lang']}" if x["lang"] else x["task"] for x in not_compared)
        raise GlotbenchError(f"not compared: {listed} (policy require_all)",
                             "run the same tasks and languages in both runs, or set require_all: false")
    if not units:
        raise GlotbenchError("the runs share no task and language that can be gated",
                             "compare runs of the same tasks (open-ended tasks need --judgments)")
    for key in ("margins", "metrics"):
        for task in getattr(policy, key):
            if not base.has(task) and not cand.has(task):
                warnings.append(f"policy {key} name task {task!r}, which neither run has")
    tasks_out = {}
    for task, langs in units.items():
        if task in open_ended:
            if policy.metrics.get(task, (WIN_RATE,)) != (WIN_RATE,):
                raise GlotbenchError(f"policy {policy.source}: metrics for {task} must be {WIN_RATE!r} "
                                     "(open-ended tasks are gated on the judge's win-rate)")
            _check_judged_data(judge, task, langs, runs)
            gated = {WIN_RATE: {lang: _winrate_cell(judge, task, lang, policy) for lang in langs}}
        else:
            gated = _gated(task, langs, runs, policy, warnings)
        fixed = policy_margins(policy, task, list(gated))
        fams = {m: family(cells, fixed[m], policy, f"{task}/{m}", warnings) for m, cells in gated.items()}
        tasks_out[task] = {"verdict": max((f["verdict"] for f in fams.values()), key=VERDICT_RANK.get),
                           "metrics": fams}
    verdict = max((t["verdict"] for t in tasks_out.values()), key=VERDICT_RANK.get)
    env = environment_differences(base.environment, cand.environment)
    return {
        "format": "glotbench-gate/1",
        "verdict": verdict,
        "tasks": tasks_out,
        "inconclusive": [f"{t}/{m}" for t, v in tasks_out.items() for m, f in v["metrics"].items()
                         if f["verdict"] == "inconclusive"],
        "not_compared": not_compared,
        "warnings": warnings,
        "notes": [environment_note(env, "the baseline and the candidate run")] if env else [],
        "environment": [{"key": d.key, "baseline": d.a, "candidate": d.b} for d in env],
        "policy": asdict(policy),
        "provenance": {"glotbench_version": harness.__version__,
                       **{k: _run_info(r) for k, r in runs.items()},
                       "judgments": None if judge is None else {
                           "path": str(judgments), "pair": judge.pair, "judge": judge.record.judge_spec,
                           "prompt_sha256": judge.record.prompt_sha256}},
    }


def exit_code(result: dict) -> int:
    """0 pass, 1 regression (or inconclusive under ``on_inconclusive: fail``)."""
    if result["verdict"] == "inconclusive":
        return 1 if result["policy"]["on_inconclusive"] == "fail" else 0
    return 1 if result["verdict"] == "regression" else 0


def environment_note(env: list[EnvironmentDifference], who: str) -> str:
    """The note a gate result carries when ``who`` were made in different environments."""
    return f"{who} were made in different environments ({'; '.join(d.describe() for d in env)}): {DRIFT}"


def _other(missing_in: str) -> str:
    return "candidate" if missing_in == "baseline" else "baseline"


def _refuse_differences(base: RunRecord, cand: RunRecord, task: str, lang: str, policy: Policy,
                      warnings: list[str]) -> None:
    """Same data, as many items, same prompts (a prompt change is a warning when the policy
    allows it; the item sets themselves are matched by doc_id later)."""
    for d in differences(base, cand, task, lang, kinds=("data_sha256", "n", "prompt_sha256")):
        if d.kind == "data_sha256":
            raise GlotbenchError(d.describe(), "compare runs made on the same data source")
        if d.kind == "n":
            raise GlotbenchError(d.describe(), "compare runs made with the same data and --limit")
        if not policy.allow_prompt_change:
            raise GlotbenchError(d.describe(), "prompts include the chat template; to gate across model "
                                               "families set allow_prompt_change: true in the policy")
        warnings.append(d.describe() + "; allowed by the policy")


def _gated(task: str, langs: list[str], runs: dict[str, RunRecord], policy: Policy,
           warnings: list[str]) -> dict[str, dict[str, Cell]]:
    mb, mc = runs["baseline"].metrics(task), runs["candidate"].metrics(task)
    names = list(policy.metrics.get(task, ()))
    if not names:
        if not mb or not mc:
            raise DataError(f"{task}: the {'baseline' if not mb else 'candidate'} run records no metrics",
                            "regenerate it with glotbench run")
        if mb[0] != mc[0]:
            raise GlotbenchError(f"{task}: the runs' headline metrics differ ({mb[0]} vs {mc[0]})",
                                 f"name the metric to gate under metrics: {task}: in the policy")
        names = [mb[0]] + (["xcomet"] if "xcomet" in mb and "xcomet" in mc and mb[0] != "xcomet" else [])
    for name in names:
        if name not in mb or name not in mc:
            raise GlotbenchError(f"{task}: metric {name!r} is not in both runs (baseline: {', '.join(mb)}; "
                                 f"candidate: {', '.join(mc)})", "gate a metric both runs recorded")
    pairs = {lang: _paired_records(runs, task, lang) for lang in langs}
    out = {}
    for name in names:
        values = {lang: (_values(rb, name, task, lang), _values(rc, name, task, lang))
                  for lang, (rb, rc) in pairs.items()}
        binary = all(np.isin(v, (0.0, 1.0)).all() for pair in values.values() for v in pair)
        out[name] = {}
        for lang, (rb, rc) in pairs.items():
            seed = _seed(policy.seed, task, name, lang)
            if name == "chrf++":
                out[name][lang] = _chrf_cell(rb, rc, task, lang, seed, policy, warnings)
            else:
                out[name][lang] = _mean_cell(*values[lang], binary, seed, policy.resamples)
    return out


def _seed(seed: int, *names: str) -> list[int]:
    return [seed, zlib.crc32("/".join(names).encode())]


def _paired_records(runs: dict[str, RunRecord], task: str, lang: str) -> tuple[list[dict], list[dict]]:
    base, cand = (runs[k].samples_by_id(task, lang) for k in ("baseline", "candidate"))
    if set(base) != set(cand):
        shared = len(set(base) & set(cand))
        raise GlotbenchError(f"{task}/{lang}: the runs scored different examples ({len(base)} vs "
                             f"{len(cand)} doc_ids, {shared} shared)",
                             "compare runs made with the same data and --limit")
    if len(base) < 2:
        raise DataError(f"{task}/{lang}: {len(base)} example(s), too few for a paired test",
                        "gate runs with at least 2 examples per language")
    return list(base.values()), [cand[i] for i in base]


def _values(recs: list[dict], metric: str, task: str, lang: str) -> np.ndarray:
    bad = next((r for r in recs if not isinstance(r.get(metric), int | float)), None)
    if bad is not None:
        raise DataError(f"{task}/{lang}: example {bad['doc_id']!r} has no {metric!r} score",
                        "regenerate the run (or gate another metric under metrics: in the policy)")
    values = np.array([r[metric] for r in recs], dtype=float)
    if not np.isfinite(values).all():
        i = int(np.flatnonzero(~np.isfinite(values))[0])
        raise DataError(f"{task}/{lang}: example {recs[i]['doc_id']!r} has a non-finite {metric!r} score "
                        f"({values[i]})", "regenerate the run; a NaN score would leave the bootstrap "
                                          "without finite replicates")
    return values


def _mean_cell(b: np.ndarray, c: np.ndarray, binary: bool, seed: list[int], resamples: int) -> Cell:
    n = len(b)
    if binary:
        p = min(max(b.mean(), 0.5 / n), 1 - 0.5 / n)
        floor = math.sqrt(2 * p * (1 - p) / n)
        worse, better = int(np.sum((b == 1) & (c == 0))), int(np.sum((b == 0) & (c == 1)))
        extra = {"p_mcnemar": mcnemar_exact(b, c), "discordant": {"worse": worse, "better": better}}
    else:
        floor, extra = math.sqrt(2) * float(b.std(ddof=1)) / math.sqrt(n), {}
    return Cell(n, float(b.mean()), float(c.mean()), bootstrap_deltas(b, c, seed, resamples),
                 float((c - b).std(ddof=1)) / math.sqrt(n), floor, {"kind": "accuracy" if binary else "mean", **extra})


def _chrf_cell(rb: list[dict], rc: list[dict], task: str, lang: str, seed: list[int], policy: Policy,
               warnings: list[str]) -> Cell:
    if any("chrf_stats" not in r for r in rb + rc):
        raise DataError(f"{task}/{lang}: records lack chrf_stats", "regenerate the runs with this glotbench")
    try:
        sb, sc = (np.array([r["chrf_stats"] for r in rs], dtype=np.int64) for rs in (rb, rc))
    except (TypeError, ValueError):
        raise DataError(f"{task}/{lang}: records hold malformed chrf_stats", "regenerate the runs") from None
    base, cand = mt_metrics.chrf_from_stats(sb), mt_metrics.chrf_from_stats(sc)
    reps = bootstrap_deltas(sb, sc, seed, policy.resamples, chrf_corpus)
    floor = 0.0
    if float(reps.std(ddof=1)) == 0:
        floor = math.sqrt(2) * (mt_metrics.chrf_summary(sb, policy.seed, policy.resamples)["stderr"] or 0.0)
    extra: dict = {"kind": "chrf"}
    if all("pred" in r and "target" in r for r in rb + rc):
        test = mt_metrics.paired_test([r["pred"] or "" for r in rb], [r["pred"] or "" for r in rc],
                                      [r["target"] for r in rb], "bs", seed=policy.seed,
                                      samples=policy.resamples)
        # sacrebleu gives 1/(B+1) when both systems score the same (no centred resample
        # exceeds a zero difference); a difference of exactly 0 is reported as p = 1.
        extra["p_sacrebleu"] = 1.0 if test["delta"] == 0 else test["p_value"]
        if test["delta"] != cand - base:
            warnings.append(f"{task}/{lang}: chrf_stats disagree with sacrebleu on the stored hypotheses "
                            f"(Δ {cand - base:.6f} vs {test['delta']:.6f})")
    else:
        warnings.append(f"{task}/{lang}: no stored hypotheses, sacrebleu's paired test skipped")
    return Cell(len(sb), base, cand, reps, float(reps.std(ddof=1)), floor, extra)


def _judge_pair(path: Path, runs: dict[str, RunRecord], warnings: list[str]) -> _JudgePair:
    """Which judgments compare the two runs, and which side the candidate was on."""
    record = JudgeRecord.read(path)
    judged = record.judged_runs()

    def name(run: RunRecord) -> str:
        found = ([n for n, j in judged.items() if j.path is not None and j.path.resolve() == run.path.resolve()]
                 or [n for n, j in judged.items() if j.run_sha256 == run.sha256])
        if len(found) != 1:
            raise GlotbenchError(f"judge directory {path} did not judge run {run.path}",
                                 f"it judged {', '.join(str(j.path) for j in judged.values())}")
        if judged[found[0]].run_sha256 not in (None, run.sha256):
            warnings.append(f"run {run.path} changed after it was judged (run_sha256 differs)")
        return found[0]

    nb, nc = name(runs["baseline"]), name(runs["candidate"])
    a = next((n for n, j in judged.items() if record.run_a is not None and j.path == record.run_a), None)
    if a not in (nb, nc) or nb == nc:
        raise GlotbenchError(f"judge directory {path} did not compare {nb} with {nc}",
                             "judge the two runs against each other: glotbench judge --a BASELINE --b CANDIDATE")
    pair = f"{nb}__vs__{nc}" if a == nb else f"{nc}__vs__{nb}"
    if not (path / "judgments" / pair).is_dir():
        raise GlotbenchError(f"judge directory {path} has no judgments/{pair}", "rerun glotbench judge")
    return _JudgePair(record, pair, "b" if a == nb else "a", {"baseline": nb, "candidate": nc})


def _check_judged_data(judge: _JudgePair, task: str, langs: list[str], runs: dict[str, RunRecord]) -> None:
    judged = judge.record.judged_runs()
    for side, name in judge.names.items():
        for lang in langs:
            sha = judged[name].data_sha256(task, lang)
            if sha is not None and sha != runs[side].language_provenance(task, lang).data_sha256:
                raise GlotbenchError(f"{task}/{lang}: the judgments were made on other data than the "
                                     f"{side} run (data_sha256 differs)", "judge the runs being gated")


def _winrate_cell(judge: _JudgePair, task: str, lang: str, policy: Policy) -> Cell:
    swap = {"a": "b", "b": "a", "ab": "ba", "ba": "ab"}
    flip = judge.candidate_side == "b"  # Judgment's model A is the candidate here
    recs = judge.record.judgments(judge.pair, task, lang)
    file = judge.record.judgments_file(judge.pair, task, lang)
    bad = next((i for i, r in enumerate(recs, 1) if r.get("order") not in ORDERS
                or r.get("outcome") not in OUTCOMES or r.get("prompt_id") is None), None)
    if bad is not None:
        raise DataError(f"{file} line {bad} is not a judgment (prompt_id, order ab|ba, outcome "
                        "a|b|tie|invalid)", "rerun glotbench judge")
    js = [Judgment(str(r["prompt_id"]), lang, swap[r["order"]] if flip else r["order"],
                   swap.get(r["outcome"], r["outcome"]) if flip else r["outcome"]) for r in recs]
    try:
        counts = prompt_counts(by_prompt(js))
    except ValueError as exc:  # two verdicts for one prompt and order
        raise DataError(f"{file}: {exc}", "rerun glotbench judge") from None
    wins, ties, losses = (float(x) for x in counts.sum(axis=0))
    n = wins + ties + losses
    if n == 0:
        raise DataError(f"{task}/{lang}: no valid verdict among {len(js)} judgments", "rerun glotbench judge")
    rng = np.random.default_rng(_seed(policy.seed, task, WIN_RATE, lang))
    # NaN where a resample drew only invalid verdicts; family counts and names those.
    reps = bootstrap_rates(counts, rng, policy.resamples)[:, 1] - 0.5
    kept = reps[np.isfinite(reps)]
    return Cell(len(counts), 0.5, (wins + 0.5 * ties) / n, reps,
                 float(kept.std(ddof=1)) if len(kept) > 1 else 0.0, 0.5 / math.sqrt(len(counts)),
                 {"kind": "win_rate", "n_judgments": len(js), "invalid": len(js) - int(n),
                  "wins": int(wins), "ties": int(ties), "losses": int(losses)})












def _run_info(run: RunRecord) -> dict:
    return {"path": str(run.path), "created": run.created, "model": run.model.get("name"),
            "backend": run.model.get("backend"), "weights_sha256": run.model.get("weights_sha256"),
            "run_sha256": run.sha256}
