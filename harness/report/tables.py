"""The report's Tables 2 and 3 from finished runs (reads the results store only).

``summary_frame`` has one row per run, labelled by its directory name (the parent's name is
prefixed when two runs share a name), and the report's columns, all on a 0–100 scale:

- **Discriminative**: the mean of the XCOPA, XStoryCloze and XWinograd macro accuracies
  (each the unweighted mean over the run's languages). When only some of the three ran
  (offline, XStoryCloze has no local data) it is the mean over those, marked with what is
  missing ("51.9 (2/3: no XStoryCloze)"): a mean over two tasks is another number, so it is
  never marked best against three-task means. ``strict=True`` (``glotbench table
  --strict``, for paper tables) leaves such a run's value missing instead.
- **Global-MMLU**: the macro over languages of the CS/CA-balanced accuracy (the unweighted
  mean of the culturally sensitive and culturally agnostic subsets: the report's number)
  when every language of the run has it, else of plain accuracy; from ``global_mmlu``, else
  ``global_mmlu_lite``. ``attrs["sources"]["Global-MMLU"]`` names the variant per row.
- **MGSM**: the macro strict-match accuracy.
- **Translation chrF++** / **Translation xCOMET**: the macro over FLORES directions
  (``flores``, else ``flores_5shot``) of chrF++ and of xCOMET (runs scored with ``--xcomet``
  only). ``groups=True`` adds the X→en and en→X means of both.

Accuracies and xCOMET are ×100; chrF++ is already 0–100. A missing number is NaN, rendered
"–" (empty in CSV), never 0. Open-ended tasks (:meth:`RunRecord.open_ended`) get win-rates
from ``glotbench judge`` and are left out.

Nothing leaves an average silently: ``attrs["warnings"]`` (printed under the table, shown in
the HTML report) names every language that one run's macro lacks while another run scored
it, every language a run has but without a value, and every task × language whose runs
differ by :func:`~glotbench.harness.store.schema.differences` (task version, data, prompts,
number of examples): such runs are still shown, with the note.

``language_frame`` gives one task × metric as models × languages with CIs and n;
:mod:`~glotbench.harness.report.render` writes either as Markdown, LaTeX or CSV;
``table_text`` is what ``glotbench table`` prints.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.report.render import FORMATS, Format, LanguageTable, render, render_csv
from glotbench.harness.store.schema import RunRecord, differences

__all__ = ["COLUMNS", "FORMATS", "Format", "LanguageTable", "Run", "language_frame", "language_tables",
           "load_runs", "render", "summary_frame", "table_text"]

DISCRIMINATIVE = ("xcopa", "xstorycloze", "xwinograd")
DISPLAY = {"xcopa": "XCOPA", "xstorycloze": "XStoryCloze", "xwinograd": "XWinograd"}
GLOBAL_MMLU = ("global_mmlu", "global_mmlu_lite")
FLORES = ("flores", "flores_5shot")
COLUMNS = ("Discriminative", "Global-MMLU", "MGSM", "Translation chrF++", "Translation xCOMET")
GROUPS = ("X→en", "en→X")
UNSCALED = frozenset({"chrf++", "new_tokens"})  # already on the scale they are reported on
_COMMON = ("Global-MMLU = CS/CA-balanced accuracy where available; accuracy and xCOMET ×100, "
           "chrF++ 0–100; – = missing; best per column in bold.")
LEGEND = ("Discriminative = mean of the XCOPA, XStoryCloze and XWinograd macro accuracies; a mean "
          "over fewer is marked with what it lacks and never marked best against a full one (--strict "
          "leaves it out); " + _COMMON)
STRICT_LEGEND = ("Discriminative = mean of the XCOPA, XStoryCloze and XWinograd macro accuracies "
                 "(missing unless all three ran); " + _COMMON)
DIFFERENCE = {"data_sha256": "the runs scored different data (data_sha256 differs)",
              "prompt_sha256": "the runs used different prompts (prompt_sha256 differs)",
              "n": "the runs scored different numbers of examples (n differs)"}


@dataclass(frozen=True)
class Run:
    """One finished run as read from the store, with its row label."""
    label: str
    """Row label: the directory name, made unique."""
    record: RunRecord

    @property
    def path(self) -> Path:
        return self.record.path


@dataclass(frozen=True)
class Entry:
    """One summary cell: value on the table scale, examples behind it, where it came from."""
    value: float
    n: int
    languages: tuple[str, ...]
    source: str
    covered: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """(task, languages averaged) per task behind the value."""
    valueless: tuple[tuple[str, str, str], ...] = ()
    """(task, language, metric) the run has without a value, left out of the average."""
    tasks: tuple[str, ...] = ()
    """Discriminative only: the tasks averaged."""
    mark: str | None = None
    """Shown after the value: what a partial mean lacks ("2/3: no XStoryCloze")."""


def load_runs(runs: Sequence[Path | str | RunRecord]) -> list[Run]:
    """Read the runs (paths, or records already read); refuse non-runs, repeats and runs
    with nothing to tabulate."""
    if not runs:
        raise GlotbenchError("no run given", "pass one or more run directories, e.g. glotbench table results/<run>")
    records = [r if isinstance(r, RunRecord) else None for r in runs]
    paths = [r.path if isinstance(r, RunRecord) else Path(r) for r in runs]
    resolved = [p.resolve() for p in paths]
    for i, p in enumerate(resolved):
        if p in resolved[:i]:
            raise GlotbenchError(f"run {paths[i]} is given twice", "name each run once")
    out = []
    for path, record, label in zip(paths, records, _labels(resolved)):
        record = record or RunRecord.read(path)
        if not record.scored_tasks():
            raise GlotbenchError(f"{path} has no task a table can show (results: "
                                 f"{', '.join(record.tasks()) or 'none'})",
                                 "compare open-ended runs with 'glotbench judge'; tables need scored tasks "
                                 "such as xcopa, global_mmlu, mgsm or flores")
        out.append(Run(label, record))
    return out


def _labels(paths: list[Path]) -> list[str]:
    names = [p.name for p in paths]
    names = [n if names.count(n) == 1 else f"{p.parent.name}/{n}" for p, n in zip(paths, names)]
    return [n if names.count(n) == 1 else f"{n} ({names[:i].count(n) + 1})" for i, n in enumerate(names)]


def _scale(metric: str) -> float:
    return 1.0 if metric in UNSCALED else 100.0


def _macro(run: Run, task: str, metric: str) -> Entry | None:
    rec = run.record
    got = {lang: rec.metric(task, lang, metric) for lang in rec.languages(task)}
    cells = {lang: m for lang, m in got.items() if m is not None}
    if not cells:
        return None
    mean = sum(m.value for m in cells.values()) / len(cells) * _scale(metric)
    return Entry(mean, sum(m.n for m in cells.values()), tuple(cells), f"{task} ({metric})",
                 covered=((task, tuple(cells)),),
                 valueless=tuple((task, lang, metric) for lang, m in got.items() if m is None))


def _discriminative(run: Run, strict: bool) -> Entry | None:
    parts = {t: _macro(run, t, "acc") for t in DISCRIMINATIVE}
    ran = [t for t in DISCRIMINATIVE if parts[t]]
    if not ran or (strict and len(ran) < len(DISCRIMINATIVE)):
        return None
    lacking = [DISPLAY[t] for t in DISCRIMINATIVE if not parts[t]]
    done = [parts[t] for t in ran]
    return Entry(sum(p.value for p in done) / len(done), sum(p.n for p in done),
                 tuple(f"{t}/{lang}" for t in ran for lang in parts[t].languages), "+".join(ran),
                 covered=tuple(c for p in done for c in p.covered),
                 valueless=tuple(v for p in done for v in p.valueless), tasks=tuple(ran),
                 mark=f"{len(ran)}/{len(DISCRIMINATIVE)}: no {', '.join(lacking)}" if lacking else None)


def _global_mmlu(run: Run) -> Entry | None:
    rec = run.record
    task = next((t for t in GLOBAL_MMLU if rec.has(t)), None)
    if task is None:
        return None
    langs = rec.languages(task)
    balanced = [(rec.cell(task, lang).get("balanced") or {}).get("value") for lang in langs]
    if langs and all(b is not None for b in balanced):
        return Entry(100 * sum(balanced) / len(balanced), sum(rec.n(task, lang) or 0 for lang in langs),
                     tuple(langs), f"{task} (CS/CA balanced)", covered=((task, tuple(langs)),))
    return _macro(run, task, "acc")


def _group(run: Run, task: str | None, metric: str, group: str) -> Entry | None:
    got = (run.record.averages(task or "", metric).get("groups") or {}).get(group)
    if not got or got.get("macro") is None:
        return None
    return Entry(got["macro"] * _scale(metric), got["n"], (), f"{task} ({metric}, {group})")


def _entries(run: Run, groups: bool, strict: bool) -> dict[str, Entry | None]:
    flores = next((t for t in FLORES if run.record.has(t)), None)
    out = {"Discriminative": _discriminative(run, strict), "Global-MMLU": _global_mmlu(run),
           "MGSM": _macro(run, "mgsm", "strict_match"),
           "Translation chrF++": flores and _macro(run, flores, "chrf++"),
           "Translation xCOMET": flores and _macro(run, flores, "xcomet")}
    if groups:
        out |= {f"Translation {name} {g}": _group(run, flores, metric, g)
                for name, metric in (("chrF++", "chrf++"), ("xCOMET", "xcomet")) for g in GROUPS}
    return out


def summary_frame(runs: Sequence[Path | str | RunRecord], groups: bool = False, strict: bool = False) -> pd.DataFrame:
    """The report's summary table, one row per run (see the module docstring).

    ``attrs``: ``runs``, ``models``, ``weights_sha256`` (label → value); per column ``n``,
    ``languages`` and ``sources`` (column → label → value); ``tasks`` (the tasks behind each
    Discriminative value) and ``marks`` (column → label → what a partial value lacks); and
    ``warnings``. ``strict``: Discriminative only where all three tasks ran.
    """
    return _summary(load_runs(runs), groups, strict)


def _summary(runs: list[Run], groups: bool, strict: bool = False) -> pd.DataFrame:
    per_run = {r.label: _entries(r, groups, strict) for r in runs}
    columns = list(next(iter(per_run.values())))
    frame = pd.DataFrame({c: [e[c].value if e[c] else math.nan for e in per_run.values()] for c in columns},
                         index=pd.Index(list(per_run), name="model"), dtype=float)
    attr = {k: {c: {lab: getattr(e[c], k) for lab, e in per_run.items() if e[c]} for c in columns}
            for k in ("n", "languages", "source")}
    disc = {lab: e["Discriminative"] for lab, e in per_run.items() if e["Discriminative"]}
    partial: dict[tuple[bool, tuple[str, ...]], list[str]] = {}
    for r in runs:
        lacking = tuple(t for t in DISCRIMINATIVE if not _macro(r, t, "acc"))
        if lacking and len(lacking) < len(DISCRIMINATIVE):
            partial.setdefault((r.label in disc, lacking), []).append(r.label)
    warnings = []
    for (shown, lacking), labels in partial.items():
        if shown:
            warnings.append(f"Discriminative of {', '.join(labels)}: the mean over {len(DISCRIMINATIVE) - len(lacking)} "
                            f"of the 3 tasks (no {', '.join(lacking)}), not comparable with a three-task mean "
                            "(--strict leaves it out)")
        else:
            warnings.append(f"Discriminative is missing for {', '.join(labels)}: no {', '.join(lacking)}")
    for c in ("Global-MMLU", "Translation chrF++"):
        kinds = sorted(set(attr["source"][c].values()))
        if len(kinds) > 1:
            warnings.append(f"{c} mixes {'; '.join(kinds)}: its rows are not directly comparable")
    warnings += _coverage_notes(per_run, columns)
    warnings += _comparability(runs, _union(r.record.scored_tasks() for r in runs))
    frame.attrs.update(runs={r.label: str(r.path) for r in runs},
                       models={r.label: r.record.model.get("name") for r in runs},
                       weights_sha256={r.label: r.record.model.get("weights_sha256") for r in runs},
                       n=attr["n"], languages={c: {k: list(v) for k, v in d.items()} for c, d in attr["languages"].items()},
                       sources=attr["source"], tasks={"Discriminative": {lab: list(e.tasks) for lab, e in disc.items()}},
                       marks={"Discriminative": {lab: e.mark for lab, e in disc.items() if e.mark}},
                       warnings=warnings)
    return frame


def _union(lists: Iterable[Iterable[str]]) -> list[str]:
    return list(dict.fromkeys(x for xs in lists for x in xs))


def _coverage_notes(per_run: dict[str, dict[str, Entry | None]], columns: list[str]) -> list[str]:
    """Languages a run's average leaves out: ones other runs scored for the same task, and
    ones the run has without a value. Columns averaging the same task share one note."""
    gaps: dict[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]], list[str]] = {}
    valueless: dict[tuple[str, str, str, str], list[str]] = {}
    for col in columns:
        entries = {label: e[col] for label, e in per_run.items() if e[col]}
        covered: dict[str, dict[str, tuple[str, ...]]] = {}  # task → label → languages averaged
        for label, entry in entries.items():
            for task, langs in entry.covered:
                covered.setdefault(task, {})[label] = langs
            for task, lang, metric in entry.valueless:
                valueless.setdefault((task, lang, metric, label), []).append(col)
        for task, by_label in covered.items():
            every = _union(by_label.values())
            lacking: dict[tuple[str, ...], list[str]] = {}
            for label, langs in by_label.items():
                # a language the run has without a value gets its own, more precise note
                own = {lang for t, lang, _ in entries[label].valueless if t == task}
                missing = tuple(x for x in every if x not in langs and x not in own)
                if missing:
                    lacking.setdefault(missing, []).append(label)
            for missing, labels in lacking.items():
                scored = tuple(lab for lab, langs in by_label.items() if set(missing) & set(langs))
                gaps.setdefault((task, missing, tuple(labels), scored), []).append(col)
    out = [f"{task} {', '.join(missing)}: missing from the {', '.join(cols)} average of {', '.join(labels)} "
           f"(scored by {', '.join(scored)})" for (task, missing, labels, scored), cols in gaps.items()]
    out += [f"{task} {lang}: {label} has no {metric} value, left out of its {', '.join(cols)} average"
            for (task, lang, metric, label), cols in valueless.items()]
    return out


def _comparability(runs: list[Run], tasks: list[str]) -> list[str]:
    """One line per task and kind of :func:`differences` between the runs that have it
    (every run against the first that has the task, or the language)."""
    out = []
    for task in tasks:
        having = [r for r in runs if r.record.has(task)]
        versions = list(dict.fromkeys(r.record.version(task) for r in having))
        if len(versions) > 1:
            out.append(f"{task}: the runs used different task versions ({', '.join(map(str, versions))})")
        found: dict[str, list[str]] = {k: [] for k in DIFFERENCE}
        for lang in _union(r.record.languages(task) for r in having):
            first, *rest = [r for r in having if r.record.has(task, lang)]
            for kind in DIFFERENCE:
                if any(differences(first.record, r.record, task, lang, kinds=(kind,)) for r in rest):
                    found[kind].append(lang)
        out += [f"{task} {', '.join(langs)}: {DIFFERENCE[kind]}" for kind, langs in found.items() if langs]
    return out


def language_frame(runs: Sequence[Path | str | RunRecord], task: str, metric: str | None = None) -> LanguageTable:
    """``task`` × ``metric`` (default: the task's headline metric) per run and language,
    languages in the order the runs list them; runs without that task and metric are left out."""
    return _language(load_runs(runs), task, metric)


def _language(runs: list[Run], task: str, metric: str | None) -> LanguageTable:
    having = [r for r in runs if r.record.has(task)]
    if not having:
        raise GlotbenchError(f"no run has task {task!r}",
                             f"the runs have: {', '.join(_union(r.record.tasks() for r in runs))}")
    metrics = _union(r.record.metrics(task) for r in having)
    if not metrics:
        raise GlotbenchError(f"the runs list no metric for task {task!r} in their provenance",
                             "the run directories are incomplete or damaged; regenerate them with glotbench run")
    metric = metric or metrics[0]
    if metric not in metrics:
        raise GlotbenchError(f"task {task!r} has no metric {metric!r} in these runs", f"choose from {', '.join(metrics)}")
    # a run that has the task but not the metric (xCOMET not scored) gets no all-missing row
    having = [r for r in having if any(r.record.metric(task, lang, metric) for lang in r.record.languages(task))]
    if not having:
        raise GlotbenchError(f"no run has a {metric} value for task {task!r}",
                             f"choose another metric: {', '.join(metrics)}")
    langs = _union(r.record.languages(task) for r in having)
    stats: dict[str, dict[str, list[float]]] = {s: {} for s in ("value", "ci_lo", "ci_hi", "n")}
    for run in having:
        for s in stats:
            stats[s][run.label] = []
        for lang in langs:
            got = run.record.metric(task, lang, metric)
            value, (lo, hi), n = (got.value, got.ci95 or (None, None), got.n) if got else (None, (None, None), None)
            for s, v, k in (("value", value, _scale(metric)), ("ci_lo", lo, _scale(metric)),
                            ("ci_hi", hi, _scale(metric)), ("n", n, 1.0)):
                stats[s][run.label].append(math.nan if v is None else v * k)
    frames = {s: pd.DataFrame.from_dict(rows, orient="index", columns=langs, dtype=float).rename_axis("model")
              for s, rows in stats.items()}
    return LanguageTable(task, metric, **frames, warnings=tuple(_comparability(having, [task])))


def language_tables(runs: Sequence[Path | str | RunRecord]) -> tuple[list[LanguageTable], list[str]]:
    """Every task × metric matrix of the runs' scored tasks, and one note per matrix that
    cannot be built (shown instead of it, never dropped silently)."""
    return _language_tables(load_runs(runs))


def _language_tables(loaded: list[Run]) -> tuple[list[LanguageTable], list[str]]:
    tables, notes = [], []
    for task in _union(r.record.scored_tasks() for r in loaded):
        metrics = _union(r.record.metrics(task) for r in loaded if r.record.has(task))
        for metric in metrics or [None]:
            try:
                tables.append(_language(loaded, task, metric))
            except GlotbenchError as err:
                notes.append(f"no per-language table for {task}{f' · {metric}' if metric else ''}: {err.problem}")
    return tables, notes


def table_text(runs: Sequence[Path | str | RunRecord], fmt: Format = "md", by_language: bool = False,
               groups: bool = False, strict: bool = False) -> str:
    """What ``glotbench table`` prints: the summary and, with ``by_language``, one matrix per
    task × metric present in any run (CSV: one long table of them after the summary)."""
    loaded = load_runs(runs)
    summary = _summary(loaded, groups, strict)
    tables, dropped = _language_tables(loaded) if by_language else ([], [])
    if fmt == "csv":
        return render(summary, "csv") + "".join("\n" * (i == 0) + render_csv(t, header=i == 0)
                                                 for i, t in enumerate(tables))
    text = render(summary, fmt)  # validates fmt before anything is printed
    title, note = ("### ", "") if fmt == "md" else ("% ", "% ")
    blocks = [f"{title}Summary\n\n{text}\n{note}{STRICT_LEGEND if strict else LEGEND}\n"]
    for t in tables:
        blocks.append(f"{title}{t.task} · {t.metric} (value [95% CI])\n\n{render(t, fmt)}")
    notes = summary.attrs["warnings"] + dropped
    if notes:
        blocks.append("".join(f"{note}Note: {w}.\n" for w in notes))
    return "\n".join(blocks)
