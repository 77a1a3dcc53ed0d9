"""``glotbench run --data-parallel N``: replicas as Ray actors on a local 2-worker cluster.

The claim tested: a data-parallel run writes the same run directory as a single-process run
(byte-identical per-example records: predictions, log-likelihoods, generations; equal
results), because each replica answers exactly the chunks a single process would. The one
thing that can move a float32 sum is the thread count (ModelIdentity leaves it out), so the
single-process reference runs with the replicas' thread count (the cores / 2).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from killers import cache_killer_env

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.models.protocol import ModelIdentity

REPO = Path(__file__).resolve().parent.parent
THREADS = str(max(1, len(os.sched_getaffinity(0)) // 2))  # a replica's share of the cores at N=2


def args(model_dir: Path, out: Path, *extra: str) -> list[str]:
    # Two log-likelihood units of one chunk each (20 requests) and 10 pooled generations in 2
    # chunks of 8 and 2 (4 batches of 2): 4 chunks, so each replica gets work.
    return ["run", "--model", f"hf:{model_dir}", "--tasks", "xcopa,mgsm", "--langs", "sw,zh", "--limit", "5",
            "--batch-size", "2", "--max-new-tokens", "16", "--device", "cpu", "--dtype", "float32",
            "--no-progress", "--output", str(out), *extra]


def glotbench(argv: list[str], db: Path, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "GLOTBENCH_REQUEST_CACHE": str(db), **env}
    return subprocess.run([sys.executable, "-m", "glotbench.harness.cli", *argv], env=full, cwd=REPO,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir) -> dict[int, Path]:
    tmp = tmp_path_factory.mktemp("dp")
    out = {}
    for n in (1, 2):
        started = time.time()
        done = glotbench(args(tiny_model_dir, tmp / f"n{n}", "--data-parallel", str(n)), tmp / f"c{n}.sqlite",
                         OMP_NUM_THREADS=THREADS)
        assert done.returncode == 0, done.stderr[-3000:]
        print(f"--data-parallel {n}: {time.time() - started:.1f} s")
        out[n] = tmp / f"n{n}"
    return out


def records(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted((run / "samples").rglob("*.jsonl"))}


def test_two_replicas_write_the_run_one_process_writes(runs):
    one, two = (json.loads((runs[n] / "run.json").read_text()) for n in (1, 2))
    assert set(records(runs[1])) == {"samples/xcopa/sw.jsonl", "samples/xcopa/zh.jsonl",
                                     "samples/mgsm/sw.jsonl", "samples/mgsm/zh.jsonl"}
    assert records(runs[2]) == records(runs[1]), "per-example records differ"
    assert two["results"] == one["results"] and two["averages"] == one["averages"]
    assert two["provenance"]["tasks"] == one["provenance"]["tasks"]
    assert two["provenance"]["requests"] == one["provenance"]["requests"] == \
        {"total": 30, "from_cache": 0, "computed": 30}
    assert two["provenance"]["model"] == one["provenance"]["model"]
    assert {k: v for k, v in two["config"].items() if k not in ("data_parallel", "output")} == \
        {k: v for k, v in one["config"].items() if k not in ("data_parallel", "output")}
    dp = two["provenance"]["data_parallel"]
    assert "data_parallel" not in one["provenance"]
    assert dp["replicas"] == 2 and dp["ray_address"] == "local"
    assert dp["replica_cache_key"].startswith(f"hf|{one['provenance']['model']['weights_sha256']}|float32|cpu|")
    assert len({h["pid"] for h in dp["hosts"]}) == 2
    assert all(h["chunks"] > 0 for h in dp["hosts"]), f"a replica answered nothing: {dp['hosts']}"
    assert sum(h["chunks"] for h in dp["hosts"]) == 2 + 2  # 2 xcopa chunks (1 a language) + 2 mgsm
    assert all(h["torch_threads"] == int(THREADS) for h in dp["hosts"])


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(pid)
    return out


def test_a_data_parallel_run_killed_with_9_resumes_from_the_cache(tmp_path, tiny_model_dir, runs):
    db, out = tmp_path / "cache.sqlite", tmp_path / "run"
    argv = args(tiny_model_dir, out, "--data-parallel", "2")
    env = cache_killer_env(tmp_path / "hook", db, 1,
                           {**os.environ, "GLOTBENCH_REQUEST_CACHE": str(db), "OMP_NUM_THREADS": THREADS})
    proc = subprocess.Popen([sys.executable, "-m", "glotbench.harness.cli", *argv], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ray_pids: dict[int, str] = {}
    while proc.poll() is None:  # the local cluster's processes, seen while the driver lives
        for pid in descendants(proc.pid):
            ray_pids[pid] = cmdline(pid) or ray_pids.get(pid, "")  # the last name (Ray renames its agents)
        time.sleep(0.2)
    _, stderr = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, stderr[-3000:]
    assert not out.exists()
    assert any("raylet" in c for c in ray_pids.values()), "the local Ray cluster was never seen"
    # The cluster shares the driver's fate: GCS, raylet and the replicas (the memory) at once;
    # ray[default]'s two agents exit on their own once their GCS calls time out (~1 min).
    agents = {p for p, c in ray_pids.items()
              if any(a in c for a in ("DashboardAgent", "RuntimeEnvAgent", "dashboard/agent.py", "runtime_env/agent"))}
    deadline = time.time() + 30
    while alive(set(ray_pids) - agents) and time.time() < deadline:
        time.sleep(0.5)
    assert not alive(set(ray_pids) - agents), "a killed driver left its local Ray cluster running"

    done = glotbench(argv, db, OMP_NUM_THREADS=THREADS)
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = json.loads((out / "run.json").read_text())
    requests = resumed["provenance"]["requests"]
    assert requests["total"] == 30 and 0 < requests["from_cache"] < 30
    assert requests["from_cache"] + requests["computed"] == 30
    clean = json.loads((runs[1] / "run.json").read_text())
    assert resumed["results"] == clean["results"]
    # The chunks after a resume start elsewhere (as in a single-process resume): batches
    # differ, so log-likelihoods may move in the last float digits; predictions do not.
    for name, data in records(runs[1]).items():
        a = [json.loads(line) for line in data.decode().splitlines()]
        b = [json.loads(line) for line in (out / name).read_text().splitlines()]
        assert [r.get("pred", r.get("output")) for r in a] == [r.get("pred", r.get("output")) for r in b]
        for x, y in zip(a, b):
            for cx, cy in zip(x.get("choices", []), y.get("choices", [])):
                assert abs(cx["logprob"] - cy["logprob"]) < 1e-4
    deadline = time.time() + 120
    while alive(agents) and time.time() < deadline:
        time.sleep(1)
    assert not alive(agents), "Ray's agents outlived their killed cluster"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("extra, message", [
    (["--data-parallel", "0"], "--data-parallel 0 must be >= 1"),
    (["--ray-address", "127.0.0.1:6379"], "without --data-parallel > 1"),
    (["--data-parallel", "2", "--ray-address", "127.0.0.1:{port}"], "cannot reach the Ray cluster at 127.0.0.1:"),
    (["--data-parallel", "2", "--ray-address", "no-port"], "is not host:port"),
])
def test_bad_flags_are_one_line_errors(tmp_path, tiny_model_dir, extra, message):
    extra = [a.format(port=free_port()) for a in extra]
    done = glotbench(args(tiny_model_dir, tmp_path / "run", *extra), tmp_path / "c.sqlite")
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("glotbench: error: ") and message in lines[0], done.stderr
    assert not (tmp_path / "run").exists()


def test_without_ray_one_replica_runs_and_more_ask_for_the_extra(tmp_path, tiny_model_dir):
    hook = tmp_path / "no-ray" / "ray"
    hook.mkdir(parents=True)
    (hook / "__init__.py").write_text("raise ImportError('ray is not installed (test)')\n", encoding="utf-8")
    env = {"PYTHONPATH": os.pathsep.join([str(hook.parent), os.environ.get("PYTHONPATH", "")])}
    small = ["--tasks", "xcopa", "--langs", "sw", "--limit", "2"]
    argv = [*args(tiny_model_dir, tmp_path / "one"), *small]
    done = glotbench(argv, tmp_path / "c.sqlite", **env)
    assert done.returncode == 0, done.stderr[-3000:]  # --data-parallel 1 never imports ray
    argv = [*args(tiny_model_dir, tmp_path / "two"), *small, "--data-parallel", "2"]
    done = glotbench(argv, tmp_path / "c.sqlite", **env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "glotbench: error: --data-parallel needs Ray, which is not installed — pip install 'glotbench[ray]' "
        "(or run with --data-parallel 1)"]


def test_replicas_that_would_compute_differently_are_refused():
    from glotbench.harness.run.parallel import same_identity

    a = ModelIdentity("hf", "m", "abc", "float32", "cuda", hardware="NVIDIA H100")
    b = ModelIdentity("hf", "m", "abc", "float32", "cuda", hardware="NVIDIA A100")
    assert same_identity([(a, {"host": "n1"}), (a, {"host": "n2"})]) is a
    with pytest.raises(GlotbenchError, match="replica 1 on n2 computes differently from replica 0 on n1 "
                                             r"\(hardware 'NVIDIA H100' vs 'NVIDIA A100'\)"):
        same_identity([(a, {"host": "n1"}), (b, {"host": "n2"})])
