"""``glotbench report`` behind the CLI: read runs and judge directories, write the HTML report.

Directories are told apart by the file they hold (``run.json`` / ``judge.json``) and read
through :class:`~glotbench.harness.store.schema.RunRecord` and
:class:`~glotbench.harness.store.schema.JudgeRecord`, so a corrupt or foreign file is one
line (exit 2). Runs with a scored task make the leaderboard and the per-language
drill-down; runs with open-ended tasks only (generations, imported answers) appear in the
provenance, and their comparison is the judge section.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.naming import slug
from glotbench.harness.report import figures as figs
from glotbench.harness.report import tables
from glotbench.harness.report.html import build_report, write_report
from glotbench.harness.store.schema import JudgeRecord, RunRecord, kind_of


def read_store(paths: list[Path]) -> tuple[list[RunRecord], list[JudgeRecord]]:
    """The runs and judge directories among ``paths``, in the order given."""
    runs, judges = [], []
    for p in map(Path, paths):
        kind = kind_of(p)
        if kind == "judge":
            judges.append(JudgeRecord.read(p))
        elif kind == "run":
            runs.append(RunRecord.read(p))
        else:
            raise GlotbenchError(f"{p} is neither a run nor a judge directory (no run.json / judge.json)",
                                 "pass directories written by glotbench run or glotbench judge")
    return runs, judges


def report_from_store(paths: list[Path], output: Path, title: str = "glotbench report",
                      figures_dir: Path | None = None) -> dict:
    """Write the HTML report of ``paths`` (and, with ``figures_dir``, every figure as PNG and
    SVG); returns ``{"report": path, "files": [every file written]}``."""
    runs, judges = read_store(paths)
    scored = [r for r in runs if r.scored_tasks()]
    leaderboard = tables.summary_frame(scored) if scored else pd.DataFrame()
    language, dropped = tables.language_tables(scored) if scored else ([], [])
    per_language: dict[str, pd.DataFrame] = {}
    for t in language:
        frame = t.value.copy()
        frame.attrs["notes"] = list(t.warnings)
        per_language[f"{t.task} · {t.metric}"] = frame
    write_report(build_report(leaderboard, per_language, runs, judges, title, language_notes=dropped), Path(output))
    written = [Path(output)]
    if figures_dir is not None:
        written += _figures(per_language, judges, Path(figures_dir))
    return {"report": str(output), "files": [str(w) for w in written]}


def _figures(per_language: dict[str, pd.DataFrame], judges: list[JudgeRecord], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in per_language.items():
        written += figs.save(figs.score_heatmap(frame, name), folder / f"heatmap-{slug(name)}")
    for i, judge in enumerate(judges):
        for task in dict.fromkeys(t for _, t, _ in judge.pairs()):
            written += figs.save(figs.win_tie_loss_bars(judge.data, task), folder / f"judge{i}-{slug(task)}-bars")
            for pair, t, _ in judge.pairs():
                if t == task:
                    written += figs.save(figs.language_win_rates(judge.data, pair, task),
                                         folder / f"judge{i}-{slug(task)}-{slug(pair)}-languages")
    return written
