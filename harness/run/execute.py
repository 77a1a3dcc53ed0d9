"""Run tasks on a model: load and render everything first (so bad input fails before the
model loads), answer requests from the cache or the backend in resumable chunks, score, and
write one run directory.

Resume: every computed chunk is committed to the request cache before the next starts, so a
run killed at any point and started again recomputes only the chunk that was in flight.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from glotbench import harness
from glotbench.harness.taskapi import data as data_mod
from glotbench.harness.run.cache import RequestCache, request_key
from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import json_sha256
from glotbench.harness.models.loader import load_backend
from glotbench.harness.taskapi.registry import get_task
from glotbench.harness.metrics.stats import averages, summarize
from glotbench.harness.store.rundir import RunWriter
from glotbench.harness.core.records import (
    GenerationPrompt,
    GenerationRequest,
    GenerationResult,
    LoglikelihoodResult,
    MultipleChoicePrompt,
)

# Requests answered between two commits to the cache: what a kill -9 can lose at most.
CHUNK_CALLS = 8
MIN_CHUNK = 32
# Generations are far costlier per request: commit every few batches (enough requests per
# chunk for the backend to batch prompts of similar length together).
GEN_CHUNK_BATCHES = 4

CHAT_MODES = ("auto", "on", "off")
FEWSHOT_AS = ("multiturn", "single-turn")


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
    chat: str = "auto"
    """Generative tasks through the model's chat template: auto (when it has one), on, off.
    Log-likelihood tasks always score plain text, as lm-eval does by default."""
    fewshot_as: str = "multiturn"
    """With the chat template: few-shot examples as user/assistant turns (multiturn) or
    inside the one user turn (single-turn)."""
    max_new_tokens: int | None = None
    """Override of each generative task's generation length."""
    task_limits: dict[str, int] = field(default_factory=dict)
    """Per-task item limits where ``limit`` is None (the default run on CPU)."""
    task_langs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Per-task languages where ``langs`` is None (the default run keeps those with local data)."""
    task_max_new_tokens: dict[str, int] = field(default_factory=dict)
    """Per-task generation lengths where ``max_new_tokens`` is None (the default run on CPU
    shortens open-ended completions)."""
    xcomet: str | None = None
    """Also score translation tasks with this COMET model (hub id or checkpoint path)."""
    xcomet_batch_size: int = 8
    xcomet_fp16: bool = False
    """Half precision for xCOMET (as the comet-score CLI; faster on a GPU)."""


@dataclass
class Unit:
    """One task × language to evaluate."""

    task: object
    lang: str
    loaded: data_mod.LoadedData
    prompts: list[MultipleChoicePrompt | GenerationPrompt]
    keys: list[list[str]] = field(default_factory=list)
    requests: list[list] = field(default_factory=list)
    """Per item, the backend requests (log-likelihood pairs or one generation)."""
    chat: bool = False
    samples: list | None = None
    """The items' samples when not the first ``len(prompts)`` of the data (a subset)."""

    def item_samples(self) -> list:
        return self.samples if self.samples is not None else list(self.loaded.samples[:len(self.prompts)])


