"""The ``run.json`` and ``judge.json`` schemas, read through typed accessors.

Everything that reads a finished run (tables, report, gate, compare, judge, the sequential
gate, the CLI summary) goes through :class:`RunRecord` instead of walking nested dicts, so the
layout of ``run.json`` is written down once::

    format        "glotbench-run/1"
    created       ISO time
    config        the RunConfig, verbatim
    results       task → language → cell: {<headline metric>: value, n, stderr, ci95,
                  [metrics: {metric: {value, n, stderr, ci95}}], [unparsed], [by], [balanced],
                  [nan_logprobs], [ci95_note]}
    averages      task → {macro, micro, n, languages, [missing], [groups], [metrics: {metric: ...}]}
    provenance    glotbench_version, model {backend, name, weights_sha256, dtype, device, ...},
                  tasks: task → {version, metrics, prompting, languages: lang → {data_source,
                  data_sha256, prompt_sha256, n_available, [requested_as], [fewshot_short]}}},
                  requests, seed, batch_size,
                  device, host, [versions], timings_s

Reading is strict at the edge: a missing, unreadable, truncated or foreign ``run.json`` is one
:class:`GlotbenchError` naming the file and the fix (exit 2), never a ``KeyError`` later.

Two definitions live here because every reader needs the same answer:

- :meth:`RunRecord.open_ended`: is a task of a run open-ended (judged pairwise, its own
  metrics only describe completions)?
- :func:`differences`: are two runs' results for a task × language comparable (same task
  version, data, prompts, items)? Callers decide whether a difference is an error (gate,
  compare) or a note (tables).

Beside them, :meth:`RunRecord.translation` (is a task scored as translation, chrF++ on stored
hypotheses?) and :func:`environment_differences` (library versions, host, device and dtype
that differ between two runs: not a comparability error, but float32 results move slightly
with them, so the gate names them in a note).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import json_sha256

RUN_FILE = "run.json"
JUDGE_FILE = "judge.json"
RUN_FORMAT = "glotbench-run/"
JUDGE_FORMAT = "glotbench-judge/"
OPEN_ENDED_METRIC = "new_tokens"
"""Headline metric of an open-ended task: a length, not a score (its score is a win-rate)."""
TRANSLATION_METRIC = "chrf++"
"""Headline metric of a translation task."""


def read_json_file(file: Path, what: str, fix: str) -> dict:
    """A JSON object from ``file``; a missing, unreadable or truncated file is one line."""
    file = Path(file)
    if not file.is_file():
        raise GlotbenchError(f"{file.parent} is not {what} (no {file.name})", fix)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise GlotbenchError(f"{file} is not UTF-8 text (corrupt?)", fix) from None
    except ValueError as exc:
        raise GlotbenchError(f"{file} is not valid JSON ({exc.msg}: line {exc.lineno}; truncated or "
                             "corrupt)", fix) from None
    except OSError as exc:
        raise GlotbenchError(f"cannot read {file}: {exc.strerror}", fix) from None
    if not isinstance(data, dict):
        raise GlotbenchError(f"{file} is not a JSON object", fix)
    return data


@dataclass(frozen=True)
class Metric:
    """One metric of one results cell."""

    value: float | None
    n: int
    stderr: float | None
    ci95: tuple[float, float] | None


@dataclass(frozen=True)
class LanguageProvenance:
    """Where one task × language's items came from and how they were prompted."""

    data_source: str | None
    data_sha256: str | None
    prompt_sha256: str | None
    n_available: int | None
    raw: dict


@dataclass(frozen=True)
class Difference:
    """One reason two runs' results for a task (× language) are not the same measurement."""

    task: str
    lang: str | None
    kind: Literal["version", "data_sha256", "prompt_sha256", "n"]
    a: Any
    b: Any

    def describe(self) -> str:
        where = f"{self.task}/{self.lang}" if self.lang else self.task
        what = {"version": "task version differs", "data_sha256": "the runs scored different data",
                "prompt_sha256": "the runs used different prompts",
                "n": "the runs scored different numbers of examples"}[self.kind]
        a, b = (str(x)[:12] if self.kind.endswith("sha256") else x for x in (self.a, self.b))
        return f"{where}: {what} ({self.kind} {a} vs {b})"


