"""The reward stage's YAML config, validated into a frozen record (one-line errors).

```yaml
base_model: embedded                 # or hf:<dir>; loaded as AutoModelForSequenceClassification(num_labels=1)
data:                                # one source:
  alpaca_eval: ../shared/data/alpaca_eval_2/annotations   # GPT-4 judge preferences
  teachers: [claude-2, alpaca-7b]    # annotation files (default: every file but the baseline's own)
  min_instruction: 50                # instructions 0..49 never used (the arbitrage demonstration's)
  min_margin: 0.0                    # |preference - 1.5| below this: skipped and counted
  # file: pairs.jsonl                # {prompt|messages, chosen, rejected} per line
  # hub: ID, config: C, split: S, fields: {prompt: .., chosen: .., rejected: ..}
  allow_eval_overlap: false          # true keeps prompts that are evaluation prompts (counted)
split: {eval_fraction: 0.2, train_pairs: 400, eval_pairs: 200}   # by instruction, seeded
train: {max_length: 256, overlong: truncate, epochs: 1, steps: null, batch_size: 4,
        grad_accum: 1, learning_rate: 1e-4, train_last_layers: null, logging_steps: 5,
        lora: null}                  # lora: {r: 16, alpha: 32, dropout: 0.0}
seed: 0
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from glotbench.training.core.config import ConfigError, check_keys, load_yaml, typed

TOP = ("base_model", "data", "split", "train", "seed")
DATA_KINDS = ("alpaca_eval", "file", "hub")
DATA_KEYS = DATA_KINDS + ("teachers", "min_instruction", "min_margin", "config", "split", "fields",
                          "allow_eval_overlap")
SPLIT_KEYS = ("eval_fraction", "train_pairs", "eval_pairs")
TRAIN_KEYS = ("max_length", "overlong", "epochs", "steps", "batch_size", "grad_accum", "learning_rate",
              "train_last_layers", "logging_steps", "lora", "eval_batch_size")
LORA_KEYS = ("r", "alpha", "dropout", "target_modules")
OVERLONG = ("truncate", "drop")


@dataclass(frozen=True)
class DataConfig:
    """Where the preference pairs come from (one of ``alpaca_eval``, ``file``, ``hub``)."""

    kind: Literal["alpaca_eval", "file", "hub"]
    location: str
    """The annotations directory, the jsonl path, or the hub id / local stand-in directory."""
    teachers: tuple[str, ...] = ()
    """AlpacaEval annotation files (stems) to read; empty = every file except the baseline's own."""
    min_instruction: int = 0
    """AlpacaEval instructions with a lower index are never used (kept for the arbitrage demo)."""
    min_margin: float = 0.0
    """AlpacaEval pairs whose |preference - 1.5| is below this are skipped (counted)."""
    hub_config: str | None = None
    hub_split: str = "train"
    fields: tuple[tuple[str, str], ...] = ()
    """Hub: record field → column (prompt or messages, chosen, rejected, optional prompt_id, language)."""
    allow_eval_overlap: bool = False
    """Keep pairs whose prompt is an evaluation prompt (the overlap is counted in the manifest)."""


@dataclass(frozen=True)
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ()
    """Empty: peft's default for the architecture."""


@dataclass(frozen=True)
class TrainSettings:
    max_length: int = 256
    """Tokens per sequence (prompt + completion, chat template included)."""
    overlong: Literal["truncate", "drop"] = "truncate"
    """Longer sequences: cut to ``max_length`` keeping the start, or drop the pair (counted either way)."""
    epochs: float = 1.0
    steps: int | None = None
    """Optimizer steps; overrides ``epochs`` when set."""
    batch_size: int = 4
    """Pairs per device step (the model sees 2 × batch_size sequences)."""
    grad_accum: int = 1
    learning_rate: float = 1e-4
    train_last_layers: int | None = None
    """Train only the last K transformer blocks, the final norm and the score head (cheap on CPU)."""
    logging_steps: int = 5
    eval_batch_size: int = 8
    lora: LoraSettings | None = None


@dataclass(frozen=True)
class RewardConfig:
    base_model: str
    data: DataConfig
    eval_fraction: float = 0.2
    train_pairs: int | None = None
    """Cap on training pairs (a seeded sample of the training instructions' pairs)."""
    eval_pairs: int | None = None
    train: TrainSettings = field(default_factory=TrainSettings)
    seed: int = 0
    raw: dict = field(default_factory=dict, compare=False)
    """The YAML mapping as read (what the manifest records and hashes)."""


