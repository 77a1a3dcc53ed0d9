"""Model specs → backends. ``embedded`` (default), ``hf:<directory or hub id>``,
``vllm:<directory or hub id>`` (``vllm:embedded``: the embedded model's directory),
``openai:<served model id>`` (with ``base_url``: an OpenAI-compatible server such as
``vllm serve``; without: the OpenAI API).

Each backend is imported lazily, with an install hint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from glotbench.harness.core.errors import GlotbenchError, ModelError
from glotbench.harness.models.protocol import Backend

FORMS = ("'embedded', 'hf:<model directory or hub id>', 'vllm:<model directory, hub id or embedded>' or "
         "'openai:<served model id>' (with --base-url)")


def load_backend(spec: str | None, *, device: str = "auto", dtype: str = "auto", batch_size: int = 16,
                 vllm: Mapping[str, Any] | None = None, base_url: str | None = None) -> Backend:
    """``vllm``: engine options of the vllm backend (max_model_len, tensor_parallel_size,
    gpu_memory_utilization); None values are vLLM's defaults. ``base_url``: the server of an
    ``openai:`` model."""
    spec = spec or "embedded"
    if base_url and not spec.startswith("openai:"):
        raise GlotbenchError(f"--base-url {base_url} is for served models, not --model {spec}",
                             "use --model openai:<served model id> with --base-url, or drop --base-url")
    if spec == "embedded":
        from glotbench.harness.models import embedded
        from glotbench.harness.models.hf import HFBackend

        return HFBackend(str(embedded.converted_dir()), name=f"embedded:{embedded.MODEL_NAME}",
                         device=device, dtype=dtype, batch_size=batch_size)
    kind, sep, target = spec.partition(":")
    if not sep or not target:
        raise GlotbenchError(f"cannot read model spec {spec!r}", f"use {FORMS}")
    if kind == "hf":
        try:
            import transformers  # noqa: F401
        except ImportError:
            raise ModelError("the hf backend needs transformers", "pip install glotbench") from None
        from glotbench.harness.models.hf import HFBackend

        return HFBackend(target, name=spec, device=device, dtype=dtype, batch_size=batch_size)
    if kind == "vllm":
        from glotbench.harness.models.vllm_backend import VLLMBackend

        options = {k: v for k, v in (vllm or {}).items() if v is not None}
        if target == "embedded":
            from glotbench.harness.models import embedded

            return VLLMBackend(str(embedded.converted_dir()), name=f"vllm:embedded:{embedded.MODEL_NAME}",
                               dtype=dtype, batch_size=batch_size, **options)
        return VLLMBackend(target, name=spec, dtype=dtype, batch_size=batch_size, **options)
    if kind == "openai":
        from glotbench.harness.models.openai_backend import OpenAIBackend

        return OpenAIBackend(target, base_url=base_url, batch_size=batch_size)
    raise GlotbenchError(f"unknown model backend {kind!r} in {spec!r}", f"use {FORMS}")
