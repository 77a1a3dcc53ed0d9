"""The HTML leaderboard: one self-contained file built from tables, judge files and provenance.

:func:`build_report` takes what the results store already holds (the leaderboard and
per-language ``pandas.DataFrame``\\ s, the judge directories and runs as
:class:`~glotbench.harness.store.schema.JudgeRecord` / :class:`~glotbench.harness.store.schema.RunRecord`)
and returns one HTML string: inline CSS, a small vanilla-JS column sorter, figures as base64
``data:`` URIs. A Content-Security-Policy forbids every fetch, so the page needs no network at
view time and anything that tried one would show up as a console error. Every string from the
store goes through :func:`html.escape`. :func:`write_report` writes the file atomically;
:mod:`~glotbench.harness.report.collect` reads the store and calls both.

Nothing is left out silently: the leaderboard's notes (``attrs["warnings"]`` of
:func:`~glotbench.harness.report.tables.summary_frame`: partial means, languages missing from
an average, runs that measured different things), a per-language table that could not be
built, and a failed Bradley–Terry fit are each shown as a note where the number would be.
"""

from __future__ import annotations

import html
import json
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from glotbench.harness import __version__
from glotbench.harness.core.hashing import write_text_atomic
from glotbench.harness.core.naming import slug
from glotbench.harness.report.figures import (
    MISSING,
    language_win_rates,
    score_heatmap,
    to_data_uri,
    win_tie_loss_bars,
)

