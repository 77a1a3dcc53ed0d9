"""The routing figure: which teacher wins where. A heatmap of win share (languages × teachers)
from ``routing.json`` (:func:`glotbench.training.arbitrage.routing.routing_stats`), each cell
annotated with its wins out of the language's routed prompts; a teacher that gave no candidate
in a language is hatched and marked "–", never drawn as 0 %.

Byte-for-byte reproducible, with the report's settings (:mod:`glotbench.harness.report.figures`):
no date or software stamp, a fixed SVG hash salt, 150 dpi PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from glotbench.harness.report.figures import MISSING, PNG_DPI, save

FORMATS = ("png", "svg")
_METADATA = {"svg": {"Date": None, "Creator": None}, "png": {"Software": None}}


def routing_figure(stats: dict, path: str | Path) -> Path:
    """Write the heatmap of ``stats`` (a routing.json mapping) to ``path`` (.png or .svg); return it."""
    path = Path(path)
    fmt = path.suffix.lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"routing_figure: {path} must end in .png or .svg")
    path.parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context({"svg.hashsalt": "glotbench", "svg.fonttype": "path"}):
        routing_heatmap(stats).savefig(path, format=fmt, dpi=PNG_DPI, metadata=_METADATA[fmt])
    return path


def routing_heatmap(stats: dict, title: str = "Reward routing: share of prompts won") -> Figure:
    """The heatmap Figure of ``stats`` (a routing.json mapping)."""
    teachers = list(stats["teachers"])
    langs = list(stats["languages"])
    if not teachers or not langs:
        raise ValueError("routing_figure: the routing statistics hold no teacher or no language")
    share = np.full((len(langs), len(teachers)), np.nan)
    wins = np.zeros_like(share)
    for i, lang in enumerate(langs):
        for j, t in enumerate(teachers):
            cell = stats["languages"][lang]["teachers"].get(t)
            if cell is not None:
                share[i, j] = cell["win_share"] if cell["win_share"] is not None else 0.0
                wins[i, j] = cell["wins"]
    fig = Figure(figsize=(max(4.5, 2.0 + 0.9 * len(teachers)), max(2.8, 1.4 + 0.45 * len(langs))),
                 layout="constrained")
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["Blues"].with_extremes(bad="white")
    image = ax.imshow(np.ma.masked_invalid(100 * share), cmap=cmap, vmin=0, vmax=100, aspect="auto")
    for (i, j), value in np.ndenumerate(share):
        if np.isnan(value):
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor="#bbbbbb", linewidth=0))
            ax.text(j, i, MISSING, ha="center", va="center", fontsize=8, color="#555555")
            continue
        routed = stats["languages"][langs[i]]["routed"]
        ax.text(j, i, f"{100 * value:.0f}%\n{int(wins[i, j])}/{routed}", ha="center", va="center", fontsize=7,
                color="white" if value > 0.6 else "black")
    ax.set_xticks(range(len(teachers)), teachers, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(langs)), langs, fontsize=8)
    ax.set_xlabel("teacher")
    ax.set_ylabel("language")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8, label="win share (%)")
    return fig


def write_routing_figure(stats: dict, path_without_suffix: str | Path) -> list[Path]:
    """Write ``<path>.png`` and ``<path>.svg`` of :func:`routing_heatmap`; return both paths."""
    return save(routing_heatmap(stats), path_without_suffix)
