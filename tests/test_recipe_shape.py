"""The recipe's full shape on tiny random models, in CI (the 2-stage cut of tiny-cpu.yaml grown to
every kind of checkpoint stage): SFT per language cluster merged → DPO → a merge stage (DPO with
its SFT start) → online DPO (1 iteration, merged with its start), each evaluated, judged against
a fixed opponent and gated. Editing DPO's beta reruns exactly DPO, the merge, online DPO and
their evaluations; SFT and its evaluation are untouched. The full tiny-cpu.yaml on the embedded
model is bench/bench_recipe.py (docs/benchmarks.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_recipe import WORDS, jsonl, write_recipe
from test_recipe_eval import eval_block, opponent

from glotbench.harness.cli.main import main
from glotbench.harness.store.schema import JudgeRecord, RunRecord

CHECKPOINTS = ["sft", "dpo", "soup", "online"]


def data(base: Path) -> None:
    asks = [(f"{WORDS[i % 8]} {WORDS[(3 * i) % 8]} {i}?", "es" if i % 2 else "fr") for i in range(24)]
    jsonl(base / "sft.jsonl", [{"prompt_id": f"p{i}", "language": lang,
                                "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "ok ok"}]}
                               for i, (q, lang) in enumerate(asks)])
    jsonl(base / "pairs.jsonl", [{"prompt_id": f"p{i}/{lang}", "language": lang, "prompt": [{"role": "user", "content": q}],
                                  "chosen": [{"role": "assistant", "content": "ok ok"}],
                                  "rejected": [{"role": "assistant", "content": WORDS[i % 8]}],
                                  "score_chosen": 1.0, "score_rejected": 0.0} for i, (q, lang) in enumerate(asks)])
    jsonl(base / "prompts.jsonl", [{"prompt_id": f"q{i}", "language": "es", "prompt": f"{WORDS[i % 8]} {i}?"}
                                   for i in range(8)])


def recipe(model: Path, rm: Path, opp: Path, beta: float = 0.1) -> dict:
    small = {"max_steps": 2, "batch_size": 4, "max_length": 64, "seed": 0, "learning_rate": 1e-3}
    return {"stages": {
        "sft": {"train": "sft", "config": {"model": f"hf:{model}", "data": {"file": "sft.jsonl"},
                                           "clusters": {"a": ["es"], "b": ["fr"]}, **small}},
        "dpo": {"train": "dpo", "config": {"policy": {"from": "sft"}, "data": {"file": "pairs.jsonl"},
                                           "beta": beta, **small}},
        "soup": {"merge": {"merge_method": "linear", "models": [
            {"model": {"from": "sft"}, "parameters": {"weight": 0.5}},
            {"model": {"from": "dpo"}, "parameters": {"weight": 0.5}}]}},
        "online": {"train": "online-dpo", "config": {
            "policy": {"from": "soup"}, "prompts": {"file": "prompts.jsonl"}, "held_out": 0.25, "iterations": 1,
            "samples_per_prompt": 2, "sampling": {"temperature": 1.0, "max_new_tokens": 8, "seed": 0},
            "scorer": {"reward_model": str(rm)}, "min_gap": 0.0, "merge": {"seeds": [0], "previous": 0.5},
            "dpo": {"beta": 0.1, "learning_rate": 1e-3, "max_steps": 1, "batch_size": 4, "max_length": 64},
            "seed": 0, "batch_size": 8, "device": "cpu", "dtype": "float32"}}},
        "eval": eval_block(opp, rm, limit=4), "gate": {"policy": "continue"}}


def stage_dirs(out: Path) -> dict[str, Path]:
    record = json.loads((out / "recipe.json").read_text())
    return {name: Path(entry["output"]) for name, entry in record["stages"].items()}


def stamps(out: Path) -> dict[str, dict[str, int]]:
    """Per stage: its manifest's and its eval record's mtimes (a rerun writes new ones)."""
    return {name: {"manifest": next(d.glob("*_manifest.json")).stat().st_mtime_ns,  # a merge's: merge_manifest
                   "eval": (d / "eval" / "eval.json").stat().st_mtime_ns, "dir": str(d)}
            for name, d in stage_dirs(out).items()}


@pytest.fixture(scope="module")
def shaped(tmp_path_factory, tiny_model_dir, tiny_rm_dir):
    base = tmp_path_factory.mktemp("recipe-shape")
    before = os.environ.get("GLOTBENCH_REQUEST_CACHE")
    os.environ["GLOTBENCH_REQUEST_CACHE"] = str(base / "cache.sqlite")
    try:
        data(base)
        opp = opponent(base)
        path = write_recipe(base, recipe(tiny_model_dir, tiny_rm_dir, opp))
        assert main(["recipe", "run", str(path), "-o", str(base / "out"), "--no-progress"]) == 0
        yield base, base / "out", opp
    finally:
        if before is None:
            os.environ.pop("GLOTBENCH_REQUEST_CACHE", None)
        else:
            os.environ["GLOTBENCH_REQUEST_CACHE"] = before


def test_every_checkpoint_kind_is_trained_evaluated_judged_gated_and_plotted(shaped):
    _, out, opp = shaped
    record = json.loads((out / "recipe.json").read_text())
    assert record["order"] == CHECKPOINTS and all(s["state"] == "done" for s in record["stages"].values())
    dirs = stage_dirs(out)
    assert sorted(p.name for p in (dirs["sft"] / "clusters").iterdir()) == ["a", "b"]
    online = json.loads((dirs["online"] / "training_manifest.json").read_text())
    final = Path(online["outputs"]["final_checkpoint"])
    assert final.is_relative_to(dirs["online"]) and (final / "config.json").is_file()
    for name in CHECKPOINTS:
        ev = record["stages"][name]["eval"]
        run = RunRecord.read(Path(ev["run"]))
        assert run.n("xcopa", "it") == 4 and run.n("m_arenahard", "en") == 3
        assert JudgeRecord.read(Path(ev["judge"])).counts["judgments"] == 3
    gates = {name: record["stages"][name]["eval"]["gate"] for name in CHECKPOINTS}
    assert {n: g["baseline"] for n, g in gates.items()} == {"sft": None, "dpo": "sft", "soup": "dpo", "online": "soup"}
    assert gates["sft"]["verdict"] == "no baseline"
    assert all(g["verdict"] in ("pass", "regression", "inconclusive") for n, g in gates.items() if n != "sft")
    fig = json.loads((out / "figure3.json").read_text())
    assert [p["stage"] for p in fig["points"]] == CHECKPOINTS and fig["opponent"] == str(opp)
    # online DPO's evaluation is of its final checkpoint, not of its directory
    assert str(final) in json.dumps(RunRecord.read(dirs["online"] / "eval" / "run").provenance["model"])


def test_editing_dpo_beta_reruns_exactly_dpo_the_merge_online_dpo_and_their_evals(shaped, tiny_model_dir,
                                                                                   tiny_rm_dir, capsys):
    base, out, opp = shaped
    before = stamps(out)
    capsys.readouterr()
    assert main(["recipe", "run", str(base / "recipe.yaml"), "-o", str(out), "--no-progress"]) == 0
    assert stamps(out) == before, "a rerun of the same recipe did work"
    path = write_recipe(base, recipe(tiny_model_dir, tiny_rm_dir, opp, beta=0.2))
    assert main(["recipe", "run", str(path), "-o", str(out), "--no-progress"]) == 0
    after = stamps(out)
    assert after["sft"] == before["sft"]
    for name in ("dpo", "soup", "online"):
        assert after[name]["dir"] != before[name]["dir"] and not Path(before[name]["dir"]).exists()
        assert after[name]["eval"] > before["sft"]["eval"]
    fig = json.loads((out / "figure3.json").read_text())
    assert [p["stage"] for p in fig["points"]] == CHECKPOINTS


def test_kill_9_inside_online_dpo_resumes_inside_it(tmp_path, tiny_model_dir, tiny_rm_dir):
    """Killed right after online DPO's first committed training samples (its own request cache,
    no timing race): the rerun keeps sft, dpo and the merge, and online DPO goes on in the same
    directory from its cache instead of starting over."""
    import subprocess
    import sys

    from killers import cache_killer_env

    from glotbench.training.recipe.resolve import plan
    from glotbench.training.recipe.schema import load_recipe

    data(tmp_path)
    path = write_recipe(tmp_path, recipe(tiny_model_dir, tiny_rm_dir, opponent(tmp_path)))
    out = tmp_path / "out"
    online = next(p.out for p in plan(load_recipe(path), out) if p.name == "online")
    argv = [sys.executable, "-m", "glotbench.harness.cli", "recipe", "run", str(path), "-o", str(out), "--no-progress"]
    base = {**os.environ, "GLOTBENCH_REQUEST_CACHE": str(tmp_path / "cache.sqlite")}
    # 2 held-out completions of the initial policy are committed first, then iteration 1's samples
    killed = subprocess.run(argv, env=cache_killer_env(tmp_path / "hook", online / "requests.sqlite", 3, base),
                            capture_output=True, text=True, cwd=tmp_path)
    assert killed.returncode == -9, killed.stderr[-2000:]
    record = json.loads((out / "recipe.json").read_text())
    assert record["stages"]["online"]["state"] == "running" and (online / "requests.sqlite").is_file()
    kept = {n: next(Path(record["stages"][n]["output"]).glob("*_manifest.json")).stat().st_mtime_ns
            for n in ("sft", "dpo", "soup")}
    done = subprocess.run(argv, env=base, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(resumed)" in done.stdout, done.stdout[-2000:]
    after = json.loads((out / "recipe.json").read_text())
    assert {n: next(Path(after["stages"][n]["output"]).glob("*_manifest.json")).stat().st_mtime_ns
            for n in ("sft", "dpo", "soup")} == kept
    assert Path(after["stages"]["online"]["output"]) == online and after["stages"]["online"]["state"] == "done"
    steps = json.loads((online / "iter-1" / "steps.json").read_text())
    assert steps["sample"]["counts"]["from_cache"] > 0
