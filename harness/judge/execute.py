"""Run a planned judging and write its directory: ``judge.json`` (config, provenance: runs,
judge, prompt file sha256; results per pair, task and language from
:func:`glotbench.harness.judge.winrate.per_language`; Bradley–Terry strengths when more than
two models, or the reason there are none; usage, with the estimate printed before the first
request) and ``judgments/<A>__vs__<B>/<task>/<lang>.jsonl`` (every judgment: order, verdict,
outcome, the judge's raw replies, attempts, tokens, error)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from glotbench import harness
from glotbench.harness.core.naming import timestamped
from glotbench.harness.core.progress import progress_bar
from glotbench.harness.judge.config import JUDGE_FILE, JudgeConfig, reward_model_dir
from glotbench.harness.judge.engine import Engine
from glotbench.harness.judge.judges import make_judge
from glotbench.harness.judge.pairing import Item
from glotbench.harness.judge.prompt import JudgePrompt
from glotbench.harness.judge.rm import judge_with_reward_model
from glotbench.harness.judge.spend import Spending, estimate, preflight
from glotbench.harness.judge.winrate import (
    BradleyTerryError,
    Judgment,
    Match,
    bradley_terry,
    per_language,
)
from glotbench.harness.models.openai_client import cost_usd
from glotbench.harness.run.cache import RequestCache
from glotbench.harness.store.rundir import RunWriter, check_new


# ---------------------------------------------------------------------------- results
def execute(cfg: JudgeConfig, meta: dict, items: list[Item], prompt: JudgePrompt, progress: bool = True,
            spending: Spending | None = None, say: Callable[[str], None] | None = None) -> Path:
    """Judge ``items`` (after the spending check of :func:`glotbench.harness.judge.spend.preflight`,
    whose estimate goes to ``say``, default stdout) and write the judge directory; returns its path."""
    started = time.time()
    if cfg.output:
        check_new(Path(cfg.output))  # before a judge model loads or anything is estimated
    if reward_model_dir(cfg.judge) is not None:  # a scalar reward model: no requests, no spending
        cache = RequestCache(Path(cfg.cache_path) if cfg.cache_path else None)
        try:
            records, usage, judge = judge_with_reward_model(cfg, items, cache)
            writer = RunWriter(output_dir(cfg, meta))
            return write_judging(writer, cfg, meta, items, records, usage,
                                 _provenance(cfg, meta, judge, None, started))
        finally:
            cache.close()
    spending = spending or Spending()
    client = make_judge(cfg)
    cache = RequestCache(Path(cfg.cache_path) if cfg.cache_path else None)
    try:
        engine = Engine(client, prompt, cache, cfg)
        pending, cached = engine.pending(items)
        est = estimate(pending, cached, cfg.max_tokens, client.price)
        try:
            preflight(est, cfg.judge, client, spending, say)
        except BaseException:
            asyncio.run(client.close())  # nothing was sent; the engine closes it otherwise
            raise
        writer = RunWriter(output_dir(cfg, meta))
        try:
            engine.bar = progress_bar(len(items), "judgments", "judgment", progress)
            records = asyncio.run(engine.run(items))
            engine.bar.close()
            price = client.price
            sent, reused = client.usage, engine.usage
            usage = {
                "requests_sent": sent.requests, "replies": sent.replies, "from_cache": reused.from_cache,
                "retries": dict(sent.retries),
                "prompt_tokens": sent.prompt_tokens, "completion_tokens": sent.completion_tokens,
                "cost_usd": cost_usd(price, sent.prompt_tokens, sent.completion_tokens),
                "cached_prompt_tokens": reused.cached_prompt_tokens,
                "cached_completion_tokens": reused.cached_completion_tokens,
                "cached_cost_usd": cost_usd(price, reused.cached_prompt_tokens, reused.cached_completion_tokens),
                "price_usd_per_million": list(price) if price else None,
                "estimate": est.as_dict(), "max_cost_usd": spending.max_cost,
            }
            judge = {"spec": cfg.judge, **client.describe(), "temperature": cfg.temperature,
                     "max_tokens": cfg.max_tokens, "parse_attempts": cfg.parse_attempts}
            described = {"name": prompt.name, "version": prompt.version, "sha256": prompt.sha256,
                         "source": prompt.source}
            return write_judging(writer, cfg, meta, items, records, usage,
                                 _provenance(cfg, meta, judge, described, started))
        except BaseException:
            writer.abort()
            raise
    finally:
        cache.close()


def output_dir(cfg: JudgeConfig, meta: dict) -> Path:
    """``--output``, else ``<results dir>/judge-A-vs-B-<time>``."""
    names = list(meta["names"])
    default = timestamped(f"judge-{names[0]}-vs-{'+'.join(names[1:])}"[:120], keep="-_+.")
    return Path(cfg.output or Path(cfg.results_dir) / default)


def write_judging(writer: RunWriter, cfg: JudgeConfig, meta: dict, items: list[Item], records: list[dict],
                  usage: dict, provenance: dict) -> Path:
    """judge.json (summary, usage, provenance) and every judgment file, atomically; the path."""
    try:
        out = _summary(cfg, meta, items, records)
        out["usage"], out["provenance"] = usage, provenance
        for (pair, task, lang), rows in _grouped(items, records).items():
            writer.write_records(f"judgments/{pair[0]}__vs__{pair[1]}/{task}/{lang}.jsonl", [r for _, r in rows])
        return writer.finish(out, JUDGE_FILE)
    except BaseException:
        writer.abort()
        raise


def _provenance(cfg: JudgeConfig, meta: dict, judge: dict, prompt: dict | None, started: float) -> dict:
    """The judge, its prompt (None for a reward model, which reads no prompt) and the judged runs."""
    return {"glotbench_version": harness.__version__, "runs": meta["runs"], "judge": judge, "prompt": prompt,
            "seed": cfg.seed, "timings_s": {"total": round(time.time() - started, 3)}}


def _grouped(items: list[Item], records: list[dict]) -> dict[tuple, list[tuple[Item, dict]]]:
    grouped: dict[tuple, list[tuple[Item, dict]]] = {}
    for item, rec in zip(items, records):
        grouped.setdefault((item.pair, item.task, item.lang), []).append((item, rec))
    return grouped


def _summary(cfg: JudgeConfig, meta: dict, items: list[Item], records: list[dict]) -> dict:
    """judge.json without usage and provenance: format, config, results, Bradley–Terry, counts."""
    grouped = _grouped(items, records)
    counts: Counter = Counter()
    for rec in records:
        counts["judgments"] += 1
        counts["identical"] += rec["verdict"] == "identical"
        counts["invalid"] += rec["outcome"] == "invalid" and rec["error"] is None
        counts["api_errors"] += rec["error"] is not None
        counts["reasked"] += rec["attempts"] > 1
    results: dict = {}
    for pair in dict.fromkeys(p for p, _, _ in grouped):
        key = f"{pair[0]} vs {pair[1]}"
        results[key] = {}
        for task in dict.fromkeys(t for p, t, _ in grouped if p == pair):
            rows = [(item, rec) for (p, t, _), rs in grouped.items() if p == pair and t == task for item, rec in rs]
            summary = per_language([_judgment(item, rec) for item, rec in rows], cfg.seed)
            summary["identical"] = sum(rec["verdict"] == "identical" for _, rec in rows)
            summary["api_errors"] = sum(rec["error"] is not None for _, rec in rows)
            results[key][task] = summary
    names = list(meta["names"])
    ranking = _ranking(grouped, names, cfg.seed) if len(names) > 2 else None
    return {
        "format": "glotbench-judge/1",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": asdict(cfg),
        "results": results,
        **({"bradley_terry": ranking} if ranking is not None else {}),
        "counts": dict(counts),
    }


def _judgment(item: Item, rec: dict) -> Judgment:
    return Judgment(item.prompt_id, item.lang, item.order, rec["outcome"])


def _ranking(grouped: dict, names: list[str], seed: int) -> dict:
    """Bradley–Terry per task over every valid judgment of every pair (model A anchored at 0);
    all judgments of one prompt (both orders, every pair) are resampled together. A task whose
    fit fails gets ``{"error": reason}``; models without a valid judgment are listed under
    ``not_ranked`` (model → reason) rather than dropped silently."""
    out = {}
    for task in dict.fromkeys(t for _, t, _ in grouped):
        matches = [Match(p[0], p[1], {"a": "i", "b": "j", "tie": "tie"}[rec["outcome"]], f"{lang}/{item.prompt_id}")
                   for (p, t, lang), rows in grouped.items() if t == task
                   for item, rec in rows if rec["outcome"] != "invalid"]
        judged = dict.fromkeys(m for p, t, _ in grouped if t == task for m in p)
        ranked = {m.model_i for m in matches} | {m.model_j for m in matches}
        missing = {m: "no valid judgment" for m in judged if m not in ranked}
        if names[0] in missing:
            out[task] = {"error": f"no valid judgment of {names[0]} (model A, the anchor)"}
            continue
        try:
            out[task] = bradley_terry(matches, seed, anchor=names[0])
        except BradleyTerryError as exc:
            out[task] = {"error": str(exc)}
            continue
        if missing:
            out[task]["not_ranked"] = missing
    return out