class StoreFile:
    """What run and judge directories share: one JSON document of a known format, read strictly
    (every section a reader relies on must be there), and the directory it lives in."""

    FILE = ""
    FORMAT = ""
    WHAT = ""
    """What a directory is, for messages: 'a finished glotbench run'."""
    DOCUMENT = ""
    """What the file is, for messages: 'a glotbench run'."""
    FIX = ""
    SECTIONS: tuple[str, ...] = ()
    """Top-level keys that must hold JSON objects."""

    def __init__(self, path: Path, data: dict):
        self.path = Path(path)
        self.data = data

    @classmethod
    def read(cls, path: Path | str):
        path = Path(path)
        file = path / cls.FILE
        data = read_json_file(file, cls.WHAT, cls.FIX)
        fmt = data.get("format")
        if not isinstance(fmt, str) or not fmt.startswith(cls.FORMAT):
            raise GlotbenchError(f"{file} is not {cls.DOCUMENT} (format {fmt!r})", cls.FIX)
        for key in cls.SECTIONS:
            if not isinstance(data.get(key), dict):
                raise GlotbenchError(f"{file} lacks its {key!r} section (truncated or edited?)", cls.FIX)
        cls.check(file, data)
        return cls(path, data)

    @classmethod
    def check(cls, file: Path, data: dict) -> None:
        """Further checks of a subclass (the sections are there)."""

    @property
    def created(self) -> str | None:
        return self.data.get("created")

    @property
    def config(self) -> dict:
        return self.data["config"]

    @property
    def provenance(self) -> dict:
        return self.data["provenance"]


