"""The online-DPO config: one YAML file, validated at the edge (one-line errors).

```yaml
policy: hf:results/dpo-embedded     # or embedded: the starting policy (usually the offline-DPO output)
prompts: {alpaca_eval_multilingual: ../shared/data/alpaca_eval_multilingual, languages: [en, de], first: 40}
held_out: 0.25                      # share of source prompts kept out of training, for the metrics
iterations: 3
samples_per_prompt: 4               # K >= 2 completions per training prompt and iteration
sampling: {temperature: 0.8, max_new_tokens: 128, seed: 0}
eval_samples: 1                     # completions per held-out prompt and policy (same sampling settings)
scorer: {reward_model: results/rm-alpacaeval}   # | {judge: {...}} | {callable: "module:function"}
min_gap: 0.0                        # best - worst score below it: the prompt gives no pair (counted)
dpo: {beta: [0.1, 0.1, 0.05], loss_type: sigmoid, learning_rate: 5.0e-7, epochs: 1, batch_size: 4}
merge: {seeds: [0], previous: 0.0}  # optional: one DPO run per seed, averaged with the start's weights
seed: 0
batch_size: 8                       # generation batch
backend: hf                         # hf | vllm: what samples (and scores the KL's log-probabilities)
device: auto
dtype: auto
```

``dpo`` takes the keys of ``glotbench train dpo`` (training/dpo/config.py) except those the
loop sets itself: ``policy`` and ``reference`` (the iteration's starting checkpoint), ``data``
(the iteration's pairs), ``seed`` (``merge.seeds`` or the top-level seed), ``min_gap`` (applied
here), ``eval_fraction`` (held-out prompts are measured by the loop). ``beta`` may be one
value or one per iteration, as trl's list.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glotbench.training.core.config import ConfigError, check_keys, load_yaml, resolve_path, typed

TOP_KEYS = ("policy", "prompts", "held_out", "iterations", "samples_per_prompt", "sampling", "eval_samples",
            "scorer", "min_gap", "dpo", "merge", "seed", "batch_size", "device", "dtype", "backend")
BACKENDS = ("hf", "vllm")
SAMPLING_KEYS = ("temperature", "max_new_tokens", "seed")
MERGE_KEYS = ("seeds", "previous")
SET_BY_LOOP = ("policy", "reference", "data", "seed", "min_gap", "eval_fraction")
"""DPO keys the loop sets per iteration; a ``dpo:`` block naming one is refused."""


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.8
    max_new_tokens: int = 128
    seed: int = 0


@dataclass(frozen=True)
class OnlineConfig:
    """A validated online-DPO config (see the module docstring for each key)."""

    policy: str
    prompts: dict
    scorer: dict
    raw: dict
    """The YAML as written: hashed into the manifest and into the run's identity."""
    path: Path | None = None
    held_out: float = 0.25
    iterations: int = 3
    samples_per_prompt: int = 4
    sampling: Sampling = Sampling()
    eval_samples: int = 1
    min_gap: float = 0.0
    dpo: dict | None = None
    betas: tuple[float, ...] = (0.1,)
    """One beta per iteration."""
    seeds: tuple[int, ...] = (0,)
    """DPO seeds per iteration: more than one → their checkpoints are averaged."""
    previous: float = 0.0
    """Weight of the iteration's starting checkpoint in the average (0: not merged in)."""
    seed: int = 0
    batch_size: int = 8
    device: str = "auto"
    dtype: str = "auto"
    backend: str = "hf"
    """The generating backend: hf (transformers) or vllm (docs/running.md#vllm-backend)."""

    @property
    def merges(self) -> bool:
        return len(self.seeds) > 1 or self.previous > 0


def load_config(path: Path) -> OnlineConfig:
    """Read and validate the online-DPO config at ``path``."""
    return parse_config(load_yaml(path, "online-DPO config"), Path(path))


