"""Language-family clusters (the Aya Expanse recipe): one SFT run per cluster on its
languages plus the shared ones, then a merge of the cluster checkpoints with training.merge.

Layout of a clustered output ``OUT`` (the merged model is OUT itself, so
``glotbench run --model hf:OUT`` evaluates the merge and its provenance carries both the
training lineage and the merge recipe)::

    OUT/config.json, model.safetensors, tokenizer…   the merged model
    OUT/training_manifest.json, merge_manifest.json, metrics.json
    OUT/clusters/<name>/                              each cluster's checkpoint, manifest, metrics
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import json_sha256
from glotbench.training.merge.config import NEEDS_BASE
from glotbench.training.sft.config import SFTConfig

CLUSTERS_DIR = "clusters"
MERGE_MANIFEST = "merge_manifest.json"
# Methods of training.merge that measure task vectors from the SFT base model.


def plan_units(cfg: SFTConfig, rows: list[dict]) -> tuple[dict[str, list[dict]], int]:
    """(training units, rows in no unit): ``{"": rows}`` without clusters, else cluster name →
    its rows (its own languages plus ``shared``); rows in no cluster's languages nor ``shared``
    are counted, since they are data the config never trains on. A cluster none of whose own
    languages has a row is an error."""
    if not cfg.clusters:
        return {"": rows}, 0
    counts = Counter(r["language"] for r in rows)
    units = {}
    for name, langs in cfg.clusters.items():
        if not any(counts[lang] for lang in langs):
            seen = ", ".join(f"{k}={v}" for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))) or "none"
            raise GlotbenchError(f"SFT cluster {name!r} ({', '.join(langs)}) has no data rows (rows per language: "
                                 f"{seen})", "fix the cluster's languages or add data for them")
        keep = set(langs) | set(cfg.shared)
        units[name] = [r for r in rows if r["language"] in keep]
    planned = set(cfg.shared).union(*cfg.clusters.values())
    return units, sum(r["language"] not in planned for r in rows)


def unit_dir(root: Path, name: str) -> Path:
    """Where unit ``name`` is trained: the root itself without clusters, else clusters/<name>."""
    return Path(root) / CLUSTERS_DIR / name if name else Path(root)


def subset_entry(cfg: SFTConfig, name: str, rows: list[dict]) -> dict:
    """The lineage of one cluster's data subset (which rows of the data it trained on)."""
    langs = sorted(set(cfg.clusters[name]) | set(cfg.shared))
    return {"role": "data_subset", "cluster": name, "languages": langs, "rows": len(rows),
            "rows_sha256": json_sha256([r["messages"] for r in rows]),
            "rows_per_language": dict(Counter(r["language"] for r in rows))}


def merge_clusters(cfg: SFTConfig, base_dir: Path, tmp: Path, final: Path, *, progress: bool) -> dict:
    """Merge ``tmp/clusters/*`` into ``tmp`` (the final ``OUT``) and return what was done.

    The merge manifest names the cluster paths as they will be after publishing (``final``),
    its config hash recomputed over those paths so the manifest stays self-consistent."""
    from glotbench.training.merge.engine import merge

    method = cfg.merge.get("method", "linear")
    weights = cfg.merge.get("weights") or dict.fromkeys(cfg.clusters, 1.0)
    spec = {"merge_method": method,
            "models": [{"model": str(unit_dir(tmp, name)), "parameters": {"weight": weights[name]}}
                       for name in cfg.clusters]}
    if method in NEEDS_BASE:
        spec["base_model"] = str(base_dir)
    if cfg.merge.get("parameters"):
        spec["parameters"] = cfg.merge["parameters"]
    if method == "slerp":
        spec["models"] = [{"model": m["model"]} for m in spec["models"]]
    staging = tmp / ".merge"
    result = merge(spec, staging, progress=progress)
    for item in staging.iterdir():
        shutil.move(str(item), str(tmp / item.name))
    staging.rmdir()
    manifest_path = tmp / MERGE_MANIFEST
    text = manifest_path.read_text(encoding="utf-8")
    data = json.loads(text.replace(json.dumps(str(tmp.resolve()))[1:-1], json.dumps(str(final.resolve()))[1:-1])
                      .replace(json.dumps(str(tmp))[1:-1], json.dumps(str(final))[1:-1]))
    data["config_sha256"] = json_sha256(data["config"])
    manifest_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return {"method": method, "weights": weights, "seconds": round(result.seconds, 3), "tensors": result.tensors,
            "files": result.files}
