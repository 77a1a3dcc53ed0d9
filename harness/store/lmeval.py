"""lm-eval 0.4.x output directories: task names, files and records, read strictly.

``lm_eval --output_path DIR --log_samples`` writes, for one model (lm-eval's
``loggers/evaluation_tracker.py``)::

    DIR/<model name, "/" → "__">/results_<timestamp>.json
    DIR/<model name, "/" → "__">/samples_<task>_<timestamp>.jsonl    one per leaf task

``results_*.json`` holds ``results`` (task → ``"<metric>,<filter>"`` values and
``"<metric>_stderr,<filter>"``), ``configs``, ``versions``, ``n-shot``, ``n-samples``
(``original``/``effective``), ``config`` (model, model_args, limit, ...), ``lm_eval_version``,
``model_name``, ``task_hashes`` and the environment. Each samples line is one document under
one filter: ``doc_id, doc, target`` (a string), ``arguments`` (``{"gen_args_i": {"arg_j": …}}``:
the request's context/continuation, or prompt/generation kwargs), ``resps`` and
``filtered_resps`` (every value turned into a string: ``[["-4.2", "False"], …]`` for a
log-likelihood task, ``["18"]`` after a generation filter), ``filter``, ``metrics`` and the
metric values themselves; generation tasks have one line per document and filter.

:data:`TASKS` maps lm-eval's task names to glotbench's: a literal table of name prefixes
(STYLE 7), the rest of the name being the language as glotbench codes it (or, where lm-eval
names the hub config, e.g. INCLUDE's ``north_macedonian``, that config) and, for lm-eval's
per-subject or per-domain subtasks, the subject.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.taskapi.registry import get_task
from glotbench.harness.taskapi.spec import Task


@dataclass(frozen=True)
class TaskMap:
    """How one family of lm-eval tasks reads as a glotbench task."""

    prefix: str
    """lm-eval task name up to the language."""
    task: str
    """glotbench task name."""
    metrics: dict[str, tuple[str, str, str]] = field(default_factory=lambda: {"acc": ("acc", "none", "pred")})
    """glotbench metric → (lm-eval metric, lm-eval filter, record field of that filter's
    extracted answer). Log-likelihood tasks: accuracy under the ``none`` filter."""


# Longest prefixes first: "global_mmlu_full_" before "global_mmlu_".
TASKS: tuple[TaskMap, ...] = (
    TaskMap("global_mmlu_full_", "global_mmlu"),
    TaskMap("global_mmlu_", "global_mmlu_lite"),
    TaskMap("include_base_44_", "include_loglik"),
    TaskMap("mgsm_native_cot_", "mgsm", {"strict_match": ("exact_match", "strict-match", "pred"),
                                         "flexible_extract": ("exact_match", "flexible-extract", "flexible_pred")}),
    TaskMap("xcopa_", "xcopa"),
    TaskMap("xstorycloze_", "xstorycloze"),
    TaskMap("xwinograd_", "xwinograd"),
)
INVALID = "[invalid]"
"""What lm-eval's regex filter returns when nothing matches (glotbench: pred None, unparsed)."""
RESULTS = re.compile(r"results_(.+)\.json")


@dataclass(frozen=True)
class Name:
    """An lm-eval task name read as glotbench's."""

    lmeval: str
    map: TaskMap
    lang: str
    subtask: str | None
    """lm-eval's subject or domain suffix (``anatomy``), None for a per-language task."""


def lang_tokens(task: Task) -> dict[str, str]:
    """How lm-eval spells each language of ``task`` in task names → glotbench's code: the code
    itself, and the hub config in lower case with spaces as ``_`` (INCLUDE: ``north_macedonian``)."""
    out = {code: code for code in task.languages}
    out.update({cfg.lower().replace(" ", "_"): code for code, cfg in task.data.hub_configs.items()})
    return out


def parse_name(name: str) -> Name | None:
    """The glotbench task, language and subtask of an lm-eval task name (None: unknown)."""
    for m in TASKS:
        if not name.startswith(m.prefix):
            continue
        rest = name[len(m.prefix):]
        tokens = lang_tokens(get_task(m.task))
        hits = [t for t in tokens if rest == t or rest.startswith(t + "_")]
        if hits:
            tok = max(hits, key=len)
            return Name(name, m, tokens[tok], rest[len(tok) + 1:] or None)
    return None


