"""The report's Tables 2 and 3 from finished runs (reads the results store only).

``summary_frame`` has one row per run, labelled by its directory name (the parent's name is
prefixed when two runs share a name), and the report's columns, all on a 0–100 scale:

- **Discriminative**: the mean of the XCOPA, XStoryCloze and XWinograd macro accuracies
  (each the unweighted mean over the run's languages). Only when all three tasks are in the
  run, else missing: a mean over two of them would be a different number.
- **Global-MMLU**: the macro over languages of the CS/CA-balanced accuracy (the unweighted
  mean of the culturally sensitive and culturally agnostic subsets: the report's number)
  when every language of the run has it, else of plain accuracy; from ``global_mmlu``, else
  ``global_mmlu_lite``. ``attrs["sources"]["Global-MMLU"]`` names the variant per row.
- **MGSM**: the macro strict-match accuracy.
- **Translation chrF++** / **Translation xCOMET**: the macro over FLORES directions
  (``flores``, else ``flores_5shot``) of chrF++ and of xCOMET (runs scored with ``--xcomet``
  only). ``groups=True`` adds the X→en and en→X means of both.

Accuracies and xCOMET are ×100; chrF++ is already 0–100. A missing number is NaN, rendered
"–" (empty in CSV), never 0. Open-ended tasks (headline metric ``new_tokens``, a length)
get win-rates from ``glotbench judge`` and are left out.

``language_frame`` gives one task × metric as models × languages with CIs and n; ``render``
writes either as Markdown, LaTeX (booktabs) or CSV, marking the best value per column (at
the printed precision, ties all marked, never in a column with fewer than two values);
``table_text`` is what ``glotbench table`` prints.

Runs that scored different data (``data_sha256``) or different numbers of examples for the
same task and language are still shown, but ``attrs["warnings"]`` says so and
``table_text`` prints it under the table (not in CSV, which stays machine-readable).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.store.rundir import read_run

Format = Literal["md", "latex", "csv"]
FORMATS = ("md", "latex", "csv")
DISCRIMINATIVE = ("xcopa", "xstorycloze", "xwinograd")
GLOBAL_MMLU = ("global_mmlu", "global_mmlu_lite")
FLORES = ("flores", "flores_5shot")
COLUMNS = ("Discriminative", "Global-MMLU", "MGSM", "Translation chrF++", "Translation xCOMET")
GROUPS = ("X→en", "en→X")
UNSCALED = frozenset({"chrf++", "new_tokens"})  # already on the scale they are reported on
MISSING = "–"
LEGEND = ("Discriminative = mean of the XCOPA, XStoryCloze and XWinograd macro accuracies "
          "(missing unless all three ran); Global-MMLU = CS/CA-balanced accuracy where "
          "available; accuracy and xCOMET ×100, chrF++ 0–100; – = missing; best per column in bold.")


@dataclass(frozen=True)
class Run:
    """One finished run as read from the store."""
    label: str
    """Row label: the directory name, made unique."""
    path: Path
    data: dict
    """The parsed ``run.json``."""

    def tasks(self) -> list[str]:
        """Tasks with a score (open-ended ones, whose headline metric is a length, left out)."""
        prov = self.data["provenance"]["tasks"]
        return [t for t in self.data["results"] if prov.get(t, {}).get("metrics", [""])[0] != "new_tokens"]

    def metrics(self, task: str) -> list[str]:
        return list(self.data["provenance"]["tasks"].get(task, {}).get("metrics", []))


@dataclass(frozen=True)
class Entry:
    """One summary cell: value on the table scale, examples behind it, where it came from."""
    value: float
    n: int
    languages: tuple[str, ...]
    source: str


@dataclass(frozen=True, eq=False)
class LanguageTable:
    """One task × metric as models (rows) × languages (columns), on the table scale."""
    task: str
    metric: str
    value: pd.DataFrame
    """The metric (accuracies and xCOMET ×100); NaN where a run lacks the language."""
    ci_lo: pd.DataFrame
    ci_hi: pd.DataFrame
    """The 95 % bootstrap CI stored with the cell, same scale; NaN when none."""
    n: pd.DataFrame
    """Examples scored (float so that missing is NaN)."""
    warnings: tuple[str, ...] = ()


def load_runs(runs: Sequence[Path | str]) -> list[Run]:
    """Read the runs' ``run.json``; refuse non-runs, repeats and runs with nothing to tabulate."""
    if not runs:
        raise GlotbenchError("no run given", "pass one or more run directories, e.g. glotbench table results/<run>")
    paths = [Path(r) for r in runs]
    resolved = [p.resolve() for p in paths]
    for i, p in enumerate(resolved):
        if p in resolved[:i]:
            raise GlotbenchError(f"run {paths[i]} is given twice", "name each run once")
    out = []
    for path, label in zip(paths, _labels(resolved)):
        data = read_run(path)
        if not str(data.get("format", "")).startswith("glotbench-run/"):
            raise GlotbenchError(f"{path}/run.json is not a glotbench run (format {data.get('format')!r})",
                                 "pass a run directory written by 'glotbench run'")
        run = Run(label, path, data)
        if not run.tasks():
            raise GlotbenchError(f"{path} has no task a table can show (results: "
                                 f"{', '.join(data.get('results', {})) or 'none'})",
                                 "compare open-ended runs with 'glotbench judge'; tables need scored tasks "
                                 "such as xcopa, global_mmlu, mgsm or flores")
        out.append(run)
    return out


