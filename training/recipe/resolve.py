"""From a recipe stage to what runs: its identity hash, its rendered config, its validation.

A stage's hash is sha256 of its kind, its config as written with every reference replaced by
the referenced stage's hash (and file name), the content hash of every local file or
directory its config names, and the glotbench version. So an edit anywhere upstream changes
the hash of every stage downstream of it, and nothing else; a stage's output directory is
``DIR/<stage>-<hash12>``. How a stage runs (``accelerate_config``) is not part of its identity.

Paths in a config are read like the stage reads them (training.core.config.resolve_path: the
working directory, the config file's directory, the repository root); the rendered config
names them absolutely, so it can be written anywhere. A string is taken for a path when it
contains ``/`` or ends like a data file, and exists.
"""

from __future__ import annotations

import importlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from glotbench import harness
from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import json_sha256, memo_file_sha256
from glotbench.training.core.config import ConfigError, resolve_path
from glotbench.training.core.stage import MANIFEST
from glotbench.training.recipe.schema import (
    CHECKPOINT_KEYS,
    KINDS,
    Recipe,
    Stage,
    is_ref,
    placeholders,
    refuse_placeholders,
)

MANIFESTS = (MANIFEST, "merge_manifest.json")
SUFFIXES = (".jsonl", ".json", ".yaml", ".yml", ".jinja", ".txt", ".csv", ".tsv", ".parquet")


@dataclass(frozen=True)
class Planned:
    """A stage with its identity: where its output lives and what it depends on."""

    stage: Stage
    sha256: str
    out: Path

    @property
    def name(self) -> str:
        return self.stage.name


def output_dir(root: Path, name: str, sha256: str) -> Path:
    return Path(root).absolute() / f"{name}-{sha256[:12]}"


def finished(out: Path) -> Path | None:
    """The manifest of a finished stage output (written last by every stage), else None."""
    return next((out / m for m in MANIFESTS if (out / m).is_file()), None)


def plan(recipe: Recipe, root: Path) -> list[Planned]:
    """Every stage's hash and output directory, in dependency order (nothing is run or written)."""
    hashes: dict[str, str] = {}
    out = []
    for stage in recipe.stages:
        hashes[stage.name] = stage_sha256(stage, hashes)
        out.append(Planned(stage, hashes[stage.name], output_dir(root, stage.name, hashes[stage.name])))
    return out


def stage_sha256(stage: Stage, upstream: dict[str, str]) -> str:
    inputs: dict[str, str] = {}

    def identity(value: Any) -> Any:
        if is_ref(value):
            return {"from_sha256": upstream[value["from"]], "file": value.get("file")}
        if isinstance(value, dict):
            return {str(k): identity(v) for k, v in value.items()}
        if isinstance(value, list):
            return [identity(v) for v in value]
        path = local_path(value, stage.base)
        if path is not None:
            inputs[value] = fingerprint(path)
        return value

    config = identity(stage.config)
    return json_sha256({"kind": stage.kind, "config": config, "inputs": inputs, "glotbench": harness.__version__})


def local_path(value: Any, base: Path) -> Path | None:
    """The existing file or directory a config string names, else None (``hf:`` prefix allowed)."""
    if not isinstance(value, str):
        return None
    text = value[3:] if value.startswith("hf:") else value
    if not text or ("/" not in text and not text.endswith(SUFFIXES)):
        return None
    path = resolve_path(text, base)
    return path.absolute() if path.exists() else None


def fingerprint(path: Path) -> str:
    """A file's content hash; a stage output's manifest hash; else every file's name and hash."""
    if path.is_file():
        return memo_file_sha256(path)
    manifest = finished(path)
    if manifest is not None:
        return memo_file_sha256(manifest)
    files = sorted(p for p in path.rglob("*") if p.is_file() and not any(s.startswith(".") for s in
                                                                          p.relative_to(path).parts))
    return json_sha256([[str(p.relative_to(path)), memo_file_sha256(p)] for p in files])


def render(stage: Stage, target: dict[str, Path]) -> dict:
    """The stage's config with references replaced by ``target[stage]`` (a checkpoint directory
    or a data directory) and relative local paths made absolute."""

    def walk(value: Any, key: str) -> Any:
        if is_ref(value):
            where = target[value["from"]]
            if value.get("file"):
                return str(where / value["file"])
            return ("hf:" if CHECKPOINT_KEYS.get(key) == "policy" else "") + str(where)
        if isinstance(value, dict):
            return {k: walk(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, key) for v in value]
        path = local_path(value, stage.base)
        if path is not None:
            return ("hf:" if value.startswith("hf:") else "") + str(path)
        return value

    return walk(stage.config, "")


def checkpoint(out: Path) -> Path:
    """Where a finished stage's checkpoint is: the output directory, or the final checkpoint its
    manifest names (online DPO keeps each iteration's policy in iter-N/checkpoint)."""
    manifest = finished(out)
    if manifest is not None:
        final = json.loads(manifest.read_text(encoding="utf-8")).get("outputs", {}).get("final_checkpoint")
        if final:
            return Path(final)
    return out


def write_config(config: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def check_inputs(stage: Stage, where: str) -> None:
    """Refuse a checkpoint a config names that is missing: a ``reward_model`` is always a local
    directory; ``hf:PATH`` under a checkpoint key is one unless it has a hub id's shape (``org/name``)."""

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict) and not is_ref(value):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and (key == "reward_model" or (key in CHECKPOINT_KEYS and value.startswith("hf:"))):
            text = value[3:] if value.startswith("hf:") else value
            hub_shaped = text.count("/") == 1 and not text.startswith((".", "/", "~"))
            if (key == "reward_model" or not hub_shaped) and not resolve_path(text, stage.base).is_dir():
                raise ConfigError(f"{where}: {key} {value} is not a directory (a missing input)",
                                  "train it first, fix the path, or use {from: STAGE} for a stage of this recipe")

    walk(stage.config, "")


def validate(recipe: Recipe) -> None:
    """Refuse unfilled placeholders; then run each stage's own config parser on its rendered
    config, references standing in as placeholders (an empty file, a directory with a
    config.json): a broken stage config is refused before the first stage runs."""
    # configs read from their own files (the recipe file itself was scanned when loaded)
    refuse_placeholders([p for stage in recipe.stages for p in placeholders(stage.config, f"stages.{stage.name}.config")],
                        recipe.path)
    with tempfile.TemporaryDirectory(prefix="glotbench-recipe-") as tmp:
        stand_in: dict[str, Path] = {}
        for stage in recipe.stages:
            place = Path(tmp) / "outputs" / stage.name
            place.mkdir(parents=True)
            (place / "config.json").write_text("{}", encoding="utf-8")
            for name in KINDS[stage.kind].files:
                (place / name).touch()
            stand_in[stage.name] = place
        for stage in recipe.stages:
            check_inputs(stage, f"recipe {recipe.path}: stage {stage.name} ({stage.kind})")
            path = write_config(render(stage, stand_in), Path(tmp) / "configs" / f"{stage.name}.yaml")
            try:
                importlib.import_module(KINDS[stage.kind].parser).load_config(path)
            except GlotbenchError as exc:  # name the recipe's stage, not the temporary file
                problem = exc.problem.replace(str(path), f"(stage {stage.name})").replace(tmp, "…")
                raise ConfigError(f"recipe {recipe.path}: stage {stage.name} ({stage.kind}): {problem}",
                                  exc.fix) from None