def plan(cfg: RunConfig) -> list[Unit]:
    units = []
    data_dir = Path(cfg.data_dir) if cfg.data_dir else None
    if data_dir is not None and not data_dir.is_dir():
        raise GlotbenchError(f"--data-dir {data_dir} is not a directory", "pass the folder holding the data files")
    if cfg.limit is not None and cfg.limit < 1:
        raise GlotbenchError(f"--limit must be >= 1, got {cfg.limit}", "omit --limit to use all items")
    if cfg.chat not in CHAT_MODES:
        raise GlotbenchError(f"unknown --chat mode {cfg.chat!r}", f"use one of {', '.join(CHAT_MODES)}")
    if cfg.fewshot_as not in FEWSHOT_AS:
        raise GlotbenchError(f"unknown --fewshot-as {cfg.fewshot_as!r}", f"use one of {', '.join(FEWSHOT_AS)}")
    if cfg.max_new_tokens is not None and cfg.max_new_tokens < 1:
        raise GlotbenchError(f"--max-new-tokens must be >= 1, got {cfg.max_new_tokens}",
                             "omit it to use each task's generation length")
    tasks = [get_task(name) for name in cfg.tasks]
    if cfg.xcomet:
        from glotbench.harness.metrics import comet

        if not any(t.source_field for t in tasks):
            raise GlotbenchError("--xcomet was given but no selected task is a translation task",
                                 "add --tasks flores, or drop --xcomet")
        if cfg.xcomet_batch_size < 1:
            raise GlotbenchError(f"--xcomet-batch-size must be >= 1, got {cfg.xcomet_batch_size}")
        comet.model_identity(cfg.xcomet)  # a missing checkpoint fails here, before any model loads
    if cfg.langs is not None:
        # A language must exist in at least one selected task; each task keeps its own.
        for lang in cfg.langs:
            if not any(t.supports(lang) for t in tasks):
                tasks[0].check_langs([lang])  # raises with the close match
    for task in tasks:
        if cfg.langs is not None:
            langs = [x for x in cfg.langs if task.supports(x)]
        else:
            langs = list(cfg.task_langs.get(task.name, task.languages))
        for lang in langs:
            loaded = data_mod.load(task, lang, cfg.data, data_dir)
            limit = cfg.limit or cfg.task_limits.get(task.name)
            samples = loaded.samples[:limit] if limit else loaded.samples
            prompts = [task.prompt(s, loaded.fewshot) for s in samples]
            unit = Unit(task, lang, loaded, prompts)
            if task.output_type == "multiple_choice":
                unit.requests = [list(p.pairs) for p in prompts]
                unit.keys = [[request_key(r) for r in reqs] for reqs in unit.requests]
            units.append(unit)
    if not units:
        raise GlotbenchError("the selected tasks have none of the selected languages",
                             "check --langs against 'glotbench tasks'")
    return units


