"""What a benchmark module exports: one :class:`Task` (data source, languages, render, score)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from glotbench.harness.core.errors import DataError, GlotbenchError, close_match
from glotbench.harness.core.records import (
    GenerationPrompt,
    GenerationResult,
    LoglikelihoodResult,
    MultipleChoicePrompt,
    Sample,
)


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
    columns: tuple[str, ...] = ()
    """For a headerless tab-separated local file (``.tsv``): the field name of each column."""
    hub_configs: Mapping[str, str] = field(default_factory=dict)
    """Hub config per language where it differs from the language code."""
    licence: str = ""
    fewshot: FewShotSource | None = None
    """Where few-shot examples come from (None: a 0-shot task)."""
    parallel: Callable[[str], Mapping[str, str]] | None = None
    """Parallel text (translation): task language (a direction such as ``deu_Latn-eng_Latn``)
    → {row field: language code}. Locally, each field is read from ``local`` with ``{lang}``
    = its language code, one segment per line, files aligned line by line; on the hub, the
    config is the task language and each field comes from ``hub_field`` of its code."""
    hub_field: str = "{lang}"
    """Parallel text on the hub: the column of a language code (``sentence_{lang}``)."""
    hub_config: str | None = None
    """One hub config holding every language (the Aya evaluation suite's Dolly sets); the
    rows of a language are picked by ``hub_select``."""
    hub_select: Callable[[list[dict], str], list[dict]] | None = None
    """With ``hub_config``: (all rows of the config, task language) → that language's rows,
    in order; raises :class:`~glotbench.harness.core.errors.DataError` naming the available languages."""


@dataclass(frozen=True)
class FewShotSource:
    """The pool a task draws its few-shot examples from, loaded next to the scored rows."""

    split: str
    """Hub split (same config as the scored rows), e.g. ``dev`` or ``train``."""
    local: str
    """Path template below a data directory, as :attr:`DataSource.local`."""
    fields: tuple[str, ...]
    num: int = 5
    """Examples per prompt (taken in pool order: lm-eval's ``first_n`` sampler)."""
    extract: Callable[[object, str], list[dict]] | None = None
    """For a local ``.json`` file holding every language: (parsed JSON, language) → rows."""


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
    render: Callable[..., MultipleChoicePrompt | GenerationPrompt]
    """Pure: one sample (and, for few-shot tasks, the language's few-shot pool) to its prompt."""
    lmeval_yaml: str | None = None
    """The lm-eval 0.4.13 task config this task reproduces (path below ``lm_eval/tasks``,
    ``{lang}`` filled in); used by parity tests and benchmarks."""
    output_type: Literal["multiple_choice", "generate"] = "multiple_choice"
    metrics: tuple[str, ...] = ("acc",)
    """Per-example metrics; the first is the task's headline number."""
    scorer: Callable[[GenerationPrompt, GenerationResult, str], dict] | None = None
    """Generative tasks: (prompt, response, language) → metric values (0/1), ``pred``
    (the extracted answer or None) and ``parsed`` (whether extraction succeeded)."""
    answer_as_text: Callable[[str, str], str] | None = None
    """Generative tasks: (answer, language) → a well-formed response giving that answer, in
    the form the scorer extracts (used by contract tests: gold scores 1, others 0)."""
    breakdowns: tuple[str, ...] = ()
    """Row fields whose values split the per-language results (e.g. subject category)."""
    balanced: tuple[str, tuple[str, ...]] | None = None
    """(field, values): also report the unweighted mean over these subsets of ``field``
    (Global-MMLU's CS/CA average)."""
    accepts: Callable[[str], bool] | None = None
    """Languages beyond ``languages`` (the default set) that may be selected with --langs
    (translation: any FLORES-200 pair)."""
    accepts_hint: str = ""
    """What else ``accepts`` takes, for error messages."""
    group: Callable[[str], str] | None = None
    """Language → averaging group (translation: ``X→en`` / ``en→X``); each group gets its own
    macro/micro average next to the overall one."""
    aggregate: Callable[[list[dict], int], dict[str, dict]] | None = None
    """Corpus-level metrics: (one language's per-example scores, seed) → {metric: summary
    with value, n, stderr, ci95}; replaces the per-example mean for those metrics (chrF++)."""
    source_field: str | None = None
    """Translation tasks: the row field holding the source segment; makes the task's outputs
    scorable by reference-based neural metrics (xCOMET: source, hypothesis, reference)."""
    judged: bool = False
    """Open-ended generation scored pairwise by an LLM judge (``glotbench judge``): a run
    stores the completions; its own metrics only describe them (length, truncation)."""
    id_field: str | None = None
    """Row field identifying a prompt across runs and languages (recorded as ``prompt_id``;
    the judge pairs two runs' completions on it)."""
    language_name: Callable[[str], str] | None = None
    """Task language → its English name (the judge prompt's ``{language}``)."""
    fewshot_shortfall: Callable[[tuple[Sample, ...], tuple[Sample, ...]], dict[str, int]] | None = None
    """Few-shot tasks whose examples are drawn per group (Global-MMLU: per subject): (scored
    samples, the language's pool) → {group: examples available} for the groups of those
    samples that have fewer than ``data.fewshot.num``. Recorded in provenance and shown."""

    def supports(self, lang: str) -> bool:
        return lang in self.languages or (self.accepts is not None and self.accepts(lang))

    def check_langs(self, langs: list[str]) -> list[str]:
        for lang in langs:
            if not self.supports(lang):
                raise GlotbenchError(
                    f"task {self.name!r} has no language {lang!r}{close_match(lang, self.languages)}",
                    f"choose from {', '.join(self.languages)}"
                    + (f", or {self.accepts_hint}" if self.accepts_hint else ""))
        return langs

    @property
    def primary(self) -> str:
        return self.metrics[0]

    def prompt(self, sample: Sample, pool: tuple[Sample, ...] = ()) -> MultipleChoicePrompt | GenerationPrompt:
        """Render one sample; few-shot tasks also get their language's few-shot pool."""
        return self.render(sample, pool) if self.data.fewshot is not None else self.render(sample)

    def score(self, prompt, results, lang: str = "") -> dict:
        if self.output_type == "generate":
            if self.scorer is None:
                raise TypeError(f"generative task {self.name!r} has no scorer")
            return self.scorer(prompt, results, lang)
        return score_multiple_choice(prompt, results)


def score_multiple_choice(prompt: MultipleChoicePrompt, results: list[LoglikelihoodResult]) -> dict:
    """Accuracy by argmax log-likelihood; ties go to the first choice (as ``np.argmax``).

    A log-likelihood that is not a number (NaN, or +inf: a numerical failure, never a real
    probability) is counted in ``nan_logprobs`` and can never be the prediction: ``np.argmax``
    would pick the first NaN. When no choice has a usable value, ``pred`` is None and the
    item scores 0. ``-inf`` (probability 0) is a real value and takes part as usual."""
    if len(results) != len(prompt.pairs):
        raise ValueError(f"{len(results)} results for {len(prompt.pairs)} choices")
    lls = np.array([r.logprob for r in results], dtype=float)
    bad = np.isnan(lls) | (lls == np.inf)
    if not bad.any():
        pred = int(np.argmax(lls))
        return {"pred": pred, "acc": float(pred == prompt.gold)}
    ok = np.flatnonzero(~bad)
    pred = int(ok[np.argmax(lls[ok])]) if ok.size else None
    return {"pred": pred, "acc": float(pred == prompt.gold), "nan_logprobs": int(bad.sum())}


def literal(table: Mapping[str, Mapping[str, str]], task: str, lang: str, key: str) -> str:
    """A per-language literal of a task's table; a missing language or key fails loudly,
    naming both (STYLE: languages are parameters, lookups never fall back silently)."""
    try:
        return table[lang][key]
    except KeyError:
        raise DataError(f"{task} has no {key!r} literal for language {lang!r}",
                        f"languages: {', '.join(table)}") from None