def parse_config(raw: Any, path: Path | None = None) -> OnlineConfig:
    where = f"online-DPO config {path}" if path else "online-DPO config"
    check_keys(raw, TOP_KEYS, where, required=("policy", "prompts", "scorer"))
    for key in ("prompts", "scorer"):
        if not isinstance(raw[key], dict):
            raise ConfigError(f"{where}: {key} must be a mapping", "see docs/training.md#online-dpo")
    iterations = _int(raw, "iterations", where, 3, 1)
    k = _int(raw, "samples_per_prompt", where, 4, 2, "K >= 2: best and worst need two samples")
    held = float(typed(raw, "held_out", (int, float), where, 0.25))
    if not 0 < held < 1:
        raise ConfigError(f"{where}: held_out must be a share in (0, 1), not {held}", "e.g. held_out: 0.25")
    min_gap = float(typed(raw, "min_gap", (int, float), where, 0.0))
    if min_gap < 0:
        raise ConfigError(f"{where}: min_gap must be 0 or more, not {min_gap}", "e.g. min_gap: 0.5")
    sampling = _sampling(raw.get("sampling") or {}, f"{where}: sampling")
    dpo = dict(check_keys(raw.get("dpo") or {}, _dpo_keys(), f"{where}: dpo"))
    if stray := [key for key in SET_BY_LOOP if key in dpo]:
        raise ConfigError(f"{where}: dpo.{stray[0]} is set by the loop", f"remove dpo.{stray[0]} (see the docs)")
    betas = _betas(dpo.pop("beta", 0.1), iterations, f"{where}: dpo.beta")
    seed = typed(raw, "seed", int, where, 0)
    seeds, previous = _merge(raw.get("merge"), seed, f"{where}: merge")
    backend = typed(raw, "backend", str, where, "hf")
    if backend not in BACKENDS:
        raise ConfigError(f"{where}: backend must be one of {', '.join(BACKENDS)}, not {backend!r}",
                          "backend: vllm samples on vLLM (GPU, or its isolated CPU environment)")
    return OnlineConfig(policy=_policy(raw, where, path), prompts=raw["prompts"], scorer=raw["scorer"], raw=raw,
                        path=path, held_out=held, iterations=iterations, samples_per_prompt=k, sampling=sampling,
                        eval_samples=_int(raw, "eval_samples", where, 1, 1), min_gap=min_gap, dpo=dpo,
                        betas=betas, seeds=seeds, previous=previous, seed=seed,
                        batch_size=_int(raw, "batch_size", where, 8, 1), device=typed(raw, "device", str, where, "auto"),
                        dtype=typed(raw, "dtype", str, where, "auto"), backend=backend)


def _dpo_keys() -> tuple[str, ...]:
    from glotbench.training.dpo.config import TOP_KEYS as DPO_KEYS

    return DPO_KEYS


def _int(raw: dict, key: str, where: str, default: int, least: int, why: str = "") -> int:
    value = typed(raw, key, int, where, default)
    if value < least:
        raise ConfigError(f"{where}: {key} must be at least {least}, not {value}{f' ({why})' if why else ''}",
                          f"set {key}: {max(least, default)}")
    return value


def _policy(raw: dict, where: str, path: Path | None) -> str:
    spec = typed(raw, "policy", str, where)
    if spec == "embedded":
        return spec
    if spec.startswith("hf:") and spec[3:]:
        local = resolve_path(spec[3:], path)
        if not (local / "config.json").is_file():
            raise ConfigError(f"{where}: policy {spec} is not a checkpoint directory ({local} has no config.json)",
                              "train one first (glotbench train sft / dpo) or fix the path")
        return "hf:" + str(local)
    raise ConfigError(f"{where}: policy must be embedded or hf:<dir>, not {spec!r}", "e.g. policy: hf:results/dpo-embedded")


def _sampling(block: Any, where: str) -> Sampling:
    check_keys(block, SAMPLING_KEYS, where)
    temperature = float(typed(block, "temperature", (int, float), where, 0.8))
    if temperature <= 0:
        raise ConfigError(f"{where}: temperature must be above 0 (greedy samples would all be the same)",
                          "e.g. temperature: 0.8")
    max_new = typed(block, "max_new_tokens", int, where, 128)
    if max_new < 1:
        raise ConfigError(f"{where}: max_new_tokens must be positive, not {max_new}", "e.g. max_new_tokens: 128")
    return Sampling(temperature, max_new, typed(block, "seed", int, where, 0))


def _betas(value: Any, iterations: int, where: str) -> tuple[float, ...]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(b, int | float) and not isinstance(b, bool) and b > 0 for b in values):
        raise ConfigError(f"{where} must be a positive number or a list of them, not {value!r}", "e.g. beta: 0.1")
    if len(values) == 1:
        return tuple(float(values[0]) for _ in range(iterations))
    if len(values) != iterations:
        raise ConfigError(f"{where} lists {len(values)} values for {iterations} iterations",
                          "give one beta, or one per iteration")
    return tuple(float(b) for b in values)


def _merge(block: Any, seed: int, where: str) -> tuple[tuple[int, ...], float]:
    if block is None:
        return (seed,), 0.0
    check_keys(block, MERGE_KEYS, where)
    seeds = block.get("seeds", [seed])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                            for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError(f"{where}: seeds must be a non-empty list of distinct integers, not {seeds!r}",
                          "e.g. seeds: [0, 1]")
    previous = float(typed(block, "previous", (int, float), where, 0.0))
    if not 0 <= previous < 1:
        raise ConfigError(f"{where}: previous must be a weight in [0, 1), not {previous}",
                          "e.g. previous: 0.3 (the start's share of the average)")
    return tuple(seeds), previous
