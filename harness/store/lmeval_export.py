"""``glotbench export --format lm-eval``: a run directory in lm-eval 0.4.x's output layout.

Written as ``lm_eval --output_path DIR --log_samples`` writes it (see
:mod:`glotbench.harness.store.lmeval`): ``DIR/<model name, sanitized as lm-eval does>/``
``results_<timestamp>.json`` and one ``samples_<task>_<timestamp>.jsonl`` per lm-eval task,
for the tasks lm-eval has (xcopa, xwinograd, xstorycloze, global_mmlu(_lite), include_loglik,
mgsm); other tasks are skipped and named. Values are stringified in ``resps`` and
``filtered_resps`` as lm-eval's ``sanitize_list`` does; ``doc_hash``, ``prompt_hash``,
``target_hash`` and ``task_hashes`` are computed as lm-eval computes them.

A run imported from lm-eval keeps lm-eval's task names (Global-MMLU's subjects), doc ids,
docs and targets, so it goes back as it came. A run of glotbench has no lm-eval doc: ``doc``
is empty, ``target`` is the gold choice's index (log-likelihood tasks) or the gold answer
(MGSM), and a task lm-eval splits into subtasks (Global-MMLU, INCLUDE) is written under its
group name (``global_mmlu_full_<lang>``) as one task.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from glotbench import harness
from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.store import lmeval
from glotbench.harness.store.schema import RunRecord
from glotbench.harness.taskapi.registry import known_task


@dataclass(frozen=True)
class Exported:
    folder: Path
    results_file: Path
    tasks: list[str]
    """lm-eval task names written."""
    skipped: list[str]
    """``task`` or ``task/lang`` of the run that lm-eval has no counterpart for."""


def sanitize_model_name(name: str) -> str:
    """lm-eval's ``utils.sanitize_model_name``: its folder name for a model."""
    return re.sub(r"[\"<>:/|\\?*\[\]]+", "__", name)


def export_lmeval(run_dir: Path, out: Path) -> Exported:
    run = RunRecord.read(run_dir)
    model = str(run.model.get("name") or run.name)
    folder = Path(out) / sanitize_model_name(model)
    if folder.exists() and not folder.is_dir():
        raise GlotbenchError(f"cannot write {folder}: it is a file", "pass another -o DIR")
    stamp = datetime.now().isoformat().replace(":", "-")
    per_task: dict[str, list[dict]] = {}
    origin: dict[str, tuple[str, str]] = {}
    skipped: list[str] = []
    for task_name in run.tasks():
        task, m = known_task(task_name), lmeval.task_map(task_name)
        if task is None or m is None:
            skipped.append(task_name)
            continue
        for lang in run.languages(task_name):
            if run.cell(task_name, lang).get("aggregate_only"):
                skipped.append(f"{task_name}/{lang}")
                continue
            for rec in run.samples(task_name, lang):
                name = (rec.get("lmeval") or {}).get("task") or lmeval.lmeval_name(task, lang)
                lines = choice_lines(rec) if task.output_type != "generate" else generation_lines(rec, m, run, task_name)
                per_task.setdefault(name, []).extend(lines)
                origin[name] = (task_name, lang)
    if not per_task:
        raise GlotbenchError(f"run {run_dir} has no per-example records of a task lm-eval has "
                             f"({', '.join(run.tasks())})",
                             "export runs of " + ", ".join(m.task for m in lmeval.TASKS))
    for name, lines in per_task.items():  # lm-eval writes filter by filter, each in doc order
        order = list(lmeval.task_map(origin[name][0]).metrics.values())
        lines.sort(key=lambda x: [flt for _, flt, _ in order].index(x["filter"]))
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in per_task.items():
        with open(folder / f"samples_{name}_{stamp}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(x, ensure_ascii=False) + "\n" for x in lines)
    results = results_json(run, per_task, origin, model)
    results_file = folder / f"results_{stamp}.json"
    results_file.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    return Exported(folder, results_file, list(per_task), skipped)


def _hashes(doc: dict, prompt: str, target: str) -> dict:
    return {"doc_hash": lmeval.doc_hash(doc), "prompt_hash": lmeval.hash_string(prompt),
            "target_hash": lmeval.hash_string(target)}


def _origin(rec: dict) -> tuple[int, dict, str | None]:
    lm = rec.get("lmeval") or {}
    return lm.get("doc_id", rec["doc_id"]), lm.get("doc") or {}, lm.get("target")


def choice_lines(rec: dict) -> list[dict]:
    doc_id, doc, target = _origin(rec)
    target = str(target if target is not None else rec["target"])
    choices = rec["choices"]
    resps = [[str(c["logprob"]), str(bool(c["is_greedy"]))] for c in choices]
    line = {"doc_id": doc_id, "doc": doc, "target": target,
            "arguments": {f"gen_args_{i}": {"arg_0": c["context"], "arg_1": c["continuation"]}
                          for i, c in enumerate(choices)},
            "resps": [[r] for r in resps], "filtered_resps": resps, "filter": "none", "metrics": ["acc"],
            **_hashes(doc, choices[0]["context"], target), "acc": rec["acc"]}
    return [line]


def generation_lines(rec: dict, m: lmeval.TaskMap, run: RunRecord, task_name: str) -> list[dict]:
    doc_id, doc, target = _origin(rec)
    target = str(target if target is not None else rec["target"])
    prompt = rec.get("prompt")
    prompt = prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False)
    kwargs = rec.get("generation_kwargs") or {"do_sample": False,
                                              "max_gen_toks": run.prompting(task_name).get("max_new_tokens")}
    out = []
    for metric, (lm_metric, flt, pred_field) in m.metrics.items():
        pred = rec.get(pred_field)
        out.append({"doc_id": doc_id, "doc": doc, "target": target,
                    "arguments": {"gen_args_0": {"arg_0": prompt, "arg_1": kwargs}},
                    "resps": [[str(rec.get("response", ""))]],
                    "filtered_resps": [lmeval.INVALID if pred is None else str(pred)],
                    "filter": flt, "metrics": [lm_metric], **_hashes(doc, prompt, target), lm_metric: rec[metric]})
    return out


