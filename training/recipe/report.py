"""``glotbench recipe report DIR -o report.html``: one self-contained page for a recipe run.

The page is the harness's HTML report (harness/report/html.py) of the stages' eval runs and
judge directories (the leaderboard is the academic suite per stage, one row per stage; then the
per-language drill-down, the judges, the runs' provenance), with three sections before it:

- **Figure 3**: each evaluated checkpoint stage's win-rate against the fixed opponent, in
  recipe order, with its 95 % bootstrap CI (``DIR/figure3.json``, drawn with the harness's
  reproducible figure settings), and the same numbers as a table;
- **Gate decisions**: per checkpoint stage, its baseline, verdict, policy and the gate's lines;
- **Lineage**: the graph of stages and external inputs from the manifests (lineage.py), as an
  inline SVG and as a table of every edge with the hash its manifest recorded.

The Figure-3 points and the lineage are also embedded as JSON (``<script type="application/json"
id="figure3-data">`` / ``id="lineage-data">``) so a reader, or a test, can take them back. A
directory without ``recipe.json`` is refused (one line, exit 2); a recipe run without an
``eval:`` block still gets its lineage, and the page says why Figure 3, the suite and the gates
are absent.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.report import tables
from glotbench.harness.report.figures import COLOURS, to_data_uri
from glotbench.harness.report.html import Section, build_report, figure, rows_table, write_report
from glotbench.harness.store.schema import JudgeRecord, RunRecord
from glotbench.training.recipe.evaluate import EVAL_DIR, JUDGE_DIR, RUN_DIR
from glotbench.training.recipe.gating import FIGURE3, PAIR_DIR
from glotbench.training.recipe.lineage import edge_hash, lineage, lineage_svg, located
from glotbench.training.recipe.runner import RECORD, read_record


def recipe_report(root: Path, output: Path, title: str | None = None) -> dict:
    """Write the report of the recipe run in ``root`` to ``output``; what it holds, in short."""
    root = Path(root)
    record = read_record(root) if root.is_dir() else {}
    if not record:
        raise GlotbenchError(f"{root} holds no {RECORD} (not a recipe directory)",
                             "give the -o directory of a glotbench recipe run")
    evaluated = {n: located(root, e["output"]) / EVAL_DIR for n in record["order"]
                 if ((e := record["stages"][n]).get("eval") or {}).get("state") == "done"}
    fig3 = read_figure3(root)
    why = absent_reason(record, fig3)
    graph = lineage(record, root)
    sections = [Section("figure3", "Figure 3: win-rate against the opponent per stage", figure3_section(fig3, why)),
                Section("gates", "Gate decisions", gates_section(record, why)),
                Section("lineage", "Lineage", lineage_section(graph))]
    runs = [RunRecord.read(d / RUN_DIR) for d in evaluated.values()]
    judges = [JudgeRecord.read(j) for d in evaluated.values()
              for j in sorted(d.glob(f"{PAIR_DIR}*"), key=lambda p: p.name != JUDGE_DIR) if j.is_dir()]
    leaderboard, per_language, notes = suite_frames(runs, list(evaluated))
    name = Path(record["recipe"]).name
    page = build_report(leaderboard, per_language, runs, judges, title or f"recipe {name}: {root.name}",
                        language_notes=notes, sections=sections)
    write_report(page, Path(output))
    return {"report": str(output), "points": len((fig3 or {}).get("points") or []), "stages": len(record["order"]),
            "edges": len(graph["edges"])}


def read_figure3(root: Path) -> dict | None:
    path = root / FIGURE3
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise GlotbenchError(f"{path} is not valid JSON", "rerun glotbench recipe run: it rewrites it") from None


def absent_reason(record: dict, fig3: dict | None) -> str | None:
    """Why there is no Figure 3 (None when there is one)."""
    if fig3 and fig3.get("points"):
        return None
    if not any(e.get("eval") for e in record["stages"].values()):
        return "the recipe has no eval: block, so no checkpoint stage was evaluated"
    if fig3 is None:
        return f"{FIGURE3} is missing (no checkpoint stage finished its evaluation yet)"
    return "no checkpoint stage finished its evaluation yet"


def win_rate_figure(points: list[dict], task: str | None, judge: str | None) -> Figure:
    """Figure 3: one marker per evaluated stage (recipe order) with its 95 % CI; 50 % dotted.
    Ties count ½, as status, the gate and the table's headline column."""
    fig = Figure(figsize=(max(4.5, 1.5 + 1.1 * len(points)), 3.6), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(points))
    for xi, p in zip(x, points):
        if p.get("win_rate_ties_half") is None:
            ax.text(xi, 52, "n/a", ha="center", fontsize=8)
            continue
        rate, ci = 100 * p["win_rate_ties_half"], p.get("win_rate_ties_half_ci95")
        err = None if not ci else [[max(rate - 100 * ci[0], 0)], [max(100 * ci[1] - rate, 0)]]
        ax.errorbar(xi, rate, yerr=err, fmt="o", color=COLOURS["win"], capsize=4, linewidth=1.2)
        ax.annotate(f"{rate:.1f}", (xi, rate), textcoords="offset points", xytext=(8, -3), fontsize=8)
    rates = [100 * p["win_rate_ties_half"] if p.get("win_rate_ties_half") is not None else np.nan for p in points]
    ax.plot(x, rates, color=COLOURS["win"], linewidth=0.8, alpha=0.6)
    ax.axhline(50, color="black", linewidth=0.8, linestyle=":")
    ax.set_xticks(x, [p["stage"] for p in points], fontsize=8)
    ax.set_xlim(-0.5, len(points) - 0.5)
    ax.set_ylim(0, 100)
    ax.set_ylabel("win-rate vs opponent, ties ½ (%)")
    ax.set_title(f"{task or '?'}, judge {judge or '?'}", fontsize=9)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def figure3_section(fig3: dict | None, why: str | None) -> str:
    if why:
        return f'<p class="warning" id="figure3-absent">No Figure 3: {html.escape(why)}.</p>'
    points = fig3["points"]
    tasks = list(dict.fromkeys(t for p in points for t in p.get("suite") or {}))
    head = ["stage", "kind", "win-rate %", "95% CI", "ties ½ %", "95% CI (ties ½)", "n",
            *(f"{t} {points[0]['suite'].get(t, {}).get('metric', '')}".strip() for t in tasks), "gate"]
    rows = [[p["stage"], p["kind"], pct(p.get("win_rate")), ci_text(p.get("win_rate_ci95")),
             pct(p.get("win_rate_ties_half")), ci_text(p.get("win_rate_ties_half_ci95")), p.get("n"),
             *(scaled((p.get("suite") or {}).get(t)) for t in tasks), p.get("gate")] for p in points]
    uri = to_data_uri(win_rate_figure(points, fig3.get("task"), fig3.get("judge")))
    note = (f"Opponent {fig3.get('opponent')}; task {fig3.get('task')}; judge {fig3.get('judge')}. "
            f"{fig3.get('win_rate', '')}. Suite columns: the headline metric's macro average.")
    return (figure(uri, "Figure 3: each checkpoint stage's win-rate against the opponent, 95 % CI")
            + rows_table("figure3-table", head, rows) + f'<p class="note">{html.escape(note)}</p>'
            + json_blob("figure3-data", points))