class RunRecord(StoreFile):
    """A finished run directory: its ``run.json`` behind typed accessors, and its samples."""

    FILE, FORMAT, WHAT, DOCUMENT = RUN_FILE, RUN_FORMAT, "a finished glotbench run", "a glotbench run"
    FIX = "pass a run directory written by 'glotbench run' (or regenerate it)"
    SECTIONS = ("results", "provenance", "averages", "config")

    @classmethod
    def check(cls, file: Path, data: dict) -> None:
        if not isinstance(data["provenance"].get("tasks"), dict):
            raise GlotbenchError(f"{file} lacks provenance.tasks (truncated or edited?)", cls.FIX)

    # ---- identity -------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.resolve().name

    @property
    def sha256(self) -> str:
        """Hash of the whole ``run.json`` content (a judge or gate notices a changed run)."""
        return json_sha256(self.data)

    @property
    def model(self) -> dict:
        return self.provenance.get("model") or {}

    @property
    def host(self) -> dict:
        return self.provenance.get("host") or {}

    @property
    def versions(self) -> dict:
        """Library versions the numbers depend on (older runs: torch from ``host`` only)."""
        out = dict(self.provenance.get("versions") or {})
        if "torch" not in out and self.host.get("torch"):
            out["torch"] = self.host["torch"]
        return out

    @property
    def environment(self) -> Environment:
        """Library versions, host, device and dtype the run was made with."""
        return Environment(self.versions, {k: v for k, v in self.host.items() if k != "torch"},
                           self.provenance.get("device") or self.model.get("device"), self.model.get("dtype"))

    @property
    def imported(self) -> bool:
        """Completions imported from another tool (``glotbench import-answers``)."""
        return "imported" in self.config

    # ---- tasks and languages ---------------------------------------------------------
    def tasks(self) -> list[str]:
        """Tasks with results, in run order."""
        return list(self.data["results"])

    def scored_tasks(self) -> list[str]:
        """Tasks a table can show (open-ended ones, whose numbers are win-rates, left out)."""
        return [t for t in self.tasks() if not self.open_ended(t)]

    def languages(self, task: str) -> list[str]:
        return list(self.data["results"].get(task, {}))

    def has(self, task: str, lang: str | None = None) -> bool:
        cells = self.data["results"].get(task)
        return cells is not None and (lang is None or lang in cells)

    def task_provenance(self, task: str) -> dict:
        return self.provenance["tasks"].get(task) or {}

    def version(self, task: str) -> str | None:
        return self.task_provenance(task).get("version")

    def metrics(self, task: str) -> list[str]:
        """The task's metrics, headline first."""
        return list(self.task_provenance(task).get("metrics") or [])

    def headline(self, task: str) -> str | None:
        metrics = self.metrics(task)
        return metrics[0] if metrics else None

    def prompting(self, task: str) -> dict:
        return self.task_provenance(task).get("prompting") or {}

    def language_provenance(self, task: str, lang: str) -> LanguageProvenance:
        raw = (self.task_provenance(task).get("languages") or {}).get(lang) or {}
        return LanguageProvenance(raw.get("data_source"), raw.get("data_sha256"), raw.get("prompt_sha256"),
                                  raw.get("n_available"), raw)

    def open_ended(self, task: str) -> bool:
        """The one definition: the task is judged pairwise. Read from the registry when this
        version knows the task, else from the run itself (its headline metric is a length)."""
        from glotbench.harness.taskapi.registry import known_task

        known = known_task(task)
        if known is not None:
            return known.judged
        return self.headline(task) == OPEN_ENDED_METRIC

    def translation(self, task: str) -> bool:
        """Is the task scored as translation (corpus chrF++ of stored hypotheses)? Read from the
        registry when this version knows the task, else from the run (its headline metric)."""
        from glotbench.harness.taskapi.registry import known_task

        known = known_task(task)
        if known is not None:
            return known.source_field is not None
        return self.headline(task) == TRANSLATION_METRIC

    # ---- numbers --------------------------------------------------------------------
    def cell(self, task: str, lang: str) -> dict:
        return self.data["results"].get(task, {}).get(lang) or {}

    def metric(self, task: str, lang: str, metric: str) -> Metric | None:
        """One metric of one cell, or None when the cell lacks it (or its value is missing)."""
        cell = self.cell(task, lang)
        got = (cell.get("metrics") or {}).get(metric)
        if got is None and metric in cell:
            got = {"value": cell[metric], "n": cell.get("n"), "stderr": cell.get("stderr"),
                   "ci95": cell.get("ci95")}
        if not got or got.get("value") is None:
            return None
        ci = got.get("ci95")
        return Metric(got["value"], got.get("n") or 0, got.get("stderr"), tuple(ci) if ci else None)

    def n(self, task: str, lang: str) -> int | None:
        return self.cell(task, lang).get("n")

    def averages(self, task: str, metric: str | None = None) -> dict:
        """Macro/micro averages of the task's headline metric, or of another metric."""
        avg = self.data["averages"].get(task) or {}
        if metric is None or metric == self.headline(task):
            return avg
        return (avg.get("metrics") or {}).get(metric) or {}

    # ---- per-example records -----------------------------------------------------------
    def samples_file(self, task: str, lang: str) -> Path:
        return self.path / "samples" / task / f"{lang}.jsonl"

    def samples(self, task: str, lang: str) -> list[dict]:
        """The per-example records of one task × language; missing or corrupt is one line."""
        return read_records(self.samples_file(task, lang), f"run {self.path} ({task}/{lang})")

    def samples_by_id(self, task: str, lang: str) -> dict[Any, dict]:
        """:meth:`samples` keyed by ``doc_id``, in file order; a record without a ``doc_id`` or
        a repeated one is a one-line error (a damaged run)."""
        out: dict[Any, dict] = {}
        for i, rec in enumerate(self.samples(task, lang), 1):
            doc = rec.get("doc_id")
            if doc is None or doc in out:
                what = "has no doc_id" if doc is None else f"repeats doc_id {doc!r}"
                raise GlotbenchError(f"run {self.path} ({task}/{lang}): record {i} {what}",
                                     "the run directory is damaged; regenerate it with glotbench run")
            out[doc] = rec
        return out


