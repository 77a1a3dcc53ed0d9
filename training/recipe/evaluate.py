"""A checkpoint stage's evaluation: the ``eval:`` suite as an ordinary run directory and, with
``open_ended:``, the checkpoint's completions judged against the fixed opponent run.

```
DIR/<stage>-<hash12>/eval/run/                 glotbench run on hf:<checkpoint> (table, report, gate read it)
DIR/<stage>-<hash12>/eval/judge-vs-opponent/   glotbench judge --a eval/run --b <opponent>
DIR/<stage>-<hash12>/eval/eval.json            hashes of what is done, headline numbers, the gate decision
```

The run directory's identity (``run_sha256``) is the stage's hash plus the ``eval:`` block minus
the judge settings; the judge directory's adds the opponent run's and judge's content. Editing
the eval block changes these and not the stage's hash: the evaluation reruns, the training does
not. A finished part (its directory complete and its hash in eval.json) is never redone; a part
killed midway starts again, its finished requests found in the request cache (the run's
generations, the judge's verdicts and reward scores).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import dir_sha256, json_sha256, write_json_atomic
from glotbench.harness.judge.config import JUDGE_FILE, JudgeConfig, reward_model_dir
from glotbench.harness.models.reward import RM_FILES
from glotbench.harness.run.config import RunConfig
from glotbench.harness.store.schema import JudgeRecord, RunRecord
from glotbench.training.recipe.evalspec import EvalSpec

EVAL_DIR = "eval"
RUN_DIR = "run"
JUDGE_DIR = "judge-vs-opponent"
STATE = "eval.json"


def eval_root(stage_out: Path) -> Path:
    return Path(stage_out) / EVAL_DIR


def read_state(root: Path) -> dict:
    try:
        return json.loads((root / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write_state(root: Path, state: dict) -> None:
    """Write ``eval.json`` when its content changes (a rerun that does no work writes nothing)."""
    if read_state(root) != json.loads(json.dumps(state)):
        write_json_atomic(root / STATE, state, indent=1)


def run_sha256(spec: EvalSpec, stage_sha256: str) -> str:
    oe = spec.open_ended
    # How the run is spread over replicas does not change its results (tests/test_data_parallel.py).
    suite = {k: v for k, v in spec.raw.items() if k not in ("open_ended", "data_parallel", "ray_address")}
    completions = None if oe is None else {"task": oe.task, "languages": oe.languages, "limit": oe.limit,
                                           "max_new_tokens": oe.max_new_tokens}
    return json_sha256({"checkpoint": stage_sha256, "suite": suite, "completions": completions})


def judge_identity(spec: EvalSpec) -> dict:
    """What a judging computes besides the runs it compares: the judge and its settings."""
    oe = spec.open_ended
    rm = reward_model_dir(oe.judge)
    judge = dir_sha256(rm, RM_FILES) if rm is not None else oe.judge
    return {"judge": oe.judge, "base_url": oe.base_url, "judge_content": judge, "tie_margin": oe.tie_margin,
            "limit": oe.limit, "languages": oe.languages, "seed": spec.seed}


def judge_sha256(spec: EvalSpec, run_sha: str) -> str:
    return json_sha256({"run": run_sha, "opponent": RunRecord.read(spec.open_ended.opponent).sha256,
                        **judge_identity(spec)})


def evaluate(name: str, stage_out: Path, checkpoint: Path, stage_sha256: str, spec: EvalSpec, *,
             progress: bool, echo) -> dict:
    """Bring the stage's evaluation up to date; its state (eval.json)."""
    root = eval_root(stage_out)
    state = read_state(root)
    rsha = run_sha256(spec, stage_sha256)
    if state.get("run_sha256") != rsha and root.exists():
        shutil.rmtree(root)  # another eval block (or a new checkpoint): nothing in it is current
        state = {}
    root.mkdir(parents=True, exist_ok=True)
    run_dir = root / RUN_DIR
    if state.get("run_sha256") == rsha and (run_dir / "run.json").is_file():
        echo(f"{name}: eval run done ({run_dir}), skipped")
    else:
        echo(f"{name}: eval run on {spec.backend}:{checkpoint} → {run_dir}")
        start = time.monotonic()
        suite_run(spec, checkpoint, run_dir, progress=progress, echo=echo)
        state["seconds"] = {"run": round(time.monotonic() - start, 1)}
    state.update(run_sha256=rsha, run=str(run_dir), suite=suite_scores(RunRecord.read(run_dir), spec))
    write_state(root, state)
    oe = spec.open_ended
    if oe is None:
        for key in ("judge_sha256", "judge", "win_rate"):
            state.pop(key, None)
    else:
        jsha = judge_sha256(spec, rsha)
        judge_dir = root / JUDGE_DIR
        if state.get("judge_sha256") == jsha and judged(judge_dir):
            echo(f"{name}: eval judge done ({judge_dir}), skipped")
        else:
            if judge_dir.exists():
                shutil.rmtree(judge_dir)
            echo(f"{name}: judging {oe.task} against {oe.opponent} with {oe.judge} → {judge_dir}")
            start = time.monotonic()
            judge_run(spec, run_dir, judge_dir, progress=progress, echo=echo)
            state["seconds"] = {**state.get("seconds", {}), "judge": round(time.monotonic() - start, 1)}
        state.update(judge_sha256=jsha, judge=str(judge_dir), win_rate=win_rate(judge_dir, oe.task))
    write_state(root, state)
    return state


