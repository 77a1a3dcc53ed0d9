"""Per-cluster SFT and the merge: every cluster checkpoint, its lineage, the merge manifest,
and the merged weights equal to the weighted average of the cluster checkpoints."""

from __future__ import annotations

import json

import torch
from test_sft import alpaca_rows, tiny_cfg, weights, write_config, write_sft

from glotbench.training.sft.clusters import plan_units
from glotbench.training.sft.config import parse_config
from glotbench.training.sft.data import load_rows
from glotbench.training.sft.train import run_stage


def test_clusters_train_each_checkpoint_and_merge_them(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    data = write_sft(tmp_path / "sft.jsonl", alpaca_rows(20))  # en, es, fr, zh, ja: 4 rows each
    raw = tiny_cfg(tiny_model_dir, data, max_steps=2, clusters={"romance": ["es", "fr"], "cjk": ["zh", "ja"]},
                   shared=["en"], merge={"weights": {"romance": 3, "cjk": 1}})
    out = tmp_path / "out"
    summary = run_stage(write_config(tmp_path / "sft.yaml", **raw), out)
    assert "2 clusters trained and merged (linear)" in summary
    units, outside = plan_units(parse_config(raw), load_rows(parse_config(raw).data)[0])
    assert outside == 0 and "0 outside every cluster and shared" in summary
    assert {k: sorted({r["language"] for r in v}) for k, v in units.items()} == {
        "romance": ["en", "es", "fr"], "cjk": ["en", "ja", "zh"]}
    w = {name: weights(out / "clusters" / name) for name in ("romance", "cjk")}
    merged = weights(out)
    for k in merged:
        assert torch.allclose(merged[k], (3 * w["romance"][k] + w["cjk"][k]) / 4, atol=1e-6), k
    assert any(not torch.equal(w["romance"][k], w["cjk"][k]) for k in merged)
    for name in ("romance", "cjk"):
        man = json.loads((out / "clusters" / name / "training_manifest.json").read_text())
        subset = next(i for i in man["inputs"] if i["role"] == "data_subset")
        assert man["cluster"] == name and subset["rows"] == 12 and subset["rows_per_language"]["en"] == 4
        assert json.loads((out / "clusters" / name / "metrics.json").read_text())["steps"] == 2
        AutoModelForCausalLM.from_pretrained(out / "clusters" / name)
    merge_man = json.loads((out / "merge_manifest.json").read_text())
    assert merge_man["method"] == "linear"
    assert sorted(i["path"] for i in merge_man["inputs"]) == [str((out / "clusters" / n).resolve())
                                                             for n in ("cjk", "romance")]  # final paths
    top = json.loads((out / "training_manifest.json").read_text())
    assert set(top["outputs"]["clusters"]) == {"romance", "cjk"} and top["outputs"]["merge"]["weights"]["romance"] == 3
    assert set(json.loads((out / "metrics.json").read_text())["clusters"]) == {"romance", "cjk"}
    AutoModelForCausalLM.from_pretrained(out)
