"""Figures of the Aya Expanse report from the results store, as matplotlib ``Figure`` objects.

- :func:`win_tie_loss_bars`: one stacked bar per opponent pair (the report's Figures 1–2).
- :func:`language_win_rates`: per-language win-rates against one opponent with 95 % CIs
  (the report's Figure 4).
- :func:`score_heatmap`: models × languages score grid; missing cells are hatched, never 0.
- :func:`save` / :func:`to_data_uri`: PNG and SVG files, or data URIs for the HTML report.

Figures are built on ``matplotlib.figure.Figure`` directly, never through pyplot: no global
figure registry, no interactive backend, so building figures in tests or threads is safe.
Output is reproducible byte for byte: SVG ids come from a fixed hash salt, and the date and
software stamps are left out of both formats.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

if TYPE_CHECKING:
    import pandas as pd

# Colour-blind-safe palette; the tie segment is pale and the invalid one a darker hatched grey
# so the two greys cannot be confused.
COLOURS = {"win": "#2c7bb6", "tie": "#d9d9d9", "loss": "#d7191c", "invalid": "#7f7f7f"}
MISSING = "–"
"""Annotation of a missing cell (heatmaps) and of a missing value (report tables)."""
PNG_DPI = 150
_SVG_RC = {"svg.hashsalt": "glotbench", "svg.fonttype": "path"}
_META = {"svg": {"Date": None, "Creator": None}, "png": {"Software": None}}
TiesAs = Literal["stated", "half"]
"""``stated``: wins / (wins + ties + losses), as the Aya Expanse report states win-rates;
``half``: ties count ½."""


def win_tie_loss_bars(judge: dict, task: str | None = None) -> Figure:
    """Win / tie / loss shares of model A, one horizontal stacked bar per pair (and task).

    ``judge`` is a ``judge.json`` document; ``task`` picks one task, None draws every task
    (the task then joins the bar label when there is more than one). Counts are the pooled
    ones. Without invalid verdicts the shares are the report's (over wins + ties + losses);
    with some, every share is over all judgments and invalid verdicts get their own grey
    segment, so that a bar still sums to 100 % and nothing leaves the denominator silently.
    """
    rows = _pairs(judge, task)
    labels, shares = [], []
    multi_task = len({t for _, t, _ in rows}) > 1
    for pair, t, summary in rows:
        counts = {k: summary["pooled"].get(k) or 0 for k in ("wins", "ties", "losses", "invalid")}
        total = sum(counts.values()) if counts["invalid"] else counts["wins"] + counts["ties"] + counts["losses"]
        shares.append([100 * counts[k] / total if total else math.nan for k in counts])
        labels.append(f"{pair} ({t})" if multi_task else pair)
    any_invalid = any(s[3] > 0 for s in shares)
    fig = Figure(figsize=(9, 1.2 + 0.6 * len(rows)), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(rows))[::-1]  # the first pair on top, as listed in judge.json
    left = np.zeros(len(rows))
    names = ("win", "tie", "loss", "invalid") if any_invalid else ("win", "tie", "loss")
    for k, name in enumerate(names):
        width = np.array([s[k] for s in shares])
        ax.barh(y, np.nan_to_num(width), left=left, height=0.6, color=COLOURS[name], label=name,
                hatch="//" if name == "invalid" else None, edgecolor="white", linewidth=0.5)
        for yi, x0, w in zip(y, left, width):
            if w >= 4:  # narrower segments keep their number in the legend-less bar tail
                ax.text(x0 + w / 2, yi, f"{w:.1f}%", ha="center", va="center", fontsize=8,
                        color="black" if name == "tie" else "white")
        left = left + np.nan_to_num(width)
    for yi, s in zip(y, shares):
        if any(math.isnan(v) for v in s):
            ax.text(1, yi, "no valid verdicts", va="center", fontsize=8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of judgments" if any_invalid else "% of valid verdicts (model A's view)")
    ax.set_title(f"Win / tie / loss{'' if task is None else f' — {task}'}")
    fig.legend(ncols=len(names), loc="outside lower center", frameon=False, fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def language_win_rates(judge: dict, pair: str, task: str, ties: TiesAs = "stated") -> Figure:
    """Per-language win-rate of model A in ``pair`` on ``task`` with bootstrap 95 % CIs.

    Bars are sorted by win-rate (languages without a valid verdict last, marked "n/a"); the
    macro average, when there is more than one language, is the last, darker bar. The dotted
    line marks 50 %, where the two models are even.
    """
    if ties not in ("stated", "half"):
        raise ValueError(f"ties={ties!r}: expected 'stated' or 'half'")
    results = judge.get("results", {})
    if pair not in results:
        raise ValueError(f"pair {pair!r} is not in this judge file; it has: {', '.join(results) or 'none'}")
    if task not in results[pair]:
        raise ValueError(f"task {task!r} was not judged for {pair!r}; judged: {', '.join(results[pair]) or 'none'}")
    summary = results[pair][task]
    key = "win_rate" if ties == "stated" else "win_rate_ties_half"
    langs = sorted(summary.get("languages", {}).items(),
                   key=lambda kv: (kv[1].get(key) is None, -(kv[1].get(key) or 0), kv[0]))
    entries = [(lang, s.get(key), s.get(f"{key}_ci95")) for lang, s in langs]
    macro = summary.get("macro") or {}
    if len(entries) > 1:
        entries.append(("macro", macro.get(key), macro.get(f"{key}_ci95")))
    fig = Figure(figsize=(max(5.0, 1.2 + 0.45 * len(entries)), 3.6), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(entries))
    for xi, (lang, rate, ci) in zip(x, entries):
        colour = "#1a3f5c" if lang == "macro" else COLOURS["win"]
        if rate is None:
            ax.text(xi, 2, "n/a", ha="center", va="bottom", fontsize=8, rotation=90)
            continue
        ax.bar(xi, 100 * rate, width=0.7, color=colour)
        if ci is not None:
            lo, hi = 100 * rate - 100 * ci[0], 100 * ci[1] - 100 * rate
            ax.errorbar(xi, 100 * rate, yerr=[[max(lo, 0)], [max(hi, 0)]], color="black",
                        capsize=3, linewidth=1)
    ax.axhline(50, color="black", linewidth=0.8, linestyle=":")
    ax.set_xticks(x, [e[0] for e in entries], rotation=45 if len(entries) > 8 else 0, fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("win-rate (%)" + (", ties ½" if ties == "half" else ""))
    ax.set_title(f"{pair} — {task}", fontsize=9)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def score_heatmap(frame: pd.DataFrame, title: str, fmt: str = "{:.1f}") -> Figure:
    """Annotated heatmap of a models × languages ``pandas.DataFrame`` (index × columns).

    Missing cells (NaN) are left white, hatched and annotated with "–": a language a model
    was not run on must never read as a score of 0.
    """
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"score_heatmap({title!r}): empty frame of shape {frame.shape}")
    try:
        values = frame.to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"score_heatmap({title!r}): cells must be numbers or NaN ({exc})") from None
    missing = np.isnan(values)
    rows, cols = values.shape
    fig = Figure(figsize=(max(4.0, 1.8 + 0.7 * cols), max(2.0, 1.2 + 0.45 * rows)), layout="constrained")
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    finite = values[~missing]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if vmin == vmax:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    for (i, j), value in np.ndenumerate(values):
        if missing[i, j]:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///",
                                   edgecolor="#bbbbbb", linewidth=0))
            ax.text(j, i, MISSING, ha="center", va="center", fontsize=8, color="#555555")
            continue
        r, g, b, _ = cmap((value - vmin) / (vmax - vmin))
        dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
        ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=8,
                color="white" if dark else "black")
    ax.set_xticks(range(cols), [str(c) for c in frame.columns], rotation=45 if cols > 6 else 0,
                  ha="right" if cols > 6 else "center", fontsize=8)
    ax.set_yticks(range(rows), [str(r) for r in frame.index], fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def save(fig: Figure, path_without_suffix: str | Path) -> list[Path]:
    """Write ``<path>.png`` (150 dpi) and ``<path>.svg``; return both paths."""
    base = Path(path_without_suffix)
    base.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for fmt in ("png", "svg"):
        path = base.with_name(f"{base.name}.{fmt}")
        path.write_bytes(_render(fig, fmt))
        out.append(path)
    return out


def to_data_uri(fig: Figure, fmt: Literal["svg", "png"] = "svg") -> str:
    """The figure as a base64 ``data:`` URI, for an ``<img>`` that needs no network."""
    mime = {"svg": "image/svg+xml", "png": "image/png"}
    if fmt not in mime:
        raise ValueError(f"fmt={fmt!r}: expected 'svg' or 'png'")
    return f"data:{mime[fmt]};base64,{base64.b64encode(_render(fig, fmt)).decode('ascii')}"


def _render(fig: Figure, fmt: str) -> bytes:
    buf = io.BytesIO()
    # The hash salt is read from rcParams at save time; rc_context restores it afterwards.
    with matplotlib.rc_context(_SVG_RC):
        fig.savefig(buf, format=fmt, dpi=PNG_DPI, metadata=_META[fmt])
    return buf.getvalue()


def _pairs(judge: dict, task: str | None) -> list[tuple[str, str, dict]]:
    results = judge.get("results", {})
    rows = [(pair, t, s) for pair, by_task in results.items() for t, s in by_task.items()
            if task is None or t == task]
    if not rows:
        judged = sorted({t for by_task in results.values() for t in by_task})
        raise ValueError(f"no judged pair for task {task!r}; judged tasks: {', '.join(judged) or 'none'}")
    return rows
