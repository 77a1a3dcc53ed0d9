"""Distributed reward training on CPU: 2 processes (DDP over gloo, under ``accelerate launch``)
give the same loss curve and weights as 1 process with the same global batch."""

from __future__ import annotations

import json
import socket

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_reward_train import config

from glotbench.harness.cli.main import main
from glotbench.training.core.config import REPO_ROOT

GLOO = REPO_ROOT / "training" / "recipes" / "accelerate" / "ddp-cpu-gloo.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tiny_model_dir, tmp_path, capsys,
                                                                         monkeypatch):
    monkeypatch.setenv("GLOTBENCH_REQUEST_CACHE", str(tmp_path / "requests.sqlite"))
    acc = yaml.safe_load(GLOO.read_text())
    acc["main_process_port"] = free_port()  # tests may run beside other launches
    acc_file = tmp_path / "accelerate.yaml"
    acc_file.write_text(yaml.safe_dump(acc))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    # 12 pairs, none dropped for length (max_length 256): 3 full global batches of 4. A short last
    # batch would differ on purpose: accelerate evens out ranks by repeating pairs from the start.
    one = config(tmp_path / "a", tiny_model_dir, batch_size=4, max_length=256)
    two = config(tmp_path / "b", tiny_model_dir, batch_size=2, max_length=256)
    assert main(["train", "reward", str(one), "-o", str(tmp_path / "one"), "--no-progress"]) == 0
    assert main(["train", "reward", str(two), "-o", str(tmp_path / "two"), "--no-progress",
                 "--accelerate-config", str(acc_file)]) == 0
    capsys.readouterr()
    l1, l2 = (json.loads((tmp_path / d / "train_log.json").read_text()) for d in ("one", "two"))
    assert l1["pairs"]["pairs"] == l2["pairs"]["pairs"] == 12
    assert (l1["world_size"], l2["world_size"]) == (1, 2) and l1["tokens"] == l2["tokens"]
    c1, c2 = ([p["loss"] for p in log["loss_curve"]] for log in (l1, l2))
    assert len(c1) == len(c2) == 3 and c1 == pytest.approx(c2, rel=1e-5, abs=1e-5), (c1, c2)
    w1, w2 = (load_file(tmp_path / d / "model.safetensors") for d in ("one", "two"))
    assert all(torch.allclose(w1[k], w2[k], atol=1e-5) for k in w1)
    man = json.loads((tmp_path / "two" / "training_manifest.json").read_text())
    assert man["accelerate_config"] == str(acc_file)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
