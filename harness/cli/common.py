"""Helpers the verb modules share: comma-separated lists, and whether a run will be on the CPU."""

from __future__ import annotations


def names_list(value: str | None) -> list[str] | None:
    """``"a, b,,c"`` → ``["a", "b", "c"]``; None or empty → None."""
    return [x.strip() for x in value.split(",") if x.strip()] if value else None


def on_cpu(device: str) -> bool:
    """Whether ``--device`` resolves to the CPU (``auto``: no CUDA device visible)."""
    if device != "auto":
        return device == "cpu"
    import torch

    return not torch.cuda.is_available()
