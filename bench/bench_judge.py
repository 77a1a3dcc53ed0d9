"""Benchmark: ``glotbench judge`` throughput against a local OpenAI-compatible server, same run.

Arena-Hard v0.1 answers of gpt-4-0314 and gpt-3.5-turbo-0125 are imported as two runs and
judged in both orders (500 prompts = 1000 judgments) by ``openai:scripted-judge`` on the
scripted server of ``tests/openai_server.py`` (real HTTP, real ``openai`` client), each
scenario with a fresh request cache, so every judgment is a request. Scenarios:

- ``rpm``: client ``--rpm L`` (server latency 0.25 s, concurrency 32); judgments/min over the
  wall time of ``execute`` as a ratio to L (goal >= 0.95), the server-observed rate; then the
  same with the server enforcing L itself (a sliding minute, 429 when over).
- ``tpm``: client tpm T chosen so that tokens bind at ~1000 judgments/min (estimate per
  request chars/4 + max_tokens 64, as the OpenAI-protocol client counts it); ratio to T / mean estimate.
- ``faults``: 5 % 429, 5 % 500, 2 % timeouts (client timeout 1 s), 5 % malformed verdicts, no
  limit; retries by kind, and the per-language results compared with a fault-free run.
- ``reference``: a naive sequential loop with the synchronous ``openai.OpenAI`` client (one
  request at a time, no limiter; ``--reference-requests`` of the same messages, since at
  0.25 s each the whole set would take minutes) vs glotbench unlimited at concurrency 32.

Every scenario must lose nothing: all judgments recorded, no API error, no invalid verdict.

    python bench/bench_judge.py                                  # L = 1200, 1000 judgments
    python bench/bench_judge.py --rpm 600 --judgments 200 --scenarios rpm,faults
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
ANSWERS = Path("/work/shared/data/arena_hard_v0.1/model_answer")
MODELS = ("gpt-4-0314", "gpt-3.5-turbo-0125")
FAULTS = dict(rate_429=0.05, rate_500=0.05, rate_timeout=0.02, rate_malformed=0.05, timeout_sleep=2.0)
FIELDS = ("wins", "ties", "losses", "invalid", "win_rate")


def judge(name: str, limit: str, cfg, meta, items, prompt, tmp: Path, *, latency: float, server_rpm=None,
          faults=None) -> tuple[dict, dict]:
    """One ``execute`` against a fresh server and cache: (table row, judge.json)."""
    from openai_server import Faults, OpenAIServer

    from glotbench.harness.judge.execute import execute

    with OpenAIServer(faults=Faults(**(faults or {})), latency=latency, rpm=server_rpm) as server:
        cfg = replace(cfg, base_url=server.base_url, output=str(tmp / name), cache_path=str(tmp / f"{name}.sqlite"))
        t0 = time.perf_counter()
        path = execute(cfg, meta, items, prompt, progress=False, say=lambda line: None)
        wall = time.perf_counter() - t0
        stats = server.stats()
    out = json.loads((path / "judge.json").read_text())
    c, u, times = out["counts"], out["usage"], stats["served_times"]
    lost = len(items) - c.get("judgments", 0) + c.get("api_errors", 0) + c.get("invalid", 0)
    row = {"scenario": name, "limit": limit, "judgments": c.get("judgments", 0), "wall_s": round(wall, 2),
           "judgments_per_min": round(c.get("judgments", 0) / wall * 60, 1), "ratio": None,
           "retries": u["retries"], "lost": lost, "requests_sent": u["requests_sent"],
           "reasked": c.get("reasked", 0), "server_status": stats["status"], "server_timeouts": stats["timeouts"],
           "server_per_min": round((len(times) - 1) / (times[-1] - times[0]) * 60, 1) if len(times) > 1 else None}
    return row, out


def sequential(messages: list, latency: float, max_tokens: int) -> dict:
    """The reference: one synchronous request after another, no limiter, no concurrency."""
    import openai
    from openai_server import OpenAIServer

    with OpenAIServer(latency=latency) as server:
        client = openai.OpenAI(api_key="EMPTY", base_url=server.base_url, max_retries=0, timeout=120.0)
        t0 = time.perf_counter()
        for msgs in messages:
            client.chat.completions.create(model="scripted-judge", temperature=0.0, max_tokens=max_tokens,
                                           messages=[{"role": m.role, "content": m.content} for m in msgs])
        wall = time.perf_counter() - t0
        client.close()
    return {"scenario": "reference: sequential openai.OpenAI", "limit": "none", "judgments": len(messages),
            "wall_s": round(wall, 2), "judgments_per_min": round(len(messages) / wall * 60, 1), "ratio": 1.0,
            "retries": {}, "lost": 0, "requests_sent": len(messages)}


def language_diff(a: dict, b: dict) -> list[str]:
    """Differences in wins/ties/losses/invalid/win_rate per pair, task and language."""
    diffs = []
    for pair, tasks in a.items():
        for task, s in tasks.items():
            for lang, x in s["languages"].items():
                y = b.get(pair, {}).get(task, {}).get("languages", {}).get(lang, {})
                diffs += [f"{pair} {task}/{lang} {k}: {x[k]} vs {y.get(k)}" for k in FIELDS if x[k] != y.get(k)]
    return diffs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rpm", type=float, default=1200.0, help="the configured requests/min limit L")
    ap.add_argument("--judgments", type=int, default=1000, help="judgments per scenario (N/2 prompts x 2 orders)")
    ap.add_argument("--scenarios", default="rpm,tpm,faults,reference")
    ap.add_argument("--reference-requests", type=int, default=200,
                    help="requests of the sequential reference (0: all; at 0.25 s each 1000 take ~4 min)")
    ap.add_argument("--out", default="bench/out/judge.json")
    args = ap.parse_args()
    scenarios = args.scenarios.split(",")
    unknown = set(scenarios) - {"rpm", "tpm", "faults", "reference"}
    if unknown:
        ap.error(f"unknown scenarios {sorted(unknown)}; choose from rpm,tpm,faults,reference")

    import openai  # noqa: F401 - imported once here, so the first timed execute does not pay for it

    from glotbench.harness.judge.config import JudgeConfig
    from glotbench.harness.judge.pairing import plan
    from glotbench.harness.models.openai_client import estimate_prompt_tokens
    from glotbench.harness.store.importers import import_answers

    started = time.perf_counter()
    rows, notes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = [import_answers(ANSWERS / f"{m}.jsonl", "m_arenahard", "en", tmp / m) for m in MODELS]
        base = JudgeConfig(run_a=str(runs[0]), runs_b=(str(runs[1]),), judge="openai:scripted-judge",
                           limit=max(1, args.judgments // 2), concurrency=32, max_tokens=64)
        meta, items, prompt = plan(base)
        messages = [i.messages for i in items if i.messages is not None]
        estimates = [estimate_prompt_tokens(msgs) + base.max_tokens for msgs in messages]
        L = args.rpm

        def add(row: dict, ratio: float) -> dict:
            row["ratio"] = round(ratio, 3)
            rows.append(row)
            return row

        if "rpm" in scenarios:
            cfg = replace(base, rpm=L)
            r = judge("rpm", f"client rpm {L:g}", cfg, meta, items, prompt, tmp, latency=0.25)[0]
            add(r, r["judgments_per_min"] / L)
            notes.append(f"rpm: {r['judgments_per_min']} judgments/min = {r['ratio']} x L "
                         f"({'meets' if r['ratio'] >= 0.95 else 'MISSES'} the >= 0.95 goal); server-observed "
                         f"{r['server_per_min']}/min between its first and last reply")
            r = judge("rpm+server", f"client+server rpm {L:g}", cfg, meta, items, prompt, tmp, latency=0.25,
                      server_rpm=L)[0]
            add(r, r["judgments_per_min"] / L)
            n429 = r["server_status"].get("429", 0)
            notes.append(f"rpm+server: the server, enforcing the same {L:g} rpm over a sliding minute, sent {n429} "
                         f"429s (retried; lost {r['lost']}). The client's limiter opens with an empty burst "
                         f"allowance, so no 60 s window holds more than L + 1 requests (a strict server may refuse "
                         f"that one request; it is retried)")
        if "tpm" in scenarios and estimates:
            mean = sum(estimates) / len(estimates)
            T = round(mean * 1000)
            r = judge("tpm", f"client tpm {T}", replace(base, tpm=T), meta, items, prompt, tmp, latency=0.25)[0]
            add(r, r["judgments_per_min"] / (T / mean))
            notes.append(f"tpm: estimate per request mean {mean:.0f} tokens (chars/4 + 64), T = {T} -> "
                         f"{T / mean:.0f} requests/min implied; measured {r['judgments_per_min']} ({r['ratio']} x)")
        if "faults" in scenarios:
            cfg = replace(base, timeout=1.0)
            clean, clean_out = judge("fault-free", "none", cfg, meta, items, prompt, tmp, latency=0.05)
            faulty, faulty_out = judge("faults", "none", cfg, meta, items, prompt, tmp, latency=0.05, faults=FAULTS)
            add(clean, 1.0)
            add(faulty, faulty["judgments_per_min"] / clean["judgments_per_min"])
            diff = language_diff(clean_out["results"], faulty_out["results"])
            faulty["results_vs_fault_free"] = "identical" if not diff else diff
            notes.append(f"faults: {faulty['requests_sent']} requests for {faulty['judgments']} judgments, "
                         f"retries {faulty['retries']}, {faulty['reasked']} re-asked (malformed); results vs the "
                         f"fault-free run: {'identical' if not diff else '; '.join(diff)}; ratio = vs fault-free")
        if "reference" in scenarios:
            n_ref = args.reference_requests or len(messages)
            ref = add(sequential(messages[:n_ref], 0.25, base.max_tokens), 1.0)
            r = judge("unlimited", "none", base, meta, items, prompt, tmp, latency=0.25)[0]
            add(r, r["judgments_per_min"] / ref["judgments_per_min"])
            notes.append(f"reference: sequential loop over the first {ref['judgments']} of the same messages, "
                         f"{ref['judgments_per_min']}/min; glotbench unlimited (concurrency 32) "
                         f"{r['judgments_per_min']}/min = {r['ratio']} x (server and client share this process)")
    total = time.perf_counter() - started
    lost = sum(r["lost"] for r in rows)
    result = {"judgments": len(items), "requests": len(messages), "rpm": L, "scenarios": scenarios,
              "models": list(MODELS), "wall_s_total": round(total, 1), "rows": rows, "notes": notes}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))

    print(f"glotbench judge, arena-hard v0.1 {MODELS[0]} vs {MODELS[1]}: {len(items)} judgments per scenario")
    print("| scenario | limit | judgments | wall s | judgments/min | ratio | retries | lost |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        retries = ", ".join(f"{k}: {v}" for k, v in sorted(r["retries"].items())) or "0"
        print(f"| {r['scenario']} | {r['limit']} | {r['judgments']} | {r['wall_s']} | {r['judgments_per_min']} | "
              f"{r['ratio']} | {retries} | {r['lost']} |")
    print()
    for note in notes:
        print(f"- {note}")
    for r in rows:
        print(f"{r['scenario']}: lost: {r['lost']}")
    print(f"total wall time {total:.1f} s")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