def _labels(paths: list[Path]) -> list[str]:
    names = [p.name for p in paths]
    names = [n if names.count(n) == 1 else f"{p.parent.name}/{n}" for p, n in zip(paths, names)]
    return [n if names.count(n) == 1 else f"{n} ({names[:i].count(n) + 1})" for i, n in enumerate(names)]


def _scale(metric: str) -> float:
    return 1.0 if metric in UNSCALED else 100.0


def _metric(cell: dict, metric: str) -> dict | None:
    """``{value, n, ci95}`` of one metric of a results cell, or None when it has none."""
    got = cell.get("metrics", {}).get(metric)
    if got is None and metric in cell:
        got = {"value": cell[metric], "n": cell.get("n"), "ci95": cell.get("ci95")}
    return got if got is not None and got.get("value") is not None else None


def _macro(run: Run, task: str, metric: str) -> Entry | None:
    cells = {lang: _metric(c, metric) for lang, c in run.data["results"].get(task, {}).items()}
    cells = {lang: c for lang, c in cells.items() if c is not None}
    if not cells:
        return None
    mean = sum(c["value"] for c in cells.values()) / len(cells) * _scale(metric)
    return Entry(mean, sum(c["n"] for c in cells.values()), tuple(cells), f"{task} ({metric})")


def _global_mmlu(run: Run) -> Entry | None:
    task = next((t for t in GLOBAL_MMLU if t in run.data["results"]), None)
    if task is None:
        return None
    cells = run.data["results"][task]
    balanced = [(c.get("balanced") or {}).get("value") for c in cells.values()]
    if all(b is not None for b in balanced):
        return Entry(100 * sum(balanced) / len(balanced), sum(c["n"] for c in cells.values()),
                     tuple(cells), f"{task} (CS/CA balanced)")
    return _macro(run, task, "acc")


def _group(run: Run, task: str | None, metric: str, group: str) -> Entry | None:
    avg = run.data["averages"].get(task or "", {})
    avg = avg if metric == "chrf++" else avg.get("metrics", {}).get(metric, {})
    got = avg.get("groups", {}).get(group)
    if not got or got.get("macro") is None:
        return None
    return Entry(got["macro"] * _scale(metric), got["n"], (), f"{task} ({metric}, {group})")


def _entries(run: Run, groups: bool) -> dict[str, Entry | None]:
    parts = [_macro(run, t, "acc") for t in DISCRIMINATIVE]
    disc = None
    if all(parts):
        disc = Entry(sum(p.value for p in parts) / 3, sum(p.n for p in parts),
                     tuple(f"{t}/{lang}" for t, p in zip(DISCRIMINATIVE, parts) for lang in p.languages),
                     "+".join(DISCRIMINATIVE))
    flores = next((t for t in FLORES if t in run.data["results"]), None)
    out = {"Discriminative": disc, "Global-MMLU": _global_mmlu(run), "MGSM": _macro(run, "mgsm", "strict_match"),
           "Translation chrF++": flores and _macro(run, flores, "chrf++"),
           "Translation xCOMET": flores and _macro(run, flores, "xcomet")}
    if groups:
        out |= {f"Translation {name} {g}": _group(run, flores, metric, g)
                for name, metric in (("chrF++", "chrf++"), ("xCOMET", "xcomet")) for g in GROUPS}
    return out


def summary_frame(runs: Sequence[Path | str], groups: bool = False) -> pd.DataFrame:
    """The report's summary table, one row per run (see the module docstring).

    ``attrs``: ``runs``, ``models``, ``weights_sha256`` (label → value), and per column
    ``n``, ``languages`` and ``sources`` (column → label → value), plus ``warnings``.
    """
    return _summary(load_runs(runs), groups)


