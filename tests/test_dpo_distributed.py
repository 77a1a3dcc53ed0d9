"""Distributed DPO on CPU: 2 processes (DDP over gloo, under ``accelerate launch``) give the
same loss curve and weights as 1 process with the same global batch; only rank 0 writes."""

from __future__ import annotations

import json
import random

import pytest
import yaml
from test_dpo import tiny_cfg, toy_pairs, write, write_config
from test_sft import weights
from test_sft_distributed import GLOO, free_port

from glotbench.harness.cli.main import main


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tiny_model_dir, tmp_path, capsys):
    data = write(tmp_path / "pairs.jsonl", toy_pairs(20, scores=[(1.0, 0.0)] * 20))
    acc = yaml.safe_load(GLOO.read_text())
    acc["main_process_port"] = free_port()  # tests may run beside other launches
    acc_file = tmp_path / "accelerate.yaml"
    acc_file.write_text(yaml.safe_dump(acc))
    common = {"max_steps": 3, "eval_fraction": 0.2}
    one = write_config(tmp_path / "one.yaml", **tiny_cfg(tiny_model_dir, data, batch_size=4, **common))
    two = write_config(tmp_path / "two.yaml", **tiny_cfg(tiny_model_dir, data, batch_size=2, **common))
    assert main(["train", "dpo", str(one), "-o", str(tmp_path / "one"), "--no-progress"]) == 0
    assert main(["train", "dpo", str(two), "-o", str(tmp_path / "two"), "--no-progress",
                 "--accelerate-config", str(acc_file)]) == 0
    assert "2 process(es)" in capsys.readouterr().out
    m1, m2 = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "two"))
    assert (m1["processes"], m2["processes"]) == (1, 2)
    l1, l2 = ([p["loss"] for p in m["loss_curve"]] for m in (m1, m2))
    assert len(l1) == len(l2) == 3 and l1[-1] < l1[0]
    assert l1 == pytest.approx(l2, rel=1e-5, abs=1e-5), (l1, l2)
    assert m1["held_out_after"]["logp_margin"] == pytest.approx(m2["held_out_after"]["logp_margin"], rel=1e-3)
    w0, w1, w2 = weights(tiny_model_dir), weights(tmp_path / "one"), weights(tmp_path / "two")
    # Adam divides by the gradient's running RMS, so float reordering of the all-reduce moves
    # near-zero-gradient weights by up to ~1e-5 (measured 1.2e-5) out of ~1e-2 they move in all.
    diff = max((w1[k] - w2[k]).abs().max().item() for k in w1)
    moved = max((w1[k] - w0[k]).abs().max().item() for k in w1)
    assert diff < 1e-4 and moved > 100 * diff, (diff, moved)
    man = json.loads((tmp_path / "two" / "training_manifest.json").read_text())
    assert man["accelerate_config"] == str(acc_file)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no rank left a partial


def test_online_dpo_trains_each_iteration_under_accelerate_with_two_gloo_processes(tiny_model_dir, tiny_rm_dir,
                                                                                   tmp_path):
    from test_online_dpo import config

    from glotbench.training.online.loop import run_stage

    rng = random.Random(0)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt_id": f"p{i}", "language": "en",
                                           "prompt": f"say {rng.randint(0, 99)} things {i}"}) + "\n"
                               for i in range(8)), encoding="utf-8")
    acc = yaml.safe_load(GLOO.read_text())
    acc["main_process_port"] = free_port()
    acc_file = tmp_path / "accelerate.yaml"
    acc_file.write_text(yaml.safe_dump(acc))
    cfg = config(tmp_path / "online.yaml", tiny_model_dir, tiny_rm_dir, prompts, iterations=1, held_out=0.25,
                 dpo={"beta": 0.1, "learning_rate": 1.0e-3, "max_steps": 2, "batch_size": 2, "max_length": 96})
    summary = run_stage(cfg, tmp_path / "run", accelerate_config=acc_file)
    assert "online DPO: 1 iteration(s)" in summary
    it = tmp_path / "run" / "iter-1"
    assert json.loads((it / "checkpoint" / "metrics.json").read_text())["processes"] == 2
    assert json.loads((it / "checkpoint" / "training_manifest.json").read_text())["accelerate_config"] == str(acc_file)
    assert json.loads((tmp_path / "run" / "training_manifest.json").read_text())["accelerate_config"] == str(acc_file)

