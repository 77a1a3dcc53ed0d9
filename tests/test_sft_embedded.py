"""The shipped example (training/recipes/examples/sft-embedded.yaml) on the real embedded model:
a few CPU steps on real AlpacaEval outputs lower the loss on the training data, and
``glotbench run --model hf:CKPT`` evaluates the checkpoint with its lineage in provenance."""

from __future__ import annotations

import json

import pytest
import yaml
from test_sft import alpaca_rows, write_config, write_sft

from glotbench.harness.cli.main import main
from glotbench.training.core.config import REPO_ROOT

EXAMPLE = REPO_ROOT / "training" / "recipes" / "examples" / "sft-embedded.yaml"


@pytest.mark.slow
def test_example_sft_of_the_embedded_model_then_glotbench_run(tmp_path, capsys):
    raw = yaml.safe_load(EXAMPLE.read_text())
    assert raw["model"] == "embedded" and raw["data"]["file"].endswith("sft.jsonl")
    # One batch holding every training row: each step's loss is the loss on the whole training data.
    data = write_sft(tmp_path / "sft.jsonl", alpaca_rows(2, teacher="gpt-3.5-turbo-1106", chars=250))
    raw.update(data={"file": str(data)}, max_steps=3, batch_size=2, max_length=128, eval_fraction=0.0,
               learning_rate=5e-5)
    ckpt = tmp_path / "ckpt"
    assert main(["train", "sft", str(write_config(tmp_path / "sft.yaml", **raw)), "-o", str(ckpt),
                 "--no-progress"]) == 0
    m = json.loads((ckpt / "metrics.json").read_text())
    curve = [p["loss"] for p in m["loss_curve"]]
    assert len(curve) == 3 and curve[-1] < curve[0], curve
    assert m["loss_mode"] == "completion_only_loss" and m["bf16"] is False
    man = json.loads((ckpt / "training_manifest.json").read_text())
    capsys.readouterr()
    run = tmp_path / "run"
    assert main(["run", "--model", f"hf:{ckpt}", "--tasks", "xcopa", "--limit", "5", "--device", "cpu",
                 "--no-progress", "--output", str(run)]) == 0
    prov = json.loads((run / "run.json").read_text())["provenance"]
    training = prov["model"]["training"]
    assert training["stage"] == "sft" and training["config_sha256"] == man["config_sha256"]
    base = next(i for i in training["inputs"] if i["role"] == "base")
    assert base["model"] == "embedded" and len(base["sha256"]) == 64
    assert next(i for i in training["inputs"] if i["role"] == "data")["sha256"] == man["inputs"][1]["sha256"]
    assert training["versions"]["trl"] == "1.16.0"
