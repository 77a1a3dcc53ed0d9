"""The regression gate between checkpoint stages, and the Figure-3 data of a recipe run.

Each checkpoint stage's eval run is gated (``glotbench gate``'s library function, its policy from
the recipe's ``gate:`` block) against the eval run of its baseline: the nearest ancestor in the
graph that is itself a checkpoint stage (DPO after SFT; online DPO after DPO). The first one has
none: ``no baseline``. With ``eval.open_ended``, the two checkpoints' completions are judged
against each other (``eval/judge-vs-<baseline>/``) so the gate covers the win-rate too. The decision is the gate's verdict (pass | regression | inconclusive) and
whether it fails (``glotbench gate``'s exit 1: a regression, or inconclusive under the policy's
``on_inconclusive: fail``); runs the gate refuses to compare are the verdict ``error``, which
fails too (nothing vouches for the checkpoint). ``DIR/<stage>/eval/gate.json`` and ``gate.md``
hold the full result. The decision is kept under a hash of both runs' identities and the gate
block, so a rerun does not recompute it and any change to either side does.

``DIR/figure3.json``: one point per evaluated checkpoint stage in recipe order: the win-rate
against the opponent with its CI (from the judge directory's summary), the suite's headline
scores and the gate decision. The figure itself is drawn by ``glotbench recipe report``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import json_sha256, write_json_atomic, write_text_atomic
from glotbench.training.recipe.evalspec import EvalSpec, GateSpec
from glotbench.training.recipe.evaluate import judge_identity, judge_run, judged

FIGURE3 = "figure3.json"
FIGURE3_FORMAT = "glotbench-recipe-figure3/1"
NO_BASELINE = "no baseline"
PAIR_DIR = "judge-vs-"
"""``eval/judge-vs-<baseline stage>/``: this checkpoint's open-ended completions judged against the
baseline checkpoint's (``gate: {judge_previous: false}`` leaves open-ended tasks ungated)."""


def baseline_of(name: str, after: dict[str, tuple[str, ...]], checkpoints: set[str]) -> str | None:
    """The nearest checkpoint ancestor: breadth first, and among the checkpoints equally near, the
    one that comes last in the recipe's order (``after``'s order), so a merge of sft and dpo is
    gated against dpo, the checkpoint it follows."""
    order = {stage: i for i, stage in enumerate(after)}
    level, seen = list(after[name]), set()
    while level:
        level = [p for p in dict.fromkeys(level) if p not in seen]
        seen.update(level)
        found = [p for p in level if p in checkpoints]
        if found:
            return max(found, key=order.__getitem__)
        level = [q for p in level for q in after[p]]
    return None


def decide(root: Path, state: dict, baseline: str | None, baseline_state: dict | None, spec: GateSpec,
           evaluation: EvalSpec, *, progress: bool = False, echo=print) -> dict:
    """The gate decision of one checkpoint stage (computed, or as recorded under the same hash)."""
    if baseline is None:
        return {"baseline": None, "verdict": NO_BASELINE, "failed": False, "sha256": None,
                "lines": ["no baseline: the first checkpoint stage of the recipe"]}
    pair = None
    if evaluation.open_ended is not None and spec.judge_previous:
        # the two checkpoints' runs and the judge: not the opponent, whom this judging never sees
        pair = json_sha256({"candidate": state["run_sha256"], "baseline": baseline_state["run_sha256"],
                            "judge": judge_identity(evaluation)})
    sha = json_sha256({"candidate": state["run_sha256"], "baseline": baseline_state["run_sha256"],
                       "gate": spec.raw, "pair": pair})
    old = state.get("gate") or {}
    judgments = root / f"{PAIR_DIR}{baseline}" if pair else None
    if old.get("sha256") == sha and (judgments is None or judged(judgments)):
        return old
    from glotbench.harness.gate.fixed import exit_code, gate
    from glotbench.harness.gate.markdown import format_markdown

    decision = {"baseline": baseline, "baseline_run": baseline_state["run"], "sha256": sha,
                "judgments": None if judgments is None else str(judgments)}
    if judgments is not None and not (old.get("pair_sha256") == pair and judged(judgments)):
        if judgments.exists():
            shutil.rmtree(judgments)
        echo(f"judging {evaluation.open_ended.task} against {baseline}'s completions → {judgments}")
        judge_run(evaluation, Path(state["run"]), judgments, progress=progress, echo=echo,
                  against=Path(baseline_state["run"]))
    decision["pair_sha256"] = pair
    try:
        result = gate(Path(baseline_state["run"]), Path(state["run"]), spec.policy, judgments)
    except GlotbenchError as exc:
        for stale in ("gate.json", "gate.md"):  # an earlier decision's files must not pass for this one
            (root / stale).unlink(missing_ok=True)
        decision.update(verdict="error", failed=True, lines=[f"the gate refused to compare: {exc.problem}"])
        return decision
    write_json_atomic(root / "gate.json", json.loads(json.dumps(result, default=str)), indent=1)
    write_text_atomic(root / "gate.md", format_markdown(result) + "\n")
    decision.update(verdict=result["verdict"], failed=exit_code(result) == 1, lines=gate_lines(result))
    return decision


def gate_lines(result: dict) -> list[str]:
    """The gate's verdict and, per task metric, the pooled Δ with its CI and margin."""
    lines = [f"gate: {result['verdict']}"]
    for task, t in result["tasks"].items():
        for metric, f in t["metrics"].items():
            p = f["pooled"]
            scale = 100 if f["kind"] in ("accuracy", "win_rate") else 1
            ci = "" if p.get("ci") is None else f" [{scale * p['ci'][0]:+.1f}, {scale * p['ci'][1]:+.1f}]"
            lines.append(f"{task} {metric}: {f['verdict']} (Δ {scale * p['delta']:+.1f}{ci}, margin "
                         f"{scale * p['margin']:.1f}{' points' if scale == 100 else ''}, n {p['n']})")
    lines += [f"not compared: {x['task']}{'/' + x['lang'] if x['lang'] else ''} ({x['reason']})"
              for x in result["not_compared"]]
    lines += [f"warning: {w}" for w in result["warnings"]]
    return lines


def figure3(root: Path, record: dict, opponent: str | None) -> dict:
    """Write ``DIR/figure3.json`` from the record's evaluated stages; the data written."""
    points = []
    for name in record["order"]:
        entry = record["stages"][name]
        ev = entry.get("eval") or {}
        if ev.get("state") != "done":
            continue
        wr = ev.get("win_rate") or {}
        points.append({"stage": name, "kind": entry["kind"], "sha256": entry["sha256"], "run": ev.get("run"),
                       "judge": ev.get("judge"),
                       **{k: wr.get(k) for k in ("win_rate", "win_rate_ci95", "win_rate_ties_half",
                                                 "win_rate_ties_half_ci95", "n")},
                       "suite": {t: {"metric": s["metric"], "value": s["macro"], "n": s["n"]}
                                 for t, s in (ev.get("suite") or {}).items()},
                       "gate": (ev.get("gate") or {}).get("verdict")})
    judged = next((e["eval"]["win_rate"] for e in record["stages"].values()
                   if (e.get("eval") or {}).get("win_rate")), {})
    data = {"format": FIGURE3_FORMAT, "recipe": record["recipe"], "task": judged.get("task"),
            "judge": judged.get("judge"), "opponent": opponent,
            "win_rate": "the checkpoint's macro win-rate against the opponent; ties_half counts a tie as ½; "
                        "CIs are 95 % bootstrap intervals over prompts", "points": points}
    write_json_atomic(Path(root) / FIGURE3, data, indent=1)
    return data
