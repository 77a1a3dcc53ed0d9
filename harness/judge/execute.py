"""Run a planned judging and write its directory: ``judge.json`` (config, provenance: runs,
judge, prompt file sha256; results per pair, task and language from
:func:`glotbench.harness.judge.winrate.per_language`; Bradley–Terry strengths when more than
two models; usage) and ``judgments/<A>__vs__<B>/<task>/<lang>.jsonl`` (every judgment: order,
verdict, outcome, the judge's raw replies, attempts, tokens, error)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from glotbench import harness
from glotbench.harness.core.naming import timestamped
from glotbench.harness.core.progress import progress_bar
from glotbench.harness.judge.clients import make_judge
from glotbench.harness.judge.config import JUDGE_FILE, JudgeConfig
from glotbench.harness.judge.engine import Engine
from glotbench.harness.judge.pairing import Item
from glotbench.harness.judge.prompt import JudgePrompt
from glotbench.harness.judge.winrate import Judgment, Match, bradley_terry, per_language
from glotbench.harness.run.cache import RequestCache
from glotbench.harness.store.rundir import RunWriter


# ---------------------------------------------------------------------------- results
def execute(cfg: JudgeConfig, meta: dict, items: list[Item], prompt: JudgePrompt, progress: bool = True) -> Path:
    started = time.time()
    client = make_judge(cfg.judge, base_url=cfg.base_url, timeout=cfg.timeout, max_tokens=cfg.max_tokens,
                        temperature=cfg.temperature, device=cfg.device, dtype=cfg.dtype,
                        batch_size=cfg.batch_size)
    names = list(meta["names"])
    default = timestamped(f"judge-{names[0]}-vs-{'+'.join(names[1:])}"[:120], keep="-_+.")
    writer = RunWriter(Path(cfg.output or Path(cfg.results_dir) / default))
    cache = RequestCache(Path(cfg.cache_path) if cfg.cache_path else None)
    bar = progress_bar(len(items), "judgments", "judgment", progress)
    engine = Engine(client, prompt, cache, cfg, bar)
    try:
        records = asyncio.run(engine.run(items))
        bar.close()
        results, counts = {}, Counter()
        grouped: dict[tuple, list[tuple[Item, dict]]] = {}
        for item, rec in zip(items, records):
            grouped.setdefault((item.pair, item.task, item.lang), []).append((item, rec))
            counts["judgments"] += 1
            counts["identical"] += rec["verdict"] == "identical"
            counts["invalid"] += rec["outcome"] == "invalid" and rec["error"] is None
            counts["api_errors"] += rec["error"] is not None
            counts["reasked"] += rec["attempts"] > 1
        for (pair, task, lang), rows in grouped.items():
            writer.write_records(f"judgments/{pair[0]}__vs__{pair[1]}/{task}/{lang}.jsonl", [r for _, r in rows])
        for pair in dict.fromkeys(p for p, _, _ in grouped):
            key = f"{pair[0]} vs {pair[1]}"
            results[key] = {}
            for task in dict.fromkeys(t for p, t, _ in grouped if p == pair):
                js = [_judgment(item, rec) for (p, t, _), rows in grouped.items() if p == pair and t == task
                      for item, rec in rows]
                summary = per_language(js, cfg.seed)
                summary["identical"] = sum(rec["verdict"] == "identical" for (p, t, _), rows in grouped.items()
                                           if p == pair and t == task for _, rec in rows)
                summary["api_errors"] = sum(rec["error"] is not None for (p, t, _), rows in grouped.items()
                                            if p == pair and t == task for _, rec in rows)
                results[key][task] = summary
        ranking = _ranking(grouped, names, cfg.seed) if len(names) > 2 else None
        price = cfg.price or client.price
        usage = engine.usage
        out = {
            "format": "glotbench-judge/1",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": asdict(cfg),
            "results": results,
            **({"bradley_terry": ranking} if ranking is not None else {}),
            "counts": dict(counts),
            "usage": {
                "requests_sent": usage.calls, "replies": usage.replies, "from_cache": usage.from_cache,
                "retries": dict(usage.retries),
                "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                "cost_usd": _cost(price, usage.prompt_tokens, usage.completion_tokens),
                "cached_prompt_tokens": usage.cached_prompt_tokens,
                "cached_completion_tokens": usage.cached_completion_tokens,
                "cached_cost_usd": _cost(price, usage.cached_prompt_tokens, usage.cached_completion_tokens),
                "price_usd_per_million": list(price) if price else None,
            },
            "provenance": {
                "glotbench_version": harness.__version__,
                "runs": meta["runs"],
                "judge": {"spec": cfg.judge, **client.describe(), "temperature": cfg.temperature,
                          "max_tokens": cfg.max_tokens, "parse_attempts": cfg.parse_attempts},
                "prompt": {"name": prompt.name, "version": prompt.version, "sha256": prompt.sha256,
                           "source": prompt.source},
                "seed": cfg.seed,
                "timings_s": {"total": round(time.time() - started, 3)},
            },
        }
        return writer.finish(out, JUDGE_FILE)
    except BaseException:
        writer.abort()
        raise
    finally:
        cache.close()


def _judgment(item: Item, rec: dict) -> Judgment:
    return Judgment(item.prompt_id, item.lang, item.order, rec["outcome"])


def _ranking(grouped: dict, names: list[str], seed: int) -> dict:
    """Bradley–Terry per task over every valid judgment of every pair (model A anchored at 0);
    all judgments of one prompt (both orders, every pair) are resampled together."""
    out = {}
    for task in dict.fromkeys(t for _, t, _ in grouped):
        matches = [Match(p[0], p[1], {"a": "i", "b": "j", "tie": "tie"}[rec["outcome"]], f"{lang}/{item.prompt_id}")
                   for (p, t, lang), rows in grouped.items() if t == task
                   for item, rec in rows if rec["outcome"] != "invalid"]
        try:
            out[task] = bradley_terry(matches, seed, anchor=names[0])
        except ValueError as exc:
            out[task] = {"error": str(exc)}
    return out


def _cost(price: tuple[float, float] | None, prompt_tokens: int, completion_tokens: int) -> float | None:
    if price is None:
        return None
    return round((prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6, 6)
