"""xCOMET throughput: glotbench's path (isolated venv, JSON worker, cache) vs COMET's own CLI.

Both run in the same invocation, on the same segments and checkpoint, in the same COMET
environment: ``comet-score`` (the reference: how users run COMET) and glotbench's
``glotbench.harness.metrics.comet.score`` with an empty cache, then once more from the cache. Reports
segments/s for each (wall time including process start and model load, as a user waits)
and the worker's own load/predict split, and checks the segment scores agree.

No XCOMET-XL download is possible here, so the checkpoint is a real-size xCOMET built from
its configuration with random weights (tests/comet_tiny.py --size): the compute is that of
the real model (``xl`` = XLM-R XL, 3.5B, the encoder of XCOMET-XL), the scores mean nothing.
Segments are real FLORES-200 devtest text (English source, German reference; the
"hypothesis" is the German of the next segment, so lengths are realistic).

    python bench/bench_xcomet.py --size xl --segments 1024 --batch-size 32 --gpus 1   # GPU box
    python bench/bench_xcomet.py --size large --segments 32 --batch-size 8            # CPU
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from glotbench.harness.metrics import comet  # noqa: E402
from glotbench.harness.run.cache import RequestCache  # noqa: E402
from glotbench.harness.taskapi.data import BUNDLED_DIR  # noqa: E402

API = """
import json
from comet import load_from_checkpoint
segs = [dict(zip(("src", "mt", "ref"), t)) for t in zip(*(open("{work}/" + k + ".txt").read().splitlines()
                                                          for k in ("src", "mt", "ref")))]
out = load_from_checkpoint("{ckpt}").predict(segs, batch_size={bs}, gpus={gpus}, progress_bar=False)
json.dump({{"api": [{{"COMET": s}} for s in out.scores]}}, open("{work}/reference.json", "w"))
"""


def segments(n: int) -> list[dict]:
    src = (BUNDLED_DIR / "flores200/devtest/eng_Latn.devtest").read_text(encoding="utf-8").splitlines()
    ref = (BUNDLED_DIR / "flores200/devtest/deu_Latn.devtest").read_text(encoding="utf-8").splitlines()
    out = [{"src": src[i % 1012], "ref": ref[i % 1012], "mt": ref[(i + 1) % 1012]} for i in range(n)]
    for i, s in enumerate(out[1012:], 1012):  # distinct triples even past the 1012 segments
        s["mt"] = f"{s['mt']} ({i})"
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=("tiny", "large", "xl"), default="large")
    ap.add_argument("--segments", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--gpus", type=int, default=0)
    ap.add_argument("--reference", choices=("cli", "api"), default=None,
                    help="comet-score (fp16; default with --gpus) or the Python API (fp32; default on CPU)")
    ap.add_argument("--workdir", default=None, help="where the checkpoint is built (reused when present)")
    args = ap.parse_args()
    args.reference = args.reference or ("cli" if args.gpus else "api")

    python = comet.ensure_env()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-xcomet-"))
    ckpt = work / args.size / "checkpoints" / "model.ckpt"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if not ckpt.is_file():
        t0 = time.time()
        subprocess.run([str(python), "-I", str(REPO / "tests/comet_tiny.py"), str(work / args.size),
                        "--size", args.size], check=True, env=env, stdout=subprocess.DEVNULL)
        print(f"built {args.size} checkpoint in {time.time() - t0:.1f} s: {ckpt} "
              f"({ckpt.stat().st_size / 2**30:.2f} GiB)", file=sys.stderr)
    segs = segments(args.segments)
    files = {}
    for key in ("src", "mt", "ref"):
        files[key] = work / f"{key}.txt"
        files[key].write_text("".join(s[key] + "\n" for s in segs), encoding="utf-8")

    # The reference, in the same environment: COMET's own CLI (always half precision) or its
    # Python API (float32; the CLI's fp16 is unusably slow on a CPU).
    fp16 = args.reference == "cli"
    t0 = time.time()
    if args.reference == "cli":
        cmd = [str(python.parent / "comet-score"), "-s", str(files["src"]), "-t", str(files["mt"]),
               "-r", str(files["ref"]), "--model", str(ckpt), "--batch_size", str(args.batch_size),
               "--gpus", str(args.gpus), "--quiet", "--to_json", str(work / "reference.json")]
    else:
        cmd = [str(python), "-I", "-c", API.format(ckpt=str(ckpt), work=str(work), bs=args.batch_size,
                                                    gpus=args.gpus)]
    ref = subprocess.run(cmd, capture_output=True, text=True, env=env)
    t_ref = time.time() - t0
    if ref.returncode != 0:
        print(ref.stderr[-3000:], file=sys.stderr)
        return 1
    ref_scores = [seg["COMET"] for seg in next(iter(json.loads((work / "reference.json").read_text()).values()))]

    cache_path = work / "cache.sqlite"
    cache_path.unlink(missing_ok=True)
    cache = RequestCache(cache_path)
    t0 = time.time()
    # Same precision as the reference (comet-score always halves the model: --xcomet-fp16).
    values, info = comet.score(segs, str(ckpt), batch_size=args.batch_size, gpus=args.gpus, fp16=fp16,
                               cache=cache)
    t_ours = time.time() - t0
    t0 = time.time()
    again, info2 = comet.score(segs, str(ckpt), batch_size=args.batch_size, gpus=args.gpus, fp16=fp16,
                               cache=cache)
    t_cached = time.time() - t0
    ours = [v["score"] for v in values]
    diff = max(abs(a - b) for a, b in zip(ours, ref_scores)) if len(ref_scores) == len(ours) else None
    n = len(segs)
    row = {"size": args.size, "segments": n, "batch_size": args.batch_size, "gpus": args.gpus,
           "reference": args.reference, "reference_s": round(t_ref, 2), "glotbench_s": round(t_ours, 2),
           "reference_seg_per_s": round(n / t_ref, 2), "glotbench_seg_per_s": round(n / t_ours, 2),
           "ratio": round(t_ref / t_ours, 3), "worker_seconds": info.get("seconds"),
           "predict_seg_per_s": round(n / info["seconds"]["predict"], 2),
           "cached_s": round(t_cached, 3), "cached_computed": info2["computed"],
           "max_abs_score_diff": diff}
    print(json.dumps(row))
    print(f"\n| size | segments | batch | reference | reference s | glotbench s | ratio | predict seg/s | "
          f"from cache s | max |Δ score| |\n|---|---|---|---|---|---|---|---|---|---|\n"
          f"| {args.size} | {n} | {args.batch_size} | {args.reference} | {t_ref:.1f} | {t_ours:.1f} | "
          f"{t_ref / t_ours:.2f}× | "
          f"{row['predict_seg_per_s']} | {t_cached:.2f} | {diff if diff is None else f'{diff:.1e}'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
