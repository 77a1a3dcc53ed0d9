"""The merge configuration: a YAML schema close to mergekit's, validated at the edge.

    merge_method: ties            # linear | slerp | task_arithmetic | ties | dare_ties | dare_linear
    base_model: /ckpt/base        # required by the task-vector methods; SLERP's t=0 endpoint
    models:
      - model: /ckpt/cluster-a
        parameters: {weight: 0.6, density: 0.5}
      - model: /ckpt/cluster-b
        parameters: {weight: 0.4, density: 0.5}
    parameters: {lambda: 1.0}     # shared parameters, and defaults for per-model ones
    convention: paper             # paper (default) | mergekit: see training/merge/methods.py
    seed: 0                       # DARE's drop masks
    dtype: float32                # computation
    out_dtype: bfloat16           # default: each tensor keeps the base model's dtype

Any parameter value may be a list of ``{filter: SUBSTRING, value: X}`` entries: the first
entry whose filter occurs in the tensor name applies (an entry without a filter, or with
``"*"``, matches everything), as in mergekit; e.g. ``t`` for SLERP differing between
``self_attn`` and ``mlp``. mergekit's gradients (lists of numbers interpolated over layers)
and ``slices`` are not supported and are refused by name; its ``int8_mask`` is accepted
and has no effect (a memory saving that chunking makes unnecessary). Model paths are
relative to the working directory, as in mergekit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from glotbench.harness.core.errors import GlotbenchError, close_match

Method = Literal["linear", "slerp", "task_arithmetic", "ties", "dare_ties", "dare_linear"]
Convention = Literal["paper", "mergekit"]
Dtype = Literal["float32", "float64", "bfloat16", "float16"]

METHODS: tuple[str, ...] = get_args(Method)
TOP_KEYS = ("merge_method", "base_model", "models", "parameters", "convention", "seed", "dtype",
            "out_dtype", "tokenizer_source", "name")
# Per-model parameters (each model its own; the shared `parameters` block gives defaults).
PER_MODEL = {
    "linear": ("weight",), "slerp": (), "task_arithmetic": ("weight",), "ties": ("weight", "density"),
    "dare_ties": ("weight", "density"), "dare_linear": ("weight", "density"),
}
# Shared parameters (one value per tensor, from the `parameters` block).
SHARED = {
    "linear": ("normalize",), "slerp": ("t",), "task_arithmetic": ("normalize", "lambda"),
    "ties": ("normalize", "lambda", "int8_mask"), "dare_ties": ("normalize", "lambda", "rescale", "int8_mask"),
    "dare_linear": ("normalize", "lambda", "rescale", "int8_mask"),
}
NEEDS_BASE = ("task_arithmetic", "ties", "dare_ties", "dare_linear")
BOOL_PARAMS = ("normalize", "rescale", "int8_mask")


class MergeConfigError(GlotbenchError):
    """The merge configuration breaks a rule of the schema."""


@dataclass(frozen=True)
class Conditional:
    """One ``{filter, value}`` entry of a filtered parameter."""

    filter: str | None
    value: Any


Setting = float | bool | tuple[Conditional, ...]


@dataclass(frozen=True)
class ModelSpec:
    model: str
    """Local directory, ``embedded`` or a Hugging Face id."""
    parameters: dict[str, Setting] = field(default_factory=dict)


@dataclass(frozen=True)
class MergeConfig:
    merge_method: Method
    models: tuple[ModelSpec, ...]
    base_model: str | None = None
    parameters: dict[str, Setting] = field(default_factory=dict)
    convention: Convention = "paper"
    seed: int = 0
    dtype: Dtype = "float32"
    out_dtype: Dtype | None = None
    tokenizer_source: str | None = None
    """Model whose tokenizer and config are copied (default: the base model, else the first)."""
    name: str | None = None
    raw: dict = field(default_factory=dict, compare=False, repr=False)
    """The YAML as given (for the manifest)."""

    @property
    def inputs(self) -> tuple[str, ...]:
        """Models whose tensors are read, in order: the base first when there is one."""
        others = tuple(m.model for m in self.models if m.model != self.base_model)
        return ((self.base_model,) + others) if self.base_model else others

    def model_params(self, model: str) -> dict[str, Setting]:
        for m in self.models:
            if m.model == model:
                return m.parameters
        return {}


def resolve(setting: Setting | None, tensor: str) -> Any:
    """The value of a (possibly filtered) setting for one tensor name, or None."""
    if not isinstance(setting, tuple):
        return setting
    for cond in setting:
        if cond.filter in (None, "*") or cond.filter in tensor:
            return resolve(cond.value, tensor)
    return None


def load_config(path: Path) -> MergeConfig:
    path = Path(path)
    if not path.is_file():
        raise MergeConfigError(f"merge config {path} does not exist", "give the path of a YAML file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MergeConfigError(f"merge config {path} is not valid YAML ({first})", "fix the syntax") from None
    return parse_config(raw, where=str(path))


def parse_config(raw: Any, where: str = "merge config") -> MergeConfig:
    """Validate a config mapping; every error names the rule it breaks."""

    def fail(problem: str, fix: str) -> MergeConfigError:
        return MergeConfigError(f"{where}: {problem}", fix)

    if not isinstance(raw, dict):
        raise fail("the top level must be a mapping", "start with 'merge_method: linear' and 'models:'")
    for key in raw:
        if key == "slices":
            raise fail("'slices' (layer ranges from different models) is not supported",
                       "merge whole models: give 'models:' instead")
        if key not in TOP_KEYS:
            raise fail(f"unknown key {key!r}{close_match(str(key), TOP_KEYS)}", f"allowed keys: {', '.join(TOP_KEYS)}")
    method = raw.get("merge_method")
    if method not in METHODS:
        raise fail(f"merge_method {method!r} is not one of {', '.join(METHODS)}"
                   f"{close_match(str(method), METHODS)}", "pick one of those")
    convention = raw.get("convention", "paper")
    if convention not in get_args(Convention):
        raise fail(f"convention {convention!r} must be 'paper' or 'mergekit'", "see the docs of training/merge/methods.py")
    for key in ("dtype", "out_dtype"):
        value = raw.get(key)
        if value is not None and value not in get_args(Dtype):
            raise fail(f"{key} {value!r} is not one of {', '.join(get_args(Dtype))}", f"set {key} to one of those")
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise fail(f"seed {seed!r} must be a non-negative integer", "e.g. seed: 0")
    base = raw.get("base_model")
    if base is not None and not isinstance(base, str):
        raise fail("base_model must be a model path or id (a string)", "e.g. base_model: /ckpt/base")

    models_raw = raw.get("models")
    if not isinstance(models_raw, list) or not models_raw:
        raise fail("'models' must be a non-empty list of {model: PATH, parameters: {...}}", "list the models to merge")
    per_model, shared = PER_MODEL[method], SHARED[method]
    models = []
    for i, entry in enumerate(models_raw):
        if isinstance(entry, str):
            entry = {"model": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("model"), str):
            raise fail(f"models[{i}] must be a mapping with a 'model' path", "e.g. - model: /ckpt/a")
        extra = set(entry) - {"model", "parameters"}
        if extra:
            raise fail(f"models[{i}] has unknown key(s) {sorted(extra)}", "allowed: model, parameters")
        params = _settings(entry.get("parameters") or {}, per_model, f"models[{i}].parameters", method, fail)
        models.append(ModelSpec(entry["model"], params))
    names = [m.model for m in models]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise fail(f"model {dup[0]!r} is listed twice", "list each model once (weights express emphasis)")
    params = _settings(raw.get("parameters") or {}, per_model + shared, "parameters", method, fail)

    if method in NEEDS_BASE:
        if not base:
            raise fail(f"{method} needs base_model (task vectors are differences from it)",
                       "add base_model: PATH")
        if not [n for n in names if n != base]:
            raise fail(f"{method} needs at least one model other than the base", "list the fine-tuned models")
    elif method == "slerp":
        if len(models) != 2:
            raise fail(f"slerp interpolates exactly two models, got {len(models)}", "list two models")
        if base is not None and base not in names:
            raise fail("slerp's base_model must be one of its two models (it is the t=0 endpoint)",
                       "set base_model to one of the models, or leave it out (the first is t=0)")
        base = base or names[0]
        if "t" not in params:
            raise fail("slerp needs parameters.t (0 = base model, 1 = the other)", "add parameters: {t: 0.5}")
    elif method == "linear":
        if base is not None and base not in names:
            raise fail("linear averages the listed models; base_model is not one of them",
                       "list it under models with a weight, or remove base_model")
        if len(models) < 2:
            raise fail("linear needs at least two models", "list the models to average")
    tok = raw.get("tokenizer_source")
    if tok is not None and tok not in ("base", *names, base):
        raise fail(f"tokenizer_source {tok!r} is not 'base' or one of the models", "name one of the inputs")
    return MergeConfig(
        merge_method=method, models=tuple(models), base_model=base, parameters=params,
        convention=convention, seed=seed, dtype=raw.get("dtype") or "float32", out_dtype=raw.get("out_dtype"),
        tokenizer_source=None if tok == "base" else tok, name=raw.get("name"), raw=raw)


def _settings(block: Any, allowed: tuple[str, ...], where: str, method: str, fail) -> dict[str, Setting]:
    if not isinstance(block, dict):
        raise fail(f"{where} must be a mapping", "e.g. parameters: {weight: 0.5}")
    out = {}
    for key, value in block.items():
        if key not in allowed:
            hint = f"{method} takes: {', '.join(allowed) or 'no parameters here'}"
            raise fail(f"{where}.{key} is not a parameter of {method}{close_match(str(key), allowed)}", hint)
        out[key] = _setting(key, value, f"{where}.{key}", fail)
    return out


def _setting(key: str, value: Any, where: str, fail) -> Setting:
    if isinstance(value, list):
        if value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise fail("gradients (lists of numbers interpolated over layers) are not supported",
                       "give one number, or a list of {filter: NAME_PART, value: X}")
        conds = []
        for i, entry in enumerate(value):
            if not isinstance(entry, dict) or "value" not in entry or set(entry) - {"filter", "value"}:
                raise fail(f"entry {i} must be {{filter: NAME_PART, value: X}}", "e.g. - {filter: self_attn, value: 0.3}")
            flt = entry.get("filter")
            if flt is not None and not isinstance(flt, str):
                raise fail(f"entry {i}: filter must be a string", "a substring of tensor names, e.g. mlp")
            conds.append(Conditional(flt, _setting(key, entry["value"], f"{where}[{i}]", fail)))
        return tuple(conds)
    if key in BOOL_PARAMS:
        if not isinstance(value, bool):
            raise fail(f"{value!r} must be true or false", f"set {key}: true or false")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise fail(f"{value!r} must be a finite number", f"e.g. {key}: 0.5")
    if key == "density" and not 0 < value <= 1:
        raise fail(f"density {value} must be in (0, 1] (the fraction of each task vector kept)", "e.g. density: 0.5")
    if key == "t" and not 0 <= value <= 1:
        raise fail(f"t {value} must be in [0, 1]", "0 = base model, 1 = the other model")
    return float(value)
