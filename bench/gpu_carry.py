"""Build what a GPU machine without a package registry needs to run ``bench/bench_vllm.py``.

The lent GPU machines of this project's workplace hold PyTorch 2.11 (CUDA 13), transformers
and the scientific stack, but no vLLM and no network; at most 64 MiB travel per call with the
working tree. This script, run where pip works, fills ``.ship1`` .. ``.ship3`` (git-ignored):

- vLLM 0.26.0, the last release built for torch 2.11 + CUDA 13 (``torch==2.11.0``), trimmed to
  what a dense model on Hopper uses (the FlashAttention-3 and core kernels; FA2, the MoE
  kernels, DeepGEMM, SM100 attention and the Rust frontend left out), xz-compressed and split;
- the pure-Python and small compiled dependencies of vLLM, lm-eval 0.4.13 and glotbench the
  machine lacks (``HAVE`` below: what its image holds), as cp312 x86-64 wheels;
- glotbench's own wheel and the embedded model's config and tokenizer (the weights stay:
  ``bench_vllm.py --random-weights`` builds them there);
- ``.ship3/run.sh``, the check itself: unpack, install into /tmp/site, run the bench.

The three folders are added to ``.git/info/exclude`` (never committed).

Then three calls, back to back (the machine stays warm 30 s): carry ``.ship1``, then
``.ship2``, each copying itself to /tmp/ship; then carry ``.ship3`` and run
``bash .ship3/run.sh``. Each call's tree stays under 64 MiB.

    python bench/gpu_carry.py            # ~3 minutes here (the xz pass dominates)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
VLLM = "vllm==0.26.0"
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in (17, 24, 26, 27, 28, 31, 34, 35)] + \
    ["manylinux2014_x86_64", "manylinux1_x86_64", "manylinux_2_5_x86_64"]
# vLLM's GPU kernels we do not carry: the bench runs a dense Llama-family model on Hopper.
TRIM = ["vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so", "vllm/_moe_C_stable_libtorch.abi3.so", "vllm/vllm-rs",
        "vllm/third_party/fmha_sm100", "vllm/third_party/deep_gemm"]
# Requirements of vLLM that are kernels or media libraries for other models or GPUs (each
# import is optional in vLLM), or that the machine holds in another version already.
SKIP = {"torch", "torchaudio", "torchvision", "torchcodec", "pynvvideocodec", "flashinfer-python",
        "flashinfer-cubin", "tilelang", "nvidia-cudnn-frontend", "nvtx", "fastsafetensors", "nvidia-cutlass-dsl",
        "quack-kernels", "tokenspeed-mla", "humming-kernels", "numba", "triton",
        # backports for Python < 3.7 that some requirement lists unconditionally: they would
        # shadow the standard library's contextvars
        "contextvars", "aiocontextvars", "immutables", "win32-setctime", "pywin32"}
# xgrammar needs a newer tvm-ffi than vLLM 0.26 pins (vLLM itself imports it only for FlashInfer).
PINS = {"apache-tvm-ffi": "apache-tvm-ffi==0.1.11"}
EXTRA = ["lm-eval==0.4.13", "pycountry"]
# What the machine's image holds (read off it, 2026-11-17): never carried.
HAVE = """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax
llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft
nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py
nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec
patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11
py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors
scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools
shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server
tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric
torchmetrics torchvision tqdm transformers treescope triton typer typing-extensions typing-inspect urllib3
uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp"""
BUDGET = 45 * 2**20  # per call, besides the ~17 MiB working tree
# The machine requirement markers are evaluated for: CPython 3.12 on x86-64 Linux.
TARGET = {"python_version": "3.12", "python_full_version": "3.12.3", "implementation_name": "cpython",
          "platform_python_implementation": "CPython", "sys_platform": "linux", "platform_system": "Linux",
          "platform_machine": "x86_64", "os_name": "posix", "extra": ""}

RUN_SH = r"""#!/bin/bash
# Written by bench/gpu_carry.py: unpack what .ship1-3 carried, install it into /tmp/site, run
# bench/bench_vllm.py (glotbench's vLLM backend vs raw vLLM vs lm-eval's vllm backend).
set -u
cd "$(dirname "$0")/.."
S=/tmp/ship; mkdir -p $S
for d in .ship1 .ship2 .ship3; do [ -d $d ] && cp -rn $d/. $S/; done
ls -la $S/vllm.part.*; ls $S/*.whl | wc -l
nvidia-smi -L
python3 -c "import torch, transformers, triton; print('torch', torch.__version__, 'transformers', transformers.__version__, 'triton', triton.__version__, torch.cuda.get_device_name(0))"
SITE=/tmp/site; rm -rf $SITE; mkdir -p $SITE
t0=$(date +%s)
cat $S/vllm.part.* | xz -d -T0 | tar x -C $SITE || { echo "UNPACK FAILED"; exit 3; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $SITE $S/*.whl 2>&1 | tail -3
echo "install: $(( $(date +%s) - t0 )) s"
export PYTHONPATH=$SITE HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
python3 -c "import vllm, lm_eval, glotbench.harness; print('vllm', vllm.__version__)" 2>&1 | tail -3
timeout ${BENCH_TIMEOUT:-400} python3 bench/bench_vllm.py --model $S/model --random-weights --dtype bfloat16 --lmeval --out $OUT/vllm.json "$@" > $OUT/bench.log 2>&1
echo "bench rc=$?"
grep -v "Processed prompts\|Running generate_until\|Adding requests" $OUT/bench.log | grep -i -E "error|Traceback|backend|took|seconds|graph|compil|\| " | tail -50
echo ----; tail -30 $OUT/bench.log
"""


def pip(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PIP_CONSTRAINT": ""}
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, env=env)


def download(spec: str, dest: Path) -> None:
    """A cp312 manylinux wheel of ``spec``, or one built here from its sdist (pure Python)."""
    plat = [a for p in PLATFORMS for a in ("--platform", p)]
    r = pip("download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
            *plat, "-d", str(dest), spec)
    if r.returncode:
        r = pip("wheel", "--no-deps", "-w", str(dest), spec)
        if r.returncode:
            raise SystemExit(f"gpu_carry: cannot get {spec}: {r.stderr.strip().splitlines()[-1]}")


def requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    out = []
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        if req.marker is None or req.marker.evaluate(TARGET):  # an extra's requirement evaluates False
            out.append(str(req).split(";", 1)[0].strip())
    return out


def dependencies(roots: list[str], dest: Path) -> None:
    """Every requirement reachable from ``roots`` that the machine lacks, as wheels."""
    have = {canonicalize_name(n) for n in HAVE.split()}
    queue, seen = list(roots), set()
    while queue:
        req = queue.pop(0)
        name = canonicalize_name(Requirement(req).name)
        if name in have or name in SKIP or name in seen:
            continue
        seen.add(name)
        download(PINS.get(name, re.sub(r"\[.*?\]", "", req)), dest)
        for wheel in dest.glob("*.whl"):
            if canonicalize_name(wheel.name.split("-")[0]) == name:
                queue += requirements(wheel)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="config + tokenizer source (default: the embedded model's)")
    args = ap.parse_args()
    ships = [REPO / f".ship{i}" for i in (1, 2, 3)]
    exclude = REPO / ".git" / "info" / "exclude"
    lines = exclude.read_text().splitlines() if exclude.exists() else []
    missing = [f"/{s.name}/" for s in ships if f"/{s.name}/" not in lines]
    if missing:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        exclude.write_text("\n".join(lines + missing) + "\n")
    for s in ships:
        shutil.rmtree(s, ignore_errors=True)
        s.mkdir()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "vllm").mkdir()
        download(VLLM, tmp / "vllm")
        [wheel] = (tmp / "vllm").glob("vllm-*.whl")
        tree = tmp / "tree"
        with zipfile.ZipFile(wheel) as z:
            z.extractall(tree)
        for rel in TRIM:
            p = tree / rel
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        packed = tmp / "vllm.tar.xz"
        with tarfile.open(packed, "w:xz", preset=9) as tar:
            for top in sorted(tree.iterdir()):
                tar.add(top, arcname=top.name)
        deps = tmp / "deps"
        deps.mkdir()
        dependencies([r for r in requirements(wheel) if Requirement(r).name != "vllm"] + EXTRA, deps)
        r = pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(deps), str(REPO))
        if r.returncode:
            raise SystemExit(f"gpu_carry: glotbench's wheel: {r.stderr.strip().splitlines()[-1]}")
        # vllm's parts first, then the wheels smallest first, each call under BUDGET
        data = packed.read_bytes()
        room = [BUDGET, BUDGET, BUDGET]
        i = 0
        for k in range(0, len(data), BUDGET):
            part = data[k:k + BUDGET]
            (ships[i] / f"vllm.part.{chr(97 + i)}{chr(97 + i)}").write_bytes(part)
            room[i] -= len(part)
            i += 1
        for w in sorted(deps.glob("*.whl"), key=lambda p: p.stat().st_size):
            j = next((j for j in range(3) if room[j] >= w.stat().st_size), None)
            if j is None:
                raise SystemExit("gpu_carry: more than three calls' worth; trim more")
            shutil.copy(w, ships[j])
            room[j] -= w.stat().st_size
    if args.model:
        source = Path(args.model)
    else:
        sys.path.insert(0, str(REPO))
        from glotbench.harness.models.embedded import converted_dir

        source = converted_dir()
    (ships[2] / "model").mkdir()
    for f in source.iterdir():
        if f.suffix in (".json", ".jinja", ".txt", ".model") and not f.name.startswith("glotbench-"):
            shutil.copy(f, ships[2] / "model" / f.name)
    (ships[2] / "run.sh").write_text(RUN_SH)
    for s in ships:
        size = sum(f.stat().st_size for f in s.rglob("*") if f.is_file())
        print(f"{s.name}: {size / 2**20:.1f} MiB, {len(list(s.iterdir()))} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
