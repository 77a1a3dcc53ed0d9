"""The identity of cached answers: every component of the request cache key, changed alone,
gives a cache miss (and the unchanged identity a hit); the code that computes answers cannot
change without a scoring-version bump; runs record the library versions their numbers
depend on; xCOMET scores are keyed by the COMET environment too.

See docs/reproducibility.md.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import tokenize
from dataclasses import replace
from pathlib import Path

import pytest

from glotbench.harness.core import records, versions
from glotbench.harness.metrics import comet
from glotbench.harness.models import (
    cascade,
    hf,
    hf_generate,
    openai_backend,
    prefix,
    tokens,
    vllm_backend,
    vllm_worker,
)
from glotbench.harness.models.protocol import ModelIdentity
from glotbench.harness.run import cache
from glotbench.harness.run.cache import RequestCache
from glotbench.harness.run.config import RunConfig
from glotbench.harness.run.execute import execute
from glotbench.harness.run.plan import plan
from glotbench.harness.store.rundir import read_run

REPO = Path(__file__).resolve().parent.parent

# ---- the scoring version ------------------------------------------------------------------

# What decides a cached answer for a given request and model: every backend's module
# (tokenisation, generation: HF, vLLM, OpenAI protocol), shared-prefix packing, the
# request/response records (their fields are the request key and the stored value) and the
# request key itself.
ANSWER_CODE = {
    **{f"harness/models/{mod.__name__.rsplit('.', 1)[1]}.py":
       (lambda m=mod: Path(inspect.getfile(m)).read_text(encoding="utf-8"))
       for mod in (hf, hf_generate, cascade, prefix, tokens, vllm_backend, vllm_worker, openai_backend)},
    **{f"harness/core/records.py:{cls.__name__}": (lambda c=cls: inspect.getsource(c))
       for cls in (records.LoglikelihoodRequest, records.LoglikelihoodResult,
                   records.GenerationRequest, records.GenerationResult)},
    "harness/run/cache.py:request_key": lambda: inspect.getsource(cache.request_key),
}

# SCORING_VERSION → hash of ANSWER_CODE at that version (code only: comments, docstrings and
# blank lines left out). Keep the old entries: they show the version only ever goes up.
PINNED = {
    1: "70082104baae797b313fae75068e494a48fcaa81586e62672fab8e6ed48cbd6c",
    # 2 was re-pinned before it shipped, when every backend's module joined ANSWER_CODE
    2: "0efc3645b036c2ed602111e829799656ba3a5284e0edf70f4256ebe9f85addf3",
    # 3: cascade attention on CPU (greedy decoding, packed scoring rows), cascade.py joined
    3: "02198780865b4eb1c2f6953dc8d9ebf6b2f20135d5df18a433132436087409c5",
    # 4: the vllm engine reports max_num_seqs (a GPU run's chunk floor); answers unchanged
    4: "9a39d511f00eaac377b9827aa3426946d30233b280aecd90d83722aecb730275",
}


def code_only(source: str) -> str:
    """``source`` without comments, string statements (docstrings), blank lines and trailing
    spaces: editing an explanation needs no bump, editing code does."""
    source = textwrap.dedent(source)
    lines = source.splitlines()
    drop: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            drop.update(range(node.lineno - 1, node.end_lineno))
    cut = {tok.start[0] - 1: tok.start[1] for tok in tokenize.generate_tokens(io.StringIO(source).readline)
           if tok.type == tokenize.COMMENT}
    kept = (line[:cut.get(i, len(line))].rstrip() for i, line in enumerate(lines) if i not in drop)
    return "\n".join(line for line in kept if line)


def answer_code_sha256(sources: dict[str, str] | None = None) -> str:
    sources = sources if sources is not None else {name: read() for name, read in ANSWER_CODE.items()}
    h = hashlib.sha256()
    for name in sorted(sources):
        h.update(f"{name}\n{code_only(sources[name])}\n\0".encode())
    return h.hexdigest()


def test_answer_code_changes_come_with_a_scoring_version_bump():
    now, version = answer_code_sha256(), versions.SCORING_VERSION
    where = "tests/test_cache_identity.py"
    assert version >= max(PINNED), f"SCORING_VERSION {version} is below a pinned version ({max(PINNED)}): it only goes up"
    if version not in PINNED:
        pytest.fail(f"SCORING_VERSION {version} has no pinned hash: add `{version}: \"{now}\",` to PINNED in {where}")
    if PINNED[version] != now:
        pytest.fail(
            f"the code that computes cached answers changed ({', '.join(ANSWER_CODE)}) but SCORING_VERSION is "
            f"still {version}, so answers cached by the old code would be reused. Bump SCORING_VERSION to "
            f"{version + 1} in harness/core/versions.py and add `{version + 1}: \"{now}\",` to PINNED in {where}. "
            "Only code counts (not comments, docstrings or blank lines); bump even for a change you believe "
            "harmless: a bump costs one recomputation, a stale answer costs a wrong number.")


def test_the_code_hash_sees_code_and_ignores_explanations():
    sources = {name: read() for name, read in ANSWER_CODE.items()}
    base = answer_code_sha256(sources)
    hf_py = sources["harness/models/hf.py"]
    assert "self.row_tokens = max_batch_tokens or (1024" in hf_py
    commented = hf_py.replace("        self.max_rows =", "        # a new comment\n\n        self.max_rows =")
    documented = hf_py.replace('"""A transformers causal LM on one device."""', '"""Reworded: the HF backend."""')
    changed = hf_py.replace("max_batch_tokens or (1024", "max_batch_tokens or (1023")
    assert answer_code_sha256({**sources, "harness/models/hf.py": commented}) == base
    assert answer_code_sha256({**sources, "harness/models/hf.py": documented}) == base
    assert answer_code_sha256({**sources, "harness/models/hf.py": changed}) != base
    field = sources["harness/core/records.py:GenerationRequest"]
    assert answer_code_sha256({**sources, "harness/core/records.py:GenerationRequest":
                               field.replace("seed: int = 0", "seed: int = 1")}) != base


# ---- every component of the key -----------------------------------------------------------

BASE = ModelIdentity(backend="hf", name="m", weights_sha256="w" * 64, dtype="float32", device="cpu",
                     hardware="cpu:AVX2", attn_implementation="sdpa",
                     libraries={"torch": "2.13.0+cpu", "transformers": "5.24.0", "tokenizers": "0.23.3"},
                     scoring_version=1)
CHANGES = {
    "backend": {"backend": "vllm"},
    "weights": {"weights_sha256": "v" * 64},
    "dtype": {"dtype": "bfloat16"},
    "device": {"device": "cuda"},
    "hardware": {"hardware": "cpu:AVX512"},
    "attention": {"attn_implementation": "eager"},
    "torch": {"libraries": {**BASE.libraries, "torch": "2.13.0+cu128"}},
    "transformers": {"libraries": {**BASE.libraries, "transformers": "5.25.0"}},
    "tokenizers": {"libraries": {**BASE.libraries, "tokenizers": "0.23.4"}},
    "scoring version": {"scoring_version": 2},
}


@pytest.mark.parametrize("component", list(CHANGES))
def test_changing_one_component_of_the_identity_is_a_miss(component, tmp_path):
    rc = RequestCache(tmp_path / "requests.sqlite")
    key = cache.request_key(records.LoglikelihoodRequest("context", " continuation"))
    rc.put_many(BASE.cache_key, [(key, {"logprob": -1.5, "is_greedy": True, "n_tokens": 2})])
    same = ModelIdentity(**{**BASE.__dict__, "name": "another name", "libraries": dict(BASE.libraries)})
    assert rc.get_many(same.cache_key, [key]) == {key: {"logprob": -1.5, "is_greedy": True, "n_tokens": 2}}
    assert rc.get_many(replace(BASE, **CHANGES[component]).cache_key, [key]) == {}
    rc.close()


def test_the_key_is_deterministic_and_orders_libraries():
    shuffled = replace(BASE, libraries=dict(reversed(list(BASE.libraries.items()))))
    assert shuffled.cache_key == BASE.cache_key
    assert BASE.cache_key == ("hf|" + "w" * 64 + "|float32|cpu|cpu:AVX2|sdpa|scoring=1|"
                              "tokenizers=0.23.3,torch=2.13.0+cpu,transformers=5.24.0")


# ---- the same, through real runs of a tiny model ----------------------------------------------

def run_counts(model_dir: Path, out: Path, rc: Path, dtype: str = "auto") -> dict:
    """provenance.requests of a 2-item XCOPA run (4 log-likelihood requests)."""
    cfg = RunConfig(tasks=("xcopa",), langs=("et",), limit=2, model=f"hf:{model_dir}", device="cpu",
                    dtype=dtype, data="bundled", output=str(out), cache_path=str(rc))
    return read_run(execute(cfg, plan(cfg), progress=False))["provenance"]["requests"]


MISS = {"total": 4, "from_cache": 0, "computed": 4}
HIT = {"total": 4, "from_cache": 4, "computed": 0}


@pytest.fixture(scope="module")
def primed(tiny_model_dir, tmp_path_factory) -> Path:
    """A request cache holding the tiny model's answers; a second identical run is all hits.
    Shared by the tests below: each changes a different component, so none of them can hit
    what another one wrote."""
    tmp = tmp_path_factory.mktemp("primed")
    rc = tmp / "requests.sqlite"
    assert run_counts(tiny_model_dir, tmp / "first", rc) == MISS
    assert run_counts(tiny_model_dir, tmp / "again", rc) == HIT
    return rc


def test_run_records_the_versions_and_the_identity(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    run_counts(tiny_model_dir, out, tmp_path / "rc.sqlite")
    prov = read_run(out)["provenance"]
    assert list(prov["versions"]) == list(versions.RECORDED_LIBRARIES)
    assert prov["versions"] == versions.library_versions()
    import numpy
    import sacrebleu
    import torch
    import transformers

    assert prov["versions"]["torch"] == torch.__version__ and prov["versions"]["numpy"] == numpy.__version__
    assert prov["versions"]["transformers"] == transformers.__version__
    assert prov["versions"]["sacrebleu"] == sacrebleu.__version__
    model = prov["model"]
    assert model["attn_implementation"] == "sdpa" and model["scoring_version"] == versions.SCORING_VERSION
    assert model["libraries"] == versions.library_versions(versions.ANSWER_LIBRARIES)
    assert model["hardware"] == f"cpu:{torch.backends.cpu.get_cpu_capability()}"


def test_scoring_version_bump_is_a_miss(primed, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(versions, "SCORING_VERSION", versions.SCORING_VERSION + 1)
    assert run_counts(tiny_model_dir, tmp_path / "bumped", primed) == MISS


@pytest.mark.parametrize("library", versions.ANSWER_LIBRARIES)
def test_library_upgrade_is_a_miss(library, primed, tiny_model_dir, tmp_path, monkeypatch):
    real = versions.library_version
    monkeypatch.setattr(versions, "library_version", lambda n: real(n) + ".post1" if n == library else real(n))
    assert run_counts(tiny_model_dir, tmp_path / "upgraded", primed) == MISS


def test_eager_attention_is_a_miss(primed, tiny_model_dir, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    load = AutoModelForCausalLM.from_pretrained

    def no_sdpa(*args, **kwargs):  # a model class without sdpa support: the backend falls back
        if kwargs.get("attn_implementation") == "sdpa":
            raise ValueError("this model does not support SDPA attention")
        return load(*args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_sdpa)
    assert run_counts(tiny_model_dir, tmp_path / "eager", primed) == MISS


def test_other_hardware_is_a_miss(primed, tiny_model_dir, tmp_path, monkeypatch):
    import torch

    real = torch.backends.cpu.get_cpu_capability()
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "NOT-" + real)
    assert run_counts(tiny_model_dir, tmp_path / "elsewhere", primed) == MISS


def test_dtype_is_a_miss(primed, tiny_model_dir, tmp_path):
    assert run_counts(tiny_model_dir, tmp_path / "bf16", primed, dtype="bfloat16") == MISS


def test_weights_are_identified_by_content(primed, tiny_model_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    assert run_counts(copy, tmp_path / "copied", primed) == HIT  # another path, the same files
    gen = copy / "generation_config.json"  # generation defaults change answers too
    gen.write_text(json.dumps({**json.loads(gen.read_text()), "repetition_penalty": 1.3}))
    assert run_counts(copy, tmp_path / "edited", primed) == MISS


HUB_SCRIPT = """
import json, sys
from pathlib import Path
from glotbench.harness.models.hf import HFBackend
ref = Path(sys.argv[1])
out = {}
for rev in sys.argv[2:]:
    ref.write_text(rev)  # what `main` points at: a new revision was pulled
    out[rev] = HFBackend("glotbench-test/tiny", device="cpu").identity.cache_key