def lmeval_name(task: Task, lang: str, subtask: str | None = None) -> str | None:
    """The lm-eval task name of one glotbench task × language (None: lm-eval has no such task)."""
    m = next((m for m in TASKS if m.task == task.name), None)
    if m is None:
        return None
    cfg = task.data.hub_configs.get(lang)
    token = cfg.lower().replace(" ", "_") if cfg else lang
    return m.prefix + token + (f"_{subtask}" if subtask else "")


def task_map(task_name: str) -> TaskMap | None:
    return next((m for m in TASKS if m.task == task_name), None)


@dataclass(frozen=True)
class OutputDir:
    """One lm-eval results file and the samples files written with it."""

    model_dir: Path
    results_file: Path
    timestamp: str
    results: dict
    samples: dict[str, Path]
    """lm-eval task → its samples file."""
    older: tuple[Path, ...]
    """Other (older) results files in the directory, not imported."""


def find_output(path: Path) -> OutputDir:
    """The newest ``results_*.json`` of ``path`` (lm-eval's ``--output_path`` or the model folder
    below it) and its samples files; what is missing is one line naming the fix."""
    path = Path(path)
    fix = "pass the --output_path of 'lm_eval ... --log_samples' (or the model folder inside it)"
    if not path.is_dir():
        raise GlotbenchError(f"{path} is not a directory", fix)
    model_dir = path
    if not list(path.glob("results_*.json")):
        dirs = sorted({f.parent for f in path.glob("*/results_*.json")})
        if len(dirs) > 1:
            raise GlotbenchError(f"{path} holds lm-eval results of {len(dirs)} models "
                                 f"({', '.join(d.name for d in dirs)})", "pass one model's folder")
        if not dirs:
            raise GlotbenchError(f"{path} has no lm-eval results_<timestamp>.json", fix)
        model_dir = dirs[0]
    files = sorted(model_dir.glob("results_*.json"), key=lambda f: RESULTS.fullmatch(f.name).group(1))
    newest = files[-1]
    stamp = RESULTS.fullmatch(newest.name).group(1)
    results = read_json(newest)
    if not isinstance(results.get("results"), dict) or not isinstance(results.get("configs"), dict):
        raise GlotbenchError(f"{newest} is not an lm-eval results file (no 'results' or 'configs')", fix)
    suffix = f"_{stamp}.jsonl"
    samples = {f.name[len("samples_"):-len(suffix)]: f for f in model_dir.glob(f"samples_*{suffix}")}
    return OutputDir(model_dir, newest, stamp, results, samples, tuple(files[:-1]))


def read_json(file: Path) -> dict:
    try:
        data = json.loads(Path(file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GlotbenchError(f"cannot read {file} ({exc})", "pass an intact lm-eval output directory") from None
    if not isinstance(data, dict):
        raise GlotbenchError(f"{file} is not a JSON object", "pass an intact lm-eval output directory")
    return data


def read_samples(file: Path) -> list[dict]:
    """The lines of an lm-eval samples file, each checked for the fields the importer reads."""
    out = []
    try:
        lines = Path(file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise GlotbenchError(f"cannot read {file} ({exc})", "pass an intact lm-eval output directory") from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as exc:
            raise GlotbenchError(f"{file} line {i} is not valid JSON ({exc})", "the file is truncated or "
                                 "corrupt; rerun lm-eval with --log_samples") from None
        missing = [k for k in ("doc_id", "arguments", "filtered_resps", "target") if not isinstance(rec, dict)
                   or k not in rec]
        if missing:
            raise GlotbenchError(f"{file} line {i} lacks {', '.join(missing)}",
                                 "pass samples files written by lm-eval 0.4.x --log_samples")
        out.append(rec)
    return out


def arguments(rec: dict) -> list[list]:
    """``arguments`` as lm-eval holds them in memory: one list of arguments per request
    (the file's ``{"gen_args_0": {"arg_0": …, "arg_1": …}}``; older files: lists)."""
    args = rec["arguments"]
    if isinstance(args, list):
        return [list(a) for a in args]
    return [[a[f"arg_{j}"] for j in range(len(a))] for _, a in sorted(args.items(), key=lambda kv: int(kv[0][9:]))]


def hash_string(text: str) -> str:
    """lm-eval's ``utils.hash_string``: sha256 hex of the UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def doc_hash(doc: dict) -> str:
    """lm-eval's ``doc_hash`` of a samples line."""
    return hash_string(json.dumps(doc, indent=2, ensure_ascii=False))


def file_sha256(file: Path) -> str:
    return hashlib.sha256(Path(file).read_bytes()).hexdigest()
