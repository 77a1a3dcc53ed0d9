"""End to end: merge tiny random Llama checkpoints, load the result with transformers, generate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from merge_helpers import make_llama
from safetensors.torch import load_file

from glotbench.harness.cli.main import main
from glotbench.harness.core.errors import GlotbenchError, ModelError
from glotbench.harness.core.hashing import file_sha256
from glotbench.training.merge import engine as merge_mod
from glotbench.training.merge.config import MergeConfigError
from glotbench.training.merge.engine import MANIFEST, merge


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory, embedded_dir) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("merge-ckpts")
    base = make_llama(root / "base", 0, tokenizer_from=embedded_dir)
    out = {"base": base}
    out["a"] = make_llama(root / "a", 1, base=base)
    out["b"] = make_llama(root / "b", 2, base=base, max_shard_size="200KB")  # sharded input
    out["bf16"] = make_llama(root / "bf16", 3, base=base, dtype="bfloat16")
    return out


def weights(d: Path) -> dict[str, torch.Tensor]:
    files = sorted(d.glob("*.safetensors"))
    out = {}
    for f in files:
        out.update(load_file(f))
    return out


def cfg(method, models, **extra):
    return {"merge_method": method, "models": [m if isinstance(m, dict) else {"model": str(m)} for m in models],
            **extra}


def test_linear_merge_equals_the_weighted_state_dict_average_and_generates(ckpts, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = cfg("linear", [{"model": str(ckpts["a"]), "parameters": {"weight": 3}},
                          {"model": str(ckpts["b"]), "parameters": {"weight": 1}}])
    res = merge(spec, tmp_path / "out")
    wa, wb, wm = weights(ckpts["a"]), weights(ckpts["b"]), weights(res.out_dir)
    assert set(wm) == set(wa)
    for k in wa:
        assert torch.allclose(wm[k], (3 * wa[k] + wb[k]) / 4, atol=1e-7), k
    model = AutoModelForCausalLM.from_pretrained(res.out_dir)
    tok = AutoTokenizer.from_pretrained(res.out_dir)
    ids = tok("Bonjour le monde", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 4
    # the merged model is the state-dict average, loaded and run by transformers
    ref = AutoModelForCausalLM.from_pretrained(ckpts["a"])
    ref.load_state_dict({k: (3 * wa[k] + wb[k]) / 4 for k in wa}, strict=False)
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, ref(ids).logits, atol=1e-5)


def test_linear_of_identical_models_is_the_identity_and_slerp_endpoints(ckpts, tmp_path):
    same = merge(cfg("linear", [ckpts["a"], {"model": f"{ckpts['a']}/.", "parameters": {"weight": 1}}]),
                 tmp_path / "same")
    wa = weights(ckpts["a"])
    assert all(torch.equal(weights(same.out_dir)[k], wa[k]) for k in wa)
    for t, expect in ((0.0, "a"), (1.0, "b")):
        res = merge(cfg("slerp", [ckpts["a"], ckpts["b"]], parameters={"t": t}), tmp_path / f"slerp{t}")
        we = weights(ckpts[expect])
        assert all(torch.equal(weights(res.out_dir)[k], we[k]) for k in we)


def test_output_is_independent_of_chunk_size_and_sharded_with_an_index(ckpts, tmp_path):
    spec = cfg("dare_ties", [ckpts["a"], ckpts["b"]], base_model=str(ckpts["base"]),
               parameters={"density": 0.5, "weight": 0.5}, seed=11)
    one = merge(spec, tmp_path / "one")
    small = merge(spec, tmp_path / "small", chunk_elements=1000, max_shard_bytes=300_000)
    assert list(one.files) == ["model.safetensors"] and len(small.files) > 1
    index = json.loads((small.out_dir / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(small.files)
    w1, w2 = weights(one.out_dir), weights(small.out_dir)
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(small.out_dir)
    assert torch.equal(model.state_dict()["model.norm.weight"], w1["model.norm.weight"])


def test_manifest_records_inputs_method_and_output_hashes(ckpts, tmp_path):
    spec = cfg("ties", [{"model": str(ckpts["a"]), "parameters": {"weight": 0.6}},
                        {"model": str(ckpts["b"]), "parameters": {"weight": 0.4}}],
               base_model=str(ckpts["base"]), parameters={"density": [{"filter": "mlp", "value": 0.3}, {"value": 0.8}]})
    res = merge(spec, tmp_path / "out")
    man = json.loads((res.out_dir / MANIFEST).read_text())
    assert man["method"] == "ties" and man["convention"] == "paper" and man["config"] == spec
    assert [i["role"] for i in man["inputs"]] == ["base", "model", "model"]
    for entry, name in zip(man["inputs"], ("base", "a", "b")):
        assert entry["files"] == {f: file_sha256(ckpts[name] / f) for f in entry["files"]}
    assert len(man["inputs"][2]["files"]) > 1  # the sharded input
    assert man["output"]["files"] == {f: file_sha256(res.out_dir / f) for f in res.files}
    densities = sorted(p["parameters"]["densities"][0] for p in man["resolved_parameters"])
    assert densities == [0.3, 0.8]
    assert (res.out_dir / "tokenizer.json").is_file() and (res.out_dir / "config.json").is_file()


def test_out_dtype_and_default_dtype(ckpts, tmp_path):
    keep = merge(cfg("linear", [ckpts["a"], ckpts["bf16"]]), tmp_path / "keep")
    assert next(iter(weights(keep.out_dir).values())).dtype == torch.float32  # the first input's dtype
    bf = merge(cfg("linear", [ckpts["a"], ckpts["bf16"]], out_dtype="bfloat16"), tmp_path / "bf")
    assert {t.dtype for t in weights(bf.out_dir).values()} == {torch.bfloat16}
    assert json.loads((bf.out_dir / "config.json").read_text())["dtype"] == "bfloat16"


# -- refusals: before anything is written ---------------------------------------------------

def test_incompatible_inputs_are_refused_before_output(ckpts, tmp_path):
    other = make_llama(tmp_path / "wide", 5, vocab_size=len(json.loads(
        (ckpts["base"] / "tokenizer.json").read_text())["model"]["vocab"]), hidden_size=32)
    out = tmp_path / "out"
    with pytest.raises(ModelError, match="differ in hidden_size \\(64 vs 32\\)"):
        merge(cfg("linear", [ckpts["a"], other]), out)
    small_vocab = make_llama(tmp_path / "vocab", 6)
    with pytest.raises(ModelError, match="differ in vocab_size"):
        merge(cfg("linear", [ckpts["a"], small_vocab]), out)
    # same shapes, a different tokenizer vocabulary
    swapped = make_llama(tmp_path / "tok", 7, base=ckpts["base"])
    tok = json.loads((swapped / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    first, second = list(vocab)[:2]
    vocab[first], vocab[second] = vocab[second], vocab[first]
    (swapped / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(ModelError, match="different tokenizer vocabularies"):
        merge(cfg("linear", [ckpts["a"], swapped]), out)
    # a missing tensor
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    w = weights(ckpts["a"])
    w.pop("lm_head.weight")
    from safetensors.torch import save_file

    save_file(w, renamed / "model.safetensors")
    (renamed / "config.json").write_text((ckpts["a"] / "config.json").read_text())
    with pytest.raises(ModelError, match="lacks \\['lm_head.weight'\\]"):
        merge(cfg("linear", [ckpts["a"], renamed]), out)
    assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))


def test_pickle_weights_are_refused_with_the_conversion_command(ckpts, tmp_path):
    binary = tmp_path / "bin"
    binary.mkdir()
    torch.save(weights(ckpts["a"]), binary / "pytorch_model.bin")
    (binary / "config.json").write_text((ckpts["a"] / "config.json").read_text())
    with pytest.raises(ModelError, match="PyTorch pickle weights.*save_pretrained"):
        merge(cfg("linear", [ckpts["a"], binary]), tmp_path / "out")


def test_existing_output_and_output_equal_to_input(ckpts, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    spec = cfg("linear", [ckpts["a"], ckpts["b"]])
    with pytest.raises(GlotbenchError, match="already exists and is not empty.*--overwrite"):
        merge(spec, out)
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(GlotbenchError, match="is one of the inputs"):
        merge(spec, ckpts["a"], overwrite=True)
    merge(spec, out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / MANIFEST).is_file()


def test_interrupted_merge_leaves_no_complete_looking_directory(ckpts, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = merge_mod._merge_tensor

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(merge_mod, "_merge_tensor", flaky)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        merge(cfg("linear", [ckpts["a"], ckpts["b"]]), out)
    assert not out.exists() and list(tmp_path.iterdir()) == []
    # an earlier finished merge survives an interrupted --overwrite untouched
    monkeypatch.setattr(merge_mod, "_merge_tensor", real)
    merge(cfg("linear", [ckpts["a"], ckpts["b"]]), out)
    before = file_sha256(out / "model.safetensors")
    calls["n"] = 0
    monkeypatch.setattr(merge_mod, "_merge_tensor", flaky)
    with pytest.raises(KeyboardInterrupt):
        merge(cfg("linear", [ckpts["a"], ckpts["b"]], out_dtype="bfloat16"), out, overwrite=True)
    assert file_sha256(out / "model.safetensors") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# -- CLI ------------------------------------------------------------------------------------

def test_cli_merge_dry_run_and_errors(ckpts, tmp_path, capsys):
    import yaml

    conf = tmp_path / "merge.yaml"
    conf.write_text(yaml.safe_dump(cfg("task_arithmetic", [ckpts["a"], ckpts["b"]], base_model=str(ckpts["base"]),
                                       parameters={"lambda": 0.5})))
    out = tmp_path / "out"
    assert main(["merge", str(conf), "-o", str(out), "--dry-run"]) == 0
    assert "would be written" in capsys.readouterr().out and not out.exists()
    assert main(["merge", str(conf), "-o", str(out), "--chunk-mb", "1"]) == 0
    assert "merged 21 tensors" in capsys.readouterr().out
    assert main(["merge", str(conf), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("glotbench: error: output directory") and "\n" not in err
    conf.write_text("merge_method: ties\nmodels: [a]\n")
    assert main(["merge", str(conf), "-o", str(tmp_path / "x")]) == 2
    assert "ties needs base_model" in capsys.readouterr().err
    conf.write_text(f"merge_method: linear\nmodels: [{tmp_path}/nope, {ckpts['a']}]\n")
    assert main(["merge", str(conf), "-o", str(tmp_path / "x")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_weights_summing_to_zero_for_some_tensors_is_a_config_error(ckpts, tmp_path):
    spec = cfg("linear", [{"model": str(ckpts["a"]), "parameters": {"weight": [{"filter": "mlp", "value": -1},
                                                                                {"value": 1}]}},
                          {"model": str(ckpts["b"]), "parameters": {"weight": 1}}])
    with pytest.raises(MergeConfigError, match="sum to 0"):
        merge(spec, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_peak_memory_stays_near_the_chunks_not_the_model(tmp_path):
    """Three 256 MB inputs (float32 compute: 512 MB each) merged with 16 MB chunks."""
    from safetensors.torch import save_file

    for i in range(3):
        d = tmp_path / f"m{i}"
        d.mkdir()
        g = torch.Generator().manual_seed(i)
        save_file({"big.weight": torch.randn(8192, 8192, generator=g).to(torch.bfloat16),
                   "small.weight": torch.randn(64, generator=g)}, d / "model.safetensors")
        (d / "config.json").write_text("{}")
    spec = cfg("ties", [tmp_path / "m1", tmp_path / "m2"], base_model=str(tmp_path / "m0"),
               parameters={"density": 0.5})
    (tmp_path / "c.json").write_text(json.dumps(spec))
    code = f"""
