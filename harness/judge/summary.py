"""The text ``glotbench judge`` prints: win/tie/loss per language, macro, Bradley–Terry, usage."""

from __future__ import annotations


def format_summary(out: dict) -> str:
    lines = []
    for pair, by_task in out["results"].items():
        for task, s in by_task.items():
            lines.append(f"{pair} — {task} (win = first model preferred)")
            lines.append(f"{'lang':<10} {'win':>5} {'tie':>5} {'loss':>5} {'inval':>5} {'win-rate':>9} "
                         f"{'95% CI':>15} {'ties ½':>7} {'flip':>6}")
            for lang, x in s["languages"].items():
                ci = x["win_rate_ci95"]
                lines.append(f"{lang:<10} {x['wins']:>5} {x['ties']:>5} {x['losses']:>5} {x['invalid']:>5} "
                             f"{_pct(x['win_rate']):>9} {_ci(ci):>15} {_pct(x['win_rate_ties_half']):>7} "
                             f"{_pct(x['order_flip_rate']):>6}")
            m = s["macro"]
            lines.append(f"{'macro':<10} {'':>5} {'':>5} {'':>5} {'':>5} {_pct(m['win_rate']):>9} "
                         f"{_ci(m['win_rate_ci95']):>15} {_pct(m['win_rate_ties_half']):>7}")
            lines.append("")
    for task, bt in out.get("bradley_terry", {}).items():
        if "scores" not in bt:  # a failed fit is shown with its reason, never left out
            lines.append(f"Bradley–Terry ({task}): no strengths — {bt.get('error', 'no fit recorded')}")
            continue
        lines.append(f"Bradley–Terry ({task}, Elo scale, {bt['anchor']} = 0): " + ", ".join(
            f"{m} {bt['scores'][m]:+.0f} [{_ci(bt['ci95'][m], '{:+.0f}')}]" for m in bt["models"]))
        for model, reason in bt.get("not_ranked", {}).items():
            lines.append(f"  {model}: not ranked — {reason}")
    c, u = out["counts"], out["usage"]
    lines.append(f"judgments: {c.get('judgments', 0)} ({c.get('invalid', 0)} invalid verdicts, "
                 f"{c.get('api_errors', 0)} API errors, {c.get('identical', 0)} identical answers, "
                 f"{c.get('reasked', 0)} re-asked)")
    rm = u.get("reward_model")
    if rm is not None:  # a scalar reward model judged: no requests, no tokens, no cost
        lines.append(f"reward model: {rm['completions']} distinct completions, {rm['computed']} scored now, "
                     f"{rm['cached']} from cache ({rm['non_finite']} non-finite, {rm['unscorable']} unscorable, "
                     f"{rm['truncated']} truncated); tie margin {out['config'].get('rm_tie_margin')}")
        return "\n".join(lines)
    retries = ", ".join(f"{k} {v}" for k, v in sorted(u["retries"].items())) or "none"
    cost = f"${u['cost_usd']:.4f}" if u["cost_usd"] is not None else "unknown (pass --judge-price)"
    lines.append(f"judge requests: {u['requests_sent']} sent, {u['from_cache']} from cache; retries: {retries}; "
                 f"tokens {u['prompt_tokens']} in / {u['completion_tokens']} out; est. cost {cost}")
    return "\n".join(lines)


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _ci(ci, fmt: str = "{:.1f}") -> str:
    if ci is None:
        return "-"
    scale = 100 if fmt == "{:.1f}" else 1
    return f"{fmt.format(scale * ci[0])}–{fmt.format(scale * ci[1])}"
