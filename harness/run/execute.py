"""Run tasks on a model: load and render everything first (so bad input fails before the
model loads), answer requests from the cache or the backend in resumable chunks, score, and
write one run directory.

Resume: every computed chunk is committed to the request cache before the next starts, so a
run killed at any point and started again recomputes only the chunk that was in flight.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from glotbench import harness
from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import json_sha256
from glotbench.harness.core.naming import timestamped
from glotbench.harness.core.progress import WorkBar
from glotbench.harness.core.records import (
    GenerationRequest,
    GenerationResult,
    LoglikelihoodResult,
)
from glotbench.harness.models.loader import load_backend
from glotbench.harness.models.protocol import Backend
from glotbench.harness.run.cache import RequestCache
from glotbench.harness.run.config import RunConfig
from glotbench.harness.run.eta import PRIOR, request_kind, request_units, token_counter
from glotbench.harness.run.plan import Unit, generation_requests
from glotbench.harness.run.provenance import host, merge_provenance, prompting, versions
from glotbench.harness.run.scoring import cell, choice_record, generation_record, task_averages
from glotbench.harness.store.rundir import RunWriter, check_new
from glotbench.harness.taskapi.registry import get_task

# Requests answered between two commits to the cache: what a kill -9 can lose at most.
CHUNK_CALLS = 8
MIN_CHUNK = 32
# Generations are far costlier per request: commit every few batches (enough requests per
# chunk for the backend to batch prompts of similar length together).
GEN_CHUNK_BATCHES = 4


def execute(cfg: RunConfig, units: list[Unit], progress: bool = True, backend: Backend | None = None) -> Path:
    """Run the planned units and write the run directory; ``backend``: an already loaded
    backend for ``cfg.model`` (benchmarks time a run without its model load), else loaded here.
    A backend handed in stays the caller's: it is not released, not even for xCOMET (which then
    shares the GPU with it)."""
    started = time.time()
    if cfg.output:
        check_new(Path(cfg.output))  # before the model loads: a taken name fails at once
    if backend is not None and getattr(backend, "replicas", 1) < cfg.data_parallel:
        raise GlotbenchError(f"data_parallel={cfg.data_parallel} with a single backend handed in",
                             "hand in no backend (execute starts the replicas) or set data_parallel=1")
    owned = backend is None
    if backend is None:
        backend = start_backend(cfg)
    if hasattr(backend, "expect_loglikelihood"):  # a served model's refusal names these tasks
        backend.expect_loglikelihood(sorted({u.task.name for u in units if u.task.output_type != "generate"}))
    name = cfg.output or str(Path(cfg.results_dir) / timestamped(backend.identity.name.split("/")[-1]))
    writer = RunWriter(Path(name))
    cache = None
    # Everything after the run directory is opened is inside this try: an error anywhere
    # leaves no partial directory and no open cache database behind.
    try:
        cache = open_cache(cfg)
        for unit in units:
            if unit.task.output_type == "generate":
                generation_requests(unit, cfg, backend)
        total = sum(len(k) for u in units for k in u.keys)
        bar = work_bar(units, backend, progress)
        counts = {"total": total, "from_cache": 0, "computed": 0}
        timings: dict[str, float] = {}
        scored = answer_and_score(units, backend, cache, bar, counts, timings)
        bar.close()
        extra: dict[str, tuple[str, ...]] = {}
        neural = None
        if cfg.xcomet:
            from glotbench.harness.metrics import comet

            if owned and backend.identity.device.startswith("cuda") and hasattr(backend, "release"):
                backend.release()  # every response is in hand: give the GPU to the xCOMET worker
            neural = comet.score_units(cfg, scored, cache, device=backend.identity.device, progress=progress)
            extra = {u.task.name: ("xcomet",) for u, _, _ in scored if u.task.source_field}
        results: dict[str, dict[str, dict]] = {}
        prov_tasks: dict[str, dict] = {}
        for unit, records, scores in scored:
            task = unit.task
            writer.write_samples(task.name, unit.lang, records)
            results.setdefault(task.name, {})[unit.lang] = cell(task, unit.loaded.samples, scores, cfg.seed,
                                                                extra.get(task.name, ()))
            prov_tasks.setdefault(task.name, {"version": task.version,
                                              "metrics": list(task.metrics) + list(extra.get(task.name, ())),
                                              "languages": {}, "prompting": prompting(unit, cfg, backend)})
            prov_tasks[task.name]["languages"][unit.lang] = language_provenance(unit)
        run = {
            "format": "glotbench-run/1",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": asdict(cfg),
            "results": results,
            "averages": {t: task_averages(get_task(t), langs, prov_tasks[t]["metrics"]) for t, langs in results.items()},
            "provenance": {
                "glotbench_version": harness.__version__,
                "model": {**asdict(backend.identity), **merge_provenance(backend.identity.name)},
                "tasks": prov_tasks,
                "requests": counts,
                **({"xcomet": neural} if neural is not None else {}),
                "seed": cfg.seed,
                "batch_size": cfg.batch_size,
                "device": backend.identity.device,
                "host": host(),
                "versions": versions(),
                "timings_s": {"total": round(time.time() - started, 3), **timings},
                **({"data_parallel": backend.provenance()} if cfg.data_parallel > 1 else {}),
            },
        }
        return writer.finish(run)
    except BaseException:
        writer.abort()
        raise
    finally:
        if cache is not None:
            cache.close()
        if owned and hasattr(backend, "release"):
            backend.release()  # the vllm backend's worker and engine processes end here


def start_backend(cfg: RunConfig) -> Backend:
    """The run's backend: one model, or replicas as Ray actors (a single-process run never
    imports Ray)."""
    if cfg.data_parallel > 1:
        from glotbench.harness.run.parallel import ReplicaPool

        return ReplicaPool.start(cfg)
    return load_backend(cfg.model, **cfg.backend_options())


def work_bar(units: list[Unit], backend: Backend, enabled: bool) -> WorkBar:
    """The run's progress bar: requests weighed by expected cost (run/eta.py), so its ETA
    prices a long generation like its decode time, not like one log-likelihood."""
    count = token_counter(backend)
    weights: dict[str, float] = {}
    kinds: dict[str, str] = {}
    for unit in units:
        for keys, reqs in zip(unit.keys, unit.requests):
            for key, req in zip(keys, reqs):
                if key not in weights:
                    weights[key], kinds[key] = request_units(req, count), request_kind(req)
    return WorkBar(weights, kinds, [k for u in units for ks in u.keys for k in ks], PRIOR, enabled)


def advance(bar, keys: list[str], cached: bool = False) -> None:
    """Count answered requests on ``bar``: weighed and timed on a :class:`WorkBar`, counted on
    a plain bar (the sequential gate's)."""
    if isinstance(bar, WorkBar):
        bar.update(len(keys), keys=keys, cached=cached)
    else:
        bar.update(len(keys))


def open_cache(cfg: RunConfig) -> RequestCache:
    """The request cache; a file that is not a usable SQLite database is the user's to fix."""
    try:
        return RequestCache(Path(cfg.cache_path) if cfg.cache_path else None)
    except (sqlite3.DatabaseError, OSError) as exc:
        where = cfg.cache_path or os.environ.get("GLOTBENCH_REQUEST_CACHE") or "the request cache"
        raise GlotbenchError(f"cannot open the request cache {where}: {exc}",
                             "remove or move that file (it is rebuilt on the next run), or point "
                             "GLOTBENCH_REQUEST_CACHE elsewhere") from None


def language_provenance(unit: Unit) -> dict:
    """Where one task language's items came from, and how it was selected and prompted."""
    out = {
        "data_source": unit.loaded.source,
        "data_sha256": unit.loaded.sha256,
        "n_available": len(unit.loaded.samples),
        "prompt_sha256": json_sha256([[asdict(r) for r in reqs] for reqs in unit.requests]),
    }
    if unit.requested and unit.requested != (unit.lang,):
        out["requested_as"] = list(unit.requested)  # --langs ja ran XWinograd's jp
    if unit.fewshot_short:
        fs = unit.task.data.fewshot
        out["fewshot_short"] = {"wanted": fs.num if fs else 0, "have": dict(unit.fewshot_short)}
    return out


def answer_and_score(units: list[Unit], backend: Backend, cache: RequestCache, bar, counts: dict,
                     timings: dict | None = None) -> list[tuple[Unit, list[dict], list[dict]]]:
    """Every unit's responses (cache first, then the backend in committed chunks) and its
    per-example records and scores, in item order."""
    model_key = backend.identity.cache_key
    # Data-parallel replicas (run/parallel.py) answer every unit's misses at once, then hand
    # each unit the same dict _answer would have built.
    answer = backend.answerer(units, cache, bar, counts) if hasattr(backend, "answerer") else _answer
    scored: list[tuple[Unit, list[dict], list[dict]]] = []
    pooled: dict | None = None
    for unit in units:
        t0 = time.time()
        task = unit.task
        if task.output_type == "generate":
            if pooled is None:
                # Every generative request of the run at once: batches mix languages and
                # tasks (each row stops at its own stop strings), so a language with few
                # items never runs a batch of its own.
                pooled = answer([u for u in units if u.task.output_type == "generate"],
                                backend, cache, model_key, bar, counts)
            answers = pooled
        else:
            answers = answer([unit], backend, cache, model_key, bar, counts)
        records, scores = [], []
        for sample, prompt, keys, reqs in zip(unit.item_samples(), unit.prompts, unit.keys, unit.requests):
            res = [answers[k] for k in keys]
            if task.output_type == "generate":
                score = task.score(prompt, res[0], unit.lang)
                records.append(generation_record(sample.doc_id, prompt, reqs[0], res[0], score, task.metrics))
                if task.id_field:
                    records[-1]["prompt_id"] = str(sample.fields[task.id_field])
                if task.judged:
                    records[-1]["instruction"] = prompt.question
            else:
                score = task.score(prompt, res)
                records.append(choice_record(sample.doc_id, prompt, res, score))
            scores.append(score)
        scored.append((unit, records, scores))
        if timings is not None:
            timings[f"{unit.task.name}/{unit.lang}"] = round(time.time() - t0, 3)
    return scored


def _answer(units: list[Unit], backend: Backend, cache: RequestCache, model_key: str, bar, counts) -> dict:
    """All responses of some units (of one output type): cached ones first, the rest in
    committed chunks."""
    found, chunks, requests, keys = pending_chunks(units, backend, cache, model_key, bar, counts)
    for chunk in chunks:
        batch = [requests[k] for k in chunk]
        res = backend.generate(batch) if isinstance(batch[0], GenerationRequest) else backend.loglikelihood(batch)
        commit(chunk, res, cache, model_key, found, keys, bar, counts)
    return found


def pending_chunks(units: list[Unit], backend: Backend, cache: RequestCache, model_key: str, bar,
                   counts) -> tuple[dict, list[list[str]], dict, list[str]]:
    """Some units' cached responses (counted), and the keys of the rest in the chunks they are
    computed and committed in, with every request by key and the units' keys in order. The
    chunks depend only on the units, the cache and the batch size, so data-parallel replicas
    answer exactly the batches a single process would; except above a backend's ``min_chunk``
    (vLLM on GPUs, whose batches change its numbers anyway), which a pool of replicas caps so
    that every replica gets a share."""
    item_keys_all = [ks for u in units for ks in u.keys]
    keys = [k for ks in item_keys_all for k in ks]
    requests = {k: r for u in units for ks, rs in zip(u.keys, u.requests) for k, r in zip(ks, rs)}
    generative = units[0].task.output_type == "generate"
    result_type = GenerationResult if generative else LoglikelihoodResult
    found = {k: result_type(**v) for k, v in cache.get_many(model_key, list(requests)).items()}
    hit = [k for k in keys if k in found]
    counts["from_cache"] += len(hit)
    advance(bar, hit, cached=True)
    todo = {k for k in keys if k not in found}
    chunk_size = backend.batch_size * GEN_CHUNK_BATCHES if generative \
        else max(MIN_CHUNK, CHUNK_CALLS * backend.batch_size)
    floor = getattr(backend, "min_chunk", 0)
    if floor:  # a continuous-batching engine: big calls, yet one for each replica of a pool
        chunk_size = max(chunk_size, min(floor, -(-len(todo) // getattr(backend, "replicas", 1))))
    # Chunks end on item boundaries so requests that share a prefix are planned together.
    chunks: list[list[str]] = []
    chunk: list[str] = []
    for item_keys in item_keys_all:
        for k in item_keys:
            if k in todo:
                chunk.append(k)
                todo.discard(k)
        if len(chunk) >= chunk_size:
            chunks.append(chunk)
            chunk = []
    if chunk:
        chunks.append(chunk)
    return found, chunks, requests, keys


def commit(chunk: list[str], res: list, cache: RequestCache, model_key: str, found: dict, keys: list[str],
           bar, counts) -> None:
    """One computed chunk into the cache (one transaction) and the answers, counted."""
    cache.put_many(model_key, [(k, asdict(r)) for k, r in zip(chunk, res)])
    found.update(zip(chunk, res))
    done = set(chunk)
    answered = [k for k in keys if k in done]  # duplicates within the unit count once each
    counts["computed"] += len(answered)
    advance(bar, answered)


