"""Run tasks on a model: load and render everything first (so bad input fails before the
model loads), answer requests from the cache or the backend in resumable chunks, score, and
write one run directory.

Resume: every computed chunk is committed to the request cache before the next starts, so a
run killed at any point and started again recomputes only the chunk that was in flight.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import harness
from harness import data as data_mod
from harness.cache import RequestCache, request_key
from harness.errors import GlotbenchError
from harness.hashing import json_sha256
from harness.models import load_backend
from harness.registry import get_task
from harness.stats import averages, summarize
from harness.store import RunWriter
from harness.types import LoglikelihoodResult, MultipleChoicePrompt

# Requests answered between two commits to the cache: what a kill -9 can lose at most.
CHUNK_CALLS = 8
MIN_CHUNK = 32


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; recorded verbatim in ``run.json``."""

    tasks: tuple[str, ...]
    langs: tuple[str, ...] | None = None
    """None: every language of each task."""
    model: str = "embedded"
    limit: int | None = None
    """First N items per language (None: all)."""
    data: str = "auto"
    data_dir: str | None = None
    batch_size: int = 16
    device: str = "auto"
    dtype: str = "auto"
    seed: int = 1234
    """Seed of the bootstrap CIs."""
    output: str | None = None
    results_dir: str = "results"
    cache_path: str | None = None


@dataclass
class Unit:
    """One task × language to evaluate."""

    task: object
    lang: str
    loaded: data_mod.LoadedData
    prompts: list[MultipleChoicePrompt]
    keys: list[list[str]] = field(default_factory=list)


def plan(cfg: RunConfig) -> list[Unit]:
    units = []
    data_dir = Path(cfg.data_dir) if cfg.data_dir else None
    if data_dir is not None and not data_dir.is_dir():
        raise GlotbenchError(f"--data-dir {data_dir} is not a directory", "pass the folder holding the data files")
    if cfg.limit is not None and cfg.limit < 1:
        raise GlotbenchError(f"--limit must be >= 1, got {cfg.limit}", "omit --limit to use all items")
    tasks = [get_task(name) for name in cfg.tasks]
    if cfg.langs is not None:
        # A language must exist in at least one selected task; each task keeps its own.
        known = {lang for t in tasks for lang in t.languages}
        for lang in cfg.langs:
            if lang not in known:
                tasks[0].check_langs([lang])  # raises with the close match
    for task in tasks:
        langs = list(task.languages) if cfg.langs is None else [x for x in cfg.langs if x in task.languages]
        for lang in langs:
            loaded = data_mod.load(task, lang, cfg.data, data_dir)
            samples = loaded.samples[: cfg.limit] if cfg.limit else loaded.samples
            prompts = [task.render(s) for s in samples]
            keys = [[request_key(p) for p in pr.pairs] for pr in prompts]
            units.append(Unit(task, lang, loaded, prompts, keys))
    if not units:
        raise GlotbenchError("the selected tasks have none of the selected languages",
                             "check --langs against 'glotbench tasks'")
    return units


