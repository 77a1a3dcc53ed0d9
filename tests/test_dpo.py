"""Offline DPO (glotbench train dpo) on a tiny random Llama: a toy preference the policy can
learn (the chosen answer is always the same token pattern), the gap filter's counts, one-line
config errors, and the lineage (the reference's weights hash) carried into run provenance."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

from glotbench.harness.cli.main import main
from glotbench.harness.core.hashing import dir_sha256
from glotbench.harness.run.provenance import merge_provenance
from glotbench.training.dpo.train import run_stage
from glotbench.training.dpo.trainer import filter_gap
from glotbench.training.reward.data import jsonl_pairs
from glotbench.training.sft.train import WEIGHT_PATTERNS

WORDS = ("casa", "perro", "libro", "mesa", "agua", "cielo", "verde", "rojo", "gato", "mar", "sol", "luna")
CHOSEN = "ok ok ok ok"


def toy_pairs(n: int, seed: int = 0, scores: list[tuple[float, float]] | None = None) -> list[dict]:
    """Pairs whose chosen answer is always CHOSEN and whose rejected one is random words."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        row = {"prompt_id": f"toy-{i}/es", "language": "es",
               "prompt": [{"role": "user", "content": " ".join(rng.choices(WORDS, k=4)) + f" {i}?"}],
               "chosen": [{"role": "assistant", "content": CHOSEN}],
               "rejected": [{"role": "assistant", "content": " ".join(rng.choices(WORDS, k=4))}]}
        if scores:
            row["score_chosen"], row["score_rejected"] = scores[i]
        rows.append(row)
    return rows


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_config(path: Path, **cfg) -> Path:
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


@pytest.fixture()
def pairs_file(tmp_path) -> Path:
    return write(tmp_path / "pairs.jsonl", toy_pairs(24, scores=[(1.0, 0.0)] * 24))


def tiny_cfg(model_dir: Path, data: Path, **extra) -> dict:
    return {"policy": f"hf:{model_dir}", "data": {"file": str(data)}, "max_steps": 8, "batch_size": 4,
            "learning_rate": 5e-3, "beta": 0.1, "max_length": 64, "eval_fraction": 0.25, "seed": 0,
            "allow_eval_overlap": False, **extra}


def test_dpo_learns_the_toy_preference_with_lineage(tiny_model_dir, pairs_file, tmp_path):
    out = tmp_path / "dpo"
    summary = run_stage(write_config(tmp_path / "dpo.yaml", **tiny_cfg(tiny_model_dir, pairs_file)), out)
    m = json.loads((out / "metrics.json").read_text())
    losses = [p["loss"] for p in m["loss_curve"]]
    assert len(losses) == 8 and losses[-1] < losses[0] - 0.05, losses
    assert m["reward_margin_curve"][-1]["rewards/margins"] > m["reward_margin_curve"][0]["rewards/margins"]
    before, after = m["held_out_before"], m["held_out_after"]
    assert m["held_out_pairs"] == 6 and m["train_pairs"] == 18
    assert after["logp_margin"] > before["logp_margin"] + 1.0, (before, after)
    assert after["loss"] < before["loss"] and abs(before["loss"] - 0.6931) < 1e-3  # reference == policy at start
    assert m["bf16"] is False and m["gradient_checkpointing"] is False
    man = json.loads((out / "training_manifest.json").read_text())
    roles = {i["role"]: i for i in man["inputs"]}
    start = dir_sha256(tiny_model_dir, WEIGHT_PATTERNS)
    assert roles["reference"]["sha256"] == roles["base"]["sha256"] == start
    assert dir_sha256(out, WEIGHT_PATTERNS) != start
    assert roles["data"]["counts"]["kept"] == 24 and roles["data"]["eval_overlap"]["overlapping"] == 0
    assert man["stage"] == "dpo" and "trl" in man["versions"]
    prov = merge_provenance(f"hf:{out}")["training"]
    assert {i["role"]: i["sha256"] for i in prov["inputs"] if i["role"] != "data"} == {"base": start,
                                                                                     "reference": start}
    assert "24 pairs read, 24 kept" in summary and "held-out log-prob margin" in summary
    assert not (out / "training_args.bin").exists() and not list(tmp_path.glob(".*"))


