"""The fixed gate's result as Markdown: the verdict line and one table per task metric, sized
for a CI comment."""

from __future__ import annotations

from glotbench.harness.gate.verdicts import VERDICT_RANK

_UNITS = {"accuracy": "values in %, Δ and margin in points", "win_rate": "win-rate (ties ½) in %, "
          "baseline 50 by definition; Δ and margin in points", "chrf": "chrF++ points", "mean": "raw scores"}


_P0 = {"accuracy": "exact McNemar", "chrf": "sacrebleu paired bootstrap"}


def format_markdown(result: dict) -> str:
    """A compact summary for a CI comment: the verdict line, one table per task metric."""
    counts = {v: sum(t["verdict"] == v for t in result["tasks"].values()) for v in VERDICT_RANK}
    policy, prov = result["policy"], result["provenance"]
    verdict = result["verdict"]
    note = ""
    if verdict == "inconclusive":
        note = f" (counted as {'a failure' if policy['on_inconclusive'] == 'fail' else 'a pass'} by the policy)"
    lines = [f"## glotbench gate: {verdict.upper()}{note}", "",
             f"Candidate `{prov['candidate']['model']}` ({prov['candidate']['path']}) against baseline "
             f"`{prov['baseline']['model']}` ({prov['baseline']['path']}): {counts['pass']} task(s) pass, "
             f"{counts['regression']} regress, {counts['inconclusive']} inconclusive."]
    lines += [f"\nNote: {n}" for n in result.get("notes", [])]
    level = round(100 * (1 - 2 * policy["alpha"]))
    for task, t in result["tasks"].items():
        for metric, f in t["metrics"].items():
            kind = f["kind"]
            lines += ["", f"### {task} · {metric}: {f['verdict']}", "",
                      f"| lang | n | baseline | candidate | Δ | {level}% CI | margin | p non-inf. (BH) "
                      "| p regr. (BH) | p Δ=0 | verdict |",
                      "|:--|--:|--:|--:|--:|:--|--:|--:|--:|--:|:--|"]
            rows = [(lang, v, "_bh") for lang, v in f["languages"].items()] + [("**pooled**", f["pooled"], "")]
            lines += [_row(lang, v, bh, kind) for lang, v, bh in rows]
            lines.append(f"\n{_UNITS[kind]}" + (f"; p Δ=0: {_P0[kind]}, two-sided" if kind in _P0 else ""))
    if result["inconclusive"]:
        lines += ["", "Inconclusive: " + ", ".join(result["inconclusive"])]
    if result["not_compared"]:
        lines += ["", "Not compared: " + "; ".join(
            f"{x['task']}{'/' + x['lang'] if x['lang'] else ''} ({x['reason']})" for x in result["not_compared"])]
    lines += [f"\nWarning: {w}" for w in result["warnings"]]
    lines += ["", f"<sub>One-sided tests of H0: Δ ≤ −margin at α = {policy['alpha']}; Benjamini–Hochberg "
              f"across languages; {policy['resamples']} seeded paired bootstrap resamples (seed "
              f"{policy['seed']}); default margins are the MDE at power {policy['power']}; policy: "
              f"{policy['source']}.</sub>"]
    return "\n".join(lines) + "\n"


def _row(lang: str, v: dict, bh: str, kind: str) -> str:
    p0 = v.get("p_mcnemar", v.get("p_sacrebleu"))
    ci = "–" if v["ci"] is None else "[" + ", ".join(_num(x, kind, sign=True) for x in v["ci"]) + "]"
    return (f"| {lang} | {v['n']} | {_num(v['baseline'], kind)} | {_num(v['candidate'], kind)} | "
            f"{_num(v['delta'], kind, sign=True)} | {ci} | {_num(v['margin'], kind)} ({v['margin_source']}) | "
            f"{_p(v['p_noninferior' + bh])} | {_p(v['p_regression' + bh])} | {'–' if p0 is None else _p(p0)} | "
            f"{v['verdict']} |")


def _num(x: float, kind: str, sign: bool = False) -> str:
    scale, digits = {"accuracy": (100, 1), "win_rate": (100, 1), "chrf": (1, 2)}.get(kind, (1, 3))
    return f"{x * scale:{'+' if sign else ''}.{digits}f}"


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"
