"""``glotbench gate --sequential``: evaluate a candidate model on the baseline run's items in
random-order batches and stop as soon as an anytime-valid test settles every task.

The baseline is a finished run; the candidate is a model. The suite is re-planned from the
baseline's own config (tasks, languages, data, limits, chat layout), its data hashes checked
against the baseline's, every prompt rendered up front (prompt hashes checked as the fixed
gate does). Each stream (task × language, headline metric) gets the items in a seeded random
order; every step answers the next ``batch`` items of every unsettled stream through the
runner (cache first, so an interrupted gate resumes and a candidate equal to a cached model
costs nothing) and feeds the paired per-example differences (candidate − baseline) to a
:class:`glotbench.harness.gate.anytime.SequentialTest`: a betting test of H0 Δ ≤ −margin (pass when
rejected) and of H0 Δ ≥ −margin (regression when rejected), each at alpha / k over the k
streams (Bonferroni: any wrong decision in the suite has probability ≤ alpha, at whatever
step it stops, if the differences are exchangeable draws). Streams still open when their
items run out fall back to the fixed gate's paired bootstrap on all items, at alpha / 2 per
stream: that second look is not covered by Ville's inequality, so a stream that falls back
can be wrong with probability up to alpha / k + alpha / 2 (union bound; the bootstrap is
itself approximate). docs/gate.md says what is and is not guaranteed, with measurements.

Metrics: per-example accuracies (differences in [−1, 1]); for translation, sentence-level
chrF++ (differences in [−100, 100]) — the mean of sentence scores, not corpus chrF++, which
the fixed gate tests. Margins must be fixed before any data is seen: the policy's, else the
fixed gate's floor computed from the baseline alone (the minimum detectable effect of two
runs as good as the baseline at that n). Open-ended tasks are not compared (they need a
judge); xCOMET is left to the fixed gate.

The baseline is read through :class:`~glotbench.harness.store.schema.RunRecord`. The candidate
is evaluated here and now, so when this machine's library versions, host or device differ
from the baseline's, the result carries a note (as the fixed gate's does).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import json_sha256
from glotbench.harness.core.progress import progress_bar
from glotbench.harness.gate.anytime import SequentialTest, batch_order
from glotbench.harness.gate.fixed import environment_note
from glotbench.harness.gate.paired_stats import mde, paired_bootstrap_delta
from glotbench.harness.gate.policy import Policy
from glotbench.harness.models.loader import load_backend
from glotbench.harness.run.cache import RequestCache
from glotbench.harness.run.config import RunConfig
from glotbench.harness.run.execute import answer_and_score
from glotbench.harness.run.plan import Unit, generation_requests, plan, subset
from glotbench.harness.run.provenance import host, versions
from glotbench.harness.store.schema import (
    Environment,
    RunRecord,
    environment_differences,
)

CHRF = "chrf++"


def sequential_gate(baseline: Path, model: str, policy: Policy, *, batch: int = 50, device: str = "auto",
                    batch_size: int = 16, progress: bool = True, cache_path: Path | None = None) -> dict:
    started = time.time()
    if batch < 1:
        raise GlotbenchError(f"--batch must be >= 1, got {batch}")
    base = RunRecord.read(baseline)
    cfg = _config(base, model, device, batch_size)
    units = [u for u in plan(cfg) if not u.task.judged]
    not_compared = [f"{u.task.name}/{u.lang} (open-ended: needs a judge)" for u in plan(cfg) if u.task.judged]
    if not units:
        raise GlotbenchError(f"baseline {baseline} has no task the sequential gate can compare",
                             "gate open-ended tasks with glotbench judge and the fixed gate")
    backend = load_backend(model, device=cfg.device, dtype=cfg.dtype, batch_size=cfg.batch_size)
    streams = {}
    for unit in units:
        if unit.task.output_type == "generate":
            generation_requests(unit, cfg, backend)
        streams[f"{unit.task.name}/{unit.lang}"] = _stream(unit, base, policy)
    k = len(streams)
    for s in streams.values():
        s["test"] = replace(s["test"], alpha=policy.alpha / k)
        s["state"] = s["test"].start()
        s["order"] = batch_order(len(s["unit"].prompts), batch, policy.seed)
    cache = RequestCache(cache_path)
    total_items = sum(len(s["unit"].prompts) for s in streams.values())
    bar = progress_bar(total_items, "requests", "req", progress)
    counts = {"total": 0, "from_cache": 0, "computed": 0}
    steps = 0
    try:
        while True:
            open_ = [s for s in streams.values() if s["state"].decision == "continue" and steps < len(s["order"])]
            if not open_:
                break
            subs = [subset(s["unit"], [int(i) for i in s["order"][steps]]) for s in open_]
            for s, (_, records, scores) in zip(open_, answer_and_score(subs, backend, cache, bar, counts)):
                diffs = []
                for rec, score in zip(records, scores):
                    cand = float(score[s["metric"]])
                    s["candidate"][rec["doc_id"]] = cand
                    diffs.append(cand - s["baseline"][rec["doc_id"]])
                s["state"] = s["test"].update(s["state"], diffs)
            steps += 1
    finally:
        bar.close()
        cache.close()
    out_streams = {key: _settle(s, policy) for key, s in streams.items()}
    verdicts = [v["verdict"] for v in out_streams.values()]
    verdict = "regression" if "regression" in verdicts else "inconclusive" if "inconclusive" in verdicts else "pass"
    used = sum(v["n_used"] for v in out_streams.values())
    env = environment_differences(base.environment, _here(backend.identity.device, backend.identity.dtype))
    return {
        "format": "glotbench-gate-sequential/1",
        "verdict": verdict,
        "streams": out_streams,
        "fraction_used": used / total_items,
        "n_used": used, "n_total": total_items, "batch": batch, "steps": steps,
        "not_compared": not_compared,
        "requests": counts,
        "notes": [environment_note(env, "the baseline run and this evaluation of the candidate")] if env else [],
        "environment": [{"key": d.key, "baseline": d.a, "candidate": d.b} for d in env],
        "policy": {**asdict(policy), "alpha_per_stream": policy.alpha / k},
        "provenance": {"baseline": {"path": str(baseline), "model": base.model},
                       "candidate": {"model": asdict(backend.identity)},
                       "seconds": round(time.time() - started, 3)},
    }


def _here(device: str, dtype: str) -> Environment:
    """The environment the candidate is evaluated in, as a run made here would record it."""
    return Environment(versions(), {k: v for k, v in host().items() if k != "torch"}, device, dtype)


def _config(base: RunRecord, model: str, device: str, batch_size: int) -> RunConfig:
    """The baseline's own run config, with the candidate model."""
    c = base.config
    if "tasks" not in c or base.imported:
        raise GlotbenchError("the baseline is not a glotbench run of tasks (an import?)",
                             "pass a run directory written by glotbench run")
    keep = {f: c[f] for f in ("tasks", "langs", "limit", "data", "data_dir", "chat", "fewshot_as",
                              "max_new_tokens", "task_limits", "task_max_new_tokens", "task_langs", "seed")
            if f in c}
    keep["tasks"] = tuple(keep["tasks"])
    if keep.get("langs") is not None:
        keep["langs"] = tuple(keep["langs"])
    return RunConfig(**keep, model=model, device=device, batch_size=batch_size)


