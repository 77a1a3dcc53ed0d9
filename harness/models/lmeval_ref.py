"""Run lm-eval 0.4.13 — the reference implementation — on the same local files.

Each glotbench task names the lm-eval task config it reproduces (``Task.lmeval_yaml``). We
write a one-line-override config that ``include``s lm-eval's own YAML (so its prompt
functions and metrics are used unchanged) and only points the data at a local JSON-lines
file. Used by the parity tests and the benchmarks; needs the ``lmeval`` extra.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.taskapi.spec import Task


@dataclass(frozen=True)
class ReferenceResult:
    loglikelihoods: dict[str, list[list[float]]]
    """lang → per document, per choice log-likelihood (document order); empty for generation."""
    acc: dict[str, list[float]]
    """lang → per document accuracy (generation: exact match of the first filter)."""
    seconds: float
    """Wall time of ``simple_evaluate`` (model load included)."""
    responses: dict[str, list[str]] | None = None
    """Generation: lang → per document raw response."""
    filtered: dict[str, dict[str, list]] | None = None
    """Generation: lang → filter name → per document (filtered response, exact match)."""


def _lm_eval_tasks_dir() -> Path:
    try:
        import lm_eval.tasks
    except ImportError:
        raise GlotbenchError("the lm-eval reference needs lm-eval 0.4.13",
                             "pip install 'glotbench[lmeval]'") from None
    return Path(lm_eval.tasks.__file__).parent


def write_configs(task: Task, langs: list[str], files: dict[str, Path], out: Path, *,
                  fewshot_files: dict[str, Path] | None = None, yaml_path: str | None = None,
                  max_gen_toks: int | None = None, suffix: str = "") -> list[str]:
    """One YAML per language in ``out``; returns the task names to run.

    Few-shot tasks also get their pool file (``fewshot_files``) as the few-shot split, taken
    in order (``first_n``) as glotbench does; ``yaml_path`` overrides ``task.lmeval_yaml``
    (e.g. one Global-MMLU subject's config); ``max_gen_toks`` caps generation."""
    path = yaml_path or task.lmeval_yaml
    if path is None:
        raise GlotbenchError(f"task {task.name!r} has no lm-eval counterpart", "pick another task")
    base = _lm_eval_tasks_dir()
    names = []
    for lang in langs:
        original = base / path.format(lang=lang)
        split = task.data.split
        name = f"ref_{task.name}_{lang}{suffix}"
        data_files = {split: str(files[lang])}
        cfg = {
            "include": str(original),
            "task": name,
            "tag": [],
            "dataset_path": "json",
            "dataset_name": None,
            "training_split": None,
            "validation_split": None if split == "test" else split,
            "test_split": split if split == "test" else None,
        }
        fs = task.data.fewshot
        if fs is not None:
            if not fewshot_files or lang not in fewshot_files:
                raise GlotbenchError(f"the lm-eval reference of {task.name} needs its few-shot pool",
                                     "pass fewshot_files")
            # The pool first: `datasets` infers one schema from the first file, and MGSM's test
            # rows have a null ``answer`` where the exemplars have text.
            data_files = {fs.split: str(fewshot_files[lang]), **data_files}
            cfg.update(fewshot_split=fs.split, num_fewshot=fs.num, fewshot_config={"sampler": "first_n"})
        if max_gen_toks is not None:
            own = yaml.safe_load(original.read_text(encoding="utf-8"))
            kwargs = dict(own.get("generation_kwargs") or {})
            cfg["generation_kwargs"] = {**kwargs, "max_gen_toks": max_gen_toks}
        cfg["dataset_kwargs"] = {"data_files": data_files}
        (out / f"{name}.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False))
        names.append(name)
    return names


def run_reference(task: Task, model_dir: Path, files: dict[str, Path], *, limit: int | None = None,
                  batch_size: int | str = 16, device: str = "cpu", backend: Any = "hf",
                  model_args: str = "dtype=float32", **config) -> ReferenceResult:
    """Evaluate ``task`` on ``files`` (lang → JSON-lines path) with lm-eval's ``backend`` (hf,
    or vllm on a GPU) and ``model_args`` besides ``pretrained``, or with an lm-eval model object
    already loaded (its load then not timed); ``config``: the keyword options
    of :func:`write_configs`."""
    _lm_eval_tasks_dir()
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    langs = list(files)
    with tempfile.TemporaryDirectory() as tmp:
        names = write_configs(task, langs, files, Path(tmp), **config)
        manager = TaskManager(include_path=tmp, include_defaults=False)
        t0 = time.time()
        out = simple_evaluate(
            model=backend, model_args=f"pretrained={model_dir},{model_args}", tasks=names,
            batch_size=batch_size, device=device, limit=limit, log_samples=True,
            task_manager=manager, random_seed=0, numpy_random_seed=0, torch_random_seed=0,
            fewshot_random_seed=0, bootstrap_iters=0,
        )
        seconds = time.time() - t0
    lls, acc, responses, filtered = {}, {}, {}, {}
    for lang, name in zip(langs, names):
        samples = sorted(out["samples"][name], key=lambda s: (s["doc_id"], s.get("filter", "")))
        if task.output_type == "generate":
            by_filter: dict[str, list] = {}
            for s in samples:
                by_filter.setdefault(s["filter"], []).append((s["filtered_resps"][0], float(s["exact_match"])))
            head = "strict-match" if "strict-match" in by_filter else next(iter(by_filter))
            first = by_filter[head]
            responses[lang] = [s["resps"][0][0] for s in samples if s["filter"] == head]
            filtered[lang] = by_filter
            acc[lang] = [m for _, m in first]
        else:
            lls[lang] = [[float(r[0]) for r in s["filtered_resps"]] for s in samples]
            acc[lang] = [float(s["acc"]) for s in samples]
    if task.output_type == "generate":
        return ReferenceResult({}, acc, seconds, responses, filtered)
    return ReferenceResult(lls, acc, seconds)
