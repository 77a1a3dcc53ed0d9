"""The recipe's ``eval:`` and ``gate:`` blocks, validated before anything runs.

```yaml
eval:                              # run on every stage that outputs a policy checkpoint
  tasks: [xcopa]                   # tasks or suites (glotbench tasks)
  languages: [it, sw]              # each task's own codes; default: all of a task's languages
  limit: 50                        # items per language (default: all)
  data_dir: ../shared/data         # optional, as glotbench run --data-dir
  batch_size: 16                   # optional, also device, dtype, seed
  backend: hf                      # or vllm (+ tensor_parallel_size: N): what answers the suite
  data_parallel: 1                 # N replicas on Ray (+ ray_address: HOST:PORT of a cluster)
  open_ended:                      # optional: completions judged against a fixed opponent
    task: m_arenahard
    languages: [en]
    limit: 20
    max_new_tokens: 256
    opponent: results/gemma2-9b-arenahard   # a run directory holding the opponent's completions
    judge: rm:results/rm-alpacaeval         # or openai:<model>, hf:<dir>, embedded
    tie_margin: 0.0                # rm:<dir> judges only
    base_url: http://localhost:8000/v1      # openai:<model> on an OpenAI-compatible server (vllm serve)
    max_cost: 5.0                  # the paid OpenAI API: consent up to this estimate (USD); required there
gate:                              # each checkpoint against the previous checkpoint stage's eval
  policy: warn                     # stop | warn | continue (what a failing gate does)
  judge_previous: true             # open_ended: judge each checkpoint against its baseline and gate it
  margins: {xcopa: 0.02}           # any key of glotbench gate's policy file (harness/gate/policy.yaml)
```

Refusals are one line (ConfigError, exit 2): unknown keys (with a close match), unknown tasks
or languages, a task in the wrong block (open-ended vs suite), a missing opponent run or judge
checkpoint, a bad gate option (glotbench gate's own policy parser reads it).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Literal

import yaml

from glotbench.harness.core.errors import GlotbenchError, close_match
from glotbench.harness.gate.policy import Policy, load_policy
from glotbench.harness.judge.config import reward_model_dir
from glotbench.harness.store.schema import RunRecord
from glotbench.harness.taskapi.registry import expand, get_task
from glotbench.training.core.config import ConfigError, check_keys, positive, resolve_path, typed

EVAL_KEYS = ("tasks", "languages", "limit", "data_dir", "batch_size", "device", "dtype", "seed", "backend",
             "tensor_parallel_size", "data_parallel", "ray_address", "open_ended")
OPEN_KEYS = ("task", "languages", "limit", "max_new_tokens", "opponent", "judge", "base_url", "tie_margin",
             "max_cost")
GATE_POLICIES = ("stop", "warn", "continue")
OnFail = Literal["stop", "warn", "continue"]


@dataclass(frozen=True)
class OpenEnded:
    task: str
    languages: tuple[str, ...]
    opponent: Path
    judge: str
    limit: int | None = None
    max_new_tokens: int | None = None
    tie_margin: float = 0.0
    max_cost: float | None = None
    base_url: str | None = None


@dataclass(frozen=True)
class EvalSpec:
    tasks: tuple[str, ...]
    languages: dict[str, tuple[str, ...]]
    """Each suite task's languages (its own codes)."""
    limit: int | None = None
    data_dir: str | None = None
    batch_size: int = 16
    device: str = "auto"
    dtype: str = "auto"
    seed: int = 1234
    backend: str = "hf"
    """What answers: hf (transformers) or vllm (docs/running.md#vllm-backend)."""
    tensor_parallel_size: int = 1
    """vllm: GPUs one replica spans."""
    data_parallel: int = 1
    """Replicas on Ray the eval run's requests are spread over (glotbench run --data-parallel)."""
    ray_address: str | None = None
    """An existing Ray cluster (None: a local one per eval run)."""
    open_ended: OpenEnded | None = None
    raw: dict = field(default_factory=dict)
    """The block as written (hashed: an edit reruns the evaluations, not the training)."""


@dataclass(frozen=True)
class GateSpec:
    on_fail: OnFail
    policy: Policy
    raw: dict = field(default_factory=dict)
    judge_previous: bool = True
    """With eval.open_ended: judge each checkpoint against its baseline so the gate covers the win-rate."""


def languages_of(task: str, given: list | None, where: str) -> tuple[str, ...]:
    own = get_task(task).languages
    if given is None:
        return tuple(own)
    if not isinstance(given, list) or not given or not all(isinstance(x, str) for x in given):
        raise ConfigError(f"{where}: languages must be a non-empty list of codes, not {given!r}",
                          "e.g. languages: [it, sw]")
    chosen = tuple(x for x in given if x in own)
    if not chosen:
        raise ConfigError(f"{where}: {task} has none of the languages {', '.join(given)}"
                          f"{close_match(given[0], own)}", f"{task}'s languages: {', '.join(own)}")
    return chosen


