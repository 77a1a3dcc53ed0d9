"""What every training stage shares: atomic outputs, the lineage manifest, config checks,
the refusal to start inside a distributed launch, and lineage reaching a run's provenance."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.run.provenance import merge_provenance
from glotbench.training.core.config import ConfigError, check_keys, typed
from glotbench.training.core.launch import check_accelerate_config, refuse_inside_launch
from glotbench.training.core.stage import MANIFEST, check_output, manifest, staged, write_manifest


def test_a_stage_that_fails_leaves_nothing_and_one_that_succeeds_is_renamed_into_place(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), staged(out) as tmp:
        (tmp / "half.jsonl").write_text("{}\n")
        raise RuntimeError("killed")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with staged(out) as tmp:
        (tmp / "done.jsonl").write_text("{}\n")
    assert (out / "done.jsonl").is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with staged(out) as tmp:  # --overwrite: the old output is swapped out at the end
        (tmp / "new.jsonl").write_text("{}\n")
    assert sorted(p.name for p in out.iterdir()) == ["new.jsonl"]


def test_check_output_refuses_before_any_work(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(GlotbenchError, match="already exists"):
        check_output(tmp_path / "taken", overwrite=False)
    check_output(tmp_path / "taken", overwrite=True)
    with pytest.raises(GlotbenchError, match="is also an input"):
        check_output(tmp_path / "taken", overwrite=True, inputs=(tmp_path / "taken",))
    with pytest.raises(GlotbenchError, match="parent"):
        check_output(tmp_path / "no" / "such" / "dir", overwrite=False)


def test_the_manifest_hashes_the_config_and_names_versions(tmp_path):
    m = manifest("sft", {"b": 1, "a": 2}, [{"role": "base", "path": "x", "sha256": "0" * 64}], {}, 0.0)
    assert m["config_sha256"] == manifest("sft", {"a": 2, "b": 1}, [], {}, 0.0)["config_sha256"]
    assert m["versions"]["trl"] and m["versions"]["torch"]
    write_manifest(tmp_path, m)
    assert json.loads((tmp_path / MANIFEST).read_text())["stage"] == "sft"


def test_a_trained_checkpoint_carries_its_lineage_into_run_provenance(tmp_path):
    write_manifest(tmp_path, manifest("sft", {"model": "embedded"}, [{"role": "data", "sha256": "1" * 64}], {}, 0.0))
    prov = merge_provenance(f"hf:{tmp_path}")
    assert prov["training"]["stage"] == "sft" and prov["training"]["inputs"][0]["sha256"] == "1" * 64
    assert merge_provenance(f"hf:{tmp_path / 'nothing'}") == {}


def test_config_checks_name_the_key_and_a_close_match():
    with pytest.raises(ConfigError, match=r"unknown key 'lerning_rate' \(did you mean 'learning_rate'\?\)"):
        check_keys({"lerning_rate": 1}, ("learning_rate", "seed"), "sft.yaml")
    with pytest.raises(ConfigError, match="missing key 'model'"):
        check_keys({}, ("model",), "sft.yaml", required=("model",))
    with pytest.raises(ConfigError, match="seed must be int, not True"):
        typed({"seed": True}, "seed", int, "sft.yaml")
    assert typed({"lr": 1}, "lr", float, "x") == 1


def test_a_stage_started_inside_a_distributed_launch_refuses(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(GlotbenchError, match="running under a distributed launcher"):
        refuse_inside_launch("sft")
    (tmp_path / "a.yaml").write_text("compute_environment: LOCAL_MACHINE\n")
    with pytest.raises(GlotbenchError, match="not an accelerate config"):
        check_accelerate_config(tmp_path / "a.yaml")


def test_train_without_a_stage_is_a_usage_error():
    res = subprocess.run([sys.executable, "-m", "glotbench.harness.cli", "train"], capture_output=True, text=True)
    assert res.returncode == 2 and "STAGE" in res.stderr


@pytest.mark.parametrize("content, message", [
    (b'{"a": 1}\n\xff\xfe\n', "prompt file {p}:2 is not UTF-8 text"),
    (b'{"a": 1}\n\n{"a": \n', "{p}:3 is not valid JSON"),
    (b'[1, 2]\n', "{p}:1 is not a JSON object"),
])
def test_the_jsonl_reader_names_the_file_and_line(tmp_path, content, message):
    from glotbench.training.core.jsonl import read_jsonl

    p = tmp_path / "prompts.jsonl"
    p.write_bytes(content)
    with pytest.raises(GlotbenchError, match=re.escape(message.format(p=p))):
        list(read_jsonl(p, "prompt file", "{}"))
    with pytest.raises(GlotbenchError, match="does not exist"):
        list(read_jsonl(tmp_path / "none.jsonl", "prompt file", "{}"))


def test_a_killed_stages_partial_directory_is_removed_by_the_next_run(tmp_path):
    import socket

    host = socket.gethostname()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".out.partial-{int(dead.stdout)}@{host}"
    (stale / "weights").mkdir(parents=True)
    other_host = tmp_path / f".out.partial-{int(dead.stdout)}@elsewhere"
    other_host.mkdir()
    with staged(tmp_path / "out") as tmp:
        (tmp / "done").write_text("1")
    assert not stale.exists() and other_host.exists() and (tmp_path / "out" / "done").is_file()