if TYPE_CHECKING:
    import pandas as pd

    from glotbench.harness.store.schema import JudgeRecord, RunRecord

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1200px;padding:0 1.2em 3em;color:#1b1b1b}
h1{margin:.8em 0 .2em}h2{border-bottom:1px solid #ccc;margin-top:1.8em}nav a{margin-right:1em}
table{border-collapse:collapse;margin:.6em 0;font-variant-numeric:tabular-nums}
th,td{padding:.25em .6em;border-bottom:1px solid #e3e3e3;text-align:left}
td.num{text-align:right}td.missing{color:#999;text-align:center}
thead th{background:#f3f3f3;position:sticky;top:0}
table.sortable thead th{cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
details{margin:.5em 0;padding:.3em .6em;border:1px solid #e3e3e3;border-radius:4px}
summary{cursor:pointer;font-weight:600}figure{margin:.6em 0}img{max-width:100%;height:auto}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:12px}
dl{display:grid;grid-template-columns:max-content auto;gap:.1em 1em}dt{font-weight:600}dd{margin:0}
code{font-size:12px;word-break:break-all}.note{color:#555}span.mark{color:#555;font-size:12px}
ul.notes{color:#7a4b00;margin:.4em 0;padding-left:1.2em}p.warning{color:#7a4b00}
"""
# Numeric columns sort descending first (higher scores are better), text ascending; rows
# without a value always go last, whichever the direction.
SORTER = """
(function(){
  function key(cell){var v=cell?cell.getAttribute('data-value'):null;return v===null||v===''?null:v;}
  document.querySelectorAll('table.sortable').forEach(function(table){
    var heads=table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads,function(th,col){
      th.addEventListener('click',function(){
        var numeric=th.getAttribute('data-type')==='num', was=th.getAttribute('aria-sort');
        var dir=was==='descending'?'ascending':was==='ascending'?'descending':(numeric?'descending':'ascending');
        Array.prototype.forEach.call(heads,function(h){h.setAttribute('aria-sort','none');});
        th.setAttribute('aria-sort',dir);
        var body=table.tBodies[0], rows=Array.prototype.slice.call(body.rows), sign=dir==='ascending'?1:-1;
        rows.sort(function(a,b){
          var x=key(a.cells[col]), y=key(b.cells[col]);
          if(x===null||y===null){return (x===null)-(y===null);}
          var d=numeric?parseFloat(x)-parseFloat(y):x.localeCompare(y);
          return sign*d;
        });
        rows.forEach(function(r){body.appendChild(r);});
      });
    });
  });
})();
"""


@dataclass(frozen=True)
class Marked:
    """A number shown with a mark after it ("65.8 (2/3: no XStoryCloze)"); it sorts by value."""

    value: float
    mark: str


def format_value(value, fmt: str = "{:.1f}") -> str:
    """A table cell's text: numbers through ``fmt`` (integers as they are), missing as "–"."""
    if isinstance(value, Marked):
        return f"{format_value(value.value, fmt)} ({value.mark})"
    if _missing(value):
        return MISSING
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return fmt.format(float(value))
    return str(value)


@dataclass(frozen=True)
class Section:
    """A section a caller adds before the leaderboard (``glotbench recipe report``: Figure 3,
    gates, lineage), linked from the page's navigation."""

    ident: str
    title: str
    body: str
    """HTML, every string from the store already escaped."""


def build_report(leaderboard: pd.DataFrame, per_language: dict[str, pd.DataFrame],
                 runs: Sequence[RunRecord], judges: Sequence[JudgeRecord], title: str = "glotbench report", *,
                 fmt: str = "{:.1f}", language_notes: Sequence[str] = (), sections: Sequence[Section] = ()) -> str:
    """One self-contained HTML page: leaderboard, per-language drill-down, judges, provenance.

    ``leaderboard`` has one row per model (the index names it, or a ``model`` column does when
    the index is a plain range); its ``attrs["marks"]`` (column → row → mark) are shown after
    the values, its ``attrs["warnings"]`` as notes under it. ``per_language`` maps a task to a
    models × languages frame (``attrs["notes"]``: shown with it); ``language_notes`` are
    drill-downs that could not be built. Numbers are shown through ``fmt``, in whatever unit
    the frames carry; the raw value is kept in each cell's ``data-value`` for sorting.
    """
    nav = "".join(f'<a href="#{_e(i)}">{_e(t)}</a>' for i, t in (
        *((x.ident, x.title) for x in sections), ("leaderboard", "Leaderboard"), ("languages", "Per language"),
        ("judges", "Judges"),
        ("provenance", "Provenance")))
    parts = [
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f"<header><h1>{_e(title)}</h1><p class=\"note\">glotbench {_e(__version__)} · {len(runs)} run(s) · "
        f"{len(judges)} judge file(s). Click a column header to sort; missing values ({MISSING}) "
        f"sort last.</p><nav>{nav}</nav></header>",
        *(f'<section id="{_e(x.ident)}"><h2>{_e(x.title)}</h2>{x.body}</section>' for x in sections),
        "<section><h2>Leaderboard</h2>",
        _table(_marked(leaderboard), "leaderboard", fmt) if len(leaderboard) else '<p id="leaderboard">No runs.</p>',
        _notes(leaderboard.attrs.get("warnings") or (), "leaderboard-notes"),
        '</section><section id="languages"><h2>Per-language scores</h2>',
        _notes(language_notes, "language-notes"),
        *(_language_section(i, task, frame, fmt) for i, (task, frame) in enumerate(per_language.items())),
        '</section><section id="judges"><h2>Pairwise judges</h2>',
        *(_judge_section(i, judge) for i, judge in enumerate(judges)),
        "" if judges else '<p class="note">No judge files.</p>',
        '</section><section id="provenance"><h2>Provenance</h2>',
        *(_run_section(i, run) for i, run in enumerate(runs)),
        f"</section><script>{SORTER}</script></body></html>\n",
    ]
    return "".join(parts)


def _marked(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every value that has a mark (``attrs["marks"]``) as a :class:`Marked`."""
    marks = frame.attrs.get("marks") or {}
    if not any(marks.values()):
        return frame
    out = frame.astype(object)
    for col, by_row in marks.items():
        for row, mark in by_row.items():
            if col in out.columns and row in out.index and not _missing(frame.at[row, col]):
                out.at[row, col] = Marked(float(frame.at[row, col]), mark)
    return out


def _notes(notes: Sequence[str], ident: str) -> str:
    if not notes:
        return ""
    return f'<ul class="notes" id="{_e(ident)}">' + "".join(f"<li>Note: {_e(n)}.</li>" for n in notes) + "</ul>"


def write_report(html: str, path: Path) -> None:
    """Write ``html`` to ``path`` atomically: a reader sees the old file or the new one."""
    write_text_atomic(Path(path), html)


def _language_section(i: int, task: str, frame: pd.DataFrame, fmt: str) -> str:
    body = '<p class="note">No scores.</p>'
    if frame.shape[0] and frame.shape[1]:
        fig = score_heatmap(frame, f"{task}", fmt=fmt)
        body = (_table(frame, f"lang-{i}-{slug(task)}", fmt, row_header="model")
                + _figure(to_data_uri(fig), f"{task}: scores per model and language"))
    body += _notes(frame.attrs.get("notes") or (), f"lang-{i}-notes")
    return (f'<details class="task" id="task-{i}-{slug(task)}"><summary>{_e(task)} — '
            f"{frame.shape[0]} model(s) × {frame.shape[1]} language(s)</summary>{body}</details>")


def _judge_section(i: int, judge: JudgeRecord) -> str:
    data = judge.data  # the figures take judge.json as it is
    spec = judge.judge_spec or judge.config.get("judge") or "?"
    prompt, counts = judge.prompt, judge.counts
    out = [f'<section class="judge" id="judge-{i}"><h3>Judge {_e(spec)}</h3><p class="note">'
           f"prompt {_e(prompt.get('name', '?'))} v{_e(prompt.get('version', '?'))}, created "
           f"{_e(judge.created or '?')}; {_e(counts.get('judgments', '?'))} judgments, "
           f"{_e(counts.get('invalid', '?'))} invalid, {_e(counts.get('api_errors', '?'))} API errors. "
           "Win = the first model of the pair preferred; win-rates exclude invalid verdicts.</p>"]
    results = judge.results
    for task in dict.fromkeys(t for _, t, _ in judge.pairs()):
        out.append(f"<h4>{_e(task)}</h4>")
        out.append(_figure(to_data_uri(win_tie_loss_bars(data, task)), f"win / tie / loss, {task}"))
        out.append(_pair_table(f"judge-{i}-{slug(task)}", results, task))
        for pair, t, summary in judge.pairs():
            if t == task:
                fig = language_win_rates(data, pair, task)
                out.append(f"<details><summary>{_e(pair)} per language</summary>"
                           f"{_figure(to_data_uri(fig), f'{pair}, {task}: win-rate per language')}"
                           f"{_language_pair_table(summary)}</details>")
        out.append(_bradley_terry(f"bt-{i}-{slug(task)}", task, judge.bradley_terry(task)))
    out.append(f"<details><summary>Judge provenance</summary>{_json(judge.provenance)}"
               f"<h5>Config</h5>{_json(judge.config)}</details></section>")
    return "".join(out)


def _bradley_terry(table_id: str, task: str, bt: dict | None) -> str:
    """The strengths, or why there are none (a failed fit is shown, never skipped)."""
    if bt is None:
        return ""  # two models: a win-rate says it all, no ranking was fitted
    if "scores" not in bt:
        reason = bt.get("error") or "the judge file records no fit and no reason"
        return (f'<p class="warning" id="{_e(table_id)}">Bradley–Terry ({_e(task)}): no strengths — '
                f"{_e(reason)}</p>")
    rows = [[m, bt["scores"][m], _ci((bt.get("ci95") or {}).get(m), "{:+.0f}", 1)] for m in bt["models"]]
    unranked = "".join(f"<li>{_e(m)}: not ranked — {_e(why)}</li>" for m, why in (bt.get("not_ranked") or {}).items())
    return (f"<p>Bradley–Terry, Elo scale, {_e(bt.get('anchor'))} = 0:</p>"
            + _rows_table(table_id, ["model", "Elo", "95% CI"], rows, "{:+.0f}")
            + (f'<ul class="notes">{unranked}</ul>' if unranked else ""))


def _pair_table(table_id: str, results: dict, task: str) -> str:
    head = ["pair", "wins", "ties", "losses", "invalid", "win-rate %", "95% CI", "ties ½ %",
            "macro win-rate %", "order flips %"]
    rows = []
    for pair, by_task in results.items():
        if task in by_task:
            p, m = by_task[task].get("pooled") or {}, by_task[task].get("macro") or {}
            rows.append([pair, p.get("wins"), p.get("ties"), p.get("losses"), p.get("invalid"),
                         _pct(p.get("win_rate")), _ci(p.get("win_rate_ci95")),
                         _pct(p.get("win_rate_ties_half")), _pct(m.get("win_rate")),
                         _pct(p.get("order_flip_rate"))])
    return _rows_table(table_id, head, rows, "{:.1f}")


def _language_pair_table(summary: dict) -> str:
    head = ["language", "n", "wins", "ties", "losses", "invalid", "win-rate %", "95% CI", "ties ½ %",
            "order flips %"]
    rows = [[lang, s.get("n"), s.get("wins"), s.get("ties"), s.get("losses"), s.get("invalid"),
             _pct(s.get("win_rate")), _ci(s.get("win_rate_ci95")), _pct(s.get("win_rate_ties_half")),
             _pct(s.get("order_flip_rate"))] for lang, s in (summary.get("languages") or {}).items()]
    return _rows_table("", head, rows, "{:.1f}")


def _run_section(i: int, run: RunRecord) -> str:
    model, prov = run.model, run.provenance
    facts = [("run", run.name), ("path", str(run.path)), ("model", model.get("name")),
             ("backend", model.get("backend")), ("dtype", model.get("dtype")),
             ("device", model.get("device") or prov.get("device")),
             ("weights sha256", model.get("weights_sha256")),
             ("glotbench version", prov.get("glotbench_version")),
             ("created", run.created), ("seed", prov.get("seed"))]
    dl = "".join(f"<dt>{_e(k)}</dt><dd><code>{_e(format_value(v))}</code></dd>" for k, v in facts)
    sources = [[task, run.version(task), lang, x.data_source, x.data_sha256, x.prompt_sha256, x.n_available]
               for task in run.tasks() for lang in run.languages(task)
               for x in (run.language_provenance(task, lang),)]
    head = ["task", "version", "language", "data source", "data sha256", "prompt sha256", "n available"]
    name, model_name = run.name, model.get("name", "?")
    label = _e(name) if name == model_name else f"{_e(name)} — {_e(model_name)}"
    return (f'<details class="run" id="run-{i}"><summary>{label}</summary><dl>{dl}</dl><h4>Data sources</h4>'
            f"{_rows_table('', head, sources, '{}')}<h4>Config</h4>{_json(run.config)}"
            f"<details><summary>Full provenance</summary>{_json(prov)}</details></details>")


def rows_table(table_id: str, head: list[str], rows: list[list], fmt: str = "{:.1f}") -> str:
    """A sortable table of ``rows`` (the first cell of each is its row header), for callers'
    sections; numbers through ``fmt``, missing values as "–"."""
    return _rows_table(table_id, head, rows, fmt)


def figure(uri: str, caption: str) -> str:
    """An embedded figure (a ``data:`` URI from :func:`~glotbench.harness.report.figures.to_data_uri`)."""
    return _figure(uri, caption)


def _table(frame: pd.DataFrame, table_id: str, fmt: str, row_header: str = "model") -> str:
    """A DataFrame as a sortable table; a plain range index is dropped (a column names rows)."""
    from pandas import RangeIndex

    keep_index = not isinstance(frame.index, RangeIndex)
    head = ([frame.index.name or row_header] if keep_index else []) + [_label(c) for c in frame.columns]
    rows = [([idx] if keep_index else []) + list(values)
            for idx, values in zip(frame.index, frame.itertuples(index=False, name=None))]
    return _rows_table(table_id, head, rows, fmt)


def _rows_table(table_id: str, head: list[str], rows: list[list], fmt: str) -> str:
    numeric = [any(_is_number(r[c]) for r in rows) for c in range(len(head))]
    ths = "".join(f'<th scope="col" data-type="{"num" if n else "text"}" aria-sort="none">{_e(h)}</th>'
                  for h, n in zip(head, numeric))
    trs = "".join("<tr>" + "".join(_cell(v, fmt, first=c == 0) for c, v in enumerate(r)) + "</tr>"
                  for r in rows)
    ident = f' id="{_e(table_id)}"' if table_id else ""
    return f'<table class="sortable"{ident}><thead><tr>{ths}</tr></thead><tbody>{trs}</tbody></table>'


def _cell(value, fmt: str, first: bool) -> str:
    tag = "th scope=\"row\"" if first else "td"
    end = "th" if first else "td"
    if isinstance(value, Marked):
        return (f'<{tag} class="num" data-value="{value.value!r}">{_e(format_value(value.value, fmt))} '
                f'<span class="mark">({_e(value.mark)})</span></{end}>')
    if _missing(value):
        return f'<{tag} class="missing">{MISSING}</{end}>'
    if _is_number(value):
        raw = str(int(value)) if isinstance(value, numbers.Integral) else repr(float(value))
        return f'<{tag} class="num" data-value="{raw}">{_e(format_value(value, fmt))}</{end}>'
    return f'<{tag} data-value="{_e(value)}">{_e(value)}</{end}>'


def _figure(uri: str, caption: str) -> str:
    return f'<figure><img src="{uri}" alt="{_e(caption)}"><figcaption class="note">{_e(caption)}</figcaption></figure>'


def _json(value) -> str:
    return f"<pre>{_e(json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False, default=str))}</pre>"


def _pct(x):
    return None if x is None else 100 * x


def _ci(ci, fmt: str = "{:.1f}", scale: float = 100) -> str | None:
    return None if not ci else f"{fmt.format(scale * ci[0])}–{fmt.format(scale * ci[1])}"


def _missing(value) -> bool:
    """None, NaN, NaT and pandas.NA; strings and other objects are present."""
    if value is None:
        return True
    if isinstance(value, numbers.Real):
        return math.isnan(value)
    from pandas import isna

    found = isna(value)  # an array for list-like values, which are present
    return isinstance(found, bool | np.bool_) and bool(found)


def _is_number(value) -> bool:
    if isinstance(value, Marked):
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and not _missing(value)


def _label(column) -> str:
    return " / ".join(str(c) for c in column) if isinstance(column, tuple) else str(column)


def _e(value) -> str:
    return html.escape(str(value), quote=True)
