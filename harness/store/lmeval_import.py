"""``glotbench import-lmeval``: an lm-eval 0.4.x output directory as a glotbench run directory.

The per-example records come from lm-eval's samples files, and every number of the run is
glotbench's own, recomputed from them (``scoring.cell``: means, stderr, seeded bootstrap CIs,
breakdowns, averages):

- log-likelihood tasks (xcopa, xwinograd, xstorycloze, global_mmlu(_lite), include_loglik):
  each choice's (context, continuation) and log-likelihood; the prediction is re-derived by
  glotbench's scorer (argmax, NaN never picked). The gold choice is the one glotbench's task
  renders from lm-eval's ``doc``; when the doc does not render (an export of a glotbench run
  carries no doc), lm-eval's ``target`` (an index, or the gold choice's text);
- MGSM native CoT: the generated text, lm-eval's extracted answers and exact matches per
  filter (strict-match → ``strict_match``, flexible-extract → ``flexible_extract``):
  lm-eval's scoring, recorded as it scored, so the run's numbers are lm-eval's.

lm-eval's reported numbers are checked against the recomputed ones (``lmeval_reported`` and
``checks`` in the provenance); a difference is reported, never hidden. A task glotbench does
not know is skipped and named. The run records that it was imported (``config.imported``,
``provenance.imported``: source, files and their sha256, lm-eval version, model and its
arguments, task config hashes), and its task versions read ``lm-eval:<version>``, so the gate
never pairs it with a glotbench run as if one prompt set had made both.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from glotbench import harness
from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import json_sha256
from glotbench.harness.core.naming import slug
from glotbench.harness.core.records import (
    LoglikelihoodRequest,
    LoglikelihoodResult,
    MultipleChoicePrompt,
    Sample,
)
from glotbench.harness.run.scoring import cell, choice_record, task_averages
from glotbench.harness.store import lmeval
from glotbench.harness.store.rundir import RunWriter, check_new
from glotbench.harness.taskapi.registry import get_task
from glotbench.harness.taskapi.spec import score_multiple_choice

TOLERANCE = 1e-9
"""Recomputed vs reported by lm-eval: both are means of the same 0/1 values."""


@dataclass(frozen=True)
class Imported:
    path: Path
    cells: list[str]
    """``task/lang`` imported."""
    skipped: list[str]
    """lm-eval tasks glotbench does not know."""
    aggregate_only: list[str]
    """``task/lang`` imported from the results file alone (no samples file)."""
    mismatches: list[str]
    """lm-eval's reported numbers that the recomputed ones do not reproduce."""
    source: lmeval.OutputDir


def default_output(src: lmeval.OutputDir) -> Path:
    name = str(src.results.get("model_name") or src.model_dir.name)
    return Path("results") / slug("lmeval-" + Path(name.rstrip("/")).name)


def import_lmeval(path: Path, output: Path | None = None, *, samples_required: bool = False,
                  seed: int = 1234) -> Imported:
    src = lmeval.find_output(Path(path))
    leaves = list(dict.fromkeys([*src.results["configs"], *src.samples]))
    names = {n: lmeval.parse_name(n) for n in leaves}
    known = {n: p for n, p in names.items() if p is not None}
    skipped = [n for n, p in names.items() if p is None]
    if not known:
        raise GlotbenchError(f"{src.results_file} has no task glotbench knows ({', '.join(leaves) or 'none'})",
                             "glotbench imports " + ", ".join(m.prefix + "<lang>" for m in lmeval.TASKS))
    without = [n for n in known if n not in src.samples]
    if without and samples_required:
        raise GlotbenchError(f"{src.model_dir} has no samples file for {', '.join(without)}",
                             "rerun lm-eval with --log_samples (or drop --samples-required)")
    output = Path(output) if output is not None else default_output(src)
    check_new(output)
    groups: dict[tuple[str, str], list[lmeval.Name]] = {}
    for name in known.values():
        groups.setdefault((name.map.task, name.lang), []).append(name)
    writer = RunWriter(output)
    try:
        run, mismatches, partial = build(src, groups, writer, seed)
        run["provenance"]["imported"]["skipped"] = skipped
        done = writer.finish(run)
    except BaseException:
        writer.abort()
        raise
    return Imported(done, [f"{t}/{lang}" for t, lang in groups], skipped, partial, mismatches, src)


