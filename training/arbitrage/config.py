"""The arbitrage config: prompts, a pool of teachers, a scorer and a routing policy.

```yaml
prompts: {alpaca_eval_multilingual: ../shared/data/alpaca_eval_multilingual, languages: [en, de], first: 50}
teachers:
  - {name: gpt4_1106_preview, published: ../shared/data/alpaca_eval_2/annotations/claude-2.json,
     generator: gpt4_1106_preview, match: parallel}
  - {name: smollm2, model: embedded, samples: 2, temperature: 0.7, max_new_tokens: 128, languages: [de]}
  - {name: served, model: "openai:NAME", base_url: "http://127.0.0.1:8000/v1", rpm: 60}
scorer: {reward_model: ckpt/rm}        # | {judge: {...}} | {callable: "module:function"}
routing: {policy: reward}              # | {policy: fixed, fixed: {en: ..}} | {policy: learned, fit: 0.5, holdout: 0.25}
seed: 0
```

Every rule broken is a one-line error naming the key (training/core/config.py). The prompt
block and the scorer block are validated by their own modules (training/data/prompts.py,
training/arbitrage/scorers.py) when the stage loads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from glotbench.training.core.config import ConfigError, check_keys, load_yaml, resolve_path, typed

TOP_KEYS = ("prompts", "teachers", "scorer", "routing", "seed", "batch_size", "device", "dtype")
MODEL_KEYS = ("name", "model", "languages", "samples", "temperature", "max_new_tokens", "seed",
              "base_url", "rpm", "tpm", "concurrency", "price")
PUBLISHED_KEYS = ("name", "published", "generator", "match", "languages")
ROUTING_KEYS = ("policy", "fixed", "fit", "holdout")
MATCHES = ("text", "id", "parallel")
POLICIES = ("reward", "fixed", "learned")


@dataclass(frozen=True)
class TeacherConfig:
    """One teacher: a model glotbench generates with, or a file of published completions."""

    name: str
    model: str | None = None
    """``embedded``, ``hf:<dir>`` or ``openai:<model name>`` (with ``base_url`` for a server of your own)."""
    published: Path | None = None
    """AlpacaEval annotations/outputs (JSON array), arena-hard ``model_answer`` or ``{prompt_id, response}`` lines."""
    generator: str | None = None
    """Which model's outputs to take from a file holding several (AlpacaEval annotations)."""
    match: Literal["text", "id", "parallel"] = "text"
    """How a published completion finds its prompt: same prompt text, same prompt id, or the
    same source id (``alpaca-12`` answers ``alpaca-12/de`` too: an English answer offered for
    the translated prompt, the weak teacher of the paper's multilingual setting)."""
    languages: tuple[str, ...] | None = None
    """Only prompts in these languages (None: all)."""
    samples: int = 1
    temperature: float = 0.0
    max_new_tokens: int = 256
    seed: int = 0
    base_url: str | None = None
    rpm: float | None = None
    tpm: float | None = None
    concurrency: int = 8
    price: tuple[float, float] | None = None

    def serves(self, language: str) -> bool:
        return self.languages is None or language in self.languages


@dataclass(frozen=True)
class RoutingConfig:
    policy: Literal["reward", "fixed", "learned"] = "reward"
    fixed: dict[str, str] = field(default_factory=dict)
    """language → teacher name (policy ``fixed``)."""
    fit: float = 0.5
    """policy ``learned``: share of prompts every teacher answers, to fit the router on."""
    holdout: float = 0.25
    """policy ``learned``: share every teacher answers too, to measure the router (reward kept)."""


@dataclass(frozen=True)
class ArbitrageConfig:
    prompts: dict
    teachers: tuple[TeacherConfig, ...]
    scorer: dict
    routing: RoutingConfig
    seed: int
    batch_size: int
    device: str
    dtype: str
    raw: dict
    path: Path | None = None


def load_config(path: Path) -> ArbitrageConfig:
    return parse_config(load_yaml(path, "arbitrage config"), Path(path))


def parse_config(raw: Any, path: Path | None = None) -> ArbitrageConfig:
    where = str(path or "arbitrage config")
    check_keys(raw, TOP_KEYS, where, required=("prompts", "teachers", "scorer"))
    teachers_raw = raw["teachers"]
    if not isinstance(teachers_raw, list) or not teachers_raw:
        raise ConfigError(f"{where}: teachers must be a non-empty list", "list one mapping per teacher")
    teachers = tuple(_teacher(t, f"{where}: teachers[{i}]", path) for i, t in enumerate(teachers_raw))
    names = [t.name for t in teachers]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise ConfigError(f"{where}: two teachers are named {dup!r}", "give every teacher its own name")
    routing = _routing(raw.get("routing", {}), f"{where}: routing", names)
    if not isinstance(raw["scorer"], dict):
        raise ConfigError(f"{where}: scorer must be a mapping", "e.g. scorer: {reward_model: ckpt/rm}")
    if not isinstance(raw["prompts"], dict):
        raise ConfigError(f"{where}: prompts must be a mapping", "e.g. prompts: {file: prompts.jsonl}")
    return ArbitrageConfig(prompts=raw["prompts"], teachers=teachers, scorer=raw["scorer"], routing=routing,
                           seed=typed(raw, "seed", int, where, 0), batch_size=typed(raw, "batch_size", int, where, 8),
                           device=typed(raw, "device", str, where, "auto"), dtype=typed(raw, "dtype", str, where, "auto"),
                           raw=raw, path=path)