print(json.dumps(out))
"""


def test_hub_model_revisions_never_share_entries(tiny_model_dir, tmp_path):
    """A hub id is mutable and transformers 5.24 exposes no commit on the config: the identity is
    the content of the snapshot the model was loaded from, whatever its revision is called."""
    repo = tmp_path / "hub" / "models--glotbench-test--tiny"
    revs = {"a" * 40: None, "b" * 40: 1.3, "not-a-commit-hash": None}
    for rev, penalty in revs.items():
        snap = repo / "snapshots" / rev
        shutil.copytree(tiny_model_dir, snap)
        if penalty is not None:
            gen = snap / "generation_config.json"
            gen.write_text(json.dumps({**json.loads(gen.read_text()), "repetition_penalty": penalty}))
    (repo / "refs").mkdir()
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1",
           "GLOTBENCH_CACHE": str(tmp_path / "glotbench-cache")}
    proc = subprocess.run([sys.executable, "-c", HUB_SCRIPT, str(repo / "refs" / "main"), *revs],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    keys = json.loads(proc.stdout.strip().splitlines()[-1])
    a, b, unnamed = (keys[r] for r in revs)
    assert a != b  # two revisions with different files: never the same entries
    assert unnamed == a  # no resolvable commit, the same files as revision a: the same answers


def test_hub_model_without_local_files_is_not_identified_by_name():
    from glotbench.harness.core.errors import ModelError

    with pytest.raises(ModelError, match="cannot find the files of hub model 'glotbench-test/absent'"):
        hf.hub_snapshot("glotbench-test/absent", None)


# ---- xCOMET --------------------------------------------------------------------------------

def test_comet_key_holds_the_environment_versions(tmp_path):
    ckpt = tmp_path / "checkpoints" / "model.ckpt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"weights")
    env = {"unbabel-comet": "2.2.7", "torch": "2.13.0", "transformers": "4.57.6", "tokenizers": "0.22.1",
           "numpy": "1.26.4"}
    base = comet.cache_identity(str(ckpt), env, gpus=0, fp16=False)
    assert base.startswith("xcomet:sha256:") and base == comet.cache_identity(str(tmp_path), dict(env), 0, False)
    for lib in env:
        assert comet.cache_identity(str(ckpt), {**env, lib: "9.9"}, 0, False) != base, lib
    assert comet.cache_identity(str(ckpt), env, gpus=1, fp16=False) != base
    assert comet.cache_identity(str(ckpt), env, 0, fp16=True) != base
    assert base == comet.model_identity(str(ckpt)) + "|" + ",".join(f"{k}={v}" for k, v in sorted(env.items())) + "|cpu"


def test_comet_env_versions_are_read_from_that_environment():
    import torch
    import transformers

    got = comet.env_versions(Path(sys.executable))  # this interpreter standing in for the COMET venv
    assert list(got) == list(comet.ENV_LIBRARIES)
    assert got["torch"] == torch.__version__ and got["transformers"] == transformers.__version__


def test_comet_hub_model_is_identified_by_its_cached_checkpoint(tmp_path, monkeypatch):
    from huggingface_hub import constants

    repo = tmp_path / "hub" / "models--Unbabel--XCOMET-XL"
    for rev, blob in (("a" * 40, b"one"), ("b" * 40, b"two")):
        (repo / "snapshots" / rev / "checkpoints").mkdir(parents=True)
        (repo / "snapshots" / rev / "checkpoints" / "model.ckpt").write_bytes(blob)
        (repo / "snapshots" / rev / "hparams.yaml").write_text("encoder: x\n")
    (repo / "refs").mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    (repo / "refs" / "main").write_text("a" * 40)
    first = comet.model_identity("Unbabel/XCOMET-XL")
    assert first == comet.model_identity(str(repo / "snapshots" / ("a" * 40)))
    (repo / "refs" / "main").write_text("b" * 40)
    assert comet.model_identity("Unbabel/XCOMET-XL") not in (first, "xcomet:hub:Unbabel/XCOMET-XL")
    shutil.rmtree(repo)  # not downloaded yet: keyed by the id until the worker has fetched it
    assert comet.model_identity("Unbabel/XCOMET-XL") == "xcomet:hub:Unbabel/XCOMET-XL"


def test_a_file_that_is_not_a_cache_is_one_line_and_closed(tmp_path):
    """Every user of the cache (run, judge, sequential gate) gets the same one-line error, and
    the half-open connection is closed, not left to the garbage collector."""
    from glotbench.harness.core.errors import GlotbenchError
    from glotbench.harness.run.cache import RequestCache

    junk = tmp_path / "requests.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(GlotbenchError, match="cannot open the request cache .*requests.sqlite"):
        RequestCache(junk)
