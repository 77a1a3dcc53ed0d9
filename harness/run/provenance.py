"""What a run records about how it was made: prompt layout, host and library versions, the
recipe of a merged checkpoint and the lineage of a trained one."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

from glotbench.harness.core.hashing import json_sha256
from glotbench.harness.core.versions import library_versions
from glotbench.harness.models.protocol import Backend
from glotbench.harness.run.config import RunConfig
from glotbench.harness.run.plan import Unit


def prompting(unit: Unit, cfg: RunConfig, backend: Backend) -> dict:
    """How prompts were laid out: recorded so runs that differ here are never compared blindly."""
    if unit.task.output_type != "generate":
        return {"chat_template": False, "layout": "plain text (log-likelihood)"}
    out = {"chat_template": unit.chat, "layout": f"chat, few-shot {cfg.fewshot_as}" if unit.chat else "plain text",
           "max_new_tokens": unit.requests[0][0].max_new_tokens if unit.requests else None}
    if unit.chat:
        out["fewshot_as"] = cfg.fewshot_as
        out["chat_template_sha256"] = json_sha256(backend.chat_template)
    return out


def host() -> dict:
    import torch

    return {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count()}


def versions() -> dict[str, str | None]:
    """``provenance.versions``: the libraries a run's numbers depend on (None: not installed).
    float32 results move slightly between versions; the gate names a difference here."""
    return library_versions()


# Written by every training stage that produces a checkpoint (training/core/stage.py); read
# here by name only: the harness never imports training/.
TRAINING_MANIFEST = "training_manifest.json"


def _manifest(model: str, name: str) -> dict | None:
    path = Path(model.removeprefix("hf:")) / name
    try:
        man = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        man = None
    return man if isinstance(man, dict) else None


def merge_provenance(model: str) -> dict:
    """A merged checkpoint (``glotbench merge``) carries its recipe into every run of it, and a
    trained one (``glotbench train``) its lineage: stage, config and its hash, parents (base
    checkpoint and data, with hashes) and the versions that trained it."""
    out = {}
    trained = _manifest(model, TRAINING_MANIFEST)
    if trained:
        keep = ("stage", "config", "config_sha256", "inputs", "versions", "glotbench_version", "created_utc")
        out["training"] = {k: trained.get(k) for k in keep}
    man = _manifest(model, "merge_manifest.json")
    if not man:
        return out
    keep = ("method", "convention", "seed", "config_sha256", "glotbench_version", "created_utc")
    inputs = [{"model": i.get("model"), "role": i.get("role"), "files": i.get("files")} for i in man.get("inputs", [])]
    return {**out, "merge": {**{k: man.get(k) for k in keep}, "inputs": inputs}}