def execute(cfg: RunConfig, units: list[Unit], progress: bool = True) -> Path:
    started = time.time()
    backend = load_backend(cfg.model, device=cfg.device, dtype=cfg.dtype, batch_size=cfg.batch_size)
    name = cfg.output or str(Path(cfg.results_dir) / default_name(backend.identity.name))
    writer = RunWriter(Path(name))
    cache = RequestCache(Path(cfg.cache_path) if cfg.cache_path else None)
    for unit in units:
        if unit.task.output_type == "generate":
            _generation_requests(unit, cfg, backend)
    total = sum(len(k) for u in units for k in u.keys)
    bar = _progress(total, progress)
    counts = {"total": total, "from_cache": 0, "computed": 0}
    results: dict[str, dict[str, dict]] = {}
    prov_tasks: dict[str, dict] = {}
    timings: dict[str, float] = {}
    try:
        scored = answer_and_score(units, backend, cache, bar, counts, timings)
        bar.close()
        extra: dict[str, tuple[str, ...]] = {}
        neural = None
        if cfg.xcomet:
            from glotbench.harness.metrics import comet

            if backend.identity.device.startswith("cuda") and hasattr(backend, "release"):
                backend.release()  # every response is in hand: give the GPU to the xCOMET worker
            neural = comet.score_units(cfg, scored, cache, device=backend.identity.device, progress=progress)
            extra = {u.task.name: ("xcomet",) for u, _, _ in scored if u.task.source_field}
        for unit, records, scores in scored:
            task = unit.task
            writer.write_samples(task.name, unit.lang, records)
            results.setdefault(task.name, {})[unit.lang] = cell(task, unit.loaded.samples, scores, cfg.seed,
                                                                extra.get(task.name, ()))
            prov_tasks.setdefault(task.name, {"version": task.version,
                                              "metrics": list(task.metrics) + list(extra.get(task.name, ())),
                                              "languages": {}, "prompting": _prompting(unit, cfg, backend)})
            prov_tasks[task.name]["languages"][unit.lang] = {
                "data_source": unit.loaded.source,
                "data_sha256": unit.loaded.sha256,
                "n_available": len(unit.loaded.samples),
                "prompt_sha256": json_sha256([[asdict(r) for r in reqs] for reqs in unit.requests]),
            }
        run = {
            "format": "glotbench-run/1",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": asdict(cfg),
            "results": results,
            "averages": {t: _averages(get_task(t), langs, prov_tasks[t]["metrics"]) for t, langs in results.items()},
            "provenance": {
                "glotbench_version": harness.__version__,
                "model": {**asdict(backend.identity), **_merge_provenance(backend.identity.name)},
                "tasks": prov_tasks,
                "requests": counts,
                **({"xcomet": neural} if neural is not None else {}),
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


def answer_and_score(units: list[Unit], backend, cache: RequestCache, bar, counts: dict,
                     timings: dict | None = None) -> list[tuple[Unit, list[dict], list[dict]]]:
    """Every unit's responses (cache first, then the backend in committed chunks) and its
    per-example records and scores, in item order."""
    model_key = backend.identity.cache_key
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
                pooled = _answer([u for u in units if u.task.output_type == "generate"],
                                 backend, cache, model_key, bar, counts)
            answers = pooled
        else:
            answers = _answer([unit], backend, cache, model_key, bar, counts)
        records, scores = [], []
        for sample, prompt, keys, reqs in zip(unit.item_samples(), unit.prompts, unit.keys, unit.requests):
            res = [answers[k] for k in keys]
            if task.output_type == "generate":
                score = task.score(prompt, res[0], unit.lang)
                records.append(_gen_record(sample.doc_id, prompt, reqs[0], res[0], score, task.metrics))
                if task.id_field:
                    records[-1]["prompt_id"] = str(sample.fields[task.id_field])
                if task.judged:
                    records[-1]["instruction"] = prompt.question
            else:
                score = task.score(prompt, res)
                records.append(_record(sample.doc_id, prompt, res, score))
            scores.append(score)
        scored.append((unit, records, scores))
        if timings is not None:
            timings[f"{unit.task.name}/{unit.lang}"] = round(time.time() - t0, 3)
    return scored


def subset(unit: Unit, positions: list[int]) -> Unit:
    """The unit restricted to some of its items (positions in item order), requests included."""
    samples = unit.item_samples()
    return Unit(unit.task, unit.lang, unit.loaded, [unit.prompts[i] for i in positions],
                [unit.keys[i] for i in positions], [unit.requests[i] for i in positions], unit.chat,
                [samples[i] for i in positions])


def _answer(units: list[Unit], backend, cache: RequestCache, model_key: str, bar, counts) -> dict:
    """All responses of some units (of one output type): cached ones first, the rest in
    committed chunks."""
    item_keys_all = [ks for u in units for ks in u.keys]
    keys = [k for ks in item_keys_all for k in ks]
    requests = {k: r for u in units for ks, rs in zip(u.keys, u.requests) for k, r in zip(ks, rs)}
    generative = units[0].task.output_type == "generate"
    result_type = GenerationResult if generative else LoglikelihoodResult
    found = {k: result_type(**v) for k, v in cache.get_many(model_key, list(requests)).items()}
    chunk_size = backend.batch_size * GEN_CHUNK_BATCHES if generative \
        else max(MIN_CHUNK, CHUNK_CALLS * backend.batch_size)
    hit = sum(1 for k in keys if k in found)
    counts["from_cache"] += hit
    bar.update(hit)
    todo = {k for k in keys if k not in found}
    # Chunks end on item boundaries so requests that share a prefix are planned together.
    chunk: list[str] = []
    for item_keys in item_keys_all:
        for k in item_keys:
            if k in todo:
                chunk.append(k)
                todo.discard(k)
        if len(chunk) >= chunk_size:
            _compute(chunk, requests, backend, cache, model_key, found, keys, bar, counts)
            chunk = []
    if chunk:
        _compute(chunk, requests, backend, cache, model_key, found, keys, bar, counts)
    return found


def _compute(chunk, requests, backend, cache, model_key, found, keys, bar, counts) -> None:
    batch = [requests[k] for k in chunk]
    res = backend.generate(batch) if isinstance(batch[0], GenerationRequest) else backend.loglikelihood(batch)
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


def _generation_requests(unit: Unit, cfg: RunConfig, backend) -> None:
    """Lay out each generative prompt as text (plain, or through the chat template)."""
    unit.chat = _use_chat(cfg, backend)
    unit.requests = []
    for p in unit.prompts:
        text = backend.apply_chat_template(p.messages(cfg.fewshot_as)) if unit.chat else p.plain()
        length = cfg.max_new_tokens or cfg.task_max_new_tokens.get(unit.task.name) or p.max_new_tokens
        unit.requests.append([GenerationRequest(text, p.stop, length)])
    unit.keys = [[request_key(r) for r in reqs] for reqs in unit.requests]


def _use_chat(cfg: RunConfig, backend) -> bool:
    if cfg.chat == "off":
        return False
    if backend.chat_template is None:
        if cfg.chat == "on":
            raise GlotbenchError(f"--chat on, but model {backend.identity.name!r} has no chat template",
                                 "use --chat off (or auto) for a base model")
        return False
    return True


def _prompting(unit: Unit, cfg: RunConfig, backend) -> dict:
    """How prompts were laid out: recorded so runs that differ here are never compared blindly."""
    if unit.task.output_type != "generate":
        return {"chat_template": False, "layout": "plain text (log-likelihood)"}
    out = {"chat_template": unit.chat, "layout": f"chat, few-shot {cfg.fewshot_as}" if unit.chat else "plain text",
           "max_new_tokens": unit.requests[0][0].max_new_tokens if unit.requests else None}
    if unit.chat:
        out["fewshot_as"] = cfg.fewshot_as
        out["chat_template_sha256"] = json_sha256(backend.chat_template)
    return out


def _gen_record(doc_id: int, prompt: GenerationPrompt, request: GenerationRequest, res: GenerationResult,
                score: dict, metrics: tuple[str, ...]) -> dict:
    return {
        "doc_id": doc_id,
        "target": prompt.target,
        "pred": score.get("pred"),
        **{m: score[m] for m in metrics},
        "parsed": score.get("parsed", True),
        # Anything else the scorer returns (a second prediction, chrF++ statistics, ...).
        **{k: v for k, v in score.items() if k not in metrics and k not in ("pred", "parsed")},
        "response": res.text,
        "finish": res.finish,
        "n_tokens": res.n_tokens,
        "prompt": request.prompt,
    }


def cell(task, samples, scores: list[dict], seed: int, extra: tuple[str, ...] = ()) -> dict:
    """One language's results: every metric with n, stderr and CI (the headline metric also
    at the top level), failures counted, breakdowns by row field. Corpus-level metrics come
    from the task's ``aggregate``; ``extra`` names per-example metrics added by a later
    scoring stage (xCOMET)."""
    corpus = task.aggregate(scores, seed) if task.aggregate is not None else {}
    names = tuple(task.metrics) + tuple(m for m in extra if m not in task.metrics)
    metrics = {m: corpus[m] if m in corpus else summarize([s[m] for s in scores], seed) for m in names}
    head = metrics[task.primary]
    out = {task.primary: head["value"], "n": head["n"], "stderr": head["stderr"], "ci95": head["ci95"]}
    if "signature" in head:
        out["signature"] = head["signature"]
    if len(names) > 1:
        out["metrics"] = metrics
    if task.output_type == "generate":
        out["unparsed"] = sum(1 for s in scores if not s.get("parsed", True))
    if task.breakdowns:
        out["by"] = {}
        for name in task.breakdowns:
            groups: dict[str, list[float]] = {}
            for sample, s in zip(samples, scores):
                groups.setdefault(str(sample.fields.get(name)), []).append(s[task.primary])
            out["by"][name] = {k: summarize(v, seed) for k, v in sorted(groups.items())}
    if task.balanced is not None:
        name, values = task.balanced
        parts = [out["by"][name][v]["value"] for v in values if v in out.get("by", {}).get(name, {})]
        out["balanced"] = {"over": f"{name} in {', '.join(values)}", "value":
                           sum(parts) / len(parts) if len(parts) == len(values) else None}
    return out


def _averages(task, per_lang: dict[str, dict], metrics: list[str]) -> dict:
    """Macro/micro averages of the headline metric (per group too), and of every other metric
    under ``metrics``."""
    out = averages(per_lang, task.primary, task.group)
    others = [m for m in metrics if m != task.primary]
    if others:
        out["metrics"] = {m: averages({lang: {m: c["metrics"][m]["value"], "n": c["metrics"][m]["n"]}
                                       for lang, c in per_lang.items()}, m, task.group) for m in others}
    return out


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


def _merge_provenance(model: str) -> dict:
    """A merged checkpoint (``glotbench merge``) carries its recipe into every run of it."""
    path = Path(model.removeprefix("hf:")) / "merge_manifest.json"
    try:
        man = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        man = None
    if not isinstance(man, dict):
        return {}
    keep = ("method", "convention", "seed", "config_sha256", "glotbench_version", "created_utc")
    inputs = [{"model": i.get("model"), "role": i.get("role"), "files": i.get("files")} for i in man.get("inputs", [])]
    return {"merge": {**{k: man.get(k) for k in keep}, "inputs": inputs}}
