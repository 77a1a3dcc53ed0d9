"""Per-example records and per-language result cells: every metric with n, stderr and a seeded
CI, failures counted, breakdowns and averages."""

from __future__ import annotations

from glotbench.harness.core.records import (
    GenerationPrompt,
    GenerationRequest,
    GenerationResult,
    LoglikelihoodResult,
    MultipleChoicePrompt,
)
from glotbench.harness.metrics.stats import averages, summarize


def choice_record(doc_id: int, prompt: MultipleChoicePrompt, res: list[LoglikelihoodResult], score: dict) -> dict:
    nan = {"nan_logprobs": score["nan_logprobs"]} if score.get("nan_logprobs") else {}
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
        **nan,
    }


def generation_record(doc_id: int, prompt: GenerationPrompt, request: GenerationRequest, res: GenerationResult,
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
    nan = sum(1 for s in scores if s.get("nan_logprobs"))
    if nan:  # items where a choice's log-likelihood was NaN: scored, never picked (absent: none)
        out["nan_logprobs"] = nan
    if "ci95_note" in head:
        out["ci95_note"] = head["ci95_note"]
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


def task_averages(task, per_lang: dict[str, dict], metrics: list[str]) -> dict:
    """Macro/micro averages of the headline metric (per group too), and of every other metric
    under ``metrics``."""
    out = averages(per_lang, task.primary, task.group)
    others = [m for m in metrics if m != task.primary]
    if others:
        out["metrics"] = {m: averages({lang: {m: c["metrics"][m]["value"], "n": c["metrics"][m]["n"]}
                                       for lang, c in per_lang.items()}, m, task.group) for m in others}
    return out
