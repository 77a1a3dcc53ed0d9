"""Paired significance between two finished runs (reads the results store only).

Translation tasks: sacrebleu's paired bootstrap resampling or approximate randomisation on
chrF++, per direction, on the two runs' hypotheses for the same segments (the regression
gate builds on this). Runs are refused when they did not score the same items of the same
data: a p-value over different segments would mean nothing.
"""

from __future__ import annotations

from pathlib import Path

from glotbench.harness.core.errors import DataError, GlotbenchError
from glotbench.harness.metrics import chrf as mt_metrics
from glotbench.harness.store.schema import RunRecord, differences

METHODS = ("bs", "ar")


def paired_translation(baseline: Path, system: Path, tasks: list[str] | None = None,
                       langs: list[str] | None = None, method: str = "bs", seed: int = 12345,
                       samples: int = 0) -> dict:
    if method not in METHODS:
        raise GlotbenchError(f"unknown --method {method!r}", "use bs (paired bootstrap) or ar "
                             "(approximate randomisation)")
    base, other = RunRecord.read(baseline), RunRecord.read(system)
    translation = [t for t in base.tasks() if other.has(t) and base.translation(t) and other.translation(t)]
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
        shared = [x for x in base.languages(task) if other.has(task, x)]
        chosen = shared if langs is None else [x for x in langs if x in shared]
        if not chosen:
            raise GlotbenchError(f"{task}: the runs share none of the selected directions",
                                 f"shared: {', '.join(shared) or 'none'}")
        for lang in chosen:
            for d in differences(base, other, task, lang, kinds=("data_sha256",)):
                raise GlotbenchError(d.describe(), "compare runs made on the same data source")
            recs = _aligned(base.samples(task, lang), other.samples(task, lang), task, lang)
            result = mt_metrics.paired_test(*recs, method=method, seed=seed, samples=samples)
            out["results"].setdefault(task, {})[lang] = result
    return out


def _aligned(base: list[dict], sys_: list[dict], task: str, lang: str) -> tuple[list[str], list[str], list[str]]:
    """The two runs' hypotheses and the references, for the same segments in the same order."""
    ids_a, ids_b = [r.get("doc_id") for r in base], [r.get("doc_id") for r in sys_]
    if ids_a != ids_b:
        raise GlotbenchError(f"{task}/{lang}: the runs scored different segments ({len(ids_a)} vs {len(ids_b)})",
                             "compare runs made with the same --limit")
    if any("pred" not in r or not isinstance(r.get("target"), str) for r in base + sys_):
        raise DataError(f"{task}/{lang}: records lack the hypothesis (pred) or the reference (target)",
                        "the run directory is damaged; regenerate it with glotbench run")
    return [r["pred"] or "" for r in base], [r["pred"] or "" for r in sys_], [r["target"] for r in base]


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