def _stream(unit: Unit, base: RunRecord, policy: Policy) -> dict:
    task, lang = unit.task, unit.lang
    key = f"{task.name}/{lang}"
    if not base.has(task.name, lang):
        raise GlotbenchError(f"the baseline has no {key}", "re-run the baseline")
    prov = base.language_provenance(task.name, lang)
    if prov.data_sha256 != unit.loaded.sha256:
        raise GlotbenchError(f"{key}: the data differs from the baseline's (data_sha256)",
                             "gate on the data the baseline was scored on (same --data / --data-dir)")
    prompts = json_sha256([[asdict(r) for r in reqs] for reqs in unit.requests])
    if prompts != prov.prompt_sha256 and not policy.allow_prompt_change:
        raise GlotbenchError(f"{key}: the candidate's prompts differ from the baseline's (prompt_sha256; "
                             "a different chat template?)", "set allow_prompt_change: true in the policy "
                             "to gate anyway")
    records = base.samples_by_id(task.name, lang)
    docs = [s.doc_id for s in unit.item_samples()]
    if set(docs) != set(records):
        raise GlotbenchError(f"{key}: the baseline scored other items ({len(records)} vs {len(docs)})",
                             "the baseline's run config must reproduce its items")
    metric = task.primary
    if any(not isinstance(records[d].get(metric), int | float) for d in docs):
        raise GlotbenchError(f"{key}: the baseline records have no per-example {metric!r}",
                             "use the fixed gate (--candidate RUN)")
    values = np.array([float(records[d][metric]) for d in docs])
    if not np.isfinite(values).all():
        raise GlotbenchError(f"{key}: the baseline holds a non-finite per-example {metric!r}",
                             "regenerate the baseline with glotbench run")
    bound = 100.0 if metric == CHRF else 1.0
    fixed = policy.margins.get(task.name)
    if isinstance(fixed, dict):
        fixed = fixed.get(metric)
    if fixed is not None:
        margin, source = float(fixed), "policy"
    else:  # the fixed gate's floor: two runs as good as the baseline, from the baseline alone
        spread = math.sqrt(values.mean() * (1 - values.mean())) if bound == 1.0 else float(values.std(ddof=1))
        margin, source = mde(spread * math.sqrt(2 / len(values)), policy.alpha, policy.power), "mde-baseline"
        margin = min(max(margin, 1e-3 * bound), bound)
    test = SequentialTest(margin=margin, alpha=policy.alpha, bounds=(-bound, bound))
    return {"unit": unit, "metric": metric, "baseline": dict(zip(docs, values)), "candidate": {},
            "test": test, "margin_source": source}


