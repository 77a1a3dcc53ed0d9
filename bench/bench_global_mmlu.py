"""Benchmark: glotbench vs lm-eval 0.4.13 (hf backend) on a Global-MMLU-shaped 5-shot workload.

No Global-MMLU copy exists offline, so the workload is built in Global-MMLU's exact schema
from real MGSM text (bundled, CC-BY-4.0): each MGSM problem becomes a question with four
numeric options, problems are split into subjects (real MMLU subject names, so lm-eval's own
per-subject configs ``global_mmlu_full_<lang>_<subject>`` filter them), each subject with five
``dev`` rows. Every question of a subject shares the same 5-shot block, as in Global-MMLU.
Both tools score the same files with the embedded SmolLM2-135M-Instruct in float32;
reported: wall time, tokens/s (context plus continuation minus one per request, what a
tool without sharing must score), the ratio, identical predictions, max |Δ log-likelihood|.

    python bench/bench_global_mmlu.py                  # en, es x 4 subjects x 24 questions
    python bench/bench_global_mmlu.py --langs en --subjects 2 --per-subject 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

SUBJECTS = (("astronomy", "STEM"), ("nutrition", "Medical"), ("marketing", "Business"),
            ("prehistory", "Humanities"), ("virology", "Medical"), ("sociology", "Social Sciences"))


def build(lang: str, n_subjects: int, per_subject: int, root: Path) -> None:
    """Global-MMLU-schema rows (test + dev) from the bundled MGSM problems of ``lang``."""
    from glotbench.harness.taskapi import data
    from glotbench.harness.taskapi.registry import get_task

    rows = data.load(get_task("mgsm"), lang, "bundled").samples
    test, dev, i = [], [], 0
    for s, (subject, category) in enumerate(SUBJECTS[:n_subjects]):
        for k in range(per_subject + 5):
            row = rows[i].fields
            i += 1
            gold = int(row["answer_number"].replace(",", ""))
            options = [gold, gold + 1, gold * 2 + 3, max(gold - 3, 0) + 7]
            pos = (i * 7 + s) % 4  # gold letter varies
            options[0], options[pos] = options[pos], options[0]
            rec = {"sample_id": f"{subject}/{k}", "subject": subject, "subject_category": category,
                   "question": row["question"], **{f"option_{c}": str(o) for c, o in zip("abcd", options)},
                   "answer": "ABCD"[pos], "cultural_sensitivity_label": "CS" if k % 2 else "CA"}
            (dev if k < 5 else test).append(rec)
    out = root / "global_mmlu" / lang
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("test", test), ("dev", dev)):
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--langs", default="en,es")
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--per-subject", type=int, default=24)
    ap.add_argument("--batch-size", type=int, default=16, help="both tools")
    ap.add_argument("--out", default="bench/out/global_mmlu.json")
    args = ap.parse_args()

    import numpy as np

    from glotbench.harness.models.embedded import converted_dir
    from glotbench.harness.models.hf import HFBackend
    from glotbench.harness.models.lmeval_ref import run_reference
    from glotbench.harness.run.config import RunConfig
    from glotbench.harness.run.execute import execute
    from glotbench.harness.run.plan import plan
    from glotbench.harness.store.rundir import read_run, read_samples
    from glotbench.harness.taskapi import data
    from glotbench.harness.taskapi.registry import get_task

    task = get_task("global_mmlu")
    langs = args.langs.split(",")
    model_dir = converted_dir()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        for lang in langs:
            build(lang, args.subjects, args.per_subject, root)
        cfg = RunConfig(tasks=("global_mmlu",), langs=tuple(langs), batch_size=args.batch_size, device="cpu",
                        data="local", data_dir=str(root), output=str(Path(tmp) / "run"),
                        cache_path=str(Path(tmp) / "c.sqlite"))
        t0 = time.time()
        path = execute(cfg, plan(cfg), progress=False)
        ours_s = time.time() - t0
        run = read_run(path)
        ours = {lang: read_samples(path, "global_mmlu", lang) for lang in langs}

        tok = HFBackend(str(model_dir), device="cpu")
        n_tokens = 0
        for lang in langs:
            loaded = data.load(task, lang, "local", root)
            for s in loaded.samples:
                for p in task.prompt(s, loaded.fewshot).pairs:
                    n_tokens += len(tok.encode_pair(p.context, p.continuation).tokens) - 1
        n_requests = sum(4 * len(v) for v in ours.values())

        # lm-eval: its own per-subject configs (which filter test and dev by subject).
        ref_s, ref_ll = 0.0, {lang: {} for lang in langs}
        for subject, _ in SUBJECTS[: args.subjects]:
            files = {lang: root / "global_mmlu" / lang / "test.jsonl" for lang in langs}
            pools = {lang: root / "global_mmlu" / lang / "dev.jsonl" for lang in langs}
            t0 = time.time()
            ref = run_reference(task, model_dir, files, batch_size=args.batch_size, fewshot_files=pools,
                                yaml_path=f"global_mmlu/full/{{lang}}/global_mmlu_full_{{lang}}_{subject}.yaml",
                                suffix=f"_{subject}")
            ref_s += time.time() - t0
            for lang in langs:
                ref_ll[lang][subject] = ref.loglikelihoods[lang]
    diffs, same = {}, True
    for lang in langs:
        by_subject: dict[str, list] = {}
        # glotbench records are in file order; lm-eval's per subject in file order too.
        subjects = [s for s, _ in SUBJECTS[: args.subjects] for _ in range(args.per_subject)]
        for subject, r in zip(subjects, ours[lang]):
            by_subject.setdefault(subject, []).append([c["logprob"] for c in r["choices"]])
        d = []
        for subject, lls in by_subject.items():
            a, b = np.array(lls), np.array(ref_ll[lang][subject])
            d.append(float(np.abs(a - b).max()))
            same &= bool((a.argmax(1) == b.argmax(1)).all())
        diffs[lang] = max(d)
    result = {"langs": langs, "subjects": args.subjects, "per_subject": args.per_subject,
              "requests": n_requests, "tokens": n_tokens, "batch_size": args.batch_size,
              "lmeval_s": round(ref_s, 1), "glotbench_s": round(ours_s, 1), "ratio": round(ref_s / ours_s, 2),
              "lmeval_tok_s": round(n_tokens / ref_s), "glotbench_tok_s": round(n_tokens / ours_s),
              "predictions_identical": same, "max_abs_ll_diff": diffs,
              "glotbench_requests": run["provenance"]["requests"], "host": run["provenance"]["host"]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"Global-MMLU-shaped 5-shot: {len(langs)} languages x {args.subjects} subjects x {args.per_subject} "
          f"questions = {n_requests} requests, {n_tokens} tokens; batch size {args.batch_size} (both)")
    print("| lm-eval s | glotbench s | speed-up | lm-eval tok/s | glotbench tok/s | same predictions | max abs Δll |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {result['lmeval_s']} | {result['glotbench_s']} | {result['ratio']}x | {result['lmeval_tok_s']} | "
          f"{result['glotbench_tok_s']} | {same} | {max(diffs.values()):.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
