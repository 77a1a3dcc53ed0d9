"""The recipe file (``recipe.yaml``), validated into a graph before anything runs.

```yaml
stages:
  arbitrage: {train: arbitrage, config: training/recipes/examples/arbitrage-alpacaeval.yaml}
  sft:
    train: sft
    config: {model: embedded, data: {file: {from: arbitrage, file: sft.jsonl}}, max_steps: 20}
    accelerate_config: training/recipes/accelerate/ddp-cpu-gloo.yaml   # optional
  dpo:
    train: dpo
    config: {policy: {from: sft}, data: {file: {from: arbitrage, file: pairs.jsonl}}}
  soup:
    merge: {merge_method: linear, models: [{model: {from: sft}}, {model: {from: dpo}}]}
```

A stage is ``train: KIND`` with ``config:`` (a mapping, or the path of a stage config file) or
``merge:`` (the merge config, mapping or path). Wherever a config expects a path, ``{from: S}``
names stage S's checkpoint and ``{from: S, file: F}`` a file of a data stage's output. Each
reference must fit (KINDS below): a data stage gives files, not a checkpoint; a reward model
is not a policy. Top-level ``eval:`` and ``gate:`` blocks (every checkpoint measured and gated)
are read by evalspec.py. Refusals are one line (training.core.config.ConfigError, exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from glotbench.harness.core.errors import close_match
from glotbench.training.core.config import ConfigError, check_keys, load_yaml, resolve_path
from glotbench.training.recipe.evalspec import EvalSpec, GateSpec, parse_eval, parse_gate

Output = Literal["data", "policy", "reward_model"]


@dataclass(frozen=True)
class Kind:
    """What a stage kind runs and produces."""

    runner: str
    """Module with ``run_stage(config, out, *, overwrite, progress[, accelerate_config])`` (merge: ``merge``)."""
    parser: str
    """Module with ``load_config(path)``: the stage's own validation, run on the resolved config."""
    output: Output
    files: tuple[str, ...] = ()
    """A data stage's files other stages may name with ``{from: S, file: F}``."""
    accelerate: bool = False
    """Whether the stage takes an accelerate config (launches its training ranks)."""


KINDS: dict[str, Kind] = {
    "arbitrage": Kind("glotbench.training.arbitrage.engine", "glotbench.training.arbitrage.config", "data",
                      ("sft.jsonl", "pairs.jsonl", "candidates.jsonl", "routing.json")),
    "translated-pairs": Kind("glotbench.training.translate.build", "glotbench.training.translate.config", "data",
                             ("pairs.jsonl", "dropped.jsonl")),
    "reward": Kind("glotbench.training.reward.train", "glotbench.training.reward.config", "reward_model",
                   accelerate=True),
    "sft": Kind("glotbench.training.sft.train", "glotbench.training.sft.config", "policy", accelerate=True),
    "dpo": Kind("glotbench.training.dpo.train", "glotbench.training.dpo.config", "policy", accelerate=True),
    "online-dpo": Kind("glotbench.training.online.loop", "glotbench.training.online.config", "policy",
                       accelerate=True),
    "merge": Kind("glotbench.training.merge.engine", "glotbench.training.merge.config", "policy"),
}
TRAIN_KINDS = tuple(k for k in KINDS if k != "merge")
STAGE_KEYS = ("train", "merge", "config", "accelerate_config")
REF_KEYS = ("from", "file")
# The config keys whose value is a checkpoint, and which kind of checkpoint they take.
CHECKPOINT_KEYS: dict[str, Output] = {"policy": "policy", "reference": "policy", "model": "policy",
                                      "base_model": "policy", "tokenizer_source": "policy",
                                      "reward_model": "reward_model"}
WHAT = {"data": "data files", "policy": "a policy checkpoint", "reward_model": "a reward model"}


@dataclass(frozen=True)
class Ref:
    """A ``{from: S[, file: F]}`` inside a stage's config."""

    stage: str
    file: str | None
    key: str
    """The config key holding it (``policy``, ``file``, ``reward_model``…): what it must fit."""
    where: str
    """Dotted location, for messages: ``stages.dpo.config.data.file``."""