def parse_eval(block: object, path: Path) -> EvalSpec:
    where = f"recipe {path}: eval"
    check_keys(block, EVAL_KEYS, where, required=("tasks",))
    raw_tasks = block["tasks"]
    if isinstance(raw_tasks, str):
        raw_tasks = [raw_tasks]
    if not isinstance(raw_tasks, list) or not raw_tasks or not all(isinstance(t, str) for t in raw_tasks):
        raise ConfigError(f"{where}: tasks must be a list of task or suite names, not {raw_tasks!r}",
                          "e.g. tasks: [xcopa, global_mmlu_lite]")
    try:
        tasks = tuple(expand(",".join(raw_tasks)))
    except GlotbenchError as exc:
        raise ConfigError(f"{where}.tasks: {exc.problem}", exc.fix) from None
    judged = [t for t in tasks if get_task(t).judged]
    if judged:
        raise ConfigError(f"{where}.tasks: {', '.join(judged)} is open-ended (judged), not a suite task",
                          f"move it to eval.open_ended: {{task: {judged[0]}, opponent: RUN, judge: …}}")
    given = block.get("languages")
    if isinstance(given, list):
        known = sorted({code for t in tasks for code in get_task(t).languages})
        unknown = [x for x in given if isinstance(x, str) and x not in known]
        if unknown:
            raise ConfigError(f"{where}.languages: {unknown[0]} is a language of none of {', '.join(tasks)}"
                              f"{close_match(unknown[0], known)}", "use the tasks' codes (docs/languages.md)")
    languages = {}
    for task in tasks:
        own = get_task(task).languages
        if given is None or any(x in own for x in given if isinstance(x, str)):
            languages[task] = languages_of(task, given, f"{where}.languages")
    if not languages:
        languages_of(tasks[0], given, f"{where}.languages")  # raises: names the first task's languages
    left_out = [t for t in raw_tasks if t in tasks and t not in languages]  # named, not from a suite
    if left_out:
        own = get_task(left_out[0]).languages
        raise ConfigError(f"{where}.tasks: {left_out[0]} has none of the languages {', '.join(map(str, given))}",
                          f"add one of its languages ({', '.join(own)}) to eval.languages, or drop it from tasks")
    data_dir = typed(block, "data_dir", str, where)
    if data_dir is not None:
        data_dir = str(resolve_path(data_dir, path).absolute())
        if not Path(data_dir).is_dir():
            raise ConfigError(f"{where}: data_dir {block['data_dir']} is not a directory",
                              "give the folder holding the data (layout of ../shared/data)")
    device = typed(block, "device", str, where, "auto")
    dtype = typed(block, "dtype", str, where, "auto")
    backend = typed(block, "backend", str, where, "hf")
    for key, value, allowed in (("device", device, ("auto", "cpu", "cuda")),
                                ("dtype", dtype, ("auto", "float32", "bfloat16", "float16")),
                                ("backend", backend, ("hf", "vllm"))):
        if value not in allowed:
            raise ConfigError(f"{where}: {key} {value!r} is not one of {', '.join(allowed)}"
                              f"{close_match(value, allowed)}", f"{key}: {allowed[0]}")
    open_ended = parse_open(block["open_ended"], path) if block.get("open_ended") is not None else None
    return EvalSpec(tasks=tuple(languages), languages=languages, limit=positive(block, "limit", int, where)
                    if "limit" in block else None, data_dir=data_dir,
                    batch_size=positive(block, "batch_size", int, where) if "batch_size" in block else 16,
                    device=device, dtype=dtype, seed=typed(block, "seed", int, where, 1234), backend=backend,
                    tensor_parallel_size=positive(block, "tensor_parallel_size", int, where)
                    if "tensor_parallel_size" in block else 1,
                    data_parallel=positive(block, "data_parallel", int, where) if "data_parallel" in block else 1,
                    ray_address=typed(block, "ray_address", str, where), open_ended=open_ended, raw=block)