def test_gap_filter_counts_ties_small_gaps_and_unscored(tmp_path):
    rows = toy_pairs(6, scores=[(1.0, 0.0), (0.5, 0.5), (0.2, 0.1), (2.0, 0.0), (0.0, 0.0), (1.0, 0.7)])
    rows.append({k: v for k, v in toy_pairs(7)[6].items()})  # no scores
    pairs = jsonl_pairs(write(tmp_path / "p.jsonl", rows)).pairs
    kept, counts = filter_gap(pairs, 0.5)
    assert [p.score_chosen for p in kept] == [1.0, 2.0]
    assert counts == {"read": 7, "kept": 2, "dropped_ties": 2, "dropped_small_gap": 2, "dropped_unscored": 1,
                      "unscored_kept": 0}
    kept, counts = filter_gap(pairs, 0.0)
    assert len(kept) == 5 and counts["dropped_ties"] == 2 and counts["unscored_kept"] == 1
    assert counts["dropped_small_gap"] == 0


@pytest.mark.parametrize("change, message", [
    ({"batch_sise": 2}, "unknown key 'batch_sise' (did you mean 'batch_size'?)"),
    ({"loss_type": "sigmod"}, "loss_type 'sigmod' is not a trl DPO loss (did you mean 'sigmoid'?)"),
    ({"loss_type": ["ipo", "hing"]}, "loss_type 'hing'"),
    ({"min_gap": -1}, "min_gap must be 0 or more"),
    ({"policy": "gpt2"}, "policy must be embedded or hf:<dir>"),
    ({"merge_lora": True}, "merge_lora is true but there is no lora block"),
])
def test_bad_config_is_one_line_exit_2(tiny_model_dir, pairs_file, tmp_path, capsys, change, message):
    cfg = write_config(tmp_path / "dpo.yaml", **{**tiny_cfg(tiny_model_dir, pairs_file), **change})
    code = main(["train", "dpo", str(cfg), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("glotbench: error:") and message in err, err


def test_existing_output_and_all_pairs_dropped_are_refused(tiny_model_dir, pairs_file, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    cfg = write_config(tmp_path / "dpo.yaml", **tiny_cfg(tiny_model_dir, pairs_file))
    assert main(["train", "dpo", str(cfg), "-o", str(tmp_path / "out")]) == 2
    assert "already exists" in capsys.readouterr().err
    cfg = write_config(tmp_path / "dpo.yaml", **tiny_cfg(tiny_model_dir, pairs_file, min_gap=5))
    assert main(["train", "dpo", str(cfg), "-o", str(tmp_path / "new")]) == 2
    err = capsys.readouterr().err
    assert "no preference pair" in err and "'dropped_small_gap': 24" in err and err.count("\n") == 1


def test_lora_merged_with_an_explicit_reference(tiny_model_dir, pairs_file, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "lora"
    cfg = tiny_cfg(tiny_model_dir, pairs_file, lora={"r": 4, "alpha": 8}, merge_lora=True, max_steps=2,
                   eval_fraction=0.0, reference=f"hf:{tiny_model_dir}")
    assert "LoRA, merged" in run_stage(write_config(tmp_path / "dpo.yaml", **cfg), out)
    assert not (out / "adapter_config.json").exists()
    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(out / "model.safetensors")
    changed = [k for k in after if not (before[k] == after[k]).all()]
    assert changed and all("proj" in k for k in changed), changed  # only the LoRA targets moved
    m = json.loads((out / "metrics.json").read_text())
    assert m["lora_merged"] and m["held_out_before"] is None and m["held_out_pairs"] == 0


def test_a_local_dataset_directory_as_hub_source_keeps_scores(tmp_path):
    from glotbench.training.dpo.config import parse_config
    from glotbench.training.dpo.trainer import prepare

    hub = tmp_path / "hubdata"
    hub.mkdir()
    rows = [{"prompt": f"pregunta {i}", "chosen": "sí", "rejected": "no", "score_chosen": float(i % 3),
             "score_rejected": 1.0} for i in range(9)]
    write(hub / "train.jsonl", rows)
    prepared = prepare(parse_config({"policy": "embedded", "data": {"hub": str(hub)}, "min_gap": 0.5,
                                     "eval_fraction": 0.3, "allow_eval_overlap": True}))
    assert prepared.counts["kept"] == 3 and prepared.counts["dropped_ties"] == 3
    assert prepared.counts["dropped_small_gap"] == 3
    assert len(prepared.train) + len(prepared.held_out) == 3 and prepared.held_out