def load_config(path: Path) -> RewardConfig:
    """Read and validate a reward config; every rule broken is a one-line ConfigError."""
    raw = check_keys(load_yaml(path, "reward config"), TOP, f"{path}", required=("base_model", "data"))
    base = typed(raw, "base_model", str, f"{path}")
    if base != "embedded" and not base.startswith("hf:"):
        raise ConfigError(f"{path}: base_model {base!r} is not 'embedded' or 'hf:<dir>'",
                          "e.g. base_model: embedded")
    split = check_keys(raw.get("split", {}), SPLIT_KEYS, f"{path}: split")
    frac = float(typed(split, "eval_fraction", float, f"{path}: split", 0.2))
    if not 0 < frac < 1:
        raise ConfigError(f"{path}: split.eval_fraction must be between 0 and 1, not {frac}", "e.g. 0.2")
    seed = typed(raw, "seed", int, f"{path}", 0)
    return RewardConfig(base_model=base, data=_data(raw["data"], f"{path}: data"), eval_fraction=frac,
                        train_pairs=_positive(split, "train_pairs", f"{path}: split", None),
                        eval_pairs=_positive(split, "eval_pairs", f"{path}: split", None),
                        train=_train(raw.get("train", {}), f"{path}: train"), seed=seed, raw=raw)


def _data(block: object, where: str) -> DataConfig:
    block = check_keys(block, DATA_KEYS, where)
    kinds = [k for k in DATA_KINDS if k in block]
    if len(kinds) != 1:
        raise ConfigError(f"{where}: give exactly one of {', '.join(DATA_KINDS)} (found {len(kinds)})",
                          "e.g. data: {alpaca_eval: ../shared/data/alpaca_eval_2/annotations}")
    kind = kinds[0]
    extra = {"alpaca_eval": ("teachers", "min_instruction", "min_margin"), "file": (),
             "hub": ("config", "split", "fields")}[kind]
    for key in set(block) - {kind, "allow_eval_overlap", *extra}:
        raise ConfigError(f"{where}: {key} does not apply to a {kind} source", f"{kind} takes: {', '.join(extra)}")
    teachers = typed(block, "teachers", list, where, [])
    if not all(isinstance(t, str) for t in teachers):
        raise ConfigError(f"{where}: teachers must be a list of names, not {teachers!r}",
                          "e.g. teachers: [claude-2, alpaca-7b]")
    fields = typed(block, "fields", dict, where, {})
    if kind == "hub" and not ({"chosen", "rejected"} <= set(fields) and ({"prompt", "messages"} & set(fields))):
        raise ConfigError(f"{where}: fields must map chosen, rejected and prompt or messages, not {fields!r}",
                          "e.g. fields: {prompt: question, chosen: good, rejected: bad}")
    margin = float(typed(block, "min_margin", float, where, 0.0))
    if not 0 <= margin < 0.5:
        raise ConfigError(f"{where}: min_margin must be in [0, 0.5), not {margin}", "e.g. min_margin: 0.0")
    return DataConfig(kind=kind, location=str(typed(block, kind, str, where)), teachers=tuple(teachers),
                      min_instruction=typed(block, "min_instruction", int, where, 0), min_margin=margin,
                      hub_config=typed(block, "config", str, where, None),
                      hub_split=typed(block, "split", str, where, "train"),
                      fields=tuple((str(k), str(v)) for k, v in fields.items()),
                      allow_eval_overlap=typed(block, "allow_eval_overlap", bool, where, False))


def _train(block: object, where: str) -> TrainSettings:
    block = check_keys(block, TRAIN_KEYS, where)
    overlong = typed(block, "overlong", str, where, "truncate")
    if overlong not in OVERLONG:
        raise ConfigError(f"{where}: overlong must be one of {', '.join(OVERLONG)}, not {overlong!r}",
                          "truncate keeps the start of a long sequence, drop skips its pair")
    lora = None
    if block.get("lora") is not None:
        lb = check_keys(block["lora"], LORA_KEYS, f"{where}.lora")
        mods = typed(lb, "target_modules", list, f"{where}.lora", [])
        lora = LoraSettings(r=_positive(lb, "r", f"{where}.lora", 16),
                            alpha=_positive(lb, "alpha", f"{where}.lora", 32),
                            dropout=float(typed(lb, "dropout", float, f"{where}.lora", 0.0)),
                            target_modules=tuple(str(m) for m in mods))
    lr = float(typed(block, "learning_rate", float, where, 1e-4))
    epochs = float(typed(block, "epochs", float, where, 1.0))
    if lr <= 0 or epochs <= 0:
        raise ConfigError(f"{where}: learning_rate and epochs must be positive (got {lr}, {epochs})",
                          "e.g. learning_rate: 5e-5, epochs: 1")
    if lora is not None and block.get("train_last_layers") is not None:
        raise ConfigError(f"{where}: lora and train_last_layers both set", "choose one way to train fewer weights")
    return TrainSettings(max_length=_positive(block, "max_length", where, 256), overlong=overlong, epochs=epochs,
                         steps=_positive(block, "steps", where, None),
                         batch_size=_positive(block, "batch_size", where, 4),
                         grad_accum=_positive(block, "grad_accum", where, 1), learning_rate=lr,
                         train_last_layers=_positive(block, "train_last_layers", where, None),
                         logging_steps=_positive(block, "logging_steps", where, 5),
                         eval_batch_size=_positive(block, "eval_batch_size", where, 8), lora=lora)


def _positive(block: dict, key: str, where: str, default: int | None) -> int | None:
    value = typed(block, key, (int, type(None)), where, default)
    if value is not None and value < 1:
        raise ConfigError(f"{where}: {key} must be a positive integer, not {value}", f"set {key} to 1 or more")
    return value