def gates_section(record: dict, why: str | None) -> str:
    decided = [(n, e["eval"]["gate"]) for n in record["order"]
               if (e := record["stages"][n]).get("eval") and (e["eval"].get("gate"))]
    if not decided:
        return f'<p class="note" id="gates-absent">No gate decisions: {html.escape(why or "none recorded")}.</p>'
    rows = [[n, g.get("baseline") or "–", g.get("verdict"), "yes" if g.get("failed") else "no", g.get("policy")]
            for n, g in decided]
    lines = "".join(f'<details open><summary>{html.escape(n)}: {html.escape(str(g.get("verdict")))}</summary><ul>'
                    + "".join(f"<li><code>{html.escape(line)}</code></li>" for line in g.get("lines") or [])
                    + "</ul></details>" for n, g in decided)
    return rows_table("gate-table", ["stage", "baseline", "verdict", "fails", "policy"], rows, "{}") + lines


def lineage_section(graph: dict) -> str:
    """The SVG; the stages (recipe order) with their hashes; every edge with the hash its manifest
    recorded (a merge's inputs: one hash per file)."""
    names = {n["id"]: n for n in graph["nodes"]}
    stages = [[n["id"], n["kind"], n.get("state"), n["sha256"], n.get("config_sha256") or "not finished",
               "; ".join(n.get("read_as") or []) or "–", n.get("manifest_file") or "–"]
              for n in graph["nodes"] if n["type"] == "stage"]
    edges = []
    for e in graph["edges"]:
        src = names[e["from"]]
        source = f"stage {src['id']}" if src["type"] == "stage" else f"{src.get('role')} input"
        edges.append([e["to"], e["role"], source, e.get("path") or "–", edge_hash(e)])
    note = ("Boxes: blue = recipe stages (with their recipe hash), grey = external inputs; arrows from a parent "
            "to the stage that read it, labelled with its role. Hover for full paths and hashes.")
    return (f'<div style="overflow-x:auto">{lineage_svg(graph)}</div><p class="note">{note}</p><h3>Stages</h3>'
            + rows_table("lineage-stages", ["stage", "kind", "state", "recipe hash", "config sha256",
                                            "output sha256 (as its consumers read it)", "manifest"],
                         stages, "{}")
            + "<h3>Inputs (edges)</h3>"
            + rows_table("lineage-edges", ["stage", "role", "from", "path", "sha256"], edges, "{}")
            + json_blob("lineage-data", graph))