def read_records(file: Path, what: str) -> list[dict]:
    """A JSON-lines file of records; a missing or corrupt file is a one-line error."""
    fix = "the run directory is incomplete or damaged; regenerate it with glotbench run"
    try:
        with open(file, encoding="utf-8") as f:
            lines = list(f)
    except FileNotFoundError:
        raise GlotbenchError(f"{what} lacks its per-example records ({file})", fix) from None
    except UnicodeDecodeError:
        raise GlotbenchError(f"{file} is not UTF-8 text (corrupt?)", fix) from None
    except OSError as exc:
        raise GlotbenchError(f"cannot read {file}: {exc.strerror}", fix) from None
    out = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as exc:
            raise GlotbenchError(f"{file} line {i} is not valid JSON ({exc.msg}: truncated or corrupt)",
                                 fix) from None
        if not isinstance(rec, dict):
            raise GlotbenchError(f"{file} line {i} is not a JSON object", fix)
        out.append(rec)
    return out


def differences(a: RunRecord, b: RunRecord, task: str, lang: str | None = None,
                kinds: tuple[str, ...] = ("version", "data_sha256", "prompt_sha256", "n")) -> list[Difference]:
    """The one comparability check: why ``a`` and ``b`` did not measure the same thing for
    ``task`` (one language, or every language both runs have). Empty: comparable."""
    out: list[Difference] = []
    if "version" in kinds and a.version(task) != b.version(task):
        out.append(Difference(task, None, "version", a.version(task), b.version(task)))
    langs = [lang] if lang is not None else [x for x in a.languages(task) if b.has(task, x)]
    for x in langs:
        pa, pb = a.language_provenance(task, x), b.language_provenance(task, x)
        if "data_sha256" in kinds and pa.data_sha256 != pb.data_sha256:
            out.append(Difference(task, x, "data_sha256", pa.data_sha256, pb.data_sha256))
        other_items = a.n(task, x) != b.n(task, x)
        if "n" in kinds and other_items:
            out.append(Difference(task, x, "n", a.n(task, x), b.n(task, x)))
        # prompt_sha256 hashes the prompts of the items scored: with other items (another
        # --limit) it differs whatever the prompts, so that is the difference to name, not this.
        if "prompt_sha256" in kinds and not other_items and pa.prompt_sha256 != pb.prompt_sha256:
            out.append(Difference(task, x, "prompt_sha256", pa.prompt_sha256, pb.prompt_sha256))
    return out


@dataclass(frozen=True)
class Environment:
    """What besides the model, the data and the code can move a float32 result."""

    versions: dict[str, str | None]
    """Library → version (``provenance.versions``: glotbench.harness.core.versions.RECORDED_LIBRARIES;
    None: not installed; older runs record torch only, in ``host``)."""
    host: dict
    """platform, python, cpus, torch_threads, ... as recorded (torch is under ``versions``)."""
    device: str | None
    dtype: str | None


@dataclass(frozen=True)
class EnvironmentDifference:
    """One way two runs' environments differ (None: not recorded on that side)."""

    key: str
    a: Any
    b: Any

    def describe(self) -> str:
        a, b = ("not recorded" if x is None else x for x in (self.a, self.b))
        return f"{self.key} {a} vs {b}"