@dataclass(frozen=True)
class Stage:
    name: str
    kind: str
    config: dict
    """The stage config as written (references still in place)."""
    base: Path
    """The file its relative paths are read from: the config file, or the recipe for inline configs."""
    refs: tuple[Ref, ...]
    accelerate_config: Path | None = None

    @property
    def after(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.stage for r in self.refs))


@dataclass(frozen=True)
class Recipe:
    path: Path
    stages: tuple[Stage, ...]
    """In dependency order (a stage after every stage it references; file order otherwise)."""
    evaluation: EvalSpec | None = None
    """The ``eval:`` block: run on every stage that outputs a policy checkpoint (evalspec.py)."""
    gate: GateSpec | None = None

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


def is_ref(value: Any) -> bool:
    return isinstance(value, dict) and "from" in value


def find_refs(value: Any, where: str, key: str = "") -> list[Ref]:
    """Every reference in a config, with the key it sits under (list items inherit the list's key)."""
    if is_ref(value):
        check_keys(value, REF_KEYS, where)
        if not isinstance(value["from"], str) or not isinstance(value.get("file", ""), str):
            raise ConfigError(f"{where}: a reference is {{from: STAGE}} or {{from: STAGE, file: NAME}}, not {value!r}",
                              "e.g. policy: {from: sft} or file: {from: arbitrage, file: pairs.jsonl}")
        return [Ref(value["from"], value.get("file"), key, where)]
    if isinstance(value, dict):
        return [r for k, v in value.items() for r in find_refs(v, f"{where}.{k}", str(k))]
    if isinstance(value, list):
        return [r for i, v in enumerate(value) for r in find_refs(v, f"{where}[{i}]", key)]
    return []


PLACEHOLDER = "CHANGE_ME"
"""What a shipped recipe marks as the user's to fill in (training/recipes/aya-expanse.yaml)."""


