"""xCOMET scoring through an isolated COMET environment.

unbabel-comet 2.2.7 pins transformers<5, numpy<2, huggingface-hub<1 and torchmetrics 0.10
(which needs ``setuptools<81`` for ``pkg_resources``), so it cannot share glotbench's
environment. glotbench keeps a dedicated virtualenv for it:

* ``$GLOTBENCH_COMET_ENV`` if set (an existing venv with unbabel-comet is used as is),
  else ``<glotbench cache>/comet-env``, built on first use with
  ``pip install torch==2.13.0 unbabel-comet==2.2.7 'setuptools<81'`` (~1.5 min measured on
  CPU; the build log is kept next to it). A build runs under a file lock and the env counts
  as ready only once a marker file is written last, so a killed build is redone, never used.
* :mod:`glotbench.harness.metrics.comet_worker` runs there and exchanges JSON files with this module.

Segment scores are cached in the request cache under the model's identity and the (source,
hypothesis, reference) triple, so re-running a finished run re-scores nothing. The identity
(:func:`cache_identity`) holds everything that can change a score: the checkpoint's content
hash (a hub id is resolved to the checkpoint in the local Hugging Face cache when it is
there; a hub id is mutable), the versions of the libraries installed in the COMET
environment (a user-provided ``GLOTBENCH_COMET_ENV`` or a rebuilt one can differ), the
device class and the precision.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from glotbench.harness.core import isolated_env
from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import json_sha256, memo_file_sha256

DEFAULT_MODEL = "Unbabel/XCOMET-XL"
REQUIREMENTS = ("torch==2.13.0", "unbabel-comet==2.2.7", "setuptools<81")
WORKER = Path(__file__).resolve().parent / "comet_worker.py"
HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
ENV_LIBRARIES = ("unbabel-comet", "torch", "transformers", "tokenizers", "numpy")
"""Libraries of the COMET environment that compute a score; their versions are in the key."""


class CometError(GlotbenchError):
    """The xCOMET environment or model is unusable."""


def spec() -> isolated_env.EnvSpec:
    """The COMET environment (read at call time: tests replace REQUIREMENTS)."""
    return isolated_env.EnvSpec(
        label="xCOMET", variable="GLOTBENCH_COMET_ENV", default_dir="comet-env", requirements=REQUIREMENTS,
        probe="import importlib.util, sys; sys.exit(importlib.util.find_spec('comet') is None)",
        check="from comet.models import XCOMETMetric", duration="~1.5 min", error=CometError)


def env_dir() -> Path:
    return isolated_env.env_dir(spec())


def ensure_env(env: Path | None = None, log=None) -> Path:
    """The Python of a ready COMET environment, building it first if needed."""
    return isolated_env.ensure(spec(), env, log, build=lambda e, lg: _build(e, lg))


def _build(env: Path, log) -> Path:
    return isolated_env.build_env(spec(), env, log)


def model_identity(model: str) -> str:
    """Cache identity of a COMET model: the checkpoint's content hash (plus its hparams) for a
    local one or a hub id already in the local Hugging Face cache, the hub id otherwise (not
    downloaded yet: the worker fetches it, and the next run keys it by content)."""
    path = Path(model).expanduser()
    if not path.exists() and HUB_ID.fullmatch(model) and not model.startswith("."):
        path = _hub_checkpoint(model) or path
    if path.is_dir():
        path = path / "checkpoints" / "model.ckpt"
    if path.is_file():
        hparams = path.parent.parent / "hparams.yaml"
        extra = memo_file_sha256(hparams) if hparams.is_file() else ""
        return "xcomet:sha256:" + json_sha256([memo_file_sha256(path), extra])
    if HUB_ID.fullmatch(model) and not model.startswith("."):
        return f"xcomet:hub:{model}"
    raise CometError(f"xCOMET model {model!r} not found: no such checkpoint file or directory",
                     f"pass a COMET checkpoint (.ckpt, or a directory with checkpoints/model.ckpt) "
                     f"or a hub id such as {DEFAULT_MODEL}")


def _hub_checkpoint(repo_id: str) -> Path | None:
    """The checkpoint of a hub COMET model in the local Hugging Face cache (COMET's hub layout:
    ``checkpoints/model.ckpt`` beside ``hparams.yaml``), None when it is not there."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(repo_id, "checkpoints/model.ckpt")
    return Path(found) if isinstance(found, str) else None


def env_versions(python: Path) -> dict[str, str | None]:
    """Versions of :data:`ENV_LIBRARIES` in the COMET environment of ``python`` (None: not
    installed), read from package metadata without importing them (~50 ms)."""
    code = ("import importlib.metadata as m, json\n"
            "def v(n):\n"
            "    try:\n        return m.version(n)\n"
            "    except m.PackageNotFoundError:\n        return None\n"
            f"print(json.dumps({{n: v(n) for n in {list(ENV_LIBRARIES)!r}}}))")
    proc = subprocess.run([str(python), "-I", "-c", code], capture_output=True, text=True)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise CometError(f"cannot read the library versions of the COMET environment {python.parent.parent} "
                         f"(exit status {proc.returncode}: {(proc.stderr.strip().splitlines() or ['no output'])[-1][:200]})",
                         "remove that directory (glotbench rebuilds it) or point GLOTBENCH_COMET_ENV at a "
                         "working virtualenv with unbabel-comet") from None


