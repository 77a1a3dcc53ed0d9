"""Cross-check: glotbench's mergekit-compatible modes against mergekit 0.1.5 on the same checkpoints.

mergekit is not a dependency: it runs in a throwaway virtual environment (built on first use
in the user cache, ~1.5 min: ``torch==2.13.0 mergekit==0.1.5``; ``$GLOTBENCH_MERGEKIT_ENV``
names an existing one), all merges in one process through ``mergekit.merge.run_merge``.
The checkpoints are float32 so TIES's magnitude threshold has no ties (on bfloat16 inputs
mergekit breaks them by torch's unstable argsort order, glotbench by position). DARE's
random masks cannot coincide (mergekit draws them from torch's global generator), so DARE
is compared at density 1, where only the rescale/sign/normalise conventions act; its
stochastic part is checked in test_merge_methods.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from merge_helpers import make_llama
from safetensors.torch import load_file

from glotbench.harness.core.paths import cache_dir
from glotbench.training.merge.engine import merge

MERGEKIT = "mergekit==0.1.5"
pytestmark = pytest.mark.slow

DRIVER = """
import json, sys, yaml
from mergekit.config import MergeConfiguration
from mergekit.merge import MergeOptions, run_merge
for conf, out in json.load(open(sys.argv[1])):
    run_merge(MergeConfiguration.model_validate(yaml.safe_load(conf)), out,
              MergeOptions(copy_tokenizer=False, write_model_card=False, random_seed=0))
"""


def mergekit_python() -> Path:
    env = os.environ.get("GLOTBENCH_MERGEKIT_ENV")
    env = Path(env) if env else cache_dir() / "mergekit-0.1.5"
    python = env / "bin" / "python"
    marker = env / ".glotbench-ready"
    if marker.is_file() or (os.environ.get("GLOTBENCH_MERGEKIT_ENV") and python.is_file()):
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(env)], check=True)
    for req in (["torch==2.13.0"], [MERGEKIT]):
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *req],
                       check=True, timeout=900)
    marker.write_text(MERGEKIT + "\n")
    return python


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mk-ckpts")
    base = make_llama(root / "base", 0)
    return {"base": base, "a": make_llama(root / "a", 1, base=base), "b": make_llama(root / "b", 2, base=base),
            "c": make_llama(root / "c", 3, base=base, noise=0.05)}


def model_list(models, names, params):
    return [{"model": str(models[n]), "parameters": p} for n, p in zip(names, params)]


def cases(m: dict[str, Path]) -> dict[str, dict]:
    base = str(m["base"])
    wts = [{"weight": 0.7, "density": 0.5}, {"weight": 0.2, "density": 0.3}, {"weight": 0.5, "density": 0.8}]
    full = [{"weight": 0.7}, {"weight": 0.2}, {"weight": 0.5}]
    return {
        "linear": {"merge_method": "linear", "models": model_list(m, "abc", [{"weight": 0.5}, {"weight": 0.3},
                                                                            {"weight": 0.2}])},
        "linear_sum": {"merge_method": "linear", "parameters": {"normalize": False},
                       "models": model_list(m, "ab", [{"weight": 0.6}, {"weight": 0.9}])},
        "slerp": {"merge_method": "slerp", "base_model": str(m["a"]), "models": model_list(m, "ab", [{}, {}]),
                  "parameters": {"t": [{"filter": "self_attn", "value": 0.2}, {"filter": "mlp", "value": 0.7},
                                       {"value": 0.45}]}},
        "task_arithmetic": {"merge_method": "task_arithmetic", "base_model": base,
                            "models": model_list(m, "abc", full), "parameters": {"lambda": 0.8}},
        "ties": {"merge_method": "ties", "base_model": base, "models": model_list(m, "abc", wts)},
        "ties_unnormalised": {"merge_method": "ties", "base_model": base, "models": model_list(m, "abc", wts),
                              "parameters": {"normalize": False, "lambda": 1.3}},
        "dare_ties_d1": {"merge_method": "dare_ties", "base_model": base, "models": model_list(m, "abc", full)},
        "dare_linear_d1": {"merge_method": "dare_linear", "base_model": base, "models": model_list(m, "abc", full),
                           "parameters": {"normalize": True}},
    }


@pytest.fixture(scope="module")
def mergekit_outputs(models, tmp_path_factory) -> dict[str, Path]:
    python = mergekit_python()
    root = tmp_path_factory.mktemp("mk-out")
    jobs = [(yaml.safe_dump({**c, "dtype": "float32", "out_dtype": "float32"}), str(root / name))
            for name, c in cases(models).items()]
    (root / "jobs.json").write_text(json.dumps(jobs))
    (root / "driver.py").write_text(DRIVER)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([str(python), str(root / "driver.py"), str(root / "jobs.json")], capture_output=True,
                         text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    return {name: root / name for name in cases(models)}


def tensors(d: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(d.glob("*.safetensors")):
        out.update(load_file(f))
    return out


@pytest.mark.parametrize("name", ["linear", "linear_sum", "slerp", "task_arithmetic", "ties", "ties_unnormalised",
                                  "dare_ties_d1", "dare_linear_d1"])
def test_mergekit_convention_matches_mergekit(name, models, mergekit_outputs, tmp_path):
    conf = {**cases(models)[name], "convention": "mergekit", "dtype": "float32"}
    ours = tensors(merge(conf, tmp_path / "ours").out_dir)
    theirs = tensors(mergekit_outputs[name])
    assert set(ours) == set(theirs)
    for k in ours:
        assert ours[k].dtype == theirs[k].dtype == torch.float32
        if name == "slerp":  # the angle: float64 sums here, float32 chunk norms there (1 ulp)
            assert torch.allclose(ours[k], theirs[k], rtol=1e-6, atol=1e-6), (k, (ours[k] - theirs[k]).abs().max())
        else:  # the same operations in the same order: bit-identical
            assert torch.equal(ours[k], theirs[k]), (k, (ours[k] - theirs[k]).abs().max())


def test_paper_convention_differs_from_mergekit_only_where_weights_differ(models, mergekit_outputs, tmp_path):
    theirs = tensors(mergekit_outputs["ties"])
    paper = tensors(merge({**cases(models)["ties"], "dtype": "float32"}, tmp_path / "paper").out_dir)
    changed = sum(int((~torch.isclose(paper[k], theirs[k], rtol=1e-5, atol=1e-6)).sum()) for k in paper)
    assert changed > 0  # unequal weights: the elected signs differ somewhere
    equal = {**cases(models)["ties"]}
    equal["models"] = [{"model": e["model"], "parameters": {"weight": 1.0, "density": 0.5}} for e in equal["models"]]
    p = tensors(merge({**equal, "dtype": "float32"}, tmp_path / "p").out_dir)
    k = tensors(merge({**equal, "dtype": "float32", "convention": "mergekit"}, tmp_path / "k").out_dir)
    assert all(torch.equal(p[n], k[n]) for n in p)
