"""The recipe (glotbench recipe run|status, training/recipe/): every validation refusal is one
line, exit 2, nothing written; a two-stage recipe (SFT → DPO on a tiny random Llama) runs,
reruns without work, reruns exactly what an edit changed, and resumes after kill -9."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from glotbench.harness.cli.main import main

WORDS = ("casa", "perro", "libro", "mesa", "agua", "cielo", "verde", "rojo")


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def data(directory: Path) -> None:
    """sft.jsonl (chat rows) and pairs.jsonl (a preference for the same answer) beside the recipe."""
    asks = [f"{WORDS[i % 8]} {WORDS[(3 * i) % 8]} {i}?" for i in range(24)]
    jsonl(directory / "sft.jsonl", [{"prompt_id": f"p{i}", "language": "es",
                                     "messages": [{"role": "user", "content": q},
                                                  {"role": "assistant", "content": "ok ok ok"}]}
                                    for i, q in enumerate(asks)])
    jsonl(directory / "pairs.jsonl", [{"prompt_id": f"p{i}/es", "language": "es",
                                       "prompt": [{"role": "user", "content": q}],
                                       "chosen": [{"role": "assistant", "content": "ok ok ok"}],
                                       "rejected": [{"role": "assistant", "content": WORDS[i % 8]}],
                                       "score_chosen": 1.0, "score_rejected": 0.0} for i, q in enumerate(asks)])


def two_stage(model: Path, sft: dict | None = None, dpo: dict | None = None) -> dict:
    small = {"max_steps": 2, "batch_size": 4, "max_length": 64, "seed": 0}
    return {"stages": {
        "sft": {"train": "sft", "config": {"model": f"hf:{model}", "data": {"file": "sft.jsonl"},
                                           "learning_rate": 1e-3, **small, **(sft or {})}},
        "dpo": {"train": "dpo", "config": {"policy": {"from": "sft"}, "data": {"file": "pairs.jsonl"},
                                           "learning_rate": 1e-3, "beta": 0.1, **small, **(dpo or {})}}}}


def write_recipe(directory: Path, recipe: dict) -> Path:
    path = directory / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path


def outputs(root: Path) -> dict[str, float]:
    """Stage output directory → its manifest's mtime (a rerun stage writes a new one)."""
    return {p.parent.name: p.stat().st_mtime_ns for p in root.glob("*/training_manifest.json")}


def run(recipe: Path, root: Path, capsys) -> str:
    assert main(["recipe", "run", str(recipe), "-o", str(root), "--no-progress"]) == 0
    return capsys.readouterr().out


# --- validation: one line, exit 2, nothing written ------------------------------------------

ARB = {"train": "arbitrage", "config": {}}
RM = {"train": "reward", "config": {}}


def dpo_on(policy, **extra) -> dict:
    return {"train": "dpo", "config": {"policy": policy, "data": {"file": "pairs.jsonl"}, **extra}}


