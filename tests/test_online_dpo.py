"""Online iterative DPO (glotbench train online-dpo) on a tiny random Llama policy scored by a
tiny random reward model: 2 iterations, K = 3. Every pair's gap recomputed from the RM with
transformers alone; the reference chain (iteration n's reference is iteration n-1's output);
the metrics; a kill -9 during iteration 2's generation resumed without recomputing iteration
1, ending byte-identical to the uninterrupted run; the seed/previous merge checked against an
independent average; one-line config errors."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from killers import cache_killer_env

from glotbench.harness.cli.main import main
from glotbench.harness.core.hashing import dir_sha256, file_sha256
from glotbench.training.online.state import RunDir
from glotbench.training.sft.train import WEIGHT_PATTERNS

WORDS = ("casa", "perro", "libro", "mesa", "agua", "cielo", "verde", "rojo", "gato", "mar", "sol", "luna")
PROMPTS, HELD, K = 16, 4, 3  # 12 training prompts x K = 36 generations: chunks of 16, 16 and 4


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory) -> Path:
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt_id": f"toy-{i}", "language": "es" if i % 2 else "en",
                                        "prompt": " ".join(rng.choices(WORDS, k=5)) + f" {i}?"}) + "\n"
                            for i in range(PROMPTS)), encoding="utf-8")
    return path


def config(path: Path, model: Path, rm: Path, prompts: Path, **changes) -> Path:
    cfg = {"policy": f"hf:{model}", "prompts": {"file": str(prompts)}, "held_out": HELD / PROMPTS, "iterations": 2,
           "samples_per_prompt": K, "sampling": {"temperature": 1.0, "max_new_tokens": 12, "seed": 0},
           "eval_samples": 2, "scorer": {"reward_model": str(rm)}, "min_gap": 0.001,
           "dpo": {"beta": [0.1, 0.05], "learning_rate": 1.0e-3, "max_steps": 2, "batch_size": 4, "max_length": 96},
           "seed": 0, "batch_size": 8, "device": "cpu", "dtype": "float32", **changes}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def cli(cfg: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "glotbench.harness.cli", "train", "online-dpo", str(cfg), "-o", str(out),
            "--no-progress"]


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, tiny_model_dir, tiny_rm_dir, prompts_file) -> tuple[Path, Path]:
    """(config, output) of an uninterrupted run."""
    tmp = tmp_path_factory.mktemp("online")
    cfg = config(tmp / "online.yaml", tiny_model_dir, tiny_rm_dir, prompts_file)
    done = subprocess.run(cli(cfg, tmp / "run"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "online DPO: 2 iteration(s)" in done.stdout
    return cfg, tmp / "run"


def rm_score(model, tok, prompt: list[dict], completion: str) -> float:
    """The RM's score computed with transformers alone: chat template, last token's logit."""
    import torch

    text = tok.apply_chat_template(prompt + [{"role": "assistant", "content": completion}], tokenize=False)
    ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        return float(model(input_ids=ids).logits[0, 0])


def test_pairs_clear_the_gap_by_the_reward_model_and_the_reference_chain_holds(clean_run, tiny_rm_dir, tiny_model_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    _, run = clean_run
    model = AutoModelForSequenceClassification.from_pretrained(tiny_rm_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_rm_dir)
    start = dir_sha256(tiny_model_dir, WEIGHT_PATTERNS)
    for n in (1, 2):
        it = run / f"iter-{n}"
        pairs, samples = lines(it / "pairs.jsonl"), lines(it / "samples.jsonl")
        assert len(samples) == (PROMPTS - HELD) * K and sorted({s["sample"] for s in samples}) == [0, 1, 2]
        assert pairs, "no pair to check"
        for p in pairs:
            chosen = rm_score(model, tok, p["prompt"], p["chosen"][0]["content"])
            rejected = rm_score(model, tok, p["prompt"], p["rejected"][0]["content"])
            assert chosen >= rejected + 0.001, p["prompt_id"]
            assert chosen == pytest.approx(p["score_chosen"], abs=1e-4)
            assert rejected == pytest.approx(p["score_rejected"], abs=1e-4)
            mine = [s["score"] for s in samples if s["prompt_id"] == p["prompt_id"]]
            assert p["score_chosen"] == max(mine) and p["score_rejected"] == min(mine)
        counts = json.loads((it / "metrics.json").read_text())["pairs"]
        assert counts["kept"] == len(pairs)
        assert sum(counts[k] for k in ("kept", "single_candidate", "too_few_scored", "tie", "small_gap")) \
            == counts["prompts"] == PROMPTS - HELD
        # The reference of iteration n is iteration n-1's output (the initial policy for n = 1).
        lineage = json.loads((it / "checkpoint" / "training_manifest.json").read_text())["inputs"]
        ref = next(i for i in lineage if i["role"] == "reference")
        base = next(i for i in lineage if i["role"] == "base")
        assert ref["sha256"] == base["sha256"] == start
        start = dir_sha256(it / "checkpoint", WEIGHT_PATTERNS)
        assert start != ref["sha256"], "training changed nothing"
    # ... and the weights the second iteration started from are the first iteration's, tensor for tensor.

    dpo_cfg = yaml.safe_load((run / "iter-2" / "dpo-seed-0.yaml").read_text())
    assert dpo_cfg["reference"] == dpo_cfg["policy"] == f"hf:{run / 'iter-1' / 'checkpoint'}"
    assert dpo_cfg["beta"] == 0.05


def test_metrics_per_iteration_and_for_the_run(clean_run):
    _, run = clean_run
    m = json.loads((run / "metrics.json").read_text())
    assert m["beta"] == [0.1, 0.05]
    s = m["series"]
    assert len(s["held_out_reward"]) == 3 and all(isinstance(v, float) for v in s["held_out_reward"])
    assert set(s["held_out_reward_by_language"]) == {"en", "es"}
    assert s["kl_to_initial"][0] == 0.0 and s["win_rate_vs_initial"][0] is None
    initial = lines(run / "iter-0" / "eval.jsonl")
    assert len(initial) == HELD * 2 and all(r["logp_policy"] == r["logp_initial"] for r in initial)
    for n, it in enumerate(m["iterations"], start=1):
        assert it["held_out"]["before"] == (m["initial"] if n == 1 else m["iterations"][n - 2]["held_out"]["after"])
        after = lines(run / f"iter-{n}" / "eval.jsonl")
        kl = sum(r["logp_policy"] - r["logp_initial"] for r in after) / len(after)
        assert it["held_out"]["after"]["kl_to_initial"]["value"] == pytest.approx(kl)
        assert it["held_out"]["after"]["reward"]["ci95"] is not None
        assert 0 <= it["win_rate"]["vs_initial"]["value"] <= 1 and it["win_rate"]["vs_initial"]["compared"] == HELD * 2
        assert it["dpo"]["0"]["steps"] == 2 and it["dpo"]["0"]["loss"]["first"] is not None
        assert it["tokens"]["samples"] == sum(r["tokens"] for r in lines(run / f"iter-{n}" / "samples.jsonl"))
        assert {"sample.generate", "train.train", "evaluate.generate"} <= set(it["wall_seconds"])
    assert (run / "metrics.png").read_bytes()[:4] == b"\x89PNG"
    manifest = json.loads((run / "training_manifest.json").read_text())
    assert manifest["stage"] == "online-dpo"
    assert manifest["outputs"]["final_checkpoint_sha256"] == dir_sha256(run / "iter-2" / "checkpoint", WEIGHT_PATTERNS)


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(directory)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def comparable(run: Path) -> dict[str, str]:
    """Every output file's content with the run's own path and the timings taken out."""
    out = {}
    for p in sorted(run.rglob("*")):
        rel = str(p.relative_to(run))
        if not p.is_file() or p.name in ("training_manifest.json", "steps.json") or p.name.startswith("requests.") \
                or rel.endswith(".png"):
            continue
        if p.suffix == ".safetensors":
            out[rel] = file_sha256(p)
        elif p.name == "metrics.json" and "iter-" in rel and "checkpoint" not in rel:
            data = json.loads(p.read_text())
            data.pop("wall_seconds")
            out[rel] = json.dumps(data, sort_keys=True).replace(str(run), "DIR")
        elif p.name == "metrics.json" and "/" not in rel:
            data = json.loads(p.read_text())
            for it in data["iterations"]:
                it.pop("wall_seconds")
            out[rel] = json.dumps(data, sort_keys=True).replace(str(run), "DIR")
        elif p.name == "metrics.json":  # the DPO stage's own metrics: wall time inside
            data = json.loads(p.read_text())
            data.pop("wall_seconds")
            out[rel] = json.dumps(data, sort_keys=True)
        else:
            out[rel] = p.read_text(encoding="utf-8").replace(str(run), "DIR")
    return out


def test_kill_9_in_iteration_2_generation_resumes_without_recomputing_iteration_1(clean_run, tmp_path):
    cfg, reference = clean_run
    out = tmp_path / "killed"
    # The process SIGKILLs itself right after iteration 2's first chunk of 16 generations is
    # committed (a sitecustomize on its path wraps the cache's commit): no timing involved.
    # Committed before: the initial and iteration 1's held-out completions, iteration 1's samples.
    before = HELD * 2 * 2 + (PROMPTS - HELD) * K
    env = cache_killer_env(tmp_path / "hook", out / "requests.sqlite", before + 16)
    killed = subprocess.run(cli(cfg, out), env=env, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (out / "iter-2" / "samples.jsonl").exists(), "killed after iteration 2's generation"
    assert (out / "iter-1" / "training_manifest.json").is_file()
    first = snapshot(out / "iter-1")
    done = subprocess.run(cli(cfg, out), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "(resumed)" in done.stdout
    assert snapshot(out / "iter-1") == first, "iteration 1 was recomputed"
    counts = json.loads((out / "iter-2" / "steps.json").read_text())["sample"]["counts"]
    assert counts["from_cache"] == 16 and counts["generated"] == (PROMPTS - HELD) * K - 16
    assert comparable(out) == comparable(reference)
    again = subprocess.run(cli(cfg, out), capture_output=True, text=True)
    assert again.returncode == 0 and "already complete" in again.stdout


def test_seed_merge_with_the_previous_checkpoint_is_the_linear_average(tmp_path, tiny_model_dir, tiny_rm_dir,
                                                                        prompts_file):
    import safetensors.torch
    import torch

    cfg = config(tmp_path / "merge.yaml", tiny_model_dir, tiny_rm_dir, prompts_file, iterations=1,
                 merge={"seeds": [0, 1], "previous": 0.5}, dpo={"beta": 0.1, "learning_rate": 1.0e-3, "max_steps": 1,
                                                               "batch_size": 4, "max_length": 96})
    assert main(["train", "online-dpo", str(cfg), "-o", str(tmp_path / "run"), "--no-progress"]) == 0
    it = tmp_path / "run" / "iter-1"
    load = safetensors.torch.load_file
    a, b = load(it / "dpo-seed-0" / "model.safetensors"), load(it / "dpo-seed-1" / "model.safetensors")
    start, merged = load(tiny_model_dir / "model.safetensors"), load(it / "checkpoint" / "model.safetensors")
    assert set(merged) == set(start)
    assert any(not torch.equal(a[n], b[n]) for n in a), "two seeds trained the same weights"
    for name, tensor in merged.items():
        torch.testing.assert_close(tensor, 0.25 * a[name] + 0.25 * b[name] + 0.5 * start[name], atol=1e-6, rtol=0)
    lineage = json.loads((it / "checkpoint" / "training_manifest.json").read_text())
    assert [(i["role"], i["weight"]) for i in lineage["inputs"]] == [("dpo", 0.25), ("dpo", 0.25), ("previous", 0.5)]
    # Killed after the merge was renamed into place but before the step was recorded: the
    # rerun keeps the merged checkpoint and finishes the iteration.
    steps = json.loads((it / "steps.json").read_text())
    (it / "steps.json").write_text(json.dumps({k: v for k, v in steps.items() if k not in ("merge", "evaluate")}))
    for done in (it / "training_manifest.json", tmp_path / "run" / "training_manifest.json"):
        done.unlink()
    weights = file_sha256(it / "checkpoint" / "model.safetensors")
    assert main(["train", "online-dpo", str(cfg), "-o", str(tmp_path / "run"), "--no-progress"]) == 0
    assert file_sha256(it / "checkpoint" / "model.safetensors") == weights
    assert (tmp_path / "run" / "training_manifest.json").is_file()


@pytest.mark.parametrize("change, message", [
    ({"iterations": 0}, "iterations must be at least 1"),
    ({"samples_per_prompt": 1}, "samples_per_prompt must be at least 2"),
    ({"dpo": {"policy": "embedded"}}, "dpo.policy is set by the loop"),
    ({"dpo": {"beta": [0.1, 0.1, 0.1]}}, "lists 3 values for 2 iterations"),
    ({"dpo": {"betta": 0.1}}, "unknown key 'betta'"),
    ({"sampling": {"temperature": 0}}, "temperature must be above 0"),
    ({"held_out": 1.5}, "held_out must be a share"),
    ({"merge": {"previous": 1.0}}, "previous must be a weight in [0, 1)"),
    ({"policy": "hf:/nonexistent/ckpt"}, "is not a checkpoint directory"),
    ({"scorer": {"reward_model": "/nonexistent/rm"}}, "reward_model /nonexistent/rm is not a directory"),
    ({"scorer": {}}, "must have exactly one of"),
])
def test_bad_config_is_one_line_exit_2(tmp_path, tiny_model_dir, tiny_rm_dir, prompts_file, capsys, change, message):
    cfg = config(tmp_path / "bad.yaml", tiny_model_dir, tiny_rm_dir, prompts_file, **change)
    assert main(["train", "online-dpo", str(cfg), "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_a_directory_of_another_run_is_refused_and_overwrite_starts_over(tmp_path):
    root = tmp_path / "run"
    RunDir.open(root, {"config_sha256": "a"}, overwrite=False)
    (root / "iter-0").mkdir()
    assert RunDir.open(root, {"config_sha256": "a"}, overwrite=False).root == root  # same run: resume
    from glotbench.harness.core.errors import GlotbenchError

    with pytest.raises(GlotbenchError, match="holds an online-DPO run of another config_sha256"):
        RunDir.open(root, {"config_sha256": "b"}, overwrite=False)
    RunDir.open(root, {"config_sha256": "b"}, overwrite=True)
    assert not (root / "iter-0").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("x")
    for overwrite in (False, True):  # --overwrite never deletes a directory that is not a run's
        with pytest.raises(GlotbenchError, match="not an online-DPO directory"):
            RunDir.open(other, {"config_sha256": "a"}, overwrite=overwrite)
    assert (other / "x.txt").exists()