def parse_teacher(block: Any, where: str, path: Path | None = None) -> TeacherConfig:
    """One model or published-file entry, checked as a teacher is (``where`` names it in
    errors): other stages' model blocks (translated pairs' strong, weak and translator) use it."""
    return _teacher(block, where, path)


def _teacher(block: Any, where: str, path: Path | None) -> TeacherConfig:
    if isinstance(block, dict) and "published" in block:
        check_keys(block, PUBLISHED_KEYS, where, required=("name", "published"))
        match = typed(block, "match", str, where, "text")
        if match not in MATCHES:
            raise ConfigError(f"{where}: match {match!r} is not one of {', '.join(MATCHES)}",
                              "text: same prompt; id: same prompt_id; parallel: same source id across languages")
        return TeacherConfig(name=_name(block, where), published=resolve_path(str(block["published"]), path),
                             generator=typed(block, "generator", str, where), match=match,
                             languages=_languages(block, where))
    check_keys(block, MODEL_KEYS, where, required=("name", "model"))
    model = typed(block, "model", str, where)
    if not (model == "embedded" or model.startswith(("hf:", "openai:"))):
        raise ConfigError(f"{where}: model {model!r} is not a model glotbench generates with",
                          "use embedded, hf:<dir or hub id> or openai:<model> (with base_url), or published: FILE")
    if model.startswith("hf:") and not model.removeprefix("hf:"):
        raise ConfigError(f"{where}: model 'hf:' names no directory", "use hf:<checkpoint dir>")
    samples = typed(block, "samples", int, where, 1)
    temperature = float(typed(block, "temperature", float, where, 0.0))
    if samples < 1:
        raise ConfigError(f"{where}: samples must be at least 1, not {samples}", "e.g. samples: 4")
    if samples > 1 and temperature == 0:
        raise ConfigError(f"{where}: samples: {samples} with temperature 0 gives {samples} identical greedy "
                          "completions", "set temperature (e.g. 0.7) or samples: 1")
    max_new = typed(block, "max_new_tokens", int, where, 256)
    if max_new < 1:
        raise ConfigError(f"{where}: max_new_tokens must be positive, not {max_new}", "e.g. max_new_tokens: 256")
    price = block.get("price")
    if price is not None and not (isinstance(price, list) and len(price) == 2
                                  and all(isinstance(p, int | float) for p in price)):
        raise ConfigError(f"{where}: price must be [USD per 1M input tokens, USD per 1M output tokens]",
                          "e.g. price: [2.5, 10]")
    if block.get("base_url") and not model.startswith("openai:"):
        raise ConfigError(f"{where}: base_url is for openai:<model> teachers", "drop base_url or use openai:NAME")
    return TeacherConfig(name=_name(block, where), model=model, languages=_languages(block, where), samples=samples,
                         temperature=temperature, max_new_tokens=max_new, seed=typed(block, "seed", int, where, 0),
                         base_url=typed(block, "base_url", str, where), rpm=typed(block, "rpm", float, where),
                         tpm=typed(block, "tpm", float, where), concurrency=typed(block, "concurrency", int, where, 8),
                         price=tuple(price) if price else None)


def _name(block: dict, where: str) -> str:
    name = typed(block, "name", str, where)
    if not name or "/" in name or name != name.strip():
        raise ConfigError(f"{where}: teacher name {name!r} must be a non-empty word without '/'",
                          "e.g. name: claude-2")
    return name


def _languages(block: dict, where: str) -> tuple[str, ...] | None:
    langs = block.get("languages")
    if langs is None:
        return None
    if not isinstance(langs, list) or not langs or not all(isinstance(x, str) and x for x in langs):
        raise ConfigError(f"{where}: languages must be a non-empty list of codes", "e.g. languages: [de, fr]")
    return tuple(langs)


def _routing(block: Any, where: str, names: list[str]) -> RoutingConfig:
    check_keys(block, ROUTING_KEYS, where)
    policy = typed(block, "policy", str, where, "reward")
    if policy not in POLICIES:
        raise ConfigError(f"{where}: policy {policy!r} is not one of {', '.join(POLICIES)}",
                          "reward: argmax of the score (the paper); fixed: one teacher per language; "
                          "learned: a router fitted on scores")
    fixed = block.get("fixed") or {}
    if policy == "fixed":
        if not isinstance(fixed, dict) or not fixed:
            raise ConfigError(f"{where}: policy fixed needs fixed: {{language: teacher}}", "e.g. fixed: {en: claude-2}")
        for lang, teacher in fixed.items():
            if teacher not in names:
                raise ConfigError(f"{where}: fixed.{lang} names teacher {teacher!r}, which is not in teachers",
                                  f"use one of: {', '.join(names)}")
    fit, holdout = float(typed(block, "fit", float, where, 0.5)), float(typed(block, "holdout", float, where, 0.25))
    if policy == "learned" and not (0 < fit < 1 and 0 < holdout < 1 and fit + holdout < 1):
        raise ConfigError(f"{where}: fit {fit} and holdout {holdout} must be shares in (0, 1) with fit + holdout < 1",
                          "e.g. fit: 0.5, holdout: 0.25 (the rest is routed by the router alone)")
    return RoutingConfig(policy=policy, fixed=dict(fixed), fit=fit, holdout=holdout)