def environment_differences(a: Environment, b: Environment) -> list[EnvironmentDifference]:
    """Library versions (every library either side records; a library recorded on one side
    only is listed as not recorded on the other), device, dtype, and the host fields both
    sides record, that differ. Empty: same environment as far as the runs tell."""
    out = [EnvironmentDifference(k, a.versions.get(k), b.versions.get(k))
           for k in sorted(set(a.versions) | set(b.versions)) if a.versions.get(k) != b.versions.get(k)]
    out += [EnvironmentDifference(k, x, y) for k, x, y in (("device", a.device, b.device),
                                                           ("dtype", a.dtype, b.dtype))
            if x is not None and y is not None and x != y]
    out += [EnvironmentDifference(k, a.host[k], b.host[k]) for k in a.host
            if k in b.host and a.host[k] != b.host[k]]
    return out


@dataclass(frozen=True)
class JudgedRun:
    """A run as ``glotbench judge`` recorded it when it judged it."""

    name: str
    path: Path | None
    run_sha256: str | None
    raw: dict

    def data_sha256(self, task: str, lang: str) -> str | None:
        langs = ((self.raw.get("tasks") or {}).get(task) or {}).get("languages") or {}
        return (langs.get(lang) or {}).get("data_sha256")


class JudgeRecord(StoreFile):
    """A finished ``glotbench judge`` directory: ``judge.json`` and its judgment files."""

    FILE, FORMAT, WHAT, DOCUMENT = JUDGE_FILE, JUDGE_FORMAT, "a glotbench judge directory", "a glotbench judgment"
    FIX = "pass a directory written by 'glotbench judge' (or rerun it)"
    SECTIONS = ("results", "provenance", "config", "counts", "usage")

    @property
    def counts(self) -> dict:
        """judgments, invalid, api_errors, identical, reasked."""
        return self.data["counts"]

    @property
    def prompt(self) -> dict:
        """The judge prompt's name, version, sha256 and source."""
        return self.provenance.get("prompt") or {}

    def bradley_terry(self, task: str) -> dict | None:
        """Strengths of the models for one task, or ``{"error": why}``; None with two models."""
        return (self.data.get("bradley_terry") or {}).get(task)

    @property
    def results(self) -> dict:
        """``"A vs B"`` → task → summary (languages, macro, pooled, counts)."""
        return self.data["results"]

    @property
    def runs(self) -> dict:
        """Run name → {path, run_sha256, model, tasks ...} as judged."""
        return self.data["provenance"].get("runs") or {}

    def judged_runs(self) -> dict[str, JudgedRun]:
        """:attr:`runs` as typed records, by run name."""
        return {name: JudgedRun(name, Path(i["path"]) if i.get("path") else None, i.get("run_sha256"), i)
                for name, i in self.runs.items() if isinstance(i, dict)}

    @property
    def run_a(self) -> Path | None:
        """The run judged as model A (``--a``)."""
        a = self.data["config"].get("run_a")
        return Path(a) if a else None

    @property
    def judge_spec(self) -> str | None:
        return (self.data["provenance"].get("judge") or {}).get("spec")

    @property
    def prompt_sha256(self) -> str | None:
        return (self.data["provenance"].get("prompt") or {}).get("sha256")

    def judgments_file(self, pair_dir: str, task: str, lang: str) -> Path:
        return self.path / "judgments" / pair_dir / task / f"{lang}.jsonl"

    def pairs(self) -> Iterator[tuple[str, str, dict]]:
        """(pair, task, summary) for every judged pair and task."""
        for pair, by_task in self.results.items():
            for task, summary in by_task.items():
                yield pair, task, summary

    def judgments(self, pair_dir: str, task: str, lang: str) -> list[dict]:
        return read_records(self.judgments_file(pair_dir, task, lang),
                            f"judge directory {self.path} ({pair_dir}, {task}/{lang})")


def kind_of(path: Path | str) -> Literal["run", "judge"] | None:
    """Which store directory ``path`` is, by the file it holds (None: neither)."""
    path = Path(path)
    if (path / JUDGE_FILE).is_file():
        return "judge"
    if (path / RUN_FILE).is_file():
        return "run"
    return None
