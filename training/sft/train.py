"""``glotbench train sft CONFIG.yaml -o CKPT``: supervised fine-tuning with trl's SFTTrainer.

A function from (base checkpoint, chat data, config) to one checkpoint directory: weights,
tokenizer with its chat template, ``metrics.json`` (loss curve, eval loss before/after, tokens,
tokens/s, wall time) and ``training_manifest.json`` (the lineage: base model hash, data hash,
config and versions), which ``glotbench run --model hf:CKPT`` copies into run provenance.
With ``clusters:`` one checkpoint per cluster under ``CKPT/clusters/<name>/`` and their merge
at ``CKPT`` (training/sft/clusters.py). With ``--accelerate-config`` the training runs under
``accelerate launch`` (training/core/launch.py); everything else stays in this process.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import dir_sha256, file_sha256
from glotbench.training.core.launch import check_accelerate_config, launch, refuse_inside_launch
from glotbench.training.core.stage import check_output, manifest, staged, write_manifest
from glotbench.training.data.overlap import describe
from glotbench.training.reward.score import RM_FILES
from glotbench.training.sft.clusters import merge_clusters, plan_units, subset_entry, unit_dir
from glotbench.training.sft.config import SFTConfig, load_config
from glotbench.training.sft.data import check_eval_overlap, load_rows, select_languages
from glotbench.training.sft.trainer import METRICS, train_unit

# The files that make a checkpoint, chat template included (one list with the reward scorer's
# weights hash, which extends the harness's model identity files by the template files).
WEIGHT_PATTERNS = RM_FILES


def prepare(cfg: SFTConfig) -> tuple[Path, dict[str, list[dict]], dict]:
    """(base model dir, training units, data lineage entry): everything checked before training.

    The data entry counts the rows left out (``dropped``: no language or another one when
    ``languages`` is set, outside every cluster and ``shared``) and holds the eval-overlap
    report of the rows that are trained on."""
    from glotbench.training.merge.engine import resolve_model

    base_dir = resolve_model(cfg.model)
    rows, source = load_rows(cfg.data)
    rows, dropped = select_languages(rows, cfg.languages)
    if not rows:
        raise GlotbenchError(f"SFT data {source['path']} has no rows in languages {', '.join(cfg.languages)} "
                             f"({dropped['no_language']} without a language, {dropped['other_language']} in others)",
                             "fix languages: or the data")
    units, outside = plan_units(cfg, rows)
    used = {id(r) for unit in units.values() for r in unit}
    trained = [r for r in rows if id(r) in used]
    report = check_eval_overlap(trained, cfg.data, source["path"])
    return base_dir, units, {**source, "dropped": {**dropped, "outside_clusters": outside},
                             "eval_overlap": report.to_json()}


def train_config(config: Path, work_dir: Path, *, progress: bool) -> None:
    """Train every unit of ``config`` into ``work_dir`` (run by each rank of a launch, or in-process)."""
    cfg = load_config(config)
    base_dir, units, _ = prepare(cfg)
    for name, rows in units.items():
        train_unit(cfg, base_dir, rows, unit_dir(work_dir, name), progress=progress)


def run_stage(config: Path, out: Path, *, overwrite: bool = False, progress: bool = False,
              accelerate_config: Path | None = None) -> str:
    """Run the SFT stage of ``config`` into ``out``; a few lines of summary."""
    refuse_inside_launch("sft")
    started = time.time()
    cfg = load_config(config)
    out = Path(out)
    base_dir, units, data_entry = prepare(cfg)
    check_output(out, overwrite, inputs=tuple(p for p in (base_dir, cfg.data.file) if p))
    if accelerate_config is not None:
        check_accelerate_config(accelerate_config)
    base_entry = {"role": "base", "model": cfg.model, "path": str(base_dir),
                  "sha256": dir_sha256(base_dir, WEIGHT_PATTERNS)}
    with staged(out) as tmp:
        if accelerate_config is not None:
            launch("sft", accelerate_config, config, tmp, progress=progress)
        else:
            for name, rows in units.items():
                train_unit(cfg, base_dir, rows, unit_dir(tmp, name), progress=progress)
        metrics = {name: json.loads((unit_dir(tmp, name) / METRICS).read_text()) for name in units}
        inputs = [base_entry, data_entry]
        extra = {"accelerate_config": str(accelerate_config) if accelerate_config else None}
        if not cfg.clusters:
            write_manifest(tmp, manifest("sft", cfg.raw, inputs, outputs(tmp, metrics[""]), started, **extra))
            return summary(out, cfg, metrics[""]) + "\n" + data_line(data_entry)
        for name, rows in units.items():
            cdir = unit_dir(tmp, name)
            write_manifest(cdir, manifest("sft", cfg.raw, [*inputs, subset_entry(cfg, name, rows)],
                                          outputs(cdir, metrics[name]), started, cluster=name, **extra))
        merged = merge_clusters(cfg, base_dir, tmp, out, progress=progress)
        top = {"clusters": metrics, "merge": merged}
        (tmp / METRICS).write_text(json.dumps(top, indent=2) + "\n")
        clusters = {name: {"path": f"clusters/{name}", **subset_entry(cfg, name, rows),
                           "sha256": dir_sha256(unit_dir(tmp, name), WEIGHT_PATTERNS)} for name, rows in units.items()}
        write_manifest(tmp, manifest("sft", cfg.raw, inputs, {**outputs(tmp, None), "clusters": clusters,
                                                              "merge": merged}, started, **extra))
    return "\n".join([f"SFT: {len(units)} clusters trained and merged ({merged['method']}) into {out}",
                      data_line(data_entry), *(summary(out / "clusters" / n, cfg, m) for n, m in metrics.items())])


def data_line(entry: dict) -> str:
    """One line: rows read, rows left out and why, the eval-overlap finding."""
    d = entry["dropped"]
    left = (f"{d['no_language']} without a language and {d['other_language']} in other languages left out by "
            f"languages:, {d['outside_clusters']} outside every cluster and shared")
    return f"  data: {entry['rows']} rows read; {left}; {describe(entry['eval_overlap'])}"


def outputs(directory: Path, metrics: dict | None) -> dict:
    """The manifest's outputs: weight files with hashes, and the headline metrics."""
    files = {p.name: file_sha256(p) for p in sorted(Path(directory).glob("*.safetensors"))}
    head = ("steps", "train_rows", "eval_rows", "tokens", "train_loss", "eval_loss_before", "eval_loss_after")
    return {"files": files, "metrics": METRICS, **({k: metrics.get(k) for k in head} if metrics else {})}


def summary(out: Path, cfg: SFTConfig, m: dict) -> str:
    """Two lines: what was trained where, and how the loss moved."""
    curve = m["loss_curve"]
    kind = "full" if not cfg.lora else ("LoRA, merged" if cfg.merge_lora else "LoRA adapter")
    loss = f"loss {curve[0]['loss']:.4f} → {curve[-1]['loss']:.4f}" if curve else "no loss logged"
    ev = (f", eval loss {m['eval_loss_before']:.4f} → {m['eval_loss_after']:.4f}"
          if m.get("eval_loss_after") is not None else "")
    return (f"SFT ({kind}, {m['loss_mode']}, {m['processes']} process(es), {m['device']}): {out}\n"
            f"  {m['train_rows']} rows ({m['eval_rows']} eval), {m['steps']} steps, {loss}{ev}, "
            f"{m['tokens']} tokens at {m['tokens_per_second']} tokens/s, {m['wall_seconds']:.1f} s")