def build(src: lmeval.OutputDir, groups: dict, writer: RunWriter, seed: int) -> tuple[dict, list[str], list[str]]:
    res = src.results
    results: dict[str, dict] = {}
    prov_tasks: dict[str, dict] = {}
    mismatches, partial = [], []
    for (task_name, lang), names in sorted(groups.items()):
        task = get_task(task_name)
        names = sorted(names, key=lambda n: n.subtask or "")
        versions = sorted({str(res.get("versions", {}).get(n.lmeval)) for n in names})
        prov = prov_tasks.setdefault(task_name, {
            "version": "lm-eval:" + ",".join(versions), "metrics": list(task.metrics), "languages": {},
            "prompting": {"imported": "lm-eval", "n_shot": sorted({res.get("n-shot", {}).get(n.lmeval)
                                                                    for n in names}, key=str),
                          "chat_template": bool(res.get("chat_template")),
                          "fewshot_as_multiturn": res.get("fewshot_as_multiturn")}})
        reported = reported_values(res, names, task_name)
        if all(n.lmeval in src.samples for n in names):
            samples, records, scores = read_cell(src, task, lang, names)
            writer.write_samples(task_name, lang, records)
            out = cell(task, samples, scores, seed)
            docs = [r["lmeval"]["doc"] for r in records]
            prompts = [[c["context"], c["continuation"]] for r in records for c in r.get("choices", ())] \
                or [r["prompt"] for r in records]
            disagree = sum(1 for r in records if r.get("lmeval_acc") is not None and r["lmeval_acc"] != r["acc"])
        else:  # results file only: lm-eval's values, no per-example records, no bootstrap
            out = aggregate_cell(task, reported, res, names)
            docs, prompts, disagree = None, None, None
            partial.append(f"{task_name}/{lang}")
        results.setdefault(task_name, {})[lang] = out
        for metric, value in reported.items():
            mine = out[metric] if metric == task.primary else out.get("metrics", {}).get(metric, {}).get("value")
            if value is not None and (mine is None or not math.isclose(mine, value, rel_tol=0, abs_tol=TOLERANCE)):
                mismatches.append(f"{task_name}/{lang} {metric}: lm-eval {value}, recomputed {mine}")
        prov["languages"][lang] = {
            "data_source": data_source(res, names),
            "data_sha256": json_sha256(docs) if docs is not None else None,
            "prompt_sha256": json_sha256(prompts) if prompts is not None else None,
            "n_available": sum((res.get("n-samples", {}).get(n.lmeval) or {}).get("original", 0) for n in names),
            "lmeval_tasks": [n.lmeval for n in names],
            "lmeval_config_sha256": json_sha256([res["configs"].get(n.lmeval) for n in names]),
            "lmeval_task_hashes": [res.get("task_hashes", {}).get(n.lmeval) for n in names],
            "lmeval_reported": reported,
            **({"disagree_with_lmeval_acc": disagree} if disagree else {}),
        }
    cfg = res.get("config") or {}
    model = str(res.get("model_name") or cfg.get("model_args") or src.model_dir.name)
    run = {
        "format": "glotbench-run/1",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {"imported": str(src.model_dir), "format": "lm-eval", "tasks": list(results),
                   "langs": sorted({lang for cells in results.values() for lang in cells}),
                   "limit": cfg.get("limit"), "seed": seed},
        "results": results,
        "averages": {t: task_averages(get_task(t), cells, prov_tasks[t]["metrics"]) for t, cells in results.items()},
        "provenance": {
            "glotbench_version": harness.__version__,
            "model": {"backend": "lm-eval:" + str(cfg.get("model")), "name": model,
                      "model_args": cfg.get("model_args"), "dtype": str(cfg.get("model_dtype") or "").removeprefix(
                          "torch.") or None, "device": cfg.get("device"), "weights_sha256": cfg.get("model_sha") or None,
                      "num_parameters": cfg.get("model_num_parameters")},
            "imported": {
                "tool": "lm-eval", "lm_eval_version": res.get("lm_eval_version"), "source": str(src.model_dir),
                "results_file": src.results_file.name, "results_sha256": lmeval.file_sha256(src.results_file),
                "samples_files": {f.name: lmeval.file_sha256(f) for _, f in sorted(src.samples.items())},
                "older_results_files": [f.name for f in src.older], "date": res.get("date"),
                "config": cfg, "aggregate_only": partial, "checks": {"mismatches": mismatches},
            },
            "tasks": prov_tasks,
            "seed": seed,
            "device": cfg.get("device"),
            "versions": {"lm_eval": res.get("lm_eval_version"), "transformers": res.get("transformers_version"),
                         "torch": torch_version(res.get("pretty_env_info"))},
        },
    }
    return run, mismatches, partial