def suite_run(spec: EvalSpec, checkpoint: Path, out: Path, *, progress: bool, echo) -> Path:
    from glotbench.harness.run.execute import execute
    from glotbench.harness.run.plan import plan

    if out.exists():
        shutil.rmtree(out)  # incomplete (no run.json: the run writes it last, by a rename)
    oe = spec.open_ended
    tasks, langs = spec.tasks, dict(spec.languages)
    limits = {t: spec.limit for t in tasks if spec.limit}
    tokens = {}
    if oe is not None:
        tasks, langs[oe.task] = (*tasks, oe.task), oe.languages
        limits.update({oe.task: oe.limit} if oe.limit else {})
        tokens.update({oe.task: oe.max_new_tokens} if oe.max_new_tokens else {})
    cfg = RunConfig(tasks=tasks, model=f"{spec.backend}:{checkpoint}", data_dir=spec.data_dir,
                    batch_size=spec.batch_size, tensor_parallel_size=spec.tensor_parallel_size,
                    data_parallel=spec.data_parallel, ray_address=spec.ray_address,
                    device=spec.device, dtype=spec.dtype, seed=spec.seed, output=str(out), task_limits=limits,
                    task_langs=langs, task_max_new_tokens=tokens)
    notes: list[str] = []
    try:
        units = plan(cfg, notes)
    finally:
        for note in notes:
            echo(f"note: {note}")
    return execute(cfg, units, progress=progress)


def judge_run(spec: EvalSpec, run_dir: Path, out: Path, *, progress: bool, echo, against: Path | None = None) -> Path:
    """``glotbench judge --a run_dir --b <opponent>`` (or ``--b against``) with the eval's judge."""
    from glotbench.harness.judge.execute import execute
    from glotbench.harness.judge.pairing import plan
    from glotbench.harness.judge.spend import Spending

    oe = spec.open_ended
    cfg = JudgeConfig(run_a=str(run_dir), runs_b=(str(against or oe.opponent),), judge=oe.judge,
                      base_url=oe.base_url, tasks=(oe.task,), langs=oe.languages, limit=oe.limit, seed=spec.seed, output=str(out), device=spec.device,
                      rm_tie_margin=oe.tie_margin)
    meta, items, prompt = plan(cfg)
    path = execute(cfg, meta, items, prompt, progress=progress, spending=Spending(max_cost=oe.max_cost), say=echo)
    errors = JudgeRecord.read(path).counts.get("api_errors", 0)
    if errors:
        raise GlotbenchError(f"{errors} judgments of {path} failed after all retries",
                             "rerun glotbench recipe run: the finished verdicts are cached, only those are retried")
    return path


def judged(judge_dir: Path) -> bool:
    """A complete judge directory without failed judgments (those are retried by a rerun)."""
    if not (judge_dir / JUDGE_FILE).is_file():
        return False
    try:
        return not JudgeRecord.read(judge_dir).counts.get("api_errors", 0)
    except GlotbenchError:
        return False


def suite_scores(run: RunRecord, spec: EvalSpec) -> dict:
    """task → the headline metric's macro average over the evaluated languages (and its n)."""
    out = {}
    for task in spec.tasks:
        if not run.has(task):
            continue
        metric = run.headline(task) or (run.metrics(task) or ["acc"])[0]
        avg = run.averages(task, metric)
        out[task] = {"metric": metric, "macro": avg.get("macro"), "n": avg.get("n"),
                     "languages": {lang: getattr(run.metric(task, lang, metric), "value", None)
                                   for lang in run.languages(task)}}
    return out


def win_rate(judge_dir: Path, task: str) -> dict:
    """The checkpoint's win-rate against the opponent (it is the judge's first run, A): the
    macro average over languages with its 95 % CI, ties counted as ties and as halves."""
    record = JudgeRecord.read(judge_dir)
    pair, summary = next((p, by_task[task]) for p, by_task in record.results.items() if task in by_task)
    macro = summary["macro"]
    return {"task": task, "pair": pair, "judge": record.judge_spec,
            "n": sum(x.get("n", 0) for x in summary["languages"].values()),
            **{k: macro.get(k) for k in ("win_rate", "win_rate_ci95", "win_rate_ties_half",
                                         "win_rate_ties_half_ci95")},
            "languages": {lang: {k: x.get(k) for k in ("n", "wins", "ties", "losses", "invalid", "win_rate",
                                                        "win_rate_ci95")}
                          for lang, x in summary["languages"].items()}}


def headline(state: dict) -> str:
    """One line: each suite task's headline macro, and the win-rate against the opponent."""
    parts = [f"{t} {s['metric']} {s['macro']:.3f}" if s.get("macro") is not None else f"{t} {s['metric']} -"
             for t, s in (state.get("suite") or {}).items()]
    wr = state.get("win_rate")
    if wr:
        ci = wr.get("win_rate_ties_half_ci95")
        ci_text = f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else ""
        value = wr.get("win_rate_ties_half")
        parts.append(f"win-rate vs opponent {'-' if value is None else f'{100 * value:.1f}%'}{ci_text} "
                     f"(n {wr['n']})")
    return "; ".join(parts)
