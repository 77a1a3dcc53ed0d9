"""The SFT stage's config: one YAML file, validated at the edge (one-line errors).

    model: embedded                      # or hf:<dir> (resolved by training.merge.engine.resolve_model)
    data: {file: results/arbitrage-alpacaeval/sft.jsonl}   # or {hub: ID|local dir, config:, split:, field:}
                                         # allow_eval_overlap: false (true keeps evaluation prompts, counted)
    chat_template: null                  # the model's own; or a .jinja file, or the template itself
    loss: assistant                      # assistant (default: loss on assistant tokens only) | all
    packing: false
    lora: {r: 8, alpha: 16, dropout: 0.0, target_modules: all-linear}   # absent: full fine-tuning
    merge_lora: false                    # true: the output holds the merged weights, not an adapter
    seed: 0
    max_steps: 20                        # or epochs: 1 (max_steps wins when both are set)
    learning_rate: 2.0e-5
    batch_size: 4                        # per device; global = batch_size x grad_accum x processes
    grad_accum: 1
    max_length: 1024
    eval_fraction: 0.1                   # held-out rows: eval loss before and after training
    clusters: {romance: [es, fr, it], cjk: [zh, ja, ko]}   # one checkpoint per cluster, then a merge
    shared: [en]                         # languages every cluster also trains on
    merge: {method: linear, weights: {romance: 0.5, cjk: 0.5}}

Optional: ``languages`` (keep only these rows), ``lr_scheduler`` (transformers' SchedulerType names),
``warmup_ratio``, ``weight_decay``, ``logging_steps``, ``eval_steps``, ``dtype`` (weights as
loaded: float32 | bfloat16), ``bf16`` and ``gradient_checkpointing`` (off on CPU unless set:
trl defaults both on; whether that pays on a CPU depends on it, see docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from glotbench.harness.core.errors import close_match
from glotbench.training.core.config import (
    ConfigError,
    check_keys,
    load_yaml,
    lora_settings,
    positive,
    resolve_path,
    typed,
)
from glotbench.training.merge.config import METHODS

Loss = Literal["assistant", "all"]
TOP_KEYS = ("model", "data", "chat_template", "loss", "packing", "lora", "merge_lora", "seed", "max_steps",
            "epochs", "learning_rate", "batch_size", "grad_accum", "max_length", "eval_fraction", "eval_steps",
            "languages", "lr_scheduler", "warmup_ratio", "weight_decay", "logging_steps", "dtype", "bf16",
            "gradient_checkpointing", "clusters", "shared", "merge")
DATA_KEYS = ("file", "hub", "config", "split", "field", "language_field", "allow_eval_overlap")
MERGE_KEYS = ("method", "weights", "parameters")
DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class DataSpec:
    """Where the chat rows come from: a jsonl file or a ``datasets`` source (hub id or local dir)."""

    file: Path | None = None
    hub: str | None = None
    config: str | None = None
    split: str = "train"
    field: str = "messages"
    language_field: str = "language"
    allow_eval_overlap: bool = False
    """Keep rows whose user turns are evaluation prompts (they are counted in the manifest)."""


@dataclass(frozen=True)
class SFTConfig:
    """A validated SFT config (see the module docstring for the meaning of each key)."""

    model: str
    data: DataSpec
    raw: dict
    """The YAML as written: hashed into the manifest."""
    chat_template: str | None = None
    loss: Loss = "assistant"
    packing: bool = False
    lora: dict | None = None
    merge_lora: bool = False
    seed: int = 0
    max_steps: int | None = None
    epochs: float = 1.0
    learning_rate: float = 2e-5
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 1024
    eval_fraction: float = 0.0
    eval_steps: int | None = None
    languages: tuple[str, ...] = ()
    lr_scheduler: str = "linear"
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    logging_steps: int = 1
    dtype: str = "float32"
    bf16: bool | None = None
    gradient_checkpointing: bool = False
    clusters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    shared: tuple[str, ...] = ()
    merge: dict = field(default_factory=dict)


def load_config(path: Path) -> SFTConfig:
    """Read and validate the SFT config at ``path``."""
    return parse_config(load_yaml(path, "SFT config"), Path(path))


def parse_config(raw: dict, config_path: Path | None = None) -> SFTConfig:
    """Validate a config mapping; relative paths resolve from the cwd, the config's dir or the repo root."""
    where = f"SFT config {config_path}" if config_path else "SFT config"
    check_keys(raw, TOP_KEYS, where, required=("model", "data"))
    model = typed(raw, "model", str, where)
    data = _data(raw["data"], f"{where}: data", config_path)
    kw: dict[str, Any] = {}
    for key, kind in (("packing", bool), ("merge_lora", bool), ("gradient_checkpointing", bool), ("seed", int),
                      ("lr_scheduler", str), ("dtype", str)):
        if key in raw:
            kw[key] = typed(raw, key, kind, where)
    for key in ("max_steps", "batch_size", "grad_accum", "max_length", "logging_steps", "eval_steps"):
        if key in raw:
            kw[key] = positive(raw, key, int, where)
    for key in ("epochs", "learning_rate"):
        if key in raw:
            kw[key] = float(positive(raw, key, float, where))
    for key in ("warmup_ratio", "weight_decay", "eval_fraction"):
        if key in raw:
            kw[key] = float(typed(raw, key, float, where))
            if not 0 <= kw[key] < 1:
                raise ConfigError(f"{where}: {key} must be in [0, 1), not {raw[key]!r}", f"set {key}: 0.1")
    if raw.get("loss", "assistant") not in ("assistant", "all"):
        raise ConfigError(f"{where}: loss must be assistant or all, not {raw['loss']!r}",
                          "assistant trains on the assistant turns only; all on every token")
    kw["loss"] = raw.get("loss", "assistant")
    if "lr_scheduler" in kw:
        _scheduler(kw["lr_scheduler"], where)
    if kw.get("dtype", "float32") not in DTYPES:
        raise ConfigError(f"{where}: dtype must be one of {', '.join(DTYPES)}, not {raw['dtype']!r}", "set dtype: float32")
    if raw.get("bf16") is not None:
        kw["bf16"] = typed(raw, "bf16", bool, where)
    if raw.get("chat_template") is not None:
        kw["chat_template"] = _template(typed(raw, "chat_template", str, where), where, config_path)
    if raw.get("lora") is not None:
        kw["lora"] = lora_settings(raw["lora"], f"{where}: lora")
    if kw.get("merge_lora") and "lora" not in kw:
        raise ConfigError(f"{where}: merge_lora is true but there is no lora block", "add lora: {r: 8} or drop merge_lora")
    kw["languages"] = _codes(raw, "languages", where)
    kw["shared"] = _codes(raw, "shared", where)
    if raw.get("clusters") is not None:
        kw["clusters"] = _clusters(raw["clusters"], f"{where}: clusters")
        if kw.get("lora") and not kw.get("merge_lora"):
            raise ConfigError(f"{where}: clusters with lora need merge_lora: true (the merge averages full weights)",
                              "set merge_lora: true")
    elif raw.get("shared") or raw.get("merge"):
        raise ConfigError(f"{where}: shared/merge need a clusters block", "add clusters: {name: [languages]}")
    if raw.get("merge") is not None:
        kw["merge"] = _merge(raw["merge"], f"{where}: merge", tuple(kw["clusters"]))
    return SFTConfig(model=model, data=data, raw=raw, **kw)


