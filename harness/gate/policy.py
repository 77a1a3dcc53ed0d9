"""The gate's policy: a validated, frozen configuration read from YAML (``policy.yaml``
next to this module documents every key and is the default)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

import yaml

from glotbench.harness.core.errors import GlotbenchError, close_match

POLICY_FILE = Path(__file__).with_name("policy.yaml")


@dataclass(frozen=True)
class Policy:
    """A regression policy; ``harness/gate/policy.yaml`` documents every key."""

    alpha: float = 0.05
    """One-sided level of each test; CIs are two-sided at 1 − 2·alpha."""
    power: float = 0.8
    """Power of the default margin (the minimum detectable effect)."""
    margins: dict[str, float | dict[str, float]] = field(default_factory=dict)
    """Task → margin for its first gated metric, or task → {metric: margin}."""
    on_inconclusive: Literal["pass", "fail"] = "pass"
    require_all: bool = False
    """Every task and language of either run must be gated."""
    allow_prompt_change: bool = False
    """A prompt_sha256 difference is a warning, not an error."""
    seed: int = 1234
    resamples: int = 1000
    metrics: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Task → metrics to gate (default: the headline metric, plus xcomet when both runs have it)."""
    source: str = "default"
    """Where the policy was read from (not a YAML key)."""


def _number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


_CHECKS: dict[str, tuple[Callable[[object], bool], str]] = {
    "alpha": (lambda v: _number(v) and 0 < v < 0.5, "a number in (0, 0.5)"),
    "power": (lambda v: _number(v) and 0 < v < 1, "a number in (0, 1)"),
    "seed": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a non-negative integer"),
    "resamples": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 10**6,
                  "an integer in [1, 1000000]"),
    "require_all": (lambda v: isinstance(v, bool), "true or false"),
    "allow_prompt_change": (lambda v: isinstance(v, bool), "true or false"),
    "on_inconclusive": (lambda v: v in ("pass", "fail"), "'pass' or 'fail'"),
    "margins": (lambda v: v is None or isinstance(v, dict), "a mapping task → margin"),
    "metrics": (lambda v: v is None or isinstance(v, dict), "a mapping task → metric name(s)"),
}


def load_policy(path: Path | str | None = None) -> Policy:
    """Read and strictly validate a policy YAML (None: the bundled default policy)."""
    file = Path(path) if path is not None else POLICY_FILE
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GlotbenchError(f"cannot read policy file {file}: {exc.strerror}",
                             "pass an existing --policy file") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where else ""
        raise GlotbenchError(f"policy file {file} is not valid YAML{line}", "fix its syntax") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise GlotbenchError(f"policy file {file} must hold a mapping of keys, got {type(raw).__name__}")
    keys = [f.name for f in fields(Policy) if f.name != "source"]
    for key in raw:
        if key not in keys:
            raise GlotbenchError(f"{file}: unknown policy key {key!r}{close_match(str(key), keys)}",
                                 f"allowed keys: {', '.join(keys)}")

    for key, (ok, want) in _CHECKS.items():
        if key in raw and not ok(raw[key]):
            raise GlotbenchError(f"{file}: {key} must be {want}, got {raw[key]!r}")
    alpha, resamples = raw.get("alpha", Policy.alpha), raw.get("resamples", Policy.resamples)
    if (resamples + 1) * alpha <= 1:
        raise GlotbenchError(f"{file}: resamples {resamples} cannot reach p < alpha {alpha}",
                             f"use resamples >= {math.ceil(1 / alpha)}")
    margins = {}
    for task, m in (raw.get("margins") or {}).items():
        items = m.items() if isinstance(m, dict) else [(None, m)]
        for metric, v in items:
            if not _number(v) or v <= 0:
                name = f"margins.{task}" + (f".{metric}" if metric is not None else "")
                raise GlotbenchError(f"{file}: {name} must be a positive number, got {v!r}",
                                     "margins are in the metric's units (0.02 = 2 accuracy points)")
        margins[str(task)] = {str(k): float(v) for k, v in m.items()} if isinstance(m, dict) else float(m)
    metrics = {}
    for task, m in (raw.get("metrics") or {}).items():
        names = [m] if isinstance(m, str) else m
        if not isinstance(names, list) or not names or not all(isinstance(x, str) for x in names) \
                or len(set(names)) < len(names):
            raise GlotbenchError(f"{file}: metrics.{task} must be a metric name or a list of distinct "
                                 f"names, got {m!r}")
        metrics[str(task)] = tuple(names)
    values = {k: raw[k] for k in keys if k in raw and k not in ("margins", "metrics")}
    return Policy(**values, margins=margins, metrics=metrics,
                  source="default" if path is None else str(file))