def execute(cfg: RunConfig, units: list[Unit], progress: bool = True) -> Path:
    started = time.time()
    backend = load_backend(cfg.model, device=cfg.device, dtype=cfg.dtype, batch_size=cfg.batch_size)
    model_key = backend.identity.cache_key
    name = cfg.output or str(Path(cfg.results_dir) / default_name(backend.identity.name))
    writer = RunWriter(Path(name))
    cache = RequestCache(Path(cfg.cache_path) if cfg.cache_path else None)
    total = sum(len(k) for u in units for k in u.keys)
    bar = _progress(total, progress)
    counts = {"total": total, "from_cache": 0, "computed": 0}
    results: dict[str, dict[str, dict]] = {}
    prov_tasks: dict[str, dict] = {}
    timings: dict[str, float] = {}
    try:
        for unit in units:
            t0 = time.time()
            answers = _answer(unit, backend, cache, model_key, bar, counts)
            records, metric_values = [], []
            for sample, prompt, keys in zip(unit.loaded.samples, unit.prompts, unit.keys):
                res = [answers[k] for k in keys]
                score = unit.task.score(prompt, res)
                metric_values.append(score["acc"])
                records.append(_record(sample.doc_id, prompt, res, score))
            writer.write_samples(unit.task.name, unit.lang, records)
            results.setdefault(unit.task.name, {})[unit.lang] = _cell(metric_values, cfg.seed)
            prov_tasks.setdefault(unit.task.name, {"version": unit.task.version, "languages": {}})
            prov_tasks[unit.task.name]["languages"][unit.lang] = {
                "data_source": unit.loaded.source,
                "data_sha256": unit.loaded.sha256,
                "n_available": len(unit.loaded.samples),
                "prompt_sha256": json_sha256([[asdict(p) for p in pr.pairs] for pr in unit.prompts]),
            }
            timings[f"{unit.task.name}/{unit.lang}"] = round(time.time() - t0, 3)
        bar.close()
        run = {
            "format": "glotbench-run/1",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": asdict(cfg),
            "results": results,
            "averages": {t: averages(langs, "acc") for t, langs in results.items()},
            "provenance": {
                "glotbench_version": harness.__version__,
                "model": asdict(backend.identity),
                "tasks": prov_tasks,
                "requests": counts,
                "seed": cfg.seed,
                "batch_size": cfg.batch_size,
                "device": backend.identity.device,
                "host": _host(),
                "timings_s": {"total": round(time.time() - started, 3), **timings},
            },
        }
        return writer.finish(run)
    except BaseException:
        writer.abort()
        raise
    finally:
        cache.close()


def _answer(unit: Unit, backend, cache: RequestCache, model_key: str, bar, counts) -> dict:
    """All log-likelihoods of a unit: cached ones first, the rest in committed chunks."""
    keys = [k for ks in unit.keys for k in ks]
    requests = {k: r for ks, p in zip(unit.keys, unit.prompts) for k, r in zip(ks, p.pairs)}
    found = {k: LoglikelihoodResult(**v) for k, v in cache.get_many(model_key, list(requests)).items()}
    hit = sum(1 for k in keys if k in found)
    counts["from_cache"] += hit
    bar.update(hit)
    todo = {k for k in keys if k not in found}
    # Chunks end on item boundaries so requests that share a prefix are planned together.
    chunk: list[str] = []
    for item_keys in unit.keys:
        for k in item_keys:
            if k in todo:
                chunk.append(k)
                todo.discard(k)
        if len(chunk) >= max(MIN_CHUNK, CHUNK_CALLS * backend.batch_size):
            _compute(chunk, requests, backend, cache, model_key, found, keys, bar, counts)
            chunk = []
    if chunk:
        _compute(chunk, requests, backend, cache, model_key, found, keys, bar, counts)
    return found


def _compute(chunk, requests, backend, cache, model_key, found, keys, bar, counts) -> None:
    res = backend.loglikelihood([requests[k] for k in chunk])
    cache.put_many(model_key, [(k, asdict(r)) for k, r in zip(chunk, res)])
    found.update(zip(chunk, res))
    done = set(chunk)
    n = sum(1 for k in keys if k in done)  # duplicates within the unit count once each
    counts["computed"] += n
    bar.update(n)


def _record(doc_id: int, prompt: MultipleChoicePrompt, res: list[LoglikelihoodResult], score: dict) -> dict:
    return {
        "doc_id": doc_id,
        "target": prompt.gold,
        "target_text": prompt.target,
        "pred": score["pred"],
        "acc": score["acc"],
        "choices": [
            {"context": p.context, "continuation": p.continuation, "logprob": r.logprob,
             "is_greedy": r.is_greedy, "n_tokens": r.n_tokens}
            for p, r in zip(prompt.pairs, res)
        ],
    }


def _cell(values: list[float], seed: int) -> dict:
    s = summarize(values, seed)
    return {"acc": s["value"], "n": s["n"], "stderr": s["stderr"], "ci95": s["ci95"]}


def default_name(model_name: str) -> str:
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in model_name.split("/")[-1]).strip("-")
    return f"{slug or 'model'}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _host() -> dict:
    import torch

    return {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count()}


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="requests", unit="req", disable=not enabled, file=sys.stderr,
                dynamic_ncols=True)
