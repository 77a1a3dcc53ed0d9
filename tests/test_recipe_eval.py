"""The recipe's ``eval:`` and ``gate:`` blocks (training/recipe/evaluate.py, gating.py): every
checkpoint stage of a two-stage recipe (SFT → DPO on a tiny random Llama) gets an ordinary eval
run and a judge directory against a fixed opponent (a tiny reward model judging), a gate decision
against the previous checkpoint and a Figure-3 point; a rerun does no eval work; an edited eval
block reruns evaluations only; a failing gate under ``policy: stop`` exits 1; bad blocks are one
line, exit 2."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from test_recipe import copy, data, outputs, two_stage, write_recipe

from glotbench.harness.cli.main import main
from glotbench.harness.store.importers import import_answers
from glotbench.harness.store.schema import JudgeRecord, RunRecord
from glotbench.harness.taskapi.data import load
from glotbench.harness.taskapi.registry import get_task

REPO = Path(__file__).resolve().parent.parent


def opponent(directory: Path) -> Path:
    """A fixed opponent: the first 3 m_arenahard/en prompts' answers, imported (the judge pairs
    runs that answered the same prompts: the eval's open-ended limit)."""
    samples = load(get_task("m_arenahard"), "en", "auto", REPO / "tests" / "fixtures").samples[:3]
    file = directory / "opponent.jsonl"
    file.write_text("".join(json.dumps({"prompt_id": s.fields["question_id"], "response": f"A plain answer {i}."})
                            + "\n" for i, s in enumerate(samples)), encoding="utf-8")
    return import_answers(file, "m_arenahard", "en", directory / "opponent", limit=3)


def eval_block(opp: Path, tiny_rm: Path, **suite) -> dict:
    return {"tasks": ["xcopa"], "languages": ["it"], "limit": 8, "data_dir": str(REPO / "tests" / "fixtures"),
            "device": "cpu", **suite,
            "open_ended": {"task": "m_arenahard", "languages": ["en"], "limit": 3, "max_new_tokens": 6,
                           "opponent": str(opp), "judge": f"rm:{tiny_rm}"}}


def recipe_with(model: Path, opp: Path, tiny_rm: Path, gate: dict | None = None, **suite) -> dict:
    return {**two_stage(model), "eval": eval_block(opp, tiny_rm, **suite), "gate": gate or {"policy": "continue"}}


def mtimes(out: Path, pattern: str) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.glob(pattern)}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_model_dir, tiny_rm_dir):
    """One evaluated two-stage run: (base dir, recipe, output, opponent), its request cache its own."""
    base = tmp_path_factory.mktemp("recipe-eval")
    before = os.environ.get("GLOTBENCH_REQUEST_CACHE")
    os.environ["GLOTBENCH_REQUEST_CACHE"] = str(base / "cache.sqlite")
    try:
        data(base)
        opp = opponent(base)
        recipe = write_recipe(base, recipe_with(tiny_model_dir, opp, tiny_rm_dir))
        assert main(["recipe", "run", str(recipe), "-o", str(base / "out"), "--no-progress"]) == 0
        yield base, recipe, base / "out", opp
    finally:
        if before is None:
            os.environ.pop("GLOTBENCH_REQUEST_CACHE", None)
        else:
            os.environ["GLOTBENCH_REQUEST_CACHE"] = before


def evaluated_copy(evaluated, tmp_path) -> tuple[Path, Path]:
    base, out = copy(evaluated[:3], tmp_path)
    return base, out


