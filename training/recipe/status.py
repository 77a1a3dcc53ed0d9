"""``glotbench recipe status DIR``: the recipe's graph in order, each stage's state, time,
output hash and headline.

States: ``done`` (its output is finished and the recipe still computes the same hash),
``stale`` (finished, but the recipe file or an input changed since: the next run redoes it),
``running`` (a run holds the directory and is in this stage), ``pending`` (not finished yet;
``interrupted`` or ``failed`` when a run started it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError
from glotbench.training.recipe.evaluate import run_sha256
from glotbench.training.recipe.resolve import finished, plan
from glotbench.training.recipe.runner import RECORD, held, read_record
from glotbench.training.recipe.schema import load_recipe


@dataclass(frozen=True)
class StageStatus:
    name: str
    kind: str
    after: tuple[str, ...]
    state: str
    sha256: str
    seconds: float | None
    headline: str
    evaluation: str = ""
    """The eval headline and gate decision of a checkpoint stage ('' when not evaluated)."""
    eval_seconds: float = 0.0
    """Seconds its evaluation took (eval run, judging, gate) when it last did the work."""


def stage_states(root: Path) -> tuple[list[StageStatus], str]:
    """Each stage's status, and a note on how current hashes were known."""
    root = Path(root)
    record = read_record(root)
    if not record:
        raise GlotbenchError(f"{root} holds no {RECORD}", "give the -o directory of a glotbench recipe run")
    current: dict[str, str] = {}
    spec = None
    note = f"recipe: {record['recipe']}"
    try:
        recipe = load_recipe(Path(record["recipe"]))
        current, spec = {p.name: p.sha256 for p in plan(recipe, root)}, recipe.evaluation
    except GlotbenchError as exc:  # the file moved or broke: show what the record says
        note += f" (not readable now: {exc.problem}; states as recorded)"
    out, live = [], held(root)
    for name in record["order"]:
        entry = record["stages"][name]
        done = finished(Path(entry["output"])) is not None
        if done and current and current.get(name) != entry["sha256"]:
            state = "stale"
        elif done:
            state = "done"
        elif live and entry["state"] == "running":
            state = "running"
        else:
            state = {"running": "pending (interrupted)", "interrupted": "pending (interrupted)",
                     "failed": "pending (failed)"}.get(entry["state"], "pending")
        out.append(StageStatus(name, entry["kind"], tuple(entry["after"]), state, entry["sha256"],
                               entry.get("seconds"), entry.get("headline") or "",
                               evaluation(entry.get("eval"), spec and run_sha256(spec, entry["sha256"])),
                               sum(((entry.get("eval") or {}).get("seconds") or {}).values())))
    return out, note


def evaluation(ev: dict | None, current_sha256: str | None = None) -> str:
    """``eval: <headline>; gate <verdict> [against <stage>]`` (or the eval's state when not done);
    ``stale`` when the recipe's eval block no longer computes the recorded eval run's hash."""
    if not ev:
        return ""
    if current_sha256 and ev.get("run_sha256") and ev["run_sha256"] != current_sha256:
        return f"eval: stale (the eval block changed; the next run redoes it); was {ev.get('headline')}"
    if ev.get("state") != "done":
        return f"eval: {ev.get('state')}" + (f" ({ev['error']})" if ev.get("error") else "")
    gate = ev.get("gate") or {}
    against = f" against {gate['baseline']}" if gate.get("baseline") else ""
    fails = f", failed: policy {gate.get('policy')}" if gate.get("failed") else ""
    took = sum((ev.get("seconds") or {}).values())
    took = f" ({took:.1f} s: " + ", ".join(f"{k} {v:.1f}" for k, v in ev["seconds"].items()) + ")" if took else ""
    return f"eval: {ev.get('headline')}; gate {gate.get('verdict')}{against}{fails}{took}"


def status_text(root: Path) -> str:
    rows, note = stage_states(root)
    width = max(len(r.name) for r in rows)
    lines = [note]
    for r in rows:
        time_ = f"{r.seconds:8.1f} s" if r.seconds is not None else " " * 10
        after = f" ← {', '.join(r.after)}" if r.after else ""
        lines.append(f"{r.name:<{width}}  {r.kind:<16} {r.state:<21} {time_}  {r.sha256[:12]}  {r.headline}{after}")
        if r.evaluation:
            lines.append(f"{'':<{width}}  {r.evaluation}")
    total = sum(r.seconds or 0 for r in rows)
    evals = sum(r.eval_seconds for r in rows)
    done = sum(r.state == "done" for r in rows)
    lines.append(f"{done}/{len(rows)} stages done, {total:.1f} s of stage time recorded"
                 + (f" (+ {evals:.1f} s of evaluation)" if evals else ""))
    return "\n".join(lines)