def torch_version(env: object) -> str | None:
    m = re.search(r"PyTorch version: (\S+)", env) if isinstance(env, str) else None
    return m.group(1) if m else None


def data_source(res: dict, names: list[lmeval.Name]) -> str:
    cfg = res["configs"].get(names[0].lmeval) or {}
    where = "/".join(str(x) for x in (cfg.get("dataset_path"), cfg.get("dataset_name")) if x)
    return f"lm-eval:{where or names[0].lmeval}:{cfg.get('test_split') or cfg.get('validation_split') or '?'}"


def reported_values(res: dict, names: list[lmeval.Name], task_name: str) -> dict[str, float | None]:
    """glotbench metric → lm-eval's reported value for the cell (several subtasks: their
    document-weighted mean, which is what a mean over all the cell's documents is)."""
    out: dict[str, float | None] = {}
    for metric, (lm_metric, flt, _) in names[0].map.metrics.items():
        total, n = 0.0, 0
        for name in names:
            value = (res["results"].get(name.lmeval) or {}).get(f"{lm_metric},{flt}")
            k = effective(res, name.lmeval)
            if not isinstance(value, int | float) or k is None:
                total = math.nan
                break
            total, n = total + value * k, n + k
        out[metric] = total / n if n and not math.isnan(total) else None
    return out


def effective(res: dict, name: str) -> int | None:
    got = (res.get("n-samples", {}).get(name) or {}).get("effective")
    return got if isinstance(got, int) else (res["results"].get(name) or {}).get("sample_len")


def aggregate_cell(task, reported: dict, res: dict, names: list[lmeval.Name]) -> dict:
    n = sum(effective(res, name.lmeval) or 0 for name in names)
    m = names[0].map
    stderr = None
    if len(names) == 1:
        lm_metric, flt, _ = m.metrics[task.primary]
        got = (res["results"].get(names[0].lmeval) or {}).get(f"{lm_metric}_stderr,{flt}")
        stderr = got if isinstance(got, int | float) else None
    note = "imported from lm-eval's results file alone (no samples file): no per-example records, no CI"
    out = {task.primary: reported.get(task.primary), "n": n, "stderr": stderr, "ci95": None, "ci95_note": note,
           "aggregate_only": True}
    if len(task.metrics) > 1:
        out["metrics"] = {k: {"value": v, "n": n, "stderr": None, "ci95": None} for k, v in reported.items()}
    return out


def read_cell(src: lmeval.OutputDir, task, lang: str, names: list[lmeval.Name]):
    """(samples, per-example records, scores) of one task × language, in glotbench doc order:
    the subtasks in name order, each in lm-eval's doc order. One subtask: lm-eval's doc_id is
    the doc_id; several (Global-MMLU's subjects): numbered through, lm-eval's kept."""
    samples, records, scores = [], [], []
    for name in names:
        lines = lmeval.read_samples(src.samples[name.lmeval])
        by_doc: dict[int, dict[str, dict]] = {}
        for rec in lines:
            by_doc.setdefault(int(rec["doc_id"]), {})[str(rec.get("filter", "none"))] = rec
        for doc_id in sorted(by_doc):
            gid = doc_id if len(names) == 1 else len(records)
            where = f"{src.samples[name.lmeval].name} doc_id {doc_id}"
            if task.output_type == "generate":
                record = generation_record(gid, by_doc[doc_id], name.map, where)
            else:
                record = choice_from_lines(gid, task, lang, by_doc[doc_id], where)
            first = next(iter(by_doc[doc_id].values()))
            doc = first.get("doc") if isinstance(first.get("doc"), dict) else {}
            record["lmeval"] = {"task": name.lmeval, "doc_id": doc_id, "target": first["target"], "doc": doc}
            records.append(record)
            samples.append(Sample(gid, lang, doc))
            scores.append(record)
    return samples, records, scores


