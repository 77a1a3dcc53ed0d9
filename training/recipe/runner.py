"""``glotbench recipe run RECIPE -o DIR``: the recipe's stages in dependency order, each one
skipped when its content-addressed output is already finished.

```
DIR/recipe.json              the graph and each stage's state, hash, output, seconds, headline
DIR/.configs/<stage>-<h>.yaml   the config each stage ran with (references made concrete)
DIR/<stage>-<hash12>/        the stage's output, with its manifest (written last by the stage)
DIR/<stage>-<hash12>/eval/   with an eval: block, a checkpoint stage's eval run, judging, gate (evaluate.py)
DIR/figure3.json             each evaluated stage's win-rate vs the opponent and suite scores (gating.py)
```

A finished output (manifest present) is never recomputed; a stage whose hash changed gets a
new directory, the superseded one is removed once the new one is finished. A killed run
resumes: finished stages are skipped, the interrupted one starts again (online DPO, whose
directory is reused under the same hash, resumes inside itself; arbitrage and
translated-pairs find their generations in the request cache). A checkpoint stage is measured
right after it is done (or found done), before the next stage; a gate failing under
``policy: stop`` ends the run there (the CLI exits 1).
"""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import file_sha256, write_json_atomic
from glotbench.training.recipe.evaluate import RUN_DIR, eval_root, evaluate, read_state, write_state
from glotbench.training.recipe.evaluate import headline as eval_headline
from glotbench.training.recipe.gating import baseline_of, decide, figure3
from glotbench.training.recipe.resolve import (
    Planned,
    checkpoint,
    finished,
    plan,
    render,
    validate,
    write_config,
)
from glotbench.training.recipe.schema import KINDS, Recipe, load_recipe

TRASH = ".trash-"
RECORD = "recipe.json"
FORMAT = "glotbench-recipe/1"
RESUMES_IN_PLACE = ("online-dpo",)
# A headline per kind: the first match in the stage's summary (online DPO: its last iteration).
NUM = r"-?[\d.]+(?:e-?\d+)?"
HEADLINES = (rf"held-out pairwise accuracy {NUM} \[[^\]]*\]", rf"held-out log-prob margin {NUM} → {NUM}",
             rf"held-out reward {NUM} → {NUM}(?: \[[^\]]*\])?", rf"eval loss {NUM} → {NUM}", rf"loss {NUM} → {NUM}",
             r"\d+ prompts, \d+ candidates", r"\d+ pairs? kept")


def prepare(path: Path, root: Path) -> tuple[Recipe, list[Planned]]:
    """Load and validate the recipe and every stage's config; plan the outputs. Writes nothing."""
    recipe = load_recipe(path)
    validate(recipe)
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise GlotbenchError(f"output {root} exists and is not a directory", "choose another -o")
    if root.is_dir() and any(p.name != ".lock" for p in root.iterdir()) and not (root / RECORD).is_file():
        raise GlotbenchError(f"output {root} is not empty and holds no {RECORD} (not a recipe directory)",
                             "choose a new or empty -o, or the directory of an earlier recipe run")
    if not root.absolute().parent.is_dir():
        raise GlotbenchError(f"the parent of {root} does not exist", f"create {root.absolute().parent} first")
    return recipe, plan(recipe, root)


def run_recipe(path: Path, root: Path, *, progress: bool = False, echo=print) -> dict:
    """Run every unfinished stage of the recipe at ``path`` into ``root``; the record written."""
    recipe, planned = prepare(path, root)
    root = Path(root).absolute()
    root.mkdir(exist_ok=True)
    with exclusive(root):
        sweep(root)
        return run_planned(recipe, planned, root, progress=progress, echo=echo)


