"""``glotbench train reward``: a few steps of trl's RewardTrainer on a tiny Llama over real
AlpacaEval preference pairs; the checkpoint, eval.json and the manifest's lineage."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from glotbench.harness.cli.main import main
from glotbench.harness.core.hashing import dir_sha256
from glotbench.harness.run.cache import RequestCache
from glotbench.training.core.stage import MANIFEST
from glotbench.training.reward.config import load_config
from glotbench.training.reward.data import alpaca_eval_pairs
from glotbench.training.reward.evaluate import evaluate_pairs
from glotbench.training.reward.score import RM_FILES, RewardModelScorer
from glotbench.training.reward.train import run_stage
from glotbench.training.reward.trainer import TRAIN_LOG, fit, prepare

ANNOTATIONS = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca_eval_2" / "annotations"
ARENA = Path(__file__).resolve().parents[2] / "shared" / "data" / "arena_hard_v0.1" / "question.jsonl"


def config(tmp_path: Path, base: Path, **train) -> Path:
    cfg = {"base_model": f"hf:{base}",
           "data": {"alpaca_eval": str(ANNOTATIONS), "teachers": ["alpaca-7b", "claude-2"], "min_instruction": 50},
           "split": {"eval_fraction": 0.2, "train_pairs": 12, "eval_pairs": 8},
           "train": {"max_length": 96, "steps": 3, "batch_size": 2, "learning_rate": 1e-3, "logging_steps": 1,
                     **train},
           "seed": 0}
    path = tmp_path / "reward.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GLOTBENCH_REQUEST_CACHE", str(tmp_path / "requests.sqlite"))
    return tmp_path / "requests.sqlite"


def test_training_writes_a_loadable_rm_with_eval_and_lineage(tmp_path, tiny_model_dir, isolated_cache):
    from transformers import AutoModelForSequenceClassification

    conf, out = config(tmp_path, tiny_model_dir), tmp_path / "rm"
    summary = run_stage(conf, out, overwrite=False, progress=False)
    assert "held-out pairwise accuracy" in summary and str(out) in summary and "eval overlap: 0 prompts" in summary
    assert not list(tmp_path.glob(".rm.partial-*")) and not (out / "trainer").exists()
    ev = json.loads((out / "eval.json").read_text())
    log = ev["training"]
    assert log["steps"] == 3 and all(math.isfinite(p["loss"]) for p in log["loss_curve"]) and log["tokens"] > 0
    held = ev["held_out"]
    assert held["n_pairs"] == 8 and 0 <= held["accuracy"] <= 1 and held["ci95"][0] <= held["accuracy"] <= held["ci95"][1]
    assert held["wins"] + held["ties"] + held["losses"] == 8 and held["chance"] == 0.5
    assert ev["data"]["counts"]["records"] == 2 * 805 and ev["data"]["train_pairs"] == 12
    # The weights moved away from the base (the score head is new; a block was trained).
    base = load_file(tiny_model_dir / "model.safetensors")
    trained = load_file(out / "model.safetensors")
    key = "model.layers.1.mlp.down_proj.weight"
    assert not torch.equal(base[key], trained[key])
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_labels == 1 and model.config.pad_token_id is not None
    man = json.loads((out / MANIFEST).read_text())
    roles = {i["role"]: i for i in man["inputs"]}
    assert roles["base"]["sha256"] == dir_sha256(tiny_model_dir, RM_FILES)
    assert roles["data"]["sha256"] == dir_sha256(ANNOTATIONS, ("*.json",)) and roles["data"]["pairs_sha256"]
    overlap = roles["data"]["eval_overlap"]
    assert overlap["overlapping"] == 0 and overlap["checked_sets"]["m_arenahard"] == 500 and not overlap["allowed"]
    assert man["stage"] == "reward" and man["config"]["train"]["steps"] == 3 and man["versions"]["trl"] == "1.16.0"
    assert man["reward"]["max_length"] == 96 and man["outputs"]["weights_sha256"] == dir_sha256(out, RM_FILES)
    # The scorer on the published checkpoint reuses the stage's held-out scores from the cache.
    held_pairs = prepare(load_config(conf), conf).held_out
    scorer = RewardModelScorer(out, cache=RequestCache(isolated_cache))
    assert scorer.max_length == 96
    again = evaluate_pairs(scorer, held_pairs, seed=0)
    assert scorer.stats["computed"] == 0 and again["accuracy"] == held["accuracy"]


def test_train_last_layers_freezes_the_rest_and_lora_merges(tmp_path, tiny_model_dir, isolated_cache):
    out = tmp_path / "rm-last"
    run_stage(config(tmp_path, tiny_model_dir, train_last_layers=1), out, overwrite=False, progress=False)
    base, trained = load_file(tiny_model_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert torch.equal(base["model.layers.0.mlp.down_proj.weight"], trained["model.layers.0.mlp.down_proj.weight"])
    assert not torch.equal(base["model.layers.1.mlp.down_proj.weight"],
                           trained["model.layers.1.mlp.down_proj.weight"])
    lora = tmp_path / "rm-lora"
    run_stage(config(tmp_path, tiny_model_dir, lora={"r": 4, "alpha": 8}), lora, overwrite=False, progress=False)
    weights = load_file(lora / "model.safetensors")
    assert not any("lora" in k for k in weights) and "score.weight" in weights
    assert not torch.equal(base["model.layers.0.self_attn.q_proj.weight"], weights["model.layers.0.self_attn.q_proj.weight"])


def test_cli_refuses_a_taken_output_before_any_work_and_config_mistakes_in_one_line(tmp_path, tiny_model_dir,
                                                                                      capsys):
    conf = config(tmp_path, tiny_model_dir)
    (tmp_path / "taken").mkdir()
    assert main(["train", "reward", str(conf), "-o", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("glotbench: error: output") and "\n" not in err
    bad = [("train", {"max_lenght": 10}, "did you mean 'max_length'"),
           ("data", {"alpaca_eval": "x", "file": "y"}, "exactly one of"),
           ("split", {"eval_fraction": 1.5}, "between 0 and 1"),
           ("train", {"overlong": "cut"}, "overlong must be one of"),
           ("base_model", "gpt2", "is not 'embedded' or 'hf:<dir>'"),
           ("data", {"file": "pairs.jsonl", "allow_eval_overlap": "no"}, "allow_eval_overlap must be bool")]
    for key, block, message in bad:
        raw = yaml.safe_load(conf.read_text())
        raw[key] = block
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump(raw))
        assert main(["train", "reward", str(tmp_path / "bad.yaml"), "-o", str(tmp_path / "new")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("glotbench: error:") and "\n" not in err and message in err, err
    assert main(["train", "reward", str(conf), "-o", str(tmp_path / "new"), "--accelerate-config",
                 str(tmp_path / "none.yaml")]) == 2
    assert "accelerate config" in capsys.readouterr().err and not (tmp_path / "new").exists()


def test_pairs_on_an_arena_hard_question_are_refused_unless_allowed(tmp_path, tiny_model_dir, capsys):
    question = json.loads(ARENA.read_text(encoding="utf-8").splitlines()[3])["prompt"]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt_id": f"q{i}", "prompt": text, "chosen": "yes", "rejected": "no"})
                             + "\n" for i, text in enumerate(["Name a river.", question, "Name a lake."])))
    raw = yaml.safe_load(config(tmp_path, tiny_model_dir).read_text())
    raw["data"], raw["split"] = {"file": str(pairs)}, {"eval_fraction": 0.4}
    conf = tmp_path / "arena.yaml"
    conf.write_text(yaml.safe_dump(raw))
    assert main(["train", "reward", str(conf), "-o", str(tmp_path / "rm")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "1 of 3 training prompts" in err and "m_arenahard" in err and "q1/" in err, err
    assert "allow_eval_overlap: true in the data block" in err and not (tmp_path / "rm").exists()
    raw["data"]["allow_eval_overlap"] = True
    conf.write_text(yaml.safe_dump(raw))
    report = prepare(load_config(conf), conf).overlap
    assert report.allowed and report.overlapping == 1 and report.overlaps == {"m_arenahard": 1}


def test_every_rank_saves_through_the_trainer(tmp_path, tiny_model_dir, monkeypatch, isolated_cache):
    """Under ZeRO-3/FSDP2 only a collective ``trainer.save_model`` on every rank can gather the
    sharded weights: a rank other than the main one must still call it (here: the one process
    told it is not rank 0), and only then skip the main-process extras."""
    from transformers import Trainer

    calls = []
    real = Trainer.save_model

    def spy(self, output_dir=None, _internal_call=False):
        calls.append(output_dir)
        return real(self, output_dir, _internal_call)

    monkeypatch.setattr(Trainer, "save_model", spy)
    monkeypatch.setattr(Trainer, "is_world_process_zero", lambda self: False)
    conf = config(tmp_path, tiny_model_dir, steps=1)
    work = tmp_path / "work"
    work.mkdir()
    assert fit(load_config(conf), conf, work, progress=False) == {}
    assert calls == [str(work)] and not (work / TRAIN_LOG).exists()


def test_pair_counts_match_the_real_annotations():
    pairs = alpaca_eval_pairs(ANNOTATIONS, ("alpaca-7b",))
    assert pairs.counts == {"records": 805, "pairs": 802, "chosen_baseline": 785, "chosen_other": 17, "draw": 3}