def _summary(runs: list[Run], groups: bool) -> pd.DataFrame:
    per_run = {r.label: _entries(r, groups) for r in runs}
    columns = list(next(iter(per_run.values())))
    frame = pd.DataFrame({c: [e[c].value if e[c] else math.nan for e in per_run.values()] for c in columns},
                         index=pd.Index(list(per_run), name="model"), dtype=float)
    attr = {k: {c: {lab: getattr(e[c], k) for lab, e in per_run.items() if e[c]} for c in columns}
            for k in ("n", "languages", "source")}
    warnings = [f"Discriminative is missing for {r.label}: no {', '.join(t for t in DISCRIMINATIVE if t not in r.tasks())}"
                for r in runs if any(t in r.tasks() for t in DISCRIMINATIVE) and not per_run[r.label]["Discriminative"]]
    for c in ("Global-MMLU", "Translation chrF++"):
        kinds = sorted(set(attr["source"][c].values()))
        if len(kinds) > 1:
            warnings.append(f"{c} mixes {'; '.join(kinds)}: its rows are not directly comparable")
    warnings += _comparability(runs, _union(r.tasks() for r in runs))
    model = [r.data["provenance"].get("model", {}) for r in runs]
    frame.attrs.update(runs={r.label: str(r.path) for r in runs},
                       models={r.label: m.get("name") for r, m in zip(runs, model)},
                       weights_sha256={r.label: m.get("weights_sha256") for r, m in zip(runs, model)},
                       n=attr["n"], languages={c: {k: list(v) for k, v in d.items()} for c, d in attr["languages"].items()},
                       sources=attr["source"], warnings=warnings)
    return frame


def _union(lists: Iterable[Iterable[str]]) -> list[str]:
    return list(dict.fromkeys(x for xs in lists for x in xs))


def _comparability(runs: list[Run], tasks: list[str]) -> list[str]:
    """One line per task whose languages were scored on different data or different n."""
    out = []
    for task in tasks:
        data, sizes = [], []
        for lang in _union(r.data["results"].get(task, {}) for r in runs):
            having = [r for r in runs if lang in r.data["results"].get(task, {})]
            prov = [r.data["provenance"]["tasks"].get(task, {}).get("languages", {}).get(lang, {}) for r in having]
            if len({p.get("data_sha256") for p in prov}) > 1:
                data.append(lang)
            if len({r.data["results"][task][lang].get("n") for r in having}) > 1:
                sizes.append(lang)
        if data:
            out.append(f"{task} {', '.join(data)}: the runs scored different data (data_sha256 differs)")
        if sizes:
            out.append(f"{task} {', '.join(sizes)}: the runs scored different numbers of examples (n differs)")
    return out


def language_frame(runs: Sequence[Path | str], task: str, metric: str | None = None) -> LanguageTable:
    """``task`` × ``metric`` (default: the task's headline metric) per run and language,
    languages in the order the runs list them; runs without that task and metric are left out."""
    return _language(load_runs(runs), task, metric)


def _language(runs: list[Run], task: str, metric: str | None) -> LanguageTable:
    having = [r for r in runs if task in r.data["results"]]
    if not having:
        raise GlotbenchError(f"no run has task {task!r}",
                             f"the runs have: {', '.join(_union(r.data['results'] for r in runs))}")
    metrics = _union(r.metrics(task) for r in having)
    metric = metric or metrics[0]
    if metric not in metrics:
        raise GlotbenchError(f"task {task!r} has no metric {metric!r} in these runs", f"choose from {', '.join(metrics)}")
    # a run that has the task but not the metric (xCOMET not scored) gets no all-missing row
    having = [r for r in having if any(_metric(c, metric) for c in r.data["results"][task].values())]
    langs = _union(r.data["results"][task] for r in having)
    stats: dict[str, dict[str, list[float]]] = {s: {} for s in ("value", "ci_lo", "ci_hi", "n")}
    for run in having:
        for s in stats:
            stats[s][run.label] = []
        for lang in langs:
            got = _metric(run.data["results"][task].get(lang, {}), metric) or {}
            ci = got.get("ci95") or [None, None]
            for s, v, k in (("value", got.get("value"), _scale(metric)), ("ci_lo", ci[0], _scale(metric)),
                            ("ci_hi", ci[1], _scale(metric)), ("n", got.get("n"), 1.0)):
                stats[s][run.label].append(math.nan if v is None else v * k)
    frames = {s: pd.DataFrame.from_dict(rows, orient="index", columns=langs, dtype=float).rename_axis("model")
              for s, rows in stats.items()}
    return LanguageTable(task, metric, **frames, warnings=tuple(_comparability(having, [task])))


