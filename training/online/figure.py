"""The online-DPO figure (``metrics.png``): four panels over iterations (0 = the initial policy)
from ``metrics.json`` — held-out reward with its 95 % CI (overall, and per language), mean
completion length (the usual reward-hacking signal), the KL estimate to the initial policy
with its CI, and the win-rate against the initial policy beside DPO's final reward accuracy.
Byte-for-byte reproducible, as the report's figures (no date or software stamp, 150 dpi)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from glotbench.harness.report.figures import PNG_DPI

_METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}


def online_figure(metrics: dict, path: str | Path) -> Path:
    """Write the figure of ``metrics`` (a run's metrics.json) to ``path`` (.png or .svg)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".")
    if fmt not in _METADATA:
        raise ValueError(f"online_figure: {path} must end in .png or .svg")
    with matplotlib.rc_context({"svg.hashsalt": "glotbench", "svg.fonttype": "path"}):
        panels(metrics).savefig(path, format=fmt, dpi=PNG_DPI, metadata=_METADATA[fmt])
    return path


def panels(metrics: dict) -> Figure:
    s = metrics["series"]
    x = list(range(len(s["held_out_reward"])))
    fig = Figure(figsize=(10, 7), layout="constrained")
    (ax_r, ax_l), (ax_k, ax_w) = fig.subplots(2, 2)
    cis = s["held_out_reward_ci95"]
    _line(ax_r, x, s["held_out_reward"], "all", cis=cis, color="black", width=2)
    for lang, values in s["held_out_reward_by_language"].items():
        if len(s["held_out_reward_by_language"]) > 1:
            _line(ax_r, x, values, lang, width=1)
    ax_r.set(title="Held-out reward (95 % CI)", ylabel="mean reward")
    ax_r.legend(fontsize=7)
    _line(ax_l, x, s["length_tokens"], "tokens", color="tab:orange", width=2)
    ax_l.set(title="Mean completion length", ylabel="tokens")
    kl = [it["held_out"]["after"]["kl_to_initial"]["ci95"] for it in metrics["iterations"]]
    _line(ax_k, x, s["kl_to_initial"], "KL", cis=[None, *kl], color="tab:red", width=2)
    ax_k.set(title="KL estimate to the initial policy (95 % CI)", ylabel="nats per completion")
    _line(ax_w, x, s["win_rate_vs_initial"], "win-rate vs initial", color="tab:green", width=2)
    _line(ax_w, x, [None, *s["dpo_reward_accuracy_last"]], "DPO reward accuracy (last step)", color="tab:purple",
          width=1)
    ax_w.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
    ax_w.set(title="Win-rate and DPO reward accuracy", ylim=(0, 1))
    ax_w.legend(fontsize=7)
    betas = ", ".join(f"{b:g}" for b in metrics["beta"])
    for ax in (ax_r, ax_l, ax_k, ax_w):
        ax.set_xticks(x)
        ax.set_xlabel(f"iteration (β: {betas})")
        ax.grid(alpha=0.3)
    return fig


def _line(ax, x, values, label, *, cis=None, color=None, width=1.0) -> None:
    points = [(i, v) for i, v in zip(x, values) if v is not None]
    if not points:
        return
    xs, ys = zip(*points)
    ax.plot(xs, ys, marker="o", label=label, color=color, linewidth=width)
    if cis:
        bars = [(i, v, c) for i, v, c in zip(x, values, cis) if v is not None and c is not None]
        if bars:
            bx, by, bc = zip(*bars)
            ax.errorbar(bx, by, yerr=[[v - c[0] for v, c in zip(by, bc)], [c[1] - v for v, c in zip(by, bc)]],
                        fmt="none", ecolor=color, capsize=3)