def _scheduler(name: str, where: str) -> None:
    """Refuse a learning-rate schedule transformers does not know (else the Trainer fails after
    the model and data are loaded)."""
    from transformers.trainer_utils import SchedulerType

    names = tuple(s.value for s in SchedulerType)
    if name not in names:
        raise ConfigError(f"{where}: lr_scheduler {name!r} is not a transformers schedule{close_match(name, names)}",
                          f"use one of {', '.join(names)}")


def _data(block: Any, where: str, config_path: Path | None) -> DataSpec:
    if isinstance(block, str):  # shorthand: data: path/to/sft.jsonl
        block = {"file": block}
    check_keys(block, DATA_KEYS, where)
    if ("file" in block) == ("hub" in block):
        raise ConfigError(f"{where}: give exactly one of file or hub", "data: {file: sft.jsonl} or data: {hub: ID}")
    allow = typed(block, "allow_eval_overlap", bool, where, False)
    strings = {k: typed(block, k, str, where) for k in DATA_KEYS if k in block and k != "allow_eval_overlap"}
    if "file" in strings:
        path = resolve_path(strings.pop("file"), config_path)
        if not path.is_file():
            raise ConfigError(f"{where}: data file {path} does not exist",
                              "give a chat jsonl (sft.jsonl from glotbench train arbitrage)")
        return DataSpec(file=path, allow_eval_overlap=allow,
                        **{k: v for k, v in strings.items() if k in ("field", "language_field")})
    hub = strings.pop("hub")
    local = resolve_path(hub, config_path)
    return DataSpec(hub=str(local) if local.exists() else hub, allow_eval_overlap=allow, **strings)


def _template(value: str, where: str, config_path: Path | None) -> str:
    if "{%" in value or "{{" in value:
        return value
    path = resolve_path(value, config_path)
    if not path.is_file():
        raise ConfigError(f"{where}: chat_template {value!r} is neither a file nor a Jinja template",
                          "give a .jinja file or the template text")
    return path.read_text(encoding="utf-8")


def _codes(raw: dict, key: str, where: str) -> tuple[str, ...]:
    value = raw.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: {key} must be a list of language codes, not {value!r}", f"e.g. {key}: [en, es, fr]")
    return tuple(value)


def _clusters(block: Any, where: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(block, dict) or not block:
        raise ConfigError(f"{where} must map cluster names to language lists", "e.g. clusters: {cjk: [zh, ja, ko]}")
    out = {}
    for name, langs in block.items():
        if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"{where}: cluster name {name!r} must be letters, digits, - or _", "rename it")
        out[name] = _codes({name: langs}, name, where)
        if not out[name]:
            raise ConfigError(f"{where}: cluster {name!r} has no languages", f"e.g. {name}: [es, fr]")
    return out


def _merge(block: Any, where: str, clusters: tuple[str, ...]) -> dict:
    check_keys(block, MERGE_KEYS, where)
    out = {"method": typed(block, "method", str, where, "linear"), "parameters": block.get("parameters") or {}}
    if out["method"] not in METHODS:
        raise ConfigError(f"{where}: method {out['method']!r} is not a training.merge method"
                          f"{close_match(out['method'], METHODS)}", f"use one of {', '.join(METHODS)}")
    weights = block.get("weights") or {}
    if not isinstance(weights, dict):
        raise ConfigError(f"{where}: weights must map cluster names to numbers", "e.g. weights: {romance: 2, cjk: 1}")
    for name in weights:
        if name not in clusters:
            raise ConfigError(f"{where}: weights name {name!r}, which is not a cluster",
                              f"clusters: {', '.join(clusters)}")
        typed(weights, name, float, f"{where}: weights")
    out["weights"] = {name: float(weights.get(name, 1.0)) for name in clusters}
    return out