def render(frame: pd.DataFrame | LanguageTable, fmt: Format = "md", best: Literal["max", "min"] | None = "max",
           ci: bool = True, digits: int = 1) -> str:
    """A summary or language table as Markdown, LaTeX (booktabs; needs ``\\usepackage{booktabs}``)
    or CSV (plain numbers, empty where missing, no markers; language tables one row per
    model × language)."""
    if fmt not in FORMATS:
        raise GlotbenchError(f"unknown table format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    table = frame if isinstance(frame, LanguageTable) else None
    values = table.value if table else frame
    if fmt == "csv":
        return _csv(table, values, header=True)
    latex = fmt == "latex"
    marked = _best(values, best, digits)
    rows = []
    for label, row in values.iterrows():
        cells = [_latex_escape(str(label)) if latex else str(label).replace("|", "\\|")]
        for col, v in row.items():
            if math.isnan(v):
                cells.append("--" if latex else MISSING)
                continue
            text = f"{v:.{digits}f}"
            if (label, col) in marked:
                text = f"\\textbf{{{text}}}" if latex else f"**{text}**"
            if table is not None and ci:
                lo, hi = table.ci_lo.at[label, col], table.ci_hi.at[label, col]
                if not (math.isnan(lo) or math.isnan(hi)):
                    text += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
            cells.append(text)
        rows.append(cells)
    header = ["Model", *map(str, values.columns)]
    if latex:
        lines = [f"\\begin{{tabular}}{{l{'r' * len(values.columns)}}}", "\\toprule",
                 " & ".join(map(_latex_escape, header)) + " \\\\", "\\midrule",
                 *(" & ".join(r) + " \\\\" for r in rows), "\\bottomrule", "\\end{tabular}"]
    else:
        lines = ["| " + " | ".join(header) + " |", "|:---|" + "---:|" * len(values.columns),
                 *("| " + " | ".join(r) + " |" for r in rows)]
    return "\n".join(lines) + "\n"


def _best(values: pd.DataFrame, best: str | None, digits: int) -> set[tuple[str, str]]:
    """Cells holding the best value of their column at the printed precision (ties all)."""
    if best not in ("max", "min", None):
        raise GlotbenchError(f"unknown best={best!r}", "use 'max', 'min' or None")
    marked: set[tuple[str, str]] = set()
    for col in values.columns if best else ():
        shown = values[col].dropna().map(lambda v: float(f"{v:.{digits}f}"))
        if len(shown) >= 2:
            target = shown.max() if best == "max" else shown.min()
            marked |= {(label, col) for label in shown.index[shown == target]}
    return marked


def _plain(v: float) -> str:
    return "" if math.isnan(v) else repr(round(float(v), 6))


def _csv(table: LanguageTable | None, values: pd.DataFrame, header: bool) -> str:
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    if table is None:
        out.writerow(["model", *values.columns])
        out.writerows([label, *map(_plain, row)] for label, row in values.iterrows())
        return buf.getvalue()
    if header:
        out.writerow(["model", "task", "metric", "language", "value", "ci_lo", "ci_hi", "n"])
    for label in values.index:
        for lang in values.columns:
            n = table.n.at[label, lang]
            out.writerow([label, table.task, table.metric, lang, *(_plain(f.at[label, lang]) for f in
                          (table.value, table.ci_lo, table.ci_hi)), "" if math.isnan(n) else int(n)])
    return buf.getvalue()


_LATEX = str.maketrans({"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                        "→": r"$\rightarrow$", "–": "--"})


def _latex_escape(text: str) -> str:
    return text.translate(_LATEX)


def table_text(runs: Sequence[Path | str], fmt: Format = "md", by_language: bool = False,
               groups: bool = False) -> str:
    """What ``glotbench table`` prints: the summary and, with ``by_language``, one matrix per
    task × metric present in any run (CSV: one long table of them after the summary)."""
    loaded = load_runs(runs)
    summary = _summary(loaded, groups)
    tables = [_language(loaded, t, m) for t in _union(r.tasks() for r in loaded)
              for m in _union(r.metrics(t) for r in loaded if t in r.data["results"])] if by_language else []
    if fmt == "csv":
        return render(summary, "csv") + "".join("\n" * (i == 0) + _csv(t, t.value, header=i == 0)
                                                 for i, t in enumerate(tables))
    text = render(summary, fmt)  # validates fmt before anything is printed
    title, note = ("### ", "") if fmt == "md" else ("% ", "% ")
    blocks = [f"{title}Summary\n\n{text}\n{note}{LEGEND}\n"]
    for t in tables:
        blocks.append(f"{title}{t.task} · {t.metric} (value [95% CI])\n\n{render(t, fmt)}")
    if summary.attrs["warnings"]:
        blocks.append("".join(f"{note}Note: {w}.\n" for w in summary.attrs["warnings"]))
    return "\n".join(blocks)
