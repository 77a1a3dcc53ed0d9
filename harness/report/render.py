"""Summary and per-language tables as Markdown, LaTeX (booktabs) or CSV.

:func:`render` writes a summary frame (:func:`~glotbench.harness.report.tables.summary_frame`)
or a :class:`LanguageTable`. The best value per column is marked (bold / ``\\textbf``) at the
printed precision, ties all marked, never in a column with fewer than two values, and only
among values that measure the same thing: a partial Discriminative mean (its ``attrs["tasks"]``
lacks a task) competes only with means over the same tasks, and only when no row has more.
A partial value is followed by its mark ("65.8 (2/3: no XStoryCloze)"); a missing one is "–"
("--" in LaTeX), never 0.

CSV stays plain numbers: empty where missing, no markers. The summary gets one extra
column after Discriminative, ``Discriminative tasks``: the tasks averaged, joined by "+"
("xcopa+xstorycloze+xwinograd" when complete), empty where there is no value. Language
tables are long: one row per model × language with value, CI and n.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from glotbench.harness.core.errors import GlotbenchError

Format = Literal["md", "latex", "csv"]
FORMATS = ("md", "latex", "csv")
MISSING = "–"


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


def render(frame: pd.DataFrame | LanguageTable, fmt: Format = "md", best: Literal["max", "min"] | None = "max",
           ci: bool = True, digits: int = 1) -> str:
    """A summary or language table as Markdown, LaTeX (booktabs; needs ``\\usepackage{booktabs}``)
    or CSV (see the module docstring)."""
    if fmt not in FORMATS:
        raise GlotbenchError(f"unknown table format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    table = frame if isinstance(frame, LanguageTable) else None
    values = table.value if table else frame
    if fmt == "csv":
        return render_csv(table, header=True) if table else _summary_csv(frame)
    latex = fmt == "latex"
    marks = {} if table else values.attrs.get("marks", {})
    marked = best_cells(values, best, digits)
    rows = []
    for label, row in values.iterrows():
        cells = [latex_escape(str(label)) if latex else str(label).replace("|", "\\|")]
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
            mark = marks.get(col, {}).get(label)
            if mark:
                text += f" ({latex_escape(mark) if latex else mark})"
            cells.append(text)
        rows.append(cells)
    header = ["Model", *map(str, values.columns)]
    if latex:
        lines = [f"\\begin{{tabular}}{{l{'r' * len(values.columns)}}}", "\\toprule",
                 " & ".join(map(latex_escape, header)) + " \\\\", "\\midrule",
                 *(" & ".join(r) + " \\\\" for r in rows), "\\bottomrule", "\\end{tabular}"]
    else:
        lines = ["| " + " | ".join(header) + " |", "|:---|" + "---:|" * len(values.columns),
                 *("| " + " | ".join(r) + " |" for r in rows)]
    return "\n".join(lines) + "\n"


def best_cells(values: pd.DataFrame, best: str | None, digits: int = 1) -> set[tuple[str, str]]:
    """Cells holding the best value of their column at the printed precision (ties all),
    among the values that cover the most tasks when those cover the same ones."""
    if best not in ("max", "min", None):
        raise GlotbenchError(f"unknown best={best!r}", "use 'max', 'min' or None")
    marked: set[tuple[str, str]] = set()
    tasks = values.attrs.get("tasks", {})
    for col in values.columns if best else ():
        shown = values[col].dropna().map(lambda v: float(f"{v:.{digits}f}"))
        if col in tasks and len(shown):
            cover = {label: tuple(tasks[col].get(label, ())) for label in shown.index}
            widest = max(len(c) for c in cover.values())
            kinds = {c for c in cover.values() if len(c) == widest}
            shown = shown[[cover[label] in kinds for label in shown.index]] if len(kinds) == 1 else shown[:0]
        if len(shown) >= 2:
            target = shown.max() if best == "max" else shown.min()
            marked |= {(label, col) for label in shown.index[shown == target]}
    return marked


def plain(v: float) -> str:
    """A CSV number: empty when missing, else at most 6 decimals."""
    return "" if math.isnan(v) else repr(round(float(v), 6))


def _summary_csv(values: pd.DataFrame) -> str:
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    tasks = values.attrs.get("tasks", {})
    header = ["model"]
    for col in values.columns:
        header += [col, f"{col} tasks"] if col in tasks else [col]
    out.writerow(header)
    for label, row in values.iterrows():
        cells = [label]
        for col, v in row.items():
            cells.append(plain(v))
            if col in tasks:
                cells.append("+".join(tasks[col].get(label, ())) if not math.isnan(v) else "")
        out.writerow(cells)
    return buf.getvalue()


def render_csv(table: LanguageTable, header: bool = True) -> str:
    """A language table as long CSV, one row per model × language (``header``: with the
    column names, so that several tables can follow one header)."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    if header:
        out.writerow(["model", "task", "metric", "language", "value", "ci_lo", "ci_hi", "n"])
    for label in table.value.index:
        for lang in table.value.columns:
            n = table.n.at[label, lang]
            out.writerow([label, table.task, table.metric, lang, *(plain(f.at[label, lang]) for f in
                          (table.value, table.ci_lo, table.ci_hi)), "" if math.isnan(n) else int(n)])
    return buf.getvalue()


_LATEX = str.maketrans({"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                        "→": r"$\rightarrow$", "–": "--"})


def latex_escape(text: str) -> str:
    """``text`` safe inside a LaTeX table cell."""
    return text.translate(_LATEX)
