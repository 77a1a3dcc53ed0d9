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

import yaml

from harness.errors import GlotbenchError
from harness.task import Task


@dataclass(frozen=True)
class ReferenceResult:
    loglikelihoods: dict[str, list[list[float]]]
    """lang → per document, per choice log-likelihood (document order)."""
    acc: dict[str, list[float]]
    seconds: float
    """Wall time of ``simple_evaluate`` (model load included)."""


def _lm_eval_tasks_dir() -> Path:
    try:
        import lm_eval.tasks
    except ImportError:
        raise GlotbenchError("the lm-eval reference needs lm-eval 0.4.13",
                             "pip install 'glotbench[lmeval]'") from None
    return Path(lm_eval.tasks.__file__).parent


def write_configs(task: Task, langs: list[str], files: dict[str, Path], out: Path) -> list[str]:
    """One YAML per language in ``out``; returns the task names to run."""
    if task.lmeval_yaml is None:
        raise GlotbenchError(f"task {task.name!r} has no lm-eval counterpart", "pick another task")
    base = _lm_eval_tasks_dir()
    names = []
    for lang in langs:
        original = base / task.lmeval_yaml.format(lang=lang)
        split = task.data.split
        name = f"ref_{task.name}_{lang}"
        cfg = {
            "include": str(original),
            "task": name,
            "tag": [],
            "dataset_path": "json",
            "dataset_name": None,
            "dataset_kwargs": {"data_files": {split: str(files[lang])}},
            "training_split": None,
            "validation_split": None if split == "test" else split,
            "test_split": split if split == "test" else None,
        }
        (out / f"{name}.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
        names.append(name)
    return names


def run_reference(task: Task, model_dir: Path, files: dict[str, Path], *, limit: int | None = None,
                  batch_size: int = 16, device: str = "cpu") -> ReferenceResult:
    """Evaluate ``task`` on ``files`` (lang → JSON-lines path) with lm-eval's hf backend."""
    _lm_eval_tasks_dir()
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    langs = list(files)
    with tempfile.TemporaryDirectory() as tmp:
        names = write_configs(task, langs, files, Path(tmp))
        manager = TaskManager(include_path=tmp, include_defaults=False)
        t0 = time.time()
        out = simple_evaluate(
            model="hf", model_args=f"pretrained={model_dir},dtype=float32", tasks=names,
            batch_size=batch_size, device=device, limit=limit, log_samples=True,
            task_manager=manager, random_seed=0, numpy_random_seed=0, torch_random_seed=0,
            fewshot_random_seed=0, bootstrap_iters=0,
        )
        seconds = time.time() - t0
    lls, acc = {}, {}
    for lang, name in zip(langs, names):
        samples = sorted(out["samples"][name], key=lambda s: s["doc_id"])
        lls[lang] = [[float(r[0]) for r in s["filtered_resps"]] for s in samples]
        acc[lang] = [float(s["acc"]) for s in samples]
    return ReferenceResult(lls, acc, seconds)
