"""What a benchmark module exports: one :class:`Task` (data source, languages, render, score)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from harness.errors import GlotbenchError, close_match
from harness.types import LoglikelihoodResult, MultipleChoicePrompt, Sample


@dataclass(frozen=True)
class DataSource:
    """Where a task's rows come from, in each of the three places glotbench looks."""

    hub_id: str
    """Hugging Face dataset id (loaded with ``datasets.load_dataset``)."""
    split: str
    """Split scored (hub split name)."""
    local: str
    """Path of one language's JSON-lines file below a data directory; ``{lang}`` is filled in.
    The same layout is used by ``--data-dir``, the bundled copy and ../shared/data."""
    fields: tuple[str, ...]
    """Fields every row must have."""
    hub_configs: Mapping[str, str] = field(default_factory=dict)
    """Hub config per language where it differs from the language code."""
    licence: str = ""


@dataclass(frozen=True)
class Task:
    """A benchmark family with languages as parameters."""

    name: str
    version: str
    """Bumped whenever prompts or scoring change; recorded in provenance."""
    title: str
    languages: tuple[str, ...]
    data: DataSource
    chance: float
    """Accuracy of random guessing."""
    render: Callable[[Sample], MultipleChoicePrompt]
    """Pure: one sample to its prompt(s)."""
    lmeval_yaml: str | None = None
    """The lm-eval 0.4.13 task config this task reproduces (path below ``lm_eval/tasks``,
    ``{lang}`` filled in); used by parity tests and benchmarks."""
    output_type: Literal["multiple_choice"] = "multiple_choice"
    metrics: tuple[str, ...] = ("acc",)

    def check_langs(self, langs: list[str]) -> list[str]:
        for lang in langs:
            if lang not in self.languages:
                raise GlotbenchError(
                    f"task {self.name!r} has no language {lang!r}{close_match(lang, self.languages)}",
                    f"choose from {', '.join(self.languages)}")
        return langs

    def score(self, prompt: MultipleChoicePrompt, results: list[LoglikelihoodResult]) -> dict:
        return score_multiple_choice(prompt, results)


def score_multiple_choice(prompt: MultipleChoicePrompt, results: list[LoglikelihoodResult]) -> dict:
    """Accuracy by argmax log-likelihood; ties go to the first choice (as ``np.argmax``)."""
    if len(results) != len(prompt.pairs):
        raise ValueError(f"{len(results)} results for {len(prompt.pairs)} choices")
    lls = np.array([r.logprob for r in results])
    pred = int(np.argmax(lls))
    return {"pred": pred, "acc": float(pred == prompt.gold)}
