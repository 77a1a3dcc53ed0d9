"""The DPO stage's config: one YAML file, validated at the edge (one-line errors).

    policy: hf:results/sft-embedded      # or embedded; the checkpoint trained (usually the SFT output)
    reference: null                      # default: the policy's starting weights, loaded explicitly as ref_model
    data: {file: results/arbitrage-alpacaeval/pairs.jsonl}   # or {hub: ID|local dir, config:, split:}
    allow_eval_overlap: false            # true keeps pairs whose prompts are evaluation prompts (counted)
    min_gap: 0.0                         # pairs with score_chosen - score_rejected below it are dropped (counted);
                                         # ties always dropped; unscored pairs kept only when min_gap is 0
    beta: 0.1
    loss_type: sigmoid                   # or a list (trl combines them): sigmoid, ipo, hinge, ...
    lora: {r: 8, alpha: 16, dropout: 0.0, target_modules: all-linear}   # absent: full fine-tuning
    merge_lora: false
    seed: 0
    max_steps: 20                        # or epochs: 1 (max_steps wins when both are set)
    learning_rate: 5.0e-6
    batch_size: 2                        # per device; global = batch_size x grad_accum x processes
    grad_accum: 1
    max_length: 1024
    eval_fraction: 0.1                   # held-out pairs, split by source prompt id: margin before/after

Optional: ``logging_steps``, ``dtype`` (float32 | bfloat16), ``bf16`` and ``gradient_checkpointing``
(off on CPU unless set, as for SFT).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

TOP_KEYS = ("policy", "reference", "data", "allow_eval_overlap", "min_gap", "beta", "loss_type", "lora",
            "merge_lora", "seed", "max_steps", "epochs", "learning_rate", "batch_size", "grad_accum", "max_length",
            "eval_fraction", "logging_steps", "dtype", "bf16", "gradient_checkpointing")
DATA_KEYS = ("file", "hub", "config", "split")
DTYPES = ("float32", "bfloat16")
LOSS_TYPES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
              "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm")
"""The loss types trl 1.16's DPOTrainer accepts (its ``loss_type`` list; anything else fails mid-run)."""


@dataclass(frozen=True)
class DataSpec:
    """Where the preference pairs come from: a jsonl file or a ``datasets`` source."""

    file: Path | None = None
    hub: str | None = None
    config: str | None = None
    split: str = "train"


@dataclass(frozen=True)
class DPOConfig:
    """A validated DPO config (see the module docstring for each key)."""

    policy: str
    data: DataSpec
    raw: dict
    """The YAML as written: hashed into the manifest."""
    reference: str | None = None
    allow_eval_overlap: bool = False
    min_gap: float = 0.0
    beta: float = 0.1
    loss_type: tuple[str, ...] = ("sigmoid",)
    lora: dict | None = None
    merge_lora: bool = False
    seed: int = 0
    max_steps: int | None = None
    epochs: float = 1.0
    learning_rate: float = 5e-6
    batch_size: int = 2
    grad_accum: int = 1
    max_length: int = 1024
    eval_fraction: float = 0.0
    logging_steps: int = 1
    dtype: str = "float32"
    bf16: bool | None = None
    gradient_checkpointing: bool = False


def load_config(path: Path) -> DPOConfig:
    """Read and validate the DPO config at ``path``."""
    return parse_config(load_yaml(path, "DPO config"), Path(path))