def _settle(s: dict, policy: Policy) -> dict:
    state, unit = s["state"], s["unit"]
    n_total = len(unit.prompts)
    out = {"metric": s["metric"], "margin": s["test"].margin, "margin_source": s["margin_source"],
           "alpha": s["test"].alpha, "n_used": state.n, "n_total": n_total, "fraction": state.n / n_total,
           "mean_delta": state.mean, "cs": [state.lower, state.upper],
           "e_pass": state.e_pass, "e_regression": state.e_regression, "fallback": None}
    if state.decision != "continue":
        out["verdict"] = state.decision
        return out
    docs = list(s["baseline"])
    base = np.array([s["baseline"][d] for d in docs])
    cand = np.array([s["candidate"][d] for d in docs])
    t = paired_bootstrap_delta(base, cand, s["test"].margin, alpha=policy.alpha / 2, seed=policy.seed,
                               resamples=policy.resamples)
    alpha = policy.alpha / 2
    out["verdict"] = "regression" if t.p_regression < alpha else "pass" if t.p_noninferior < alpha else "inconclusive"
    out["fallback"] = {"delta": t.delta, "ci": None if t.ci is None else list(t.ci), "p_noninferior": t.p_noninferior,
                       "p_regression": t.p_regression, "alpha": alpha}
    return out


def format_markdown(result: dict) -> str:
    verdict = result["verdict"].upper()
    lines = [f"## glotbench gate (sequential): {verdict}", "",
             f"Candidate `{result['provenance']['candidate']['model']['name']}` against baseline "
             f"`{result['provenance']['baseline']['path']}`: evaluated {result['n_used']} of "
             f"{result['n_total']} items ({100 * result['fraction_used']:.1f} %) in {result['steps']} step(s) of "
             f"{result['batch']} per stream.", "",
             *[f"Note: {n}\n" for n in result.get("notes", [])],
             "| stream | metric | used | Δ (mean) | anytime CS | margin | e pass | e regr. | verdict |",
             "|:--|:--|--:|--:|:--|--:|--:|--:|:--|"]
    for key, s in result["streams"].items():
        scale = 100 if s["metric"] != CHRF else 1
        mean = "–" if s["mean_delta"] is None else f"{scale * s['mean_delta']:+.2f}"
        cs = f"[{scale * s['cs'][0]:+.2f}, {scale * s['cs'][1]:+.2f}]"
        how = s["verdict"] + (" (fixed fallback)" if s["fallback"] else "")
        lines.append(f"| {key} | {s['metric']} | {s['n_used']}/{s['n_total']} | {mean} | {cs} | "
                     f"{scale * s['margin']:.2f} ({s['margin_source']}) | {s['e_pass']:.3g} | "
                     f"{s['e_regression']:.3g} | {how} |")
    if result["not_compared"]:
        lines += ["", "Not compared: " + ", ".join(result["not_compared"])]
    lines += ["", f"<sub>Betting tests of H0 Δ ≤ −margin (pass) and Δ ≥ −margin (regression), each at "
                  f"α/k = {result['policy']['alpha_per_stream']:.4g} (Bonferroni over {len(result['streams'])} "
                  f"streams), valid at any stopping time; accuracies in points, chrF++ sentence-level; "
                  f"order seed {result['policy']['seed']}.</sub>"]
    return "\n".join(lines)