def _mean_stderr(values: list[float]) -> tuple[float, float | str]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, "N/A"
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var) / math.sqrt(n)


def _version(text: str | None) -> float | str | None:
    text = (text or "").removeprefix("lm-eval:")
    try:
        return float(text)
    except ValueError:
        return text or None


def results_json(run: RunRecord, per_task: dict[str, list[dict]], origin: dict, model: str) -> dict:
    imported = run.provenance.get("imported") or {}
    results, configs, versions, nshot, better, nsamples, hashes = {}, {}, {}, {}, {}, {}, {}
    for name, lines in per_task.items():
        task_name, lang = origin[name]
        task, m = known_task(task_name), lmeval.task_map(task_name)
        row = {"alias": name}
        for _, (lm_metric, flt, _) in m.metrics.items():
            values = [float(x[lm_metric]) for x in lines if x["filter"] == flt]
            mean, stderr = _mean_stderr(values)
            row[f"{lm_metric},{flt}"], row[f"{lm_metric}_stderr,{flt}"] = mean, stderr
        results[name] = row
        gen = task.output_type == "generate"
        shots = run.prompting(task_name).get("n_shot")
        nshot[name] = shots[0] if isinstance(shots, list) and len(shots) == 1 else (
            task.data.fewshot.num if task.data.fewshot else 0)
        versions[name] = _version(run.version(task_name))
        metric_names = sorted({lm for lm, _, _ in m.metrics.values()})
        configs[name] = {"task": name, "output_type": "generate_until" if gen else "multiple_choice",
                         "num_fewshot": nshot[name],
                         "metric_list": [{"metric": x, "aggregation": "mean", "higher_is_better": True}
                                         for x in metric_names],
                         "metadata": {"version": versions[name], "exported_by": "glotbench"}}
        better[name] = dict.fromkeys(metric_names, True)
        docs = {x["doc_id"] for x in lines}
        avail = run.language_provenance(task_name, lang).n_available
        alone = sum(1 for o in origin.values() if o == origin[name]) == 1  # the cell is this one task
        nsamples[name] = {"original": avail if avail and alone else len(docs), "effective": len(docs)}
        hashes[name] = lmeval.hash_string("".join(x["doc_hash"] + x["prompt_hash"] + x["target_hash"] for x in lines))
    model_info = run.model
    config = dict(imported.get("config") or {}) or {
        "model": "glotbench:" + str(model_info.get("backend")), "model_args": model,
        "model_dtype": model_info.get("dtype"), "device": model_info.get("device"),
        "limit": run.config.get("limit"), "batch_size": run.provenance.get("batch_size")}
    return {
        "results": results, "group_subtasks": {}, "configs": configs, "versions": versions, "n-shot": nshot,
        "higher_is_better": better, "n-samples": nsamples, "config": config, "git_hash": None,
        "date": time.time(), "lm_eval_version": imported.get("lm_eval_version"),
        "transformers_version": run.versions.get("transformers"), "task_hashes": hashes,
        # lm-eval's environment dump; only the line the importer reads back is known here
        "pretty_env_info": f"PyTorch version: {run.versions['torch']}" if run.versions.get("torch") else None,
        "model_source": config.get("model"), "model_name": model, "model_name_sanitized": sanitize_model_name(model),
        "exported_by": {"tool": "glotbench", "version": harness.__version__, "run": str(run.path),
                        "run_sha256": run.sha256},
    }
