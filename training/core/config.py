"""Validated YAML configs for training stages: unknown keys and wrong types are one-line
errors naming the key, the value seen and what is allowed (with a close match)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from glotbench.harness.core.errors import GlotbenchError, close_match, first_line


class ConfigError(GlotbenchError):
    """A training config breaks a rule; the message names the file, the key and the rule."""


def load_yaml(path: Path, kind: str) -> dict:
    """The mapping in YAML file ``path`` (``kind``: e.g. "arbitrage config", used in errors)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{kind} {path} does not exist", "give the path of a YAML file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{kind} {path} is not valid YAML ({first_line(exc)})", "fix the syntax") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{kind} {path} is not a mapping of keys to values",
                          "see the examples in training/recipes/examples/")
    return raw


def check_keys(block: Any, allowed: tuple[str, ...], where: str, required: tuple[str, ...] = ()) -> dict:
    """``block`` as a dict whose keys are all in ``allowed`` and include ``required``."""
    if not isinstance(block, dict):
        raise ConfigError(f"{where} must be a mapping, not {type(block).__name__}",
                          f"use keys among: {', '.join(allowed)}")
    for key in block:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r}{close_match(str(key), allowed)}",
                              f"allowed keys: {', '.join(allowed)}")
    for key in required:
        if key not in block:
            raise ConfigError(f"{where}: missing key {key!r}", f"add {key}: ...")
    return block


def typed(block: dict, key: str, kind: type | tuple[type, ...], where: str, default: Any = None) -> Any:
    """``block[key]`` checked against ``kind`` (``default`` when absent). bool is not an int here."""
    if key not in block:
        return default
    value = block[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds) or (float in kinds and isinstance(value, int) and not isinstance(value, bool))
    if not ok:
        names = " or ".join(k.__name__ for k in kinds)
        raise ConfigError(f"{where}: {key} must be {names}, not {value!r}", f"set {key} to a {names}")
    return value


REPO_ROOT = Path(__file__).resolve().parents[2]
"""The checkout's root (an editable install): shipped example configs name paths from here."""


def resolve_path(value: str, config_path: Path | None = None) -> Path:
    """A path from a config: absolute; else relative to the working directory, the config
    file's directory or the repository root, the first where it exists (the working
    directory's reading when it exists nowhere, so the error names what the user wrote)."""
    p = Path(value).expanduser()
    if p.is_absolute() or p.exists():
        return p
    for base in ([Path(config_path).parent] if config_path else []) + [REPO_ROOT]:
        if (base / p).exists():
            return base / p
    return p


def positive(raw: dict, key: str, kind: type, where: str) -> Any:
    """``raw[key]`` checked against ``kind`` and required to be above 0."""
    value = typed(raw, key, kind, where)
    if value <= 0:
        raise ConfigError(f"{where}: {key} must be positive, not {value!r}", f"set {key} to a number above 0")
    return value


LORA_KEYS = ("r", "alpha", "dropout", "target_modules")


def lora_settings(block: Any, where: str) -> dict:
    """A ``lora:`` block (or ``lora: true``) → peft settings with defaults r 8, alpha 16,
    dropout 0, all linear layers; shared by every stage that trains adapters."""
    block = {} if block is True else block
    check_keys(block, LORA_KEYS, where)
    out = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"}
    for key in ("r", "alpha"):
        if key in block:
            out[key] = positive(block, key, int, where)
    if "dropout" in block:
        out["dropout"] = float(typed(block, "dropout", float, where))
    if "target_modules" in block:
        mods = block["target_modules"]
        if not (mods == "all-linear" or (isinstance(mods, list) and mods and all(isinstance(m, str) for m in mods))):
            raise ConfigError(f"{where}: target_modules must be all-linear or a list of module names, not {mods!r}",
                              "e.g. target_modules: [q_proj, v_proj]")
        out["target_modules"] = mods
    return out