def parse_open(block: object, path: Path) -> OpenEnded:
    where = f"recipe {path}: eval.open_ended"
    check_keys(block, OPEN_KEYS, where, required=("task", "opponent", "judge"))
    task = typed(block, "task", str, where)
    try:
        spec = get_task(task)
    except GlotbenchError as exc:
        raise ConfigError(f"{where}.task: {exc.problem}", exc.fix) from None
    if not spec.judged:
        raise ConfigError(f"{where}.task: {task} is not open-ended (it is scored, not judged)",
                          "put it in eval.tasks; open-ended tasks: m_arenahard, dolly…")
    languages = languages_of(task, block.get("languages"), f"{where}.languages")
    unknown = [x for x in block.get("languages") or () if x not in languages]
    if unknown:
        own = get_task(task).languages
        raise ConfigError(f"{where}.languages: {task} has no language {unknown[0]}{close_match(unknown[0], own)}",
                          f"{task}'s languages: {', '.join(own)}")
    opponent = resolve_path(typed(block, "opponent", str, where), path).absolute()
    try:
        record = RunRecord.read(opponent)
    except GlotbenchError as exc:
        raise ConfigError(f"{where}: opponent {block['opponent']} is not a run directory ({exc.problem})",
                          "make it with glotbench run or glotbench import-answers") from None
    missing = [lang for lang in languages if not record.has(task, lang)]
    if missing:
        raise ConfigError(f"{where}: the opponent run {block['opponent']} has no {task} completions for "
                          f"{', '.join(missing)}", f"its {task} languages: "
                                                   f"{', '.join(record.languages(task)) or 'none'}")
    limit = positive(block, "limit", int, where) if "limit" in block else None
    for lang in languages:  # the judge pairs runs that answered the same prompts
        if limit is not None and record.n(task, lang) != limit:
            raise ConfigError(f"{where}: the opponent run {block['opponent']} answered {record.n(task, lang)} "
                              f"{task}/{lang} prompts, not {limit} (the limit)",
                              f"set limit: {record.n(task, lang)}, or generate the opponent with --limit {limit}")
    judge = typed(block, "judge", str, where)
    rm = reward_model_dir(judge)
    if rm is not None:
        rm = resolve_path(str(rm), path).absolute()
        if not rm.is_dir():
            raise ConfigError(f"{where}: judge {judge}: {rm} is not a directory",
                              "train it first (glotbench train reward) or fix the path")
        judge = f"rm:{rm}"
    elif judge.startswith("hf:") and "/" in judge and resolve_path(judge[3:], path).is_dir():
        judge = f"hf:{resolve_path(judge[3:], path).absolute()}"
    base_url = typed(block, "base_url", str, where)
    if judge.startswith("openai:") and base_url is None and "max_cost" not in block:
        raise ConfigError(f"{where}: judge {judge} is the paid OpenAI API and a recipe runs unattended",
                          "set max_cost: USD (consent up to that estimate), or base_url: for a served judge")
    tie = typed(block, "tie_margin", float, where, 0.0)
    if tie < 0 or rm is None and tie:
        raise ConfigError(f"{where}: tie_margin must be >= 0 and is for rm:<dir> judges, got {tie!r}",
                          "drop it or use judge: rm:<dir>")
    return OpenEnded(task=task, languages=languages, opponent=opponent, judge=judge,
                     limit=limit, max_new_tokens=positive(block, "max_new_tokens", int, where)
                     if "max_new_tokens" in block else None,
                     tie_margin=float(tie), max_cost=positive(block, "max_cost", float, where)
                     if "max_cost" in block else None, base_url=base_url)


def parse_gate(block: object, path: Path) -> GateSpec:
    """``policy:`` is what a failing gate does; every other key is glotbench gate's policy,
    read by its own parser (harness/gate/policy.py) so the two cannot drift apart."""
    where = f"recipe {path}: gate"
    keys = ("policy", "judge_previous", *(f.name for f in fields(Policy) if f.name != "source"))
    check_keys(block, keys, where)
    on_fail = block.get("policy", "warn")
    if on_fail not in GATE_POLICIES:
        raise ConfigError(f"{where}: policy {on_fail!r} is not one of {', '.join(GATE_POLICIES)}"
                          f"{close_match(str(on_fail), GATE_POLICIES)}",
                          "stop (exit 1 after recording), warn (a warning line) or continue (record only)")
    judge_previous = typed(block, "judge_previous", bool, where, True)
    options = {k: v for k, v in block.items() if k not in ("policy", "judge_previous")}
    with tempfile.TemporaryDirectory(prefix="glotbench-gate-") as tmp:
        file = Path(tmp) / "policy.yaml"
        file.write_text(yaml.safe_dump(options), encoding="utf-8")
        try:
            policy = load_policy(file)
        except GlotbenchError as exc:
            raise ConfigError(f"{where}: {exc.problem.replace(f'{file}: ', '')}", exc.fix) from None
    return GateSpec(on_fail, replace(policy, source=f"recipe {path}: gate"), block, judge_previous)