def cache_identity(model: str, versions: dict[str, str | None], gpus: int, fp16: bool) -> str:
    """The request-cache identity of xCOMET scores: the model and precision (the ``identity``
    a run records), the COMET environment's library versions and the device class (GPU and
    CPU kernels round differently)."""
    libs = ",".join(f"{k}={v}" for k, v in sorted(versions.items()))
    return f"{model_identity(model)}{'|fp16' if fp16 else ''}|{libs}|{'cuda' if gpus else 'cpu'}"


def score(segments: list[dict], model: str = DEFAULT_MODEL, *, batch_size: int = 8, gpus: int = 0,
          fp16: bool = False, cache=None, env: Path | None = None,
          progress: bool = False) -> tuple[list[dict], dict]:
    """Per segment of ``segments`` (dicts with src, mt, ref): ``{"score", "error_spans"}``
    (xCOMET's error spans: text, start, end, severity, confidence; None for models without
    them), and what produced them. ``fp16``: half precision, as the comet-score CLI runs
    (faster on a GPU; scores differ from float32 in the 4th decimal, so it is part of the
    cache identity)."""
    python = ensure_env(env)  # before the cache: its library versions are part of the key
    versions = env_versions(python)
    identity = model_identity(model) + ("|fp16" if fp16 else "")
    space = cache_identity(model, versions, gpus, fp16)
    keys = [json_sha256([s["src"], s["mt"], s["ref"]]) for s in segments]
    found = dict(cache.get_many(space, keys)) if cache is not None else {}
    todo = list(dict.fromkeys(k for k in keys if k not in found))
    info = {"model": model, "identity": identity, "segments": len(segments),
            "from_cache": sum(1 for k in keys if k in found), "computed": len(todo),
            "batch_size": batch_size, "gpus": gpus, "precision": "fp16" if fp16 else "fp32",
            "env_versions": versions, "cache_identity": space}
    if todo:
        by_key = dict(zip(keys, segments))
        batch = [{"src": by_key[k]["src"], "mt": by_key[k]["mt"], "ref": by_key[k]["ref"]} for k in todo]
        out = _run_worker(python, model, batch, batch_size, gpus, fp16, progress)
        spans = out.get("error_spans") or [None] * len(todo)
        values = [{"score": s, "error_spans": e} for s, e in zip(out["scores"], spans)]
        found.update(zip(todo, values))
        if cache is not None:
            cache.put_many(space, list(zip(todo, values)))
        info.update({k: out[k] for k in ("checkpoint", "comet_version", "model_class", "seconds")})
    return [found[k] for k in keys], info


def _run_worker(python: Path, model: str, segments: list[dict], batch_size: int, gpus: int, fp16: bool,
                progress: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="glotbench-xcomet-") as tmp:
        req, resp, errlog = Path(tmp) / "request.json", Path(tmp) / "response.json", Path(tmp) / "worker.log"
        req.write_text(json.dumps({"model": model, "batch_size": batch_size, "gpus": gpus, "fp16": fp16,
                                   "progress": progress, "segments": segments}, ensure_ascii=False),
                       encoding="utf-8")
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
        with open(errlog, "w", encoding="utf-8") as err:
            # -I: the worker lives in harness/, whose types.py must not shadow the stdlib module.
            proc = subprocess.run([str(python), "-I", str(WORKER), str(req), str(resp)],
                                  stdout=err, stderr=subprocess.STDOUT, env=env)
        out = json.loads(resp.read_text(encoding="utf-8")) if resp.is_file() else None
        if out is None or not out.get("ok"):
            if out is not None and out.get("kind") == "model_missing":
                raise CometError(f"xCOMET model unavailable: {out['message']}",
                                 f"download it where the hub is reachable (hf download {model}; "
                                 "XCOMET-XL is gated: accept its licence first) and reuse that "
                                 "HF cache, or pass a local checkpoint with --xcomet PATH")
            why = out["message"] if out is not None else \
                f"the worker exited with status {proc.returncode} ({isolated_env.last_line(errlog)})"
            raise CometError(f"xCOMET scoring failed: {why[:300]}",
                             f"check the model and the COMET environment ({python.parent.parent})")
        if len(out["scores"]) != len(segments):
            raise RuntimeError(f"xCOMET worker returned {len(out['scores'])} scores for {len(segments)} segments")
        return out


def score_units(cfg, scored: list, cache, device: str, progress: bool) -> dict:
    """Add a per-example ``xcomet`` score to every translation unit of a run (in place:
    records and score dicts), all units in one worker call; returns the provenance entry."""
    triples, slots = [], []
    for unit, records, scores in scored:
        field = unit.task.source_field
        if not field:
            continue
        for sample, prompt, rec, sc in zip(unit.loaded.samples, unit.prompts, records, scores):
            triples.append({"src": sample.fields[field], "mt": rec["pred"] or "", "ref": prompt.target})
            slots.append((rec, sc))
    gpus = 1 if device.startswith("cuda") else 0
    if progress:
        print(f"xcomet: scoring {len(triples)} segments with {cfg.xcomet}", file=sys.stderr)
    values, info = score(triples, cfg.xcomet, batch_size=cfg.xcomet_batch_size, gpus=gpus,
                         fp16=cfg.xcomet_fp16, cache=cache, progress=progress)
    for (rec, sc), v in zip(slots, values):
        rec["xcomet"] = sc["xcomet"] = v["score"]
        if v.get("error_spans") is not None:
            rec["xcomet_error_spans"] = v["error_spans"]
    return info