def placeholders(value, where: str) -> list[str]:
    """The places (``stages.sft.config.model``) whose string still holds :data:`PLACEHOLDER`."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in placeholders(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in placeholders(v, f"{where}[{i}]")]
    return [where] if isinstance(value, str) and PLACEHOLDER in value else []


def refuse_placeholders(unfilled: list[str], path: Path) -> None:
    if unfilled:
        more = f" (and {len(unfilled) - 1} more)" if len(unfilled) > 1 else ""
        raise ConfigError(f"recipe {path}: {unfilled[0]} is still a {PLACEHOLDER} placeholder{more}",
                          f"fill in every {PLACEHOLDER} (the recipe's header says what each is)")


def load_recipe(path: Path) -> Recipe:
    """Read ``path`` and check its graph: keys, kinds, references, fit and cycles. A
    :data:`PLACEHOLDER` left in the file is refused first (before a path holding one is read)."""
    path = Path(path)
    raw = check_keys(load_yaml(path, "recipe"), ("stages", "eval", "gate"), f"recipe {path}", required=("stages",))
    refuse_placeholders(placeholders(raw, ""), path)
    if not isinstance(raw["stages"], dict) or not raw["stages"]:
        raise ConfigError(f"recipe {path}: stages must map stage names to stages", "e.g. stages: {sft: {train: sft, "
                                                                                   "config: sft.yaml}}")
    stages = {str(name): _stage(str(name), block, path) for name, block in raw["stages"].items()}
    for stage in stages.values():
        for ref in stage.refs:
            _check_ref(ref, stage, stages)
    evaluation = parse_eval(raw["eval"], path) if raw.get("eval") is not None else None
    if raw.get("gate") is not None and evaluation is None:
        raise ConfigError(f"recipe {path}: a gate compares evaluations, and there is no eval: block",
                          "add eval: {tasks: [...]} or remove gate:")
    gate = parse_gate(raw.get("gate") or {}, path) if evaluation is not None else None
    return Recipe(path, tuple(stages[n] for n in _order(stages, path)), evaluation, gate)


def _stage(name: str, block: Any, path: Path) -> Stage:
    where = f"recipe {path}: stages.{name}"
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"{where}: a stage name is letters, digits, - and _, not {name!r}", "rename the stage")
    check_keys(block, STAGE_KEYS, where)
    if ("train" in block) == ("merge" in block):
        raise ConfigError(f"{where}: give exactly one of train: KIND or merge: CONFIG",
                          f"e.g. train: sft (kinds: {', '.join(TRAIN_KINDS)})")
    if "merge" in block:
        if "config" in block:
            raise ConfigError(f"{where}: a merge stage's config is the value of merge:", "move config: into merge:")
        kind, config = "merge", block["merge"]
    else:
        kind, config = block["train"], block.get("config")
        if kind not in TRAIN_KINDS:
            raise ConfigError(f"{where}: unknown stage kind {kind!r}{close_match(str(kind), TRAIN_KINDS)}",
                              f"train: one of {', '.join(TRAIN_KINDS)} (or merge: CONFIG)")
        if config is None:
            raise ConfigError(f"{where}: missing key 'config'", "add config: {…} or config: path/to/stage.yaml")
    base = path
    if isinstance(config, str):
        base = resolve_path(config, path)
        config = load_yaml(base, f"{kind} config of stage {name}")
    elif not isinstance(config, dict):
        raise ConfigError(f"{where}: the config must be a mapping or the path of a YAML file, not "
                          f"{type(config).__name__}", "e.g. config: training/recipes/examples/sft-embedded.yaml")
    accelerate = None
    if block.get("accelerate_config") is not None:
        if not KINDS[kind].accelerate:
            raise ConfigError(f"{where}: {kind} stages do not launch training ranks (no accelerate_config)",
                              f"remove accelerate_config; stages that take one: "
                              f"{', '.join(k for k, v in KINDS.items() if v.accelerate)}")
        from glotbench.training.core.launch import check_accelerate_config

        accelerate = check_accelerate_config(resolve_path(str(block["accelerate_config"]), path))
    refs = tuple(find_refs(config, f"stages.{name}.{'merge' if kind == 'merge' else 'config'}"))
    return Stage(name, kind, config, base, refs, accelerate)


def _check_ref(ref: Ref, stage: Stage, stages: dict[str, Stage]) -> None:
    where = f"recipe: {ref.where}"
    if ref.stage not in stages:
        raise ConfigError(f"{where}: {{from: {ref.stage}}} names no stage{close_match(ref.stage, tuple(stages))}",
                          f"stages: {', '.join(stages)}")
    target = KINDS[stages[ref.stage].kind]
    wants = CHECKPOINT_KEYS.get(ref.key)
    if ref.file is not None:
        if target.output != "data":
            raise ConfigError(f"{where}: stage {ref.stage} ({stages[ref.stage].kind}) outputs {WHAT[target.output]}, "
                              f"not data files", f"write {{from: {ref.stage}}} where a checkpoint is expected")
        if ref.file not in target.files:
            raise ConfigError(f"{where}: a {stages[ref.stage].kind} stage writes no file {ref.file!r}"
                              f"{close_match(ref.file, target.files)}", f"files: {', '.join(target.files)}")
        if wants:
            raise ConfigError(f"{where}: {ref.key} takes {WHAT[wants]}, not the data file {ref.file}",
                              f"name a stage that outputs {WHAT[wants]}")
        return
    if target.output == "data":
        raise ConfigError(f"{where}: stage {ref.stage} ({stages[ref.stage].kind}) outputs data files, not a "
                          "checkpoint", f"name one: {{from: {ref.stage}, file: {target.files[0]}}} "
                                        f"(files: {', '.join(target.files)})")
    if ref.key == "file" or (wants and wants != target.output):
        expected = "a data file" if ref.key == "file" else WHAT[wants]
        raise ConfigError(f"{where}: {ref.key} takes {expected}, but stage {ref.stage} ({stages[ref.stage].kind}) "
                          f"outputs {WHAT[target.output]}", f"name a stage that outputs {expected}")


def _order(stages: dict[str, Stage], path: Path) -> list[str]:
    """Dependency order (depth-first, file order among independent stages); a cycle is refused."""
    done: list[str] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            cycle = visiting[visiting.index(name):] + [name]
            raise ConfigError(f"recipe {path}: stages form a cycle: {' → '.join(cycle)}",
                              "a stage may use only stages that do not use it")
        visiting.append(name)
        for dep in stages[name].after:
            visit(dep)
        visiting.pop()
        done.append(name)

    for name in stages:
        visit(name)
    return done