def test_each_checkpoint_stage_is_evaluated_judged_gated_and_plotted(evaluated, capsys):
    _, _, out, opp = evaluated
    record = json.loads((out / "recipe.json").read_text())
    for name in ("sft", "dpo"):
        entry = record["stages"][name]
        stage_dir = Path(entry["output"])
        run_dir, judge_dir = stage_dir / "eval" / "run", stage_dir / "eval" / "judge-vs-opponent"
        run = RunRecord.read(run_dir)
        assert run.tasks() == ["xcopa", "m_arenahard"] and run.languages("xcopa") == ["it"]
        assert run.n("xcopa", "it") == 8 and run.n("m_arenahard", "en") == 3
        assert run.model["name"].endswith(stage_dir.name) or str(stage_dir) in json.dumps(run.provenance["model"])
        judged = JudgeRecord.read(judge_dir)
        assert judged.judge_spec.startswith("rm:") and judged.counts["judgments"] == 3
        assert [t for _, t, _ in judged.pairs()] == ["m_arenahard"]
        ev = entry["eval"]
        assert ev["state"] == "done" and ev["run"] == str(run_dir) and ev["judge"] == str(judge_dir)
        assert ev["suite"]["xcopa"]["macro"] == run.averages("xcopa", "acc")["macro"]
        assert "xcopa acc" in ev["headline"] and "win-rate vs opponent" in ev["headline"]
        capsys.readouterr()
        assert main(["table", str(run_dir)]) == 0 and "Discriminative" in capsys.readouterr().out
    assert record["stages"]["sft"]["eval"]["gate"]["verdict"] == "no baseline"
    gate = record["stages"]["dpo"]["eval"]["gate"]
    assert gate["baseline"] == "sft" and gate["verdict"] in ("pass", "regression", "inconclusive")
    assert gate["lines"][0] == f"gate: {gate['verdict']}" and any(x.startswith("xcopa acc: ") for x in gate["lines"])
    assert any(x.startswith("m_arenahard win_rate: ") for x in gate["lines"]), gate["lines"]
    assert not any(x.startswith("not compared") for x in gate["lines"]), "the open-ended task was not gated"
    dpo_eval = Path(record["stages"]["dpo"]["output"]) / "eval"
    result = json.loads((dpo_eval / "gate.json").read_text())
    assert result["verdict"] == gate["verdict"] and gate["judgments"] == str(dpo_eval / "judge-vs-sft")
    assert result["provenance"]["judgments"]["path"] == gate["judgments"]
    assert JudgeRecord.read(dpo_eval / "judge-vs-sft").counts["judgments"] == 3
    fig = json.loads((out / "figure3.json").read_text())
    assert [p["stage"] for p in fig["points"]] == ["sft", "dpo"] and fig["opponent"] == str(opp)
    for point in fig["points"]:
        judged = JudgeRecord.read(Path(point["judge"]))
        macro = next(iter(judged.results.values()))["m_arenahard"]["macro"]
        assert point["win_rate"] == macro["win_rate"] and point["win_rate_ci95"] == macro["win_rate_ci95"]
        assert point["n"] == 3 and point["suite"]["xcopa"]["metric"] == "acc"
    assert [p["gate"] for p in fig["points"]] == ["no baseline", gate["verdict"]]
    assert main(["recipe", "status", str(out)]) == 0
    status = capsys.readouterr().out
    assert "win-rate vs opponent" in status and "gate no baseline" in status and f"gate {gate['verdict']}" in status


