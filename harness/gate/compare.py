"""Paired significance between two finished runs (reads the results store only).

Translation tasks: sacrebleu's paired bootstrap resampling or approximate randomisation on
chrF++, per direction, on the two runs' hypotheses for the same segments (the regression
gate builds on this). Runs are refused when they did not score the same items of the same
data: a p-value over different segments would mean nothing.
"""

from __future__ import annotations

from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.metrics import chrf as mt_metrics
from glotbench.harness.store.rundir import read_run, read_samples
from glotbench.harness.taskapi.registry import get_task

METHODS = ("bs", "ar")


def paired_translation(baseline: Path, system: Path, tasks: list[str] | None = None,
                       langs: list[str] | None = None, method: str = "bs", seed: int = 12345,
                       samples: int = 0) -> dict:
    if method not in METHODS:
        raise GlotbenchError(f"unknown --method {method!r}", "use bs (paired bootstrap) or ar "
                             "(approximate randomisation)")
    runs = {"baseline": read_run(baseline), "system": read_run(system)}
    common = [t for t in runs["baseline"]["results"] if t in runs["system"]["results"]]
    translation = [t for t in common if _is_translation(t)]
    if tasks:
        missing = [t for t in tasks if t not in translation]
        if missing:
            raise GlotbenchError(f"task(s) {', '.join(missing)} not scored as translation in both runs",
                                 f"both runs have: {', '.join(translation) or 'no translation task'}")
        translation = list(tasks)
    if not translation:
        raise GlotbenchError("the two runs share no translation task", "compare runs that both ran flores")
    out: dict = {"baseline": str(baseline), "system": str(system), "method": method, "seed": seed,
                 "results": {}}
    for task in translation:
        shared = [x for x in runs["baseline"]["results"][task] if x in runs["system"]["results"][task]]
        chosen = shared if langs is None else [x for x in langs if x in shared]
        if not chosen:
            raise GlotbenchError(f"{task}: the runs share none of the selected directions",
                                 f"shared: {', '.join(shared) or 'none'}")
        for lang in chosen:
            _same_data(runs, task, lang)
            base, sys_ = read_samples(baseline, task, lang), read_samples(system, task, lang)
            refs = _aligned(base, sys_, task, lang)
            result = mt_metrics.paired_test([r["pred"] or "" for r in base], [r["pred"] or "" for r in sys_],
                                            refs, method=method, seed=seed, samples=samples)
            out["results"].setdefault(task, {})[lang] = result
    return out


def _is_translation(task: str) -> bool:
    try:
        return get_task(task).source_field is not None
    except GlotbenchError:
        return False


def _same_data(runs: dict, task: str, lang: str) -> None:
    hashes = {k: r["provenance"]["tasks"][task]["languages"][lang]["data_sha256"] for k, r in runs.items()}
    if hashes["baseline"] != hashes["system"]:
        raise GlotbenchError(f"{task}/{lang}: the runs scored different data (data_sha256 differs)",
                             "compare runs made on the same data source")


def _aligned(base: list[dict], sys_: list[dict], task: str, lang: str) -> list[str]:
    ids_a, ids_b = [r["doc_id"] for r in base], [r["doc_id"] for r in sys_]
    if ids_a != ids_b:
        raise GlotbenchError(f"{task}/{lang}: the runs scored different segments ({len(ids_a)} vs {len(ids_b)})",
                             "compare runs made with the same --limit")
    return [r["target"] for r in base]


def format_table(result: dict) -> str:
    name = {"bs": "paired bootstrap", "ar": "approximate randomisation"}[result["method"]]
    rows = [f"{'task':<14} {'direction':<20} {'n':>5} {'baseline':>9} {'system':>9} {'delta':>8} {'p':>8}"]
    for task, langs in result["results"].items():
        for lang, r in langs.items():
            p = "-" if r["p_value"] is None else f"{r['p_value']:.4f}" + ("*" if r["p_value"] < 0.05 else "")
            rows.append(f"{task:<14} {lang:<20} {r['n']:>5} {r['baseline']:>9.2f} {r['system']:>9.2f} "
                        f"{r['delta']:>+8.2f} {p:>8}")
    sample = next(iter(next(iter(result["results"].values())).values()))
    rows.append(f"chrF++ ({sample['signature']}); {name}, {sample['samples']} samples, seed {result['seed']}; "
                "* p < 0.05")
    return "\n".join(rows)
