"""Tiny Llama checkpoints for the merge tests: a base and fine-tuned variants of it."""

from __future__ import annotations

import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


def llama_config(vocab_size: int = 256, **overrides):
    from transformers import LlamaConfig

    kw = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
              tie_word_embeddings=False)
    kw.update(overrides)
    return LlamaConfig(**kw)


def make_llama(out: Path, seed: int, *, base: Path | None = None, noise: float = 0.02, dtype: str = "float32",
               tokenizer_from: Path | None = None, max_shard_size: str | None = None, **cfg) -> Path:
    """Save a random tiny Llama; with ``base``, the base's weights plus seeded Gaussian noise."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    if base is not None:
        model = LlamaForCausalLM.from_pretrained(base, dtype=torch.float32)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * noise)
    else:
        vocab = cfg.pop("vocab_size", None)
        if vocab is None and tokenizer_from is not None:
            from transformers import AutoTokenizer

            vocab = len(AutoTokenizer.from_pretrained(tokenizer_from))
        model = LlamaForCausalLM(llama_config(vocab or 256, **cfg))
    model = model.to(getattr(torch, dtype))
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(out, **kwargs)
    src = tokenizer_from or base
    if src is not None:
        for name in TOKENIZER_FILES:
            if (Path(src) / name).is_file():
                shutil.copy2(Path(src) / name, out / name)
    return out
