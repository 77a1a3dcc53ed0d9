"""What defines a judging: :class:`JudgeConfig`, recorded verbatim in ``judge.json``, and the
``rm:<dir>`` judge spec with its options."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.judge.prompt import DEFAULT_PROMPT

JUDGE_FILE = "judge.json"
DEFAULT_JUDGE = "openai:gpt-4o-2024-08-06"


@dataclass(frozen=True)
class JudgeConfig:
    """Everything that defines a judging; recorded verbatim in ``judge.json``."""

    run_a: str
    runs_b: tuple[str, ...]
    judge: str = DEFAULT_JUDGE
    base_url: str | None = None
    prompt: str = DEFAULT_PROMPT
    """Bundled judge prompt name or a path to a prompt YAML file."""
    tasks: tuple[str, ...] | None = None
    langs: tuple[str, ...] | None = None
    limit: int | None = None
    """First N prompts per language (in run A's order)."""
    max_tokens: int = 1024
    temperature: float = 0.0
    concurrency: int = 16
    rpm: float | None = None
    tpm: float | None = None
    timeout: float = 120.0
    """Seconds per HTTP request."""
    attempts: int = 6
    """Tries per request for transient API failures (first call included)."""
    parse_attempts: int = 3
    """Judge replies per judgment while its verdict cannot be parsed."""
    price: tuple[float, float] | None = None
    """USD per million input / output tokens (default: the known list price of the model)."""
    seed: int = 1234
    output: str | None = None
    results_dir: str = "results"
    cache_path: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 8
    rm_tie_margin: float = 0.0
    """``rm:<dir>`` judges: a pair whose scores differ by at most this much is a tie."""
    rm_max_length: int | None = None
    """``rm:<dir>`` judges: tokens scored per conversation (None: the RM's trained length, else all)."""


RM_PREFIX = "rm:"


def reward_model_dir(spec: str) -> Path | None:
    """The reward-model directory of an ``rm:<dir>`` judge spec; None for any other judge."""
    if not spec.startswith(RM_PREFIX):
        return None
    target = spec[len(RM_PREFIX):]
    if not target:
        raise GlotbenchError("--judge rm: names no reward model directory",
                             "give one, e.g. --judge rm:results/rm-alpacaeval")
    return Path(target)


def check_options(cfg: JudgeConfig) -> None:
    """The ``--rm-*`` options: valid values, and only with an ``rm:`` judge (never ignored silently)."""
    if reward_model_dir(cfg.judge) is None:
        for flag, value, default in (("--rm-tie-margin", cfg.rm_tie_margin, 0.0),
                                     ("--rm-max-length", cfg.rm_max_length, None)):
            if value != default:
                raise GlotbenchError(f"{flag} is for rm:<dir> judges, not {cfg.judge!r}",
                                     "drop it, or judge with --judge rm:<reward model dir>")
        return
    if not math.isfinite(cfg.rm_tie_margin) or cfg.rm_tie_margin < 0:
        raise GlotbenchError(f"--rm-tie-margin must be a finite number >= 0, got {cfg.rm_tie_margin}",
                             "e.g. 0 (a tie only on equal scores) or 0.1")
    if cfg.rm_max_length is not None and cfg.rm_max_length < 1:
        raise GlotbenchError(f"--rm-max-length must be >= 1, got {cfg.rm_max_length}", "e.g. 1024")
    if cfg.base_url:
        raise GlotbenchError("--judge-base-url is for openai:<model> judges",
                             f"drop it: {cfg.judge!r} is a local reward model")
    if cfg.prompt != DEFAULT_PROMPT:
        raise GlotbenchError(f"--judge-prompt {cfg.prompt!r} is for LLM judges: a reward model reads no judge prompt",
                             "drop it (the reward model scores each answer to the instruction itself)")