@contextmanager
def exclusive(root: Path) -> Iterator[None]:
    """One run per recipe directory at a time (two would train the same stage twice)."""
    with open(root / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise GlotbenchError(f"another glotbench recipe run is using {root}",
                                 "wait for it to finish (glotbench recipe status shows its progress)") from None
        yield


def held(root: Path) -> bool:
    """Whether a recipe run holds ``root`` now (status tells running from interrupted by it)."""
    lock = root / ".lock"
    if not lock.exists():
        return False
    with open(lock) as handle:  # read only: status works on a read-only DIR
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def run_planned(recipe: Recipe, planned: list[Planned], root: Path, *, progress: bool, echo) -> dict:
    record = new_record(recipe, planned, read_record(root))
    write_json_atomic(root / RECORD, record, indent=2)
    targets: dict[str, Path] = {}
    for p in planned:
        entry = record["stages"][p.name]
        if finished(p.out):
            entry["state"] = "done"
            echo(f"{p.name}: done ({p.out.name}), skipped")
        else:
            entry.update(state="running", started_utc=_now(), error=None)
            write_json_atomic(root / RECORD, record, indent=2)
            started = time.time()
            try:
                echo(f"{p.name}: running {p.stage.kind} → {p.out}")
                summary = execute(p, root, targets, progress=progress)
            except BaseException as exc:  # recorded, then raised as it came (a kill -9 leaves "running")
                entry.update(state="interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                             error=str(exc) or type(exc).__name__,
                             seconds=round(time.time() - started, 1))
                write_json_atomic(root / RECORD, record, indent=2)
                raise
            entry.update(state="done", seconds=round(time.time() - started, 1), summary=summary,
                         headline=headline(summary), finished_utc=_now())
            echo(summary)
            prune(root, p)
        targets[p.name] = checkpoint(p.out) if KINDS[p.stage.kind].output != "data" else p.out
        write_json_atomic(root / RECORD, record, indent=2)
        if recipe.evaluation is not None and KINDS[p.stage.kind].output == "policy":
            if measure(recipe, planned, p, root, record, progress=progress, echo=echo):
                break
    return record


def measure(recipe: Recipe, planned: list[Planned], p: Planned, root: Path, record: dict, *, progress: bool,
            echo) -> bool:
    """Evaluate a checkpoint stage and gate it against its baseline (gating.py); record both.
    True when the gate failed under ``policy: stop`` (the recipe stops here)."""
    entry = record["stages"][p.name]
    entry["eval"] = {"state": "running"}
    write_json_atomic(root / RECORD, record, indent=2)
    try:
        state = evaluate(p.name, p.out, checkpoint(p.out), p.sha256, recipe.evaluation, progress=progress,
                         echo=echo)
        checkpoints = {q.name for q in planned if KINDS[q.stage.kind].output == "policy"}
        base = baseline_of(p.name, {q.name: q.stage.after for q in planned}, checkpoints)
        base_state = None
        if base is not None:  # its run found where it is now (a recipe directory may have been moved)
            base_root = eval_root(next(q.out for q in planned if q.name == base))
            base_state = {**read_state(base_root), "run": str(base_root / RUN_DIR)}
        before, start = (state.get("gate") or {}).get("sha256"), time.monotonic()
        state["gate"] = {**decide(eval_root(p.out), state, base, base_state, recipe.gate, recipe.evaluation,
                                  progress=progress, echo=lambda line: echo(f"{p.name}: {line}")),
                         "policy": recipe.gate.on_fail}
        if state["gate"]["sha256"] is not None and state["gate"]["sha256"] != before:  # the gate did work
            state["seconds"] = {**state.get("seconds", {}), "gate": round(time.monotonic() - start, 1)}
        write_state(eval_root(p.out), state)
    except BaseException as exc:  # recorded, then raised as it came
        entry["eval"] = {"state": "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                         "error": str(exc) or type(exc).__name__}
        write_json_atomic(root / RECORD, record, indent=2)
        raise
    gate = state["gate"]
    entry["eval"] = {"state": "done", "headline": eval_headline(state),
                     **{k: state.get(k) for k in ("run", "judge", "suite", "win_rate", "run_sha256",
                                                  "judge_sha256", "seconds")}, "gate": gate}
    echo(f"{p.name}: eval {entry['eval']['headline']}")
    echo(f"{p.name}: " + (f"against {gate['baseline']}: " if gate["baseline"] else "") + "; ".join(gate["lines"]))
    stop = gate["failed"] and gate["policy"] == "stop"
    if stop:
        record["stopped"] = {"stage": p.name, "verdict": gate["verdict"], "baseline": gate["baseline"]}
        echo(f"{p.name}: the gate failed ({gate['verdict']} against {gate['baseline']}): the recipe stops here "
             "(gate policy stop)")
    elif gate["failed"] and gate["policy"] == "warn":
        echo(f"warning: {p.name}: the gate failed ({gate['verdict']} against {gate['baseline']}); the recipe "
             "continues (gate policy warn)")
    write_json_atomic(root / RECORD, record, indent=2)
    spec = recipe.evaluation
    figure3(root, record, str(spec.open_ended.opponent) if spec.open_ended else None)
    return stop


def execute(p: Planned, root: Path, targets: dict[str, Path], *, progress: bool) -> str:
    """Run one stage into ``p.out``; its summary."""
    config = write_config(render(p.stage, targets), root / ".configs" / f"{p.out.name}.yaml")
    kind = KINDS[p.stage.kind]
    if p.out.exists() and p.stage.kind not in RESUMES_IN_PLACE:
        shutil.rmtree(p.out)  # unfinished (no manifest) and in the recipe's own namespace
    module = importlib.import_module(kind.runner)
    if p.stage.kind == "merge":
        result = module.merge(config, p.out, progress=progress)
        return (f"merge → {result.out_dir}: {result.tensors} tensors, {result.bytes_written / 1e6:.1f} MB "
                f"in {result.seconds:.1f} s")
    extra = {"accelerate_config": p.stage.accelerate_config} if kind.accelerate else {}
    return module.run_stage(config, p.out, overwrite=False, progress=progress, **extra)


def headline(summary: str) -> str:
    for pattern in HEADLINES:
        found = re.findall(pattern, summary)
        if found:
            return found[-1]
    lines = [line.strip() for line in summary.splitlines() if line.strip()]
    return lines[-1][:100] if lines else ""


def prune(root: Path, p: Planned) -> None:
    """Remove this stage's superseded outputs (other hashes) and their leftover partial
    directories: checkpoints are large, and reverting an edit retrains. An output is first
    renamed out of its ``<stage>-<hash12>`` name, so a deletion killed halfway can never leave
    a directory that looks finished under a hash that may become current again."""
    pattern = re.compile(re.escape(p.name) + r"-[0-9a-f]{12}")
    partial = re.compile(r"\." + re.escape(p.name) + r"-[0-9a-f]{12}\.partial-.*")
    for old in root.iterdir():
        if old == p.out or not old.is_dir() or old.is_symlink():
            continue
        if pattern.fullmatch(old.name):
            trash = root / f"{TRASH}{old.name}"
            os.replace(old, trash)
            shutil.rmtree(trash, ignore_errors=True)
        elif partial.fullmatch(old.name):
            shutil.rmtree(old, ignore_errors=True)


def sweep(root: Path) -> None:
    """Finish deletions a killed run left (``.trash-*``) and remove partial directories no
    process can still be writing (the lock is held: no other recipe run uses ``root``)."""
    for old in root.iterdir():
        if old.is_dir() and not old.is_symlink() and (old.name.startswith(TRASH) or ".partial-" in old.name):
            shutil.rmtree(old, ignore_errors=True)


def read_record(root: Path) -> dict:
    path = Path(root) / RECORD
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise GlotbenchError(f"{path} is unreadable", "remove it (finished stage outputs are kept and "
                                                      "found again by their hashes)") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise GlotbenchError(f"{path} is not a glotbench recipe record", "choose another -o")
    return data


def new_record(recipe: Recipe, planned: list[Planned], old: dict) -> dict:
    """The record for this run: each stage's identity; what is known of finished ones is kept."""
    stages = {}
    for p in planned:
        before = old.get("stages", {}).get(p.name, {})
        same = before.get("sha256") == p.sha256
        stages[p.name] = {
            "kind": p.stage.kind, "after": list(p.stage.after), "sha256": p.sha256, "output": str(p.out),
            "state": "done" if finished(p.out) else "pending",
            **{k: before.get(k) for k in ("seconds", "headline", "summary", "started_utc", "finished_utc")
               if same}}
    return {"format": FORMAT, "recipe": str(Path(recipe.path).absolute()),
            "recipe_sha256": file_sha256(recipe.path), "order": [p.name for p in planned], "stages": stages}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
