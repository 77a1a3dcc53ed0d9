"""Arbitrage end to end: real published completions (AlpacaEval, 6 teachers, first 50
instructions) scored by a tiny reward model; a generating teacher killed with SIGKILL and
resumed; outputs checked against the candidates they were chosen from."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from conftest import REPO, SHARED_DATA

EXAMPLE = REPO / "training" / "recipes" / "examples" / "arbitrage-alpacaeval.yaml"


def _config(tmp_path: Path, rm: Path, **changes) -> Path:
    cfg = yaml.safe_load(EXAMPLE.read_text())
    cfg["scorer"] = {"reward_model": str(rm), "batch_size": 8}
    for teacher in cfg["teachers"]:
        teacher["published"] = str(REPO / teacher["published"]) if not Path(teacher["published"]).exists() \
            else teacher["published"]
    cfg["prompts"]["alpaca_eval_multilingual"] = str(SHARED_DATA / "alpaca_eval_multilingual")
    cfg.update(changes)
    path = tmp_path / "arbitrage.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def alpaca_run(tmp_path_factory, tiny_rm_dir) -> Path:
    from glotbench.training.arbitrage.engine import run_stage

    tmp = tmp_path_factory.mktemp("arb")
    out = tmp / "out"
    run_stage(_config(tmp, tiny_rm_dir), out)
    return out


def test_sft_holds_the_argmax_and_pairs_the_argmax_and_argmin(alpaca_run):
    cands = _lines(alpaca_run / "candidates.jsonl")
    by_prompt = defaultdict(list)
    for c in cands:
        by_prompt[c["prompt_id"]].append(c)
    assert len(by_prompt) == 50 and all(len(v) == 6 for v in by_prompt.values())
    assert all(isinstance(c["score"], float) for c in cands)
    sft = {r["prompt_id"]: r for r in _lines(alpaca_run / "sft.jsonl")}
    assert set(sft) == set(by_prompt)
    for pid, cs in by_prompt.items():
        best = max(cs, key=lambda c: c["score"])
        row = sft[pid]
        assert row["score"] == best["score"] and row["teacher"] == best["teacher"]
        assert row["messages"][-1] == {"role": "assistant", "content": best["completion"]}
        assert row["messages"][0]["role"] == "user"
    pairs = {r["prompt_id"]: r for r in _lines(alpaca_run / "pairs.jsonl")}
    man = json.loads((alpaca_run / "training_manifest.json").read_text())
    assert len(pairs) + sum(man["counts"][f"pairs_skipped_{k}"] for k in ("tie", "single_candidate", "too_few_scored")) == 50
    for pid, row in pairs.items():
        scores = [c["score"] for c in by_prompt[pid]]
        assert row["score_chosen"] == max(scores) and row["score_rejected"] == min(scores)
        assert row["score_chosen"] > row["score_rejected"]
        assert row["chosen"][0]["content"] != row["rejected"][0]["content"] or max(scores) != min(scores)


def test_routing_counts_add_up_and_the_manifest_names_every_input(alpaca_run):
    routing = json.loads((alpaca_run / "routing.json").read_text())
    text = json.dumps(routing)
    assert "claude-2" in text and "alpaca-7b" in text
    man = json.loads((alpaca_run / "training_manifest.json").read_text())
    roles = [i["role"] for i in man["inputs"]]
    assert roles.count("teacher") == 6 and "prompts" in roles and "scorer" in roles
    assert all(len(i.get("sha256") or i.get("weights_sha256") or "") == 64 for i in man["inputs"]
               if i["role"] in ("prompts", "teacher"))
    assert man["outputs"]["sft.jsonl"]["lines"] == 50 and man["outputs"]["candidates.jsonl"]["lines"] == 300
    assert man["counts"]["chosen"] == 50 and man["counts"]["unscored"] == 0
    assert (alpaca_run / "routing.png").stat().st_size > 1000
    prompts = json.loads((alpaca_run / "prompts.json").read_text())
    assert prompts["prompts"] == 50 and len(prompts["sha256"]) == 64


def _sft_counts(path: Path) -> dict:
    return json.loads((path / "training_manifest.json").read_text())["counts"]


def test_kill_9_mid_generation_resumes_without_regenerating_and_matches_a_clean_run(tmp_path, tiny_model_dir, tiny_rm_dir, monkeypatch):
    cache = tmp_path / "requests.sqlite"
    env = {**os.environ, "GLOTBENCH_REQUEST_CACHE": str(cache)}
    cfg = _config(tmp_path, tiny_rm_dir, teachers=[
        {"name": "tiny", "model": f"hf:{tiny_model_dir}", "samples": 2, "temperature": 0.8, "max_new_tokens": 32},
        {"name": "claude-2", "published": str(SHARED_DATA / "alpaca_eval_2/annotations/claude-2.json"),
         "generator": "claude-2"}])
    data = yaml.safe_load(cfg.read_text())
    data["prompts"]["first"] = 24
    data["batch_size"] = 8
    cfg.write_text(yaml.safe_dump(data))
    cmd = [sys.executable, "-m", "glotbench.harness.cli", "train", "arbitrage", str(cfg), "-o", str(tmp_path / "a")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    rows, deadline = 0, time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
        try:
            with sqlite3.connect(cache) as db:
                rows = db.execute("SELECT count(*) FROM responses").fetchone()[0]
        except sqlite3.Error:
            continue
        if rows >= 16:  # the first chunk is committed
            break
    assert proc.poll() is None, f"finished before it could be killed: {proc.communicate()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "a").exists()
    assert not list(tmp_path.glob(".a.partial*"))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    counts = _sft_counts(tmp_path / "a")
    assert counts["from_cache"] >= rows and counts["generated"] + counts["from_cache"] == 48
    again = subprocess.run(cmd[:-1] + [str(tmp_path / "b")], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert _sft_counts(tmp_path / "b")["generated"] == 0
    # An uninterrupted run on a fresh cache gives the same sampled completions, byte for byte.
    fresh = {**env, "GLOTBENCH_REQUEST_CACHE": str(tmp_path / "fresh.sqlite")}
    clean = subprocess.run(cmd[:-1] + [str(tmp_path / "c")], env=fresh, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr
    assert _sft_counts(tmp_path / "c")["generated"] == 48
    for name in ("candidates.jsonl", "sft.jsonl", "pairs.jsonl", "routing.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "c" / name).read_bytes(), name


@pytest.mark.parametrize("change, message", [
    ({"teacherz": []}, "unknown key 'teacherz'"),
    ({"routing": {"policy": "fixed", "fixed": {"de": "claude-2"}}}, "routing.fixed names no teacher for language 'en'"),
    ({"routing": {"policy": "fastest"}}, "policy 'fastest' is not one of"),
])
def test_bad_config_is_one_line_and_exit_2(tmp_path, tiny_rm_dir, change, message):
    cfg = _config(tmp_path, tiny_rm_dir, **change)
    res = subprocess.run([sys.executable, "-m", "glotbench.harness.cli", "train", "arbitrage", str(cfg), "-o",
                          str(tmp_path / "out")], capture_output=True, text=True)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "out").exists()


def test_an_existing_output_is_refused_before_any_work(tmp_path, tiny_rm_dir):
    (tmp_path / "out").mkdir()
    res = subprocess.run([sys.executable, "-m", "glotbench.harness.cli", "train", "arbitrage",
                          str(_config(tmp_path, tiny_rm_dir)), "-o", str(tmp_path / "out")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "already exists" in res.stderr
