"""What defines a run: :class:`RunConfig`, recorded verbatim in ``run.json``, and its checks."""

from __future__ import annotations

from dataclasses import dataclass, field

CHAT_MODES = ("auto", "on", "off")


FEWSHOT_AS = ("multiturn", "single-turn")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; recorded verbatim in ``run.json``."""

    tasks: tuple[str, ...]
    langs: tuple[str, ...] | None = None
    """None: every language of each task."""
    model: str = "embedded"
    limit: int | None = None
    """First N items per language (None: all)."""
    data: str = "auto"
    data_dir: str | None = None
    batch_size: int = 16
    device: str = "auto"
    dtype: str = "auto"
    seed: int = 1234
    """Seed of the bootstrap CIs."""
    output: str | None = None
    results_dir: str = "results"
    cache_path: str | None = None
    chat: str = "auto"
    """Generative tasks through the model's chat template: auto (when it has one), on, off.
    Log-likelihood tasks always score plain text, as lm-eval does by default."""
    fewshot_as: str = "multiturn"
    """With the chat template: few-shot examples as user/assistant turns (multiturn) or
    inside the one user turn (single-turn)."""
    max_new_tokens: int | None = None
    """Override of each generative task's generation length."""
    task_limits: dict[str, int] = field(default_factory=dict)
    """Per-task item limits where ``limit`` is None (the default run on CPU)."""
    task_langs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Per-task languages where ``langs`` is None (the default run keeps those with local data)."""
    task_max_new_tokens: dict[str, int] = field(default_factory=dict)
    """Per-task generation lengths where ``max_new_tokens`` is None (the default run on CPU
    shortens open-ended completions)."""
    max_model_len: int | None = None
    """vllm backend: the engine's context length (None: the model's; 2048 on CPU)."""
    tensor_parallel_size: int = 1
    """vllm backend: GPUs one model replica spans."""
    gpu_memory_utilization: float = 0.9
    """vllm backend: share of each GPU's memory the engine may take."""
    base_url: str | None = None
    """openai backend: the OpenAI-compatible server (None: the OpenAI API)."""
    xcomet: str | None = None
    """Also score translation tasks with this COMET model (hub id or checkpoint path)."""
    xcomet_batch_size: int = 8
    xcomet_fp16: bool = False
    """Half precision for xCOMET (as the comet-score CLI; faster on a GPU)."""
    data_parallel: int = 1
    """Backend replicas answering the run's requests, as Ray actors (harness/run/parallel.py);
    1: in this process, without Ray. Changes no prediction or score."""
    ray_address: str | None = None
    """With ``data_parallel`` > 1: an existing Ray cluster (None: a local one for this run)."""

    def backend_options(self) -> dict:
        """The keyword arguments of ``load_backend(self.model, ...)``: every replica of a
        data-parallel run loads its backend exactly as a single-process run does."""
        return {"device": self.device, "dtype": self.dtype, "batch_size": self.batch_size,
                "vllm": {"max_model_len": self.max_model_len, "tensor_parallel_size": self.tensor_parallel_size,
                         "gpu_memory_utilization": self.gpu_memory_utilization},
                "base_url": self.base_url}