def suite_frames(runs: list[RunRecord], stages: list[str]) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], list]:
    """The harness's leaderboard and per-language frames of the stages' eval runs, rows named by
    stage (every eval run directory is called ``run``, so the table's own labels would not tell)."""
    scored = [(r, s) for r, s in zip(runs, stages) if r.scored_tasks()]
    if not scored:
        return pd.DataFrame(), {}, []
    leaderboard = tables.summary_frame([r for r, _ in scored])
    labels = dict(zip(leaderboard.index, (s for _, s in scored)))
    per_language = {}
    tables_, notes = tables.language_tables([r for r, _ in scored])
    for t in tables_:
        frame = t.value.rename(index=labels).rename_axis("stage")
        frame.attrs["notes"] = [relabel(w, labels) for w in t.warnings]
        per_language[f"{t.task} · {t.metric}"] = frame
    attrs = leaderboard.attrs
    out = leaderboard.rename(index=labels).rename_axis("stage")
    out.attrs = {**attrs, "marks": {c: {labels.get(r, r): m for r, m in by.items()}
                                    for c, by in (attrs.get("marks") or {}).items()},
                 "warnings": [relabel(w, labels) for w in attrs.get("warnings") or []]}
    return out, per_language, [relabel(n, labels) for n in notes]


def relabel(text: str, labels: dict[str, str]) -> str:
    for old in sorted(labels, key=len, reverse=True):
        text = text.replace(old, labels[old])
    return text


def json_blob(ident: str, value) -> str:
    """Data for readers of the page: not executed (type application/json); ``</`` escaped."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False).replace("</", "<\\/")
    return f'<script type="application/json" id="{ident}">{text}</script>'


def pct(x):
    return None if x is None else 100 * x


def scaled(s: dict | None):
    if not s or s.get("value") is None:
        return None
    return s["value"] if s.get("metric") in tables.UNSCALED else 100 * s["value"]


def ci_text(ci) -> str | None:
    return None if not ci else f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f}"
