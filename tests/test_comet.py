"""xCOMET through the isolated COMET environment, end to end, with a tiny checkpoint built
locally (tests/comet_tiny.py: the real XCOMETMetric class, a tiny random XLM-R encoder and a
locally trained tokenizer; XCOMET-XL cannot be downloaded here).

The environment is the one glotbench builds on first use (``<cache>/comet-env``, ~1.5 min
once per machine) unless ``GLOTBENCH_COMET_ENV`` points at an existing one.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest

from glotbench.harness.cli.main import main
from glotbench.harness.metrics import comet
from glotbench.harness.run.cache import RequestCache
from glotbench.harness.run.config import RunConfig
from glotbench.harness.run.execute import execute
from glotbench.harness.run.plan import plan
from glotbench.harness.store.rundir import read_run, read_samples

TINY = Path(__file__).resolve().parent / "comet_tiny.py"


@pytest.fixture(scope="session")
def comet_python() -> Path:
    return comet.ensure_env()


@pytest.fixture(scope="session")
def tiny_comet(comet_python, tmp_path_factory) -> tuple[Path, dict]:
    """(checkpoint path, the scores the script itself got from COMET for its own triples)."""
    out = tmp_path_factory.mktemp("tiny-comet")
    proc = subprocess.run([str(comet_python), "-I", str(TINY), str(out)], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return Path(report["checkpoint"]), report


def test_scores_through_the_isolated_env_equal_comet_itself(tiny_comet, tmp_path):
    ckpt, report = tiny_comet
    cache = RequestCache(tmp_path / "rc.sqlite")
    triples = report["triples"]
    values, info = comet.score(triples, str(ckpt), batch_size=2, cache=cache)
    scores = [v["score"] for v in values]
    assert scores == pytest.approx(report["scores"], abs=1e-6)
    assert [len(v["error_spans"]) for v in values] == [len(e) for e in report["error_spans"]]
    assert all(math.isfinite(s) for s in scores)
    assert info["computed"] == len(triples) and info["model_class"] == "XCOMETMetric"
    assert info["identity"].startswith("xcomet:sha256:")
    again, info2 = comet.score(triples + triples[:1], str(ckpt), cache=cache)
    assert again == values + values[:1]
    assert info2["computed"] == 0 and info2["from_cache"] == len(triples) + 1
    # the checkpoint directory is accepted too, with the same identity
    assert comet.model_identity(str(ckpt.parent.parent)) == info["identity"]


def test_run_with_xcomet(tiny_comet, tiny_model_dir, tmp_path, isolated_cache):
    ckpt, _ = tiny_comet
    langs = ("deu_Latn-eng_Latn", "eng_Latn-deu_Latn")
    cfg = RunConfig(tasks=("flores",), langs=langs, limit=3, model=f"hf:{tiny_model_dir}", max_new_tokens=8,
                    data="bundled", output=str(tmp_path / "run"), xcomet=str(ckpt), xcomet_batch_size=4)
    path = execute(cfg, plan(cfg), progress=False)
    run = read_run(path)
    assert run["provenance"]["tasks"]["flores"]["metrics"] == ["chrf++", "xcomet"]
    xc = run["provenance"]["xcomet"]
    assert xc["segments"] == 6 and xc["computed"] + xc["from_cache"] == 6 and xc["model"] == str(ckpt)
    for lang in langs:
        recs = read_samples(path, "flores", lang)
        cell = run["results"]["flores"][lang]
        seg = [r["xcomet"] for r in recs]
        assert cell["metrics"]["xcomet"]["value"] == pytest.approx(sum(seg) / len(seg))
        assert cell["metrics"]["xcomet"]["n"] == 3
        assert all(isinstance(r["xcomet_error_spans"], list) for r in recs)
    groups = run["averages"]["flores"]["metrics"]["xcomet"]["groups"]
    assert set(groups) == {"X→en", "en→X"}
    # everything cached: a second run scores nothing again
    cfg2 = RunConfig(**{**cfg.__dict__, "output": str(tmp_path / "run2")})
    run2 = read_run(execute(cfg2, plan(cfg2), progress=False))
    assert run2["provenance"]["xcomet"]["computed"] == 0
    assert run2["results"] == run["results"]


def test_missing_model_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "--tasks", "flores", "--langs", "deu_Latn-eng_Latn", "--limit", "1",
                 "--xcomet", str(tmp_path / "nope.ckpt"), "--output", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "xCOMET model" in err[0] and "not found" in err[0]
    assert not out.exists()
    code = main(["run", "--tasks", "xcopa", "--limit", "1", "--xcomet", "--output", str(out)])
    assert code == 2 and "no selected task is a translation task" in capsys.readouterr().err


def test_hub_model_unavailable_offline(comet_python, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(comet.CometError, match="xCOMET model unavailable: Unbabel/XCOMET-XL"):
        comet.score([{"src": "a", "mt": "b", "ref": "c"}], comet.DEFAULT_MODEL)


def test_env_build_failure_is_clear_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(comet, "REQUIREMENTS", ("glotbench-no-such-package==0.0.1",))
    env = tmp_path / "env"
    with pytest.raises(comet.CometError, match="cannot build the xCOMET environment") as exc:
        comet.ensure_env(env, log=lambda m: None)
    assert "GLOTBENCH_COMET_ENV" in str(exc.value) and "\n" not in str(exc.value)
    assert not env.exists()
    assert (tmp_path / "env-build.log").is_file()


def test_interrupted_build_is_redone(tmp_path, monkeypatch):
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    (env / ".glotbench-building").touch()  # a build killed half way
    calls = []
    monkeypatch.setattr(comet, "_build", lambda e, log: calls.append(e) or e / "bin" / "python")
    assert comet.ensure_env(env) == env / "bin" / "python" and calls == [env]


def test_half_precision_is_cached_apart(tiny_comet, tmp_path):
    ckpt, report = tiny_comet
    cache = RequestCache(tmp_path / "rc.sqlite")
    full, info = comet.score(report["triples"], str(ckpt), cache=cache)
    half, info16 = comet.score(report["triples"], str(ckpt), fp16=True, cache=cache)
    assert info16["computed"] == 3 and info16["precision"] == "fp16" and info16["identity"] == info["identity"] + "|fp16"
    assert [h["score"] for h in half] == pytest.approx([f["score"] for f in full], abs=5e-3)
