"""xCOMET worker: runs inside the isolated COMET environment, never in glotbench's own.

unbabel-comet 2.2.7 pins transformers<5, numpy<2 and huggingface-hub<1, so it cannot be
imported next to glotbench; :mod:`glotbench.harness.metrics.comet` runs this file with the COMET venv's Python
(by path: it imports nothing from glotbench) and talks to it through two JSON files:

request  ``{"model": hub id or checkpoint path, "batch_size": int, "gpus": int, "fp16": bool,
            "segments": [{"src": ..., "mt": ..., "ref": ...}, ...]}``
response ``{"ok": true, "scores": [...], "system_score": float, "error_spans": [...],
            "checkpoint": path, "comet_version": str, "model_class": str, "seconds": {...}}``
          or ``{"ok": false, "kind": "model_missing" | "load_failed" | "predict_failed",
            "message": str}`` (exit status 3).

Usage: python comet_worker.py REQUEST.json RESPONSE.json
"""

from __future__ import annotations

import json
import os
import re
import sys
import time


def _write(path: str, obj: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False)
    os.replace(tmp, path)


def _fail(path: str, kind: str, message: str) -> int:
    _write(path, {"ok": False, "kind": kind, "message": message})
    return 3


def _checkpoint(model: str) -> str:
    """A local checkpoint file, a COMET model directory (``checkpoints/model.ckpt``), or a hub
    id resolved through the Hugging Face cache (downloaded when the hub is reachable)."""
    if os.path.isfile(model):
        return model
    if os.path.isdir(model):
        path = os.path.join(model, "checkpoints", "model.ckpt")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{model} is a directory without checkpoints/model.ckpt")
        return path
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", model) or model.startswith("."):
        raise FileNotFoundError(f"no such file or directory: {model}")
    from comet import download_model

    try:
        return download_model(model)
    except Exception as exc:  # comet raises KeyError for anything it cannot fetch
        raise FileNotFoundError(f"{model} is neither a local checkpoint nor available from the "
                                f"Hugging Face hub or its local cache ({type(exc).__name__})") from None


def _spans(metadata) -> list | None:
    spans = getattr(metadata, "error_spans", None) if metadata is not None else None
    if spans is None:
        return None
    return [[{k: (v if isinstance(v, (str, int, float)) or v is None else float(v)) for k, v in s.items()}
             for s in seg] for seg in spans]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    req_path, out_path = argv
    with open(req_path, encoding="utf-8") as f:
        req = json.load(f)
    t0 = time.time()
    try:
        ckpt = _checkpoint(req["model"])
    except FileNotFoundError as exc:
        return _fail(out_path, "model_missing", str(exc))
    try:
        import comet
        from comet import load_from_checkpoint

        model = load_from_checkpoint(ckpt)
        model.eval()
        if req.get("fp16"):
            model.half()  # what the comet-score CLI always does
    except Exception as exc:
        return _fail(out_path, "load_failed", f"{type(exc).__name__}: {exc}")
    t1 = time.time()
    try:
        out = model.predict(req["segments"], batch_size=int(req["batch_size"]), gpus=int(req["gpus"]),
                            progress_bar=bool(req.get("progress", False)))
    except Exception as exc:
        return _fail(out_path, "predict_failed", f"{type(exc).__name__}: {exc}")
    scores = [float(s) for s in out.scores]
    _write(out_path, {
        "ok": True,
        "scores": scores,
        "system_score": float(out.system_score),
        "error_spans": _spans(out.get("metadata")),
        "checkpoint": os.path.abspath(ckpt),
        "comet_version": getattr(comet, "__version__", "unknown"),
        "model_class": type(model).__name__,
        "seconds": {"load": round(t1 - t0, 3), "predict": round(time.time() - t1, 3)},
    })
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