def gold_index(task, lang: str, doc: dict, target: object, pairs: list[LoglikelihoodRequest], where: str) -> int:
    """The gold choice: as glotbench's task renders lm-eval's doc, else lm-eval's target (an
    index, or the text of one choice)."""
    if doc:
        try:
            return task.prompt(Sample(0, lang, doc), ()).gold
        except Exception:  # noqa: BLE001 — a doc in another schema: fall back on lm-eval's target
            pass
    text = str(target).strip()
    if re.fullmatch(r"\d+", text) and int(text) < len(pairs):
        return int(text)
    hits = [i for i, p in enumerate(pairs) if p.continuation.strip() == text]
    if len(hits) == 1:
        return hits[0]
    raise GlotbenchError(f"{where}: cannot tell the gold choice (target {text[:40]!r})",
                         "pass samples whose doc or target names the gold choice (lm-eval --log_samples)")


def choice_from_lines(doc_id: int, task, lang: str, lines: dict[str, dict], where: str) -> dict:
    rec = lines.get("none") or next(iter(lines.values()))
    args = lmeval.arguments(rec)
    pairs = [LoglikelihoodRequest(str(a[0]), str(a[1])) for a in args]
    try:
        res = [LoglikelihoodResult(float(r[0]), str(r[1]) == "True", None) for r in rec["filtered_resps"]]
    except (TypeError, ValueError, IndexError):
        raise GlotbenchError(f"{where}: filtered_resps are not (log-likelihood, is_greedy) pairs",
                             "import log-likelihood tasks from lm-eval --log_samples output") from None
    if len(res) != len(pairs) or not pairs:
        raise GlotbenchError(f"{where}: {len(res)} responses for {len(pairs)} requests", "the samples file is damaged")
    doc = rec.get("doc") if isinstance(rec.get("doc"), dict) else {}
    prompt = MultipleChoicePrompt(tuple(pairs), gold_index(task, lang, doc, rec["target"], pairs, where))
    record = choice_record(doc_id, prompt, res, score_multiple_choice(prompt, res))
    if isinstance(rec.get("acc"), int | float):
        record["lmeval_acc"] = float(rec["acc"])
    return record


def generation_record(doc_id: int, lines: dict[str, dict], m: lmeval.TaskMap, where: str) -> dict:
    """glotbench's generation record from lm-eval's lines of one document (one per filter)."""
    out: dict = {"doc_id": doc_id}
    first = next(iter(lines.values()))
    out["target"] = str(first["target"])
    for metric, (lm_metric, flt, pred_field) in m.metrics.items():
        rec = lines.get(flt)
        if rec is None or not isinstance(rec.get(lm_metric), int | float):
            raise GlotbenchError(f"{where}: no {lm_metric} under filter {flt!r}",
                                 "pass lm-eval's own samples file of this task (all of its filters)")
        got = rec["filtered_resps"][0] if rec["filtered_resps"] else lmeval.INVALID
        pred = str(got[0] if isinstance(got, list) and got else got)
        out[metric] = float(rec[lm_metric])
        out[pred_field] = None if pred == lmeval.INVALID else pred
    out["parsed"] = out.get("pred") is not None
    resps = first.get("resps") or [[""]]
    out["response"] = str(resps[0][0] if isinstance(resps[0], list) else resps[0])
    args = lmeval.arguments(first)
    out.update({"finish": None, "n_tokens": None, "prompt": str(args[0][0]) if args else None})
    if args and len(args[0]) > 1:
        out["generation_kwargs"] = args[0][1]
    return out

