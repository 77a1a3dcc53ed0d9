"""What defines a judging: :class:`JudgeConfig`, recorded verbatim in ``judge.json``."""

from __future__ import annotations

from dataclasses import dataclass

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