def test_a_second_run_does_no_eval_work(evaluated, tmp_path, capsys):
    base, out = evaluated_copy(evaluated, tmp_path)
    before = mtimes(out, "*/eval/**/*.json")
    assert main(["recipe", "run", str(write_recipe(base, yaml.safe_load(evaluated[1].read_text()))), "-o",
                 str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("eval run done") == 2 and printed.count("eval judge done") == 2, printed
    after = mtimes(out, "*/eval/**/*.json")
    assert {k: v for k, v in after.items() if not k.endswith("eval.json")} == \
        {k: v for k, v in before.items() if not k.endswith("eval.json")}


def test_editing_only_the_eval_block_reruns_evaluations_not_training(evaluated, tmp_path, tiny_model_dir,
                                                                     tiny_rm_dir, capsys):
    base, out = evaluated_copy(evaluated, tmp_path)
    trained = outputs(out)
    old_runs = mtimes(out, "*/eval/run/run.json")
    recipe = write_recipe(base, recipe_with(tiny_model_dir, evaluated[3], tiny_rm_dir, limit=5))
    assert main(["recipe", "status", str(out)]) == 0
    assert capsys.readouterr().out.count("eval: stale (the eval block changed") == 2
    assert main(["recipe", "run", str(recipe), "-o", str(out), "--no-progress"]) == 0
    assert outputs(out) == trained, "a stage was retrained"
    new_runs = mtimes(out, "*/eval/run/run.json")
    assert set(new_runs) == set(old_runs) and all(new_runs[k] != old_runs[k] for k in new_runs)
    for run_dir in out.glob("*/eval/run"):
        assert RunRecord.read(run_dir).n("xcopa", "it") == 5
    assert "stages done" in capsys.readouterr().out


def test_a_failing_gate_under_policy_stop_exits_1_and_is_recorded(evaluated, tmp_path, tiny_model_dir,
                                                                  tiny_rm_dir, capsys):
    """A broken DPO checkpoint (NaN weights: every xcopa item wrong) against SFT's eval."""
    import torch
    from safetensors.torch import load_file, save_file

    base, out = evaluated_copy(evaluated, tmp_path)
    record = json.loads((out / "recipe.json").read_text())
    dpo = out / Path(record["stages"]["dpo"]["output"]).name  # the copy's, not the shared fixture's
    shutil.rmtree(dpo / "eval")
    for file in dpo.glob("*.safetensors"):
        save_file({k: torch.full_like(v, float("nan")) for k, v in load_file(file).items()}, file,
                  metadata={"format": "pt"})
    gate = {"policy": "stop", "margins": {"xcopa": 0.01}, "on_inconclusive": "fail"}
    recipe = write_recipe(base, recipe_with(tiny_model_dir, evaluated[3], tiny_rm_dir, gate=gate))
    assert main(["recipe", "run", str(recipe), "-o", str(out), "--no-progress"]) == 1
    printed = capsys.readouterr().out
    assert "the recipe stops here (gate policy stop)" in printed and "recipe: stopped after dpo" in printed
    record = json.loads((out / "recipe.json").read_text())
    decision = record["stages"]["dpo"]["eval"]["gate"]
    assert record["stopped"]["stage"] == "dpo" and decision["failed"] and decision["policy"] == "stop"
    assert decision["verdict"] in ("regression", "inconclusive")
    assert record["stages"]["dpo"]["eval"]["suite"]["xcopa"]["macro"] == 0.0
    warn = write_recipe(base, recipe_with(tiny_model_dir, evaluated[3], tiny_rm_dir, gate={**gate, "policy": "warn"}))
    assert main(["recipe", "run", str(warn), "-o", str(out), "--no-progress"]) == 0
    assert "warning: dpo: the gate failed" in capsys.readouterr().out


def test_the_baseline_is_the_nearest_checkpoint_ancestor():
    from glotbench.training.recipe.gating import baseline_of

    after = {"arb": (), "sft": ("arb",), "rm": (), "dpo": ("arb", "sft"), "online": ("dpo", "rm"),
             "soup": ("online", "sft"), "sft2": ("arb",), "mix": ("sft", "sft2"), "late": ("mix", "arb")}
    checkpoints = {"sft", "dpo", "online", "soup", "sft2", "mix", "late"}
    assert {s: baseline_of(s, after, checkpoints) for s in after if s in checkpoints} == {
        "sft": None, "sft2": None, "dpo": "sft", "online": "dpo", "soup": "online",
        "mix": "sft2",  # equally near: the later one in the recipe's order
        "late": "mix"}


def bad(tmp_path: Path, opp: Path, **changes) -> dict:
    block = eval_block(opp, tmp_path / "rm")
    for key, value in changes.items():
        if key.startswith("oe_"):
            block["open_ended"][key[3:]] = value
        else:
            block[key] = value
    return block


REFUSALS = {
    "unknown-eval-key": (lambda t, o: {"eval": bad(t, o, limt=3)}, "eval: unknown key 'limt' (did you mean 'limit'?)"),
    "unknown-task": (lambda t, o: {"eval": bad(t, o, tasks=["xcpa"])}, "unknown task 'xcpa' (did you mean 'xcopa'?)"),
    "open-ended-in-suite": (lambda t, o: {"eval": bad(t, o, tasks=["m_arenahard"])}, "is open-ended (judged)"),
    "unknown-language": (lambda t, o: {"eval": bad(t, o, languages=["itt"])},
                         "itt is a language of none of xcopa (did you mean 'it'?)"),
    "typo-beside-a-language": (lambda t, o: {"eval": bad(t, o, languages=["it", "swx"])},
                               "swx is a language of none of xcopa (did you mean 'sw'?)"),
    "task-without-the-languages": (lambda t, o: {"eval": bad(t, o, tasks=["xcopa", "xwinograd"])},
                                   "xwinograd has none of the languages it"),
    "open-ended-unknown-language": (lambda t, o: {"eval": bad(t, o, oe_languages=["en", "enn"])},
                                    "m_arenahard has no language enn"),
    "missing-opponent": (lambda t, o: {"eval": bad(t, o, oe_opponent=str(t / "nope"))}, "is not a run directory"),
    "opponent-without-language": (lambda t, o: {"eval": bad(t, o, oe_languages=["de"])},
                                  "has no m_arenahard completions for de"),
    "missing-judge": (lambda t, o: {"eval": bad(t, o, oe_judge="rm:/no/such/rm")}, "/no/such/rm is not a directory"),
    "opponent-other-limit": (lambda t, o: {"eval": bad(t, o, oe_limit=2)}, "answered 3 m_arenahard/en prompts, not 2"),
    "paid-judge-without-consent": (lambda t, o: {"eval": bad(t, o, oe_judge="openai:gpt-4o")},
                                   "is the paid OpenAI API and a recipe runs unattended"),
    "unknown-open-key": (lambda t, o: {"eval": bad(t, o, oe_oponent="x")}, "did you mean 'opponent'?"),
    "unknown-backend": (lambda t, o: {"eval": bad(t, o, backend="vlm")}, "backend 'vlm' is not one of hf, vllm"),
    "bad-gate-policy": (lambda t, o: {"eval": bad(t, o), "gate": {"policy": "halt"}}, "policy 'halt' is not one of"),
    "bad-gate-option": (lambda t, o: {"eval": bad(t, o), "gate": {"alpah": 0.1}}, "unknown key 'alpah'"),
    "bad-gate-value": (lambda t, o: {"eval": bad(t, o), "gate": {"alpha": 2}}, "alpha must be a number in (0, 0.5)"),
    "gate-without-eval": (lambda t, o: {"gate": {"policy": "stop"}}, "there is no eval: block"),
}


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_a_bad_eval_or_gate_block_is_one_line_exit_2(case, tmp_path, tiny_model_dir, tiny_rm_dir, capsys):
    data(tmp_path)
    shutil.copytree(tiny_rm_dir, tmp_path / "rm")
    make, message = REFUSALS[case]
    opp = opponent(tmp_path)
    recipe = write_recipe(tmp_path, {**two_stage(tiny_model_dir), **make(tmp_path, opp)})
    capsys.readouterr()
    assert main(["recipe", "run", str(recipe), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("glotbench: error:") and message in err, err
    assert not (tmp_path / "out").exists()


KILLER = """
import os, signal
from glotbench.harness.judge import execute

judge = execute.execute


def killing_judge(cfg, *args, **kwargs):
    if "/dpo-" in cfg.run_a:  # DPO's eval run is finished, its judging not: as a kill -9 finds it
        os.kill(os.getpid(), signal.SIGKILL)
    return judge(cfg, *args, **kwargs)


execute.execute = killing_judge
"""


def test_kill_9_inside_an_eval_then_rerun_finishes_only_what_was_left(tmp_path, tiny_model_dir, tiny_rm_dir):
    import subprocess
    import sys

    data(tmp_path)
    recipe = write_recipe(tmp_path, recipe_with(tiny_model_dir, opponent(tmp_path), tiny_rm_dir))
    out = tmp_path / "out"
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(KILLER, encoding="utf-8")
    cmd = [sys.executable, "-m", "glotbench.harness.cli.main", "recipe", "run", str(recipe), "-o", str(out),
           "--no-progress"]
    env = {**os.environ, "GLOTBENCH_REQUEST_CACHE": str(tmp_path / "cache.sqlite")}
    killed = subprocess.run(cmd, env={**env, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path / "hook"), os.environ.get("PYTHONPATH", "")])}, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    record = json.loads((out / "recipe.json").read_text())
    assert record["stages"]["dpo"]["state"] == "done" and record["stages"]["dpo"]["eval"] == {"state": "running"}
    status = subprocess.run([*cmd[:4], "status", str(out)], capture_output=True, text=True, env=env)
    assert "eval: running" in status.stdout, status.stdout + status.stderr
    trained, runs = outputs(out), mtimes(out, "*/eval/**/*.json")
    assert not list(out.glob("dpo-*/eval/judge-vs-opponent"))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert outputs(out) == trained, "a stage was retrained"
    again = mtimes(out, "*/eval/**/*.json")
    assert {k: again[k] for k in runs if not k.endswith("eval.json")} == \
        {k: v for k, v in runs.items() if not k.endswith("eval.json")}, "a finished eval part was redone"
    assert "dpo: eval run done" in done.stdout and "sft: eval judge done" in done.stdout
    assert JudgeRecord.read(next(out.glob("dpo-*/eval/judge-vs-opponent"))).counts["judgments"] == 3
    assert len(json.loads((out / "figure3.json").read_text())["points"]) == 2