REFUSALS = {
    "unknown-top-key": ({"stagse": {}}, "unknown key 'stagse' (did you mean 'stages'?)"),
    "unknown-stage-key": ({"stages": {"a": {"train": "sft", "confg": {}}}}, "did you mean 'config'?"),
    "unknown-kind": ({"stages": {"a": {"train": "sfft", "config": {}}}}, "unknown stage kind 'sfft' (did you mean 'sft'?)"),
    "train-and-merge": ({"stages": {"a": {"train": "sft", "merge": {}}}}, "exactly one of train: KIND or merge"),
    "unknown-reference": ({"stages": {"sft": ARB, "b": dpo_on({"from": "stf"})}}, "names no stage (did you mean 'sft'?)"),
    "cycle": ({"stages": {"a": dpo_on({"from": "b"}), "b": dpo_on({"from": "a"})}}, "cycle: a → b → a"),
    "data-as-checkpoint": ({"stages": {"arb": ARB, "b": dpo_on({"from": "arb"})}},
                           "stage arb (arbitrage) outputs data files, not a checkpoint"),
    "reward-model-as-policy": ({"stages": {"rm": RM, "b": dpo_on({"from": "rm"})}},
                               "policy takes a policy checkpoint, but stage rm (reward) outputs a reward model"),
    "checkpoint-as-file": ({"stages": {"s": dpo_on("embedded"), "b": {"train": "dpo", "config": {
        "policy": "embedded", "data": {"file": {"from": "s"}}}}}}, "file takes a data file, but stage s (dpo)"),
    "unknown-file": ({"stages": {"arb": ARB, "b": {"train": "dpo", "config": {
        "policy": "embedded", "data": {"file": {"from": "arb", "file": "pairs.json"}}}}}},
                     "writes no file 'pairs.json' (did you mean 'pairs.jsonl'?)"),
    "bad-reference-keys": ({"stages": {"arb": ARB, "b": dpo_on({"from": "arb", "fle": "x"})}},
                           "unknown key 'fle' (did you mean 'file'?)"),
    "stage-config-parser": ({"stages": {"b": dpo_on("embedded", betta=0.2)}},
                            "stage b (dpo): DPO config (stage b): unknown key 'betta' (did you mean 'beta'?)"),
    "missing-accelerate-config": ({"stages": {"a": {"train": "sft", "config": {}, "accelerate_config": "no.yaml"}}},
                                  "no.yaml does not exist"),
    "missing-reward-model": ({"stages": {"o": {"train": "online-dpo", "config": {
        "policy": "embedded", "scorer": {"reward_model": "results/no-such-rm"}}}}},
                             "stage o (online-dpo): reward_model results/no-such-rm is not a directory"),
    "missing-policy": ({"stages": {"b": dpo_on("hf:./no/such/ckpt")}}, "policy hf:./no/such/ckpt is not a directory"),
    "accelerate-on-arbitrage": ({"stages": {"a": {**ARB, "accelerate_config": "x.yaml"}}},
                                "arbitrage stages do not launch training ranks"),
}


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_a_bad_recipe_is_refused_in_one_line_before_anything_is_written(case, tmp_path, capsys):
    recipe, message = REFUSALS[case]
    data(tmp_path)
    out = tmp_path / "out"
    assert main(["recipe", "run", str(write_recipe(tmp_path, recipe)), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("glotbench: error:") and message in err, err
    assert "glotbench-recipe-" not in err, "names the temporary file instead of the stage"
    assert not out.exists()


def test_a_directory_that_is_not_a_recipe_run_is_refused(tmp_path, tiny_model_dir, capsys):
    data(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "precious.txt").write_text("x")
    assert main(["recipe", "run", str(write_recipe(tmp_path, two_stage(tiny_model_dir))), "-o",
                 str(tmp_path / "out")]) == 2
    assert "not a recipe directory" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["precious.txt"]


def test_references_render_by_place_and_online_dpo_gives_its_final_checkpoint(tmp_path):
    from glotbench.training.recipe.resolve import checkpoint, render
    from glotbench.training.recipe.schema import load_recipe

    recipe = write_recipe(tmp_path, {"stages": {"arb": ARB, "rm": RM, "on": {"train": "online-dpo", "config": {}},
                                                "m": {"merge": {"models": [{"model": {"from": "on"}}]}},
                                                "x": {"train": "online-dpo", "config": {
                                                    "policy": {"from": "on"}, "scorer": {"reward_model": {"from": "rm"}},
                                                    "prompts": {"file": {"from": "arb", "file": "sft.jsonl"}}}}}})
    stages = load_recipe(recipe)
    assert [s.name for s in stages.stages][-1] == "x" and stages.stage("x").after == ("on", "rm", "arb")
    online = tmp_path / "on-0123456789ab"
    (online / "iter-2" / "checkpoint").mkdir(parents=True)
    (online / "training_manifest.json").write_text(json.dumps(
        {"outputs": {"final_checkpoint": str(online / "iter-2" / "checkpoint")}}))
    targets = {"on": checkpoint(online), "rm": tmp_path / "rm-x", "arb": tmp_path / "arb-x"}
    assert render(stages.stage("x"), targets) == {
        "policy": f"hf:{online / 'iter-2' / 'checkpoint'}", "scorer": {"reward_model": str(tmp_path / "rm-x")},
        "prompts": {"file": str(tmp_path / "arb-x" / "sft.jsonl")}}
    assert render(stages.stage("m"), targets) == {"models": [{"model": f"hf:{online / 'iter-2' / 'checkpoint'}"}]}


def test_a_second_run_in_the_same_directory_is_refused_while_one_holds_it(tmp_path, tiny_model_dir, capsys):
    import fcntl

    data(tmp_path)
    (tmp_path / "out").mkdir()
    with open(tmp_path / "out" / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running `recipe run` holds it
        assert main(["recipe", "run", str(write_recipe(tmp_path, two_stage(tiny_model_dir))), "-o",
                     str(tmp_path / "out")]) == 2
    assert "another glotbench recipe run is using" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "out").iterdir()] == [".lock"]


def shipped_tiny(rm: Path) -> dict:
    """training/recipes/tiny-cpu.yaml with a stand-in for its locally trained reward model
    (results/ is git-ignored: CI has none)."""
    from glotbench.training.core.config import REPO_ROOT

    text = (REPO_ROOT / "training" / "recipes" / "tiny-cpu.yaml").read_text()
    assert "results/rm-alpacaeval" in text
    return yaml.safe_load(text.replace("results/rm-alpacaeval", str(rm)))


def test_the_shipped_tiny_recipe_is_valid(tmp_path, tiny_rm_dir):
    """Its graph, its eval block and every stage config, by each stage's own parser. The
    opponent run (git-ignored) is made by the command in the file's header; here an opponent
    with as many m_arenahard/en answers as the eval's limit is imported into tmp_path instead."""
    from glotbench.harness.store.importers import import_answers
    from glotbench.harness.taskapi.data import load
    from glotbench.harness.taskapi.registry import get_task
    from glotbench.training.core.config import REPO_ROOT
    from glotbench.training.recipe.resolve import validate
    from glotbench.training.recipe.schema import load_recipe

    raw = shipped_tiny(tiny_rm_dir)
    oe = raw["eval"]["open_ended"]
    header = (REPO_ROOT / "training" / "recipes" / "tiny-cpu.yaml").read_text()
    assert f"--limit {oe['limit']} --output {oe['opponent']}" in header, "header command out of date"
    samples = load(get_task(oe["task"]), "en", "auto", None).samples[:oe["limit"]]
    answers = jsonl(tmp_path / "answers.jsonl", [{"prompt_id": s.fields["question_id"], "response": "An answer."}
                                                 for s in samples])
    oe["opponent"] = str(import_answers(answers, oe["task"], "en", tmp_path / "opponent", limit=oe["limit"]))
    recipe = load_recipe(write_recipe(tmp_path, raw))
    assert [(s.name, s.kind, s.after) for s in recipe.stages] == [
        ("arbitrage", "arbitrage", ()), ("sft", "sft", ("arbitrage",)), ("dpo", "dpo", ("sft", "arbitrage")),
        ("dpo_merged", "merge", ("sft", "dpo")), ("online", "online-dpo", ("dpo_merged",))]
    assert raw["stages"]["sft"]["config"]["clusters"] and raw["stages"]["online"]["config"]["iterations"] == 3
    assert recipe.evaluation.open_ended.limit == 16 and recipe.gate.on_fail == "warn"
    validate(recipe)


def test_ci_runs_the_first_two_stages_of_the_shipped_tiny_recipe(tmp_path, tiny_model_dir, tiny_rm_dir, capsys):
    """The CI cut of tiny-cpu.yaml (the whole file is bench/bench_recipe.py): its own arbitrage
    stage on the real published answers, scored by a tiny reward model, then its clustered SFT
    on a tiny model for 2 steps a cluster; a rerun does no work."""
    raw = shipped_tiny(tiny_rm_dir)
    sft = raw["stages"]["sft"]["config"]
    sft.update(model=f"hf:{tiny_model_dir}", max_steps=2)
    cut = {"stages": {"arbitrage": raw["stages"]["arbitrage"], "sft": raw["stages"]["sft"]}}
    recipe, out = write_recipe(tmp_path, cut), tmp_path / "out"
    printed = run(recipe, out, capsys)
    assert "48 prompts, 192 candidates from 4 teachers" in printed
    record = json.loads((out / "recipe.json").read_text())
    arb, trained = (Path(record["stages"][n]["output"]) for n in ("arbitrage", "sft"))
    assert len((arb / "sft.jsonl").read_text().splitlines()) == 48
    assert sorted(p.name for p in (trained / "clusters").iterdir()) == ["germanic", "romance"]
    assert (trained / "model.safetensors").is_file()
    before = outputs(out)
    assert "running" not in run(recipe, out, capsys) and outputs(out) == before


def test_the_shipped_aya_expanse_recipe_is_valid_once_its_placeholders_are_filled(tmp_path, tiny_model_dir,
                                                                                   tiny_rm_dir):
    """The 8B GPU recipe: the report's shape (arbitrage → clustered SFT over Aya's 23 languages with
    en/es/fr shared → two offline DPOs merged → 3 online iterations merged over 3 seeds), every
    CHANGE_ME filled with a local stand-in, then validated by every stage's own parser."""
    from glotbench.harness.store.importers import import_answers
    from glotbench.harness.taskapi.data import load
    from glotbench.harness.taskapi.registry import get_task
    from glotbench.training.core.config import REPO_ROOT, ConfigError
    from glotbench.training.recipe.resolve import validate
    from glotbench.training.recipe.schema import load_recipe

    shipped = REPO_ROOT / "training" / "recipes" / "aya-expanse.yaml"
    with pytest.raises(ConfigError, match=r"is still a CHANGE_ME placeholder \(and \d+ more\)"):
        load_recipe(shipped)  # as shipped: the placeholders are named before any path is read
    text = shipped.read_text()
    prompts = jsonl(tmp_path / "prompts.jsonl", [{"prompt_id": "p1", "language": "de", "prompt": "Hallo?"}])
    samples = load(get_task("m_arenahard"), "en", "auto", None).samples[:2]
    answers = jsonl(tmp_path / "answers.jsonl", [{"prompt_id": s.fields["question_id"], "response": "An answer."}
                                                 for s in samples])
    opponent = import_answers(answers, "m_arenahard", "en", tmp_path / "opponent", limit=2)
    for old, new in (("CHANGE_ME/prompts.jsonl", prompts), ("CHANGE_ME/reward-model", tiny_rm_dir),
                     ("CHANGE_ME/base-8b", tiny_model_dir), ("CHANGE_ME/gemma-2-9b-it-m_arenahard", opponent)):
        assert old in text
        text = text.replace(old, str(new))
    text = text.replace("training/recipes/accelerate/", f"{REPO_ROOT}/training/recipes/accelerate/")
    raw = yaml.safe_load(text)
    raw["eval"]["open_ended"]["languages"] = ["en"]
    with pytest.raises(ConfigError, match=r"stages.arbitrage.config.teachers\[0\].model is still a CHANGE_ME placeholder "
                                          r"\(and \d+ more\)"):
        validate(load_recipe(write_recipe(tmp_path, raw)))  # the servers and the judge are not filled in
    text = text.replace("CHANGE_ME", "local")  # server names and the judge: strings, not files
    (tmp_path / "aya.yaml").write_text(text)
    with pytest.raises(ConfigError, match="has no m_arenahard completions for ar, cs, de"):  # en only here
        load_recipe(tmp_path / "aya.yaml")
    raw = yaml.safe_load(text)
    raw["eval"]["open_ended"]["languages"] = ["en"]
    recipe = load_recipe(write_recipe(tmp_path, raw))
    validate(recipe)
    assert [s.name for s in recipe.stages] == ["arbitrage", "sft", "dpo", "translated", "dpo_translated",
                                               "offline_merged", "online"]
    clusters = raw["stages"]["sft"]["config"]["clusters"]
    shared = raw["stages"]["sft"]["config"]["shared"]
    assert shared == ["en", "es", "fr"]
    aya = "ar cs de el en es fa fr he hi id it ja ko nl pl pt ro ru tr uk vi zh".split()
    assert sorted([lang for langs in clusters.values() for lang in langs] + shared) == aya
    assert raw["stages"]["online"]["config"]["iterations"] == 3
    assert all(s.accelerate_config and s.accelerate_config.name == "deepspeed-zero3.yaml"
               for s in recipe.stages if s.kind in ("sft", "dpo", "online-dpo"))


# --- running ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def first_run(tmp_path_factory, tiny_model_dir):
    """One two-stage run (in process): the recipe's directory, its output and the stage dirs."""
    base = tmp_path_factory.mktemp("recipe")
    data(base)
    recipe = write_recipe(base, two_stage(tiny_model_dir))
    assert main(["recipe", "run", str(recipe), "-o", str(base / "out"), "--no-progress"]) == 0
    return base, recipe, base / "out"


def copy(first_run, tmp_path) -> tuple[Path, Path]:
    base, _, out = first_run
    for name in ("sft.jsonl", "pairs.jsonl"):
        shutil.copy2(base / name, tmp_path / name)
    shutil.copytree(out, tmp_path / "out", copy_function=shutil.copy2)
    record = json.loads((tmp_path / "out" / "recipe.json").read_text())  # status reads the recipe it names
    (tmp_path / "out" / "recipe.json").write_text(json.dumps({**record, "recipe": str(tmp_path / "recipe.yaml")}))
    return tmp_path, tmp_path / "out"


def test_two_stages_run_in_order_with_manifests_lineage_and_a_record(first_run):
    _, recipe, out = first_run
    record = json.loads((out / "recipe.json").read_text())
    assert record["order"] == ["sft", "dpo"] and record["stages"]["dpo"]["after"] == ["sft"]
    sft, dpo = (Path(record["stages"][s]["output"]) for s in ("sft", "dpo"))
    assert sft.name == f"sft-{record['stages']['sft']['sha256'][:12]}"
    for s in ("sft", "dpo"):
        entry = record["stages"][s]
        assert entry["state"] == "done" and entry["seconds"] > 0 and entry["headline"], entry
    man = json.loads((dpo / "training_manifest.json").read_text())
    assert any(str(sft) in json.dumps(i) for i in man["inputs"]), "DPO did not start from the SFT output"
    ran = yaml.safe_load((out / ".configs" / f"{dpo.name}.yaml").read_text())
    assert ran["policy"] == f"hf:{sft}" and ran["data"]["file"] == str(recipe.parent / "pairs.jsonl")


def test_a_second_run_does_no_work_and_status_says_done(first_run, tmp_path, capsys):
    base, out = copy(first_run, tmp_path)
    before = outputs(out)
    started = time.perf_counter()
    printed = run(write_recipe(base, yaml.safe_load(first_run[1].read_text())), out, capsys)
    assert time.perf_counter() - started < 10
    assert printed.count("skipped") == 2 and outputs(out) == before
    assert main(["recipe", "status", str(out)]) == 0
    status = capsys.readouterr().out
    assert "2/2 stages done" in status and status.count(" done ") == 2, status


def test_editing_the_downstream_stage_reruns_only_it(first_run, tmp_path, tiny_model_dir, capsys):
    base, out = copy(first_run, tmp_path)
    before = outputs(out)
    recipe = write_recipe(base, two_stage(tiny_model_dir, dpo={"beta": 0.2}))
    assert main(["recipe", "status", str(out)]) == 0
    assert "stale" in capsys.readouterr().out.split("\n")[2]  # dpo's line: the edit is seen before running
    printed = run(recipe, out, capsys)
    after = outputs(out)
    sft = next(n for n in before if n.startswith("sft-"))
    assert after[sft] == before[sft] and "sft: done" in printed
    assert len(after) == 2 and set(after) - set(before), "DPO got a new output; the old one is pruned"


def test_editing_the_upstream_stage_reruns_both(first_run, tmp_path, tiny_model_dir, capsys):
    base, out = copy(first_run, tmp_path)
    before = outputs(out)
    run(write_recipe(base, two_stage(tiny_model_dir, sft={"learning_rate": 2e-3})), out, capsys)
    assert not set(outputs(out)) & set(before) and len(outputs(out)) == 2


def test_an_edited_input_file_reruns_its_stage(first_run, tmp_path, capsys):
    base, out = copy(first_run, tmp_path)
    before = outputs(out)
    with open(base / "pairs.jsonl", "a", encoding="utf-8") as f:
        f.write((base / "pairs.jsonl").read_text().splitlines()[0] + "\n")
    run(write_recipe(base, yaml.safe_load(first_run[1].read_text())), out, capsys)
    after = outputs(out)
    assert [n for n in after if n.startswith("sft-")] == [n for n in before if n.startswith("sft-")]
    assert set(after) != set(before)


KILLER = """
import os, signal
from glotbench.training.core import stage

write_manifest = stage.write_manifest


def killing_write_manifest(directory, data):
    if data.get("stage") == os.environ["KILL_STAGE"]:  # trained, not yet published: as a kill -9 finds it
        os.kill(os.getpid(), signal.SIGKILL)
    return write_manifest(directory, data)


stage.write_manifest = killing_write_manifest
"""


def test_kill_9_in_the_second_stage_then_rerun_skips_the_first(tmp_path, tiny_model_dir):
    data(tmp_path)
    recipe, out = write_recipe(tmp_path, two_stage(tiny_model_dir, dpo={"beta": 0.3})), tmp_path / "out"
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILLER, encoding="utf-8")
    cmd = [sys.executable, "-m", "glotbench.harness.cli.main", "recipe", "run", str(recipe), "-o", str(out),
           "--no-progress"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]),
           "KILL_STAGE": "dpo"}
    killed = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    sft = outputs(out)
    assert len(sft) == 1 and next(iter(sft)).startswith("sft-"), "only SFT finished"
    assert json.loads((out / "recipe.json").read_text())["stages"]["dpo"]["state"] == "running"
    status = subprocess.run([*cmd[:4], "status", str(out)], capture_output=True, text=True)
    assert "pending (interrupted)" in status.stdout, status.stdout + status.stderr
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "sft: done" in done.stdout and "skipped" in done.stdout
    after = outputs(out)
    assert {k: v for k, v in after.items() if k.startswith("sft-")} == sft, "SFT was rerun"
    assert len(after) == 2 and not list(out.glob(".dpo-*.partial-*")), "DPO finished and its partial is gone"


def test_status_tells_a_running_stage_from_an_interrupted_one_by_the_lock(first_run, tmp_path, capsys):
    import fcntl

    _, out = copy(first_run, tmp_path)
    record = json.loads((out / "recipe.json").read_text())
    dpo = record["stages"]["dpo"]
    dpo["state"], dpo["output"] = "running", str(out / Path(dpo["output"]).name)  # as a run writes it at the start
    shutil.rmtree(dpo["output"])
    (out / "recipe.json").write_text(json.dumps(record))
    with open(out / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["recipe", "status", str(out)]) == 0
        assert capsys.readouterr().out.split("\n")[2].split()[2] == "running"
    assert main(["recipe", "status", str(out)]) == 0
    assert "pending (interrupted)" in capsys.readouterr().out.split("\n")[2]