import json, resource, sys
import torch
from glotbench.training.merge.engine import merge
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
merge(json.load(open({str(tmp_path / 'c.json')!r})), {str(tmp_path / 'out')!r}, chunk_elements=1 << 22)
print(json.dumps({{"before": before, "after": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr
    rss = json.loads(res.stdout.strip().splitlines()[-1])
    grown_mb = (rss["after"] - rss["before"]) / 1024
    # inputs: 3 × 128 MB on disk, 3 × 256 MB as float32; chunks of 16 MB × (3 inputs + deltas + masks)
    assert grown_mb < 200, f"peak RSS grew by {grown_mb:.0f} MB"
    assert (tmp_path / "out" / "model.safetensors").stat().st_size > 128 * 2**20


def test_merged_checkpoint_is_evaluated_by_the_harness_with_its_recipe(ckpts, tmp_path, isolated_cache, capsys):
    from glotbench.harness.store.rundir import read_run

    res = merge(cfg("ties", [ckpts["a"], ckpts["b"]], base_model=str(ckpts["base"]), parameters={"density": 0.5}),
                tmp_path / "merged")
    out = tmp_path / "run"
    assert main(["run", "--model", f"hf:{res.out_dir}", "--tasks", "xcopa", "--langs", "et", "--limit", "3",
                 "--output", str(out), "--no-progress", "--device", "cpu"]) == 0
    run = read_run(out)
    assert run["results"]["xcopa"]["et"]["n"] == 3
    recipe = run["provenance"]["model"]["merge"]
    assert recipe["method"] == "ties" and recipe["convention"] == "paper"
    assert [i["role"] for i in recipe["inputs"]] == ["base", "model", "model"]
    assert recipe["inputs"][0]["files"]["model.safetensors"] == file_sha256(ckpts["base"] / "model.safetensors")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on the GPU box)")
@pytest.mark.parametrize("method", ["linear", "slerp", "ties", "dare_ties"])
def test_cuda_merge_equals_cpu_merge(ckpts, tmp_path, method):
    base = {} if method in ("linear", "slerp") else {"base_model": str(ckpts["base"])}
    spec = cfg(method, [ckpts["a"], ckpts["b"]], parameters={"t": 0.3} if method == "slerp" else {"density": 0.4},
               **base) if method != "linear" else cfg("linear", [ckpts["a"], ckpts["b"]])
    cpu = weights(merge(spec, tmp_path / "cpu").out_dir)
    gpu = weights(merge(spec, tmp_path / "gpu", device="cuda").out_dir)
    for k in cpu:
        assert torch.allclose(cpu[k], gpu[k], rtol=1e-5, atol=1e-6), k