def parse_config(raw: dict, config_path: Path | None = None) -> DPOConfig:
    """Validate a config mapping; relative paths resolve from the cwd, the config's dir or the repo root."""
    where = f"DPO config {config_path}" if config_path else "DPO config"
    check_keys(raw, TOP_KEYS, where, required=("policy", "data"))
    kw: dict[str, Any] = {"policy": _model(raw, "policy", where, config_path)}
    if raw.get("reference") is not None:
        kw["reference"] = _model(raw, "reference", where, config_path)
    for key, kind in (("allow_eval_overlap", bool), ("merge_lora", bool), ("gradient_checkpointing", bool),
                      ("seed", int), ("dtype", str)):
        if key in raw:
            kw[key] = typed(raw, key, kind, where)
    for key in ("max_steps", "batch_size", "grad_accum", "max_length", "logging_steps"):
        if key in raw:
            kw[key] = positive(raw, key, int, where)
    for key in ("epochs", "learning_rate", "beta"):
        if key in raw:
            kw[key] = float(positive(raw, key, float, where))
    if "min_gap" in raw:
        kw["min_gap"] = float(typed(raw, "min_gap", float, where))
        if kw["min_gap"] < 0:
            raise ConfigError(f"{where}: min_gap must be 0 or more, not {raw['min_gap']!r}", "set min_gap: 0.5")
    if "eval_fraction" in raw:
        kw["eval_fraction"] = float(typed(raw, "eval_fraction", float, where))
        if not 0 <= kw["eval_fraction"] < 1:
            raise ConfigError(f"{where}: eval_fraction must be in [0, 1), not {raw['eval_fraction']!r}",
                              "set eval_fraction: 0.1")
    if kw.get("dtype", "float32") not in DTYPES:
        raise ConfigError(f"{where}: dtype must be one of {', '.join(DTYPES)}, not {raw['dtype']!r}",
                          "set dtype: float32")
    if raw.get("bf16") is not None:
        kw["bf16"] = typed(raw, "bf16", bool, where)
    if "loss_type" in raw:
        kw["loss_type"] = _loss_types(raw["loss_type"], where)
    if raw.get("lora") is not None:
        kw["lora"] = lora_settings(raw["lora"], f"{where}: lora")
    if kw.get("merge_lora") and "lora" not in kw:
        raise ConfigError(f"{where}: merge_lora is true but there is no lora block",
                          "add lora: {r: 8} or drop merge_lora")
    return DPOConfig(data=_data(raw["data"], f"{where}: data", config_path), raw=raw, **kw)


def _model(raw: dict, key: str, where: str, config_path: Path | None) -> str:
    """``embedded`` or ``hf:<dir>`` with the directory resolved like every config path."""
    spec = typed(raw, key, str, where)
    if spec.startswith("hf:"):
        return "hf:" + str(resolve_path(spec[3:], config_path))
    if spec != "embedded":
        raise ConfigError(f"{where}: {key} must be embedded or hf:<dir>, not {spec!r}",
                          f"e.g. {key}: hf:results/sft-embedded")
    return spec


def _loss_types(value: Any, where: str) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{where}: loss_type must be a name or a list of names, not {value!r}",
                          "e.g. loss_type: sigmoid")
    for name in names:
        if name not in LOSS_TYPES:
            raise ConfigError(f"{where}: loss_type {name!r} is not a trl DPO loss{close_match(name, LOSS_TYPES)}",
                              f"use one of {', '.join(LOSS_TYPES)}")
    return tuple(names)


def _data(block: Any, where: str, config_path: Path | None) -> DataSpec:
    if isinstance(block, str):  # shorthand: data: path/to/pairs.jsonl
        block = {"file": block}
    check_keys(block, DATA_KEYS, where)
    if ("file" in block) == ("hub" in block):
        raise ConfigError(f"{where}: give exactly one of file or hub", "data: {file: pairs.jsonl} or data: {hub: ID}")
    strings = {k: typed(block, k, str, where) for k in DATA_KEYS if k in block}
    if "file" in strings:
        path = resolve_path(strings["file"], config_path)
        if not path.is_file():
            raise ConfigError(f"{where}: data file {path} does not exist",
                              "give a pairs jsonl (pairs.jsonl from glotbench train arbitrage)")
        return DataSpec(file=path)
    local = resolve_path(strings["hub"], config_path)
    return DataSpec(hub=str(local) if local.exists() else strings["hub"], config=strings.get("config"),
                    split=strings.get("split", "train"))
