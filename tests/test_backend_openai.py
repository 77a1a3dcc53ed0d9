"""The served-model backend (``--model openai:<name> --base-url URL``) against a real ``vllm
serve`` of the embedded model on loopback: XCOPA log-likelihoods through ``/v1/completions``
(echo + logprobs) against the HF backend, MGSM greedy generations through chat completions,
kill -9 and resume through the request cache, and the one-line refusal of a server without
prompt logprobs (the scripted chat-only server of tests/openai_server.py).

The server runs from the isolated vLLM environment (``vllm_env.ensure_env()``: built on first
use, or ``$GLOTBENCH_VLLM_ENV``), started once for the module (~40 s to load on 2 CPU cores).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from glotbench.harness.cli.main import main
from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.models.openai_backend import (
    OpenAIBackend,
    ServedIdentity,
    continuation_start,
    parse_messages,
    render_messages,
)
from glotbench.harness.run.config import RunConfig
from glotbench.harness.run.plan import generation_requests, plan

sys.path.insert(0, str(Path(__file__).resolve().parent))
from openai_server import OpenAIServer  # noqa: E402
from test_resume import cached_rows  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SERVED = "smollm2"
LOAD_TIMEOUT_S = 600


# ---- pure parts -------------------------------------------------------------------------
def test_continuation_start_follows_the_echoed_offsets():
    # "La casa era buia perché" + " il figlio": the boundary falls between tokens.
    toks = ["La", " cas", "a", " era", " bu", "ia", " perch", "é", " il", " fig", "lio"]
    offs = [0, 2, 6, 7, 11, 14, 16, 22, 23, 26, 30]
    assert continuation_start(toks, offs, len(" il figlio")) == 8
    # A BOS token the server adds (its text counted in the offsets) shifts nothing.
    assert continuation_start(["<s>"] + toks, [0] + [o + 3 for o in offs], len(" il figlio")) == 9
    # vLLM shows the leading bytes of a character split over tokens as '' at that character's
    # offset: 因为 | ' 马' (space + 3 bytes) — the two empty tokens belong to the continuation.
    toks = ["因", "为", "", "", " 马", "桶"]
    offs = [0, 1, 2, 2, 2, 4]
    assert continuation_start(toks, offs, len(" 马桶")) == 2
    # ...and those of the context's last character to the context.
    assert continuation_start(["", "为", " 马"], [0, 0, 1], len(" 马")) == 2
    # A token straddling the boundary (no space between the parts) counts as continuation.
    assert continuation_start(["ab", "cd"], [0, 2], len("d")) == 1


def test_messages_round_trip_and_plain_prompts_stay_plain():
    from glotbench.harness.core.records import ChatMessage

    msgs = [ChatMessage("system", "Be brief."), ChatMessage("user", 'Wie viel ist "2+3"?\n')]
    assert parse_messages(render_messages(msgs)) == msgs
    assert parse_messages("Question: 2+3?\nAnswer:") is None
    assert parse_messages('[{"role": "user"}]') is None  # not a message list: a plain prompt


def test_cache_key_separates_servers_and_models():
    base = dict(backend="openai", name="openai:m", weights_sha256="unknown", dtype="unknown", device="served")
    a = ServedIdentity(**base, base_url="http://a:8000/v1", served_model="m", server_root="/w")
    keys = {a.cache_key,
            ServedIdentity(**base, base_url="http://b:8000/v1", served_model="m", server_root="/w").cache_key,
            ServedIdentity(**base, base_url="http://a:8000/v1", served_model="n", server_root="/w").cache_key,
            ServedIdentity(**base, base_url="http://a:8000/v1", served_model="m", server_root="/v").cache_key}
    assert len(keys) == 4
    assert a.cache_key == ServedIdentity(**{**base, "name": "other"}, base_url="http://a:8000/v1",
                                         served_model="m", server_root="/w").cache_key


def test_base_url_is_only_for_served_models(capsys):
    assert main(["run", "--tasks", "xcopa", "--langs", "it", "--limit", "1", "--base-url", "http://x/v1",
                 "--no-progress", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("glotbench: error: --base-url http://x/v1 is for served models")


# ---- a server without prompt logprobs ------------------------------------------------------
def test_refusal_names_the_loglikelihood_tasks(tmp_path, capsys):
    """The scripted server speaks chat completions only (/v1/completions is a 404): generation
    works, log-likelihood tasks are refused in one line that names them and the fix."""
    with OpenAIServer(model="chat-only") as server:
        backend = OpenAIBackend("chat-only", base_url=server.base_url)
        assert backend.identity.cache_key.startswith(f"openai|{server.base_url}|chat-only|")
        [res] = backend.generate([generation_request(backend)])
        assert res.text and res.finish in ("stop", "eos", "length")
        backend.release()
        code = main(["run", "--model", "openai:chat-only", "--base-url", server.base_url, "--tasks",
                     "xcopa,mgsm", "--langs", "it,en", "--limit", "1", "--max-new-tokens", "8", "--no-progress",
                     "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert re.fullmatch(r"glotbench: error: openai:chat-only at http://127\.0\.0\.1:\d+/v1 cannot score "
                        r"log-likelihoods \(needed by xcopa\): it does not return log-probabilities of prompt "
                        r"tokens \(/v1/completions with echo and logprobs answered 404: .*\) — drop xcopa from "
                        r"--tasks, or serve the model with a server whose /v1/completions supports echo and "
                        r"logprobs \(vllm serve does\)", err[-1]), err[-1]
    assert not (tmp_path / "run").exists()


def test_unknown_served_model_is_one_line():
    with OpenAIServer(model="served") as server, pytest.raises(GlotbenchError, match=r"does not serve a model "
                                                               r"'other' \(it serves: served\)"):
        OpenAIBackend("other", base_url=server.base_url)


def generation_request(backend):
    from glotbench.harness.core.records import ChatMessage, GenerationRequest

    return GenerationRequest(backend.apply_chat_template([ChatMessage("user", "Say hi.")]), ("\n",), 16)


# ---- a real vllm serve --------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


@pytest.fixture(scope="module")
def vllm_server(embedded_dir, tmp_path_factory):
    """``vllm serve`` of the embedded model on loopback; yields its base URL."""
    from glotbench.harness.models import vllm_env

    python = Path(sys.executable) if vllm_env.in_process() else vllm_env.ensure_env()
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-serve") / "server.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(embedded_dir),
           "--served-model-name", SERVED, "--dtype", "float32", "--enforce-eager", "--host", "127.0.0.1",
           "--port", str(port), "--max-model-len", "2048"]
    started = time.time()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"vllm serve exited ({proc.returncode}): {log.read_text()[-2000:]}")
            if time.time() - started > LOAD_TIMEOUT_S:
                raise RuntimeError(f"vllm serve not ready after {LOAD_TIMEOUT_S} s: {log.read_text()[-2000:]}")
            try:
                if SERVED in get(f"{url}/v1/models"):
                    break
            except OSError:
                pass
            time.sleep(1)
        print(f"\nvllm serve ready in {time.time() - started:.1f} s")
        yield f"{url}/v1"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def served(vllm_server):
    backend = OpenAIBackend(SERVED, base_url=vllm_server, batch_size=8)
    yield backend
    backend.release()


@pytest.fixture(scope="module")
def hf(embedded_dir):
    from glotbench.harness.models.hf import HFBackend

    return HFBackend(str(embedded_dir), dtype="float32", device="cpu", batch_size=8)


def completions_served(base_url: str) -> float:
    """Completion requests the server's engine has finished (vLLM's own counter)."""
    metrics = get(base_url.removesuffix("/v1") + "/metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("vllm:request_success_total{"))


@pytest.mark.slow
def test_identity_names_server_and_model(served, vllm_server, embedded_dir):
    ident = served.identity
    assert (ident.backend, ident.name, ident.base_url, ident.served_model) == ("openai", "openai:smollm2",
                                                                               vllm_server, SERVED)
    assert ident.weights_sha256 == "unknown" and "not visible" in ident.note
    assert ident.server_root == str(embedded_dir) and ident.server_max_model_len == 2048
    assert served.chat_template and vllm_server in served.chat_template


@pytest.mark.slow
def test_xcopa_loglikelihoods_match_hf(served, hf):
    cfg = RunConfig(tasks=("xcopa",), langs=("it", "zh"), limit=6, data="bundled")
    units = plan(cfg)
    for unit in units:
        requests = [r for reqs in unit.requests for r in reqs]
        ours, ref = served.loglikelihood(requests), hf.loglikelihood(requests)
        diffs = [abs(a.logprob - b.logprob) for a, b in zip(ours, ref)]
        print(f"\nxcopa/{unit.lang}: {len(requests)} pairs, max |served - hf| = {max(diffs):.2e} nats")
        assert max(diffs) < 1e-3
        assert [a.n_tokens for a in ours] == [b.n_tokens for b in ref]
        assert [a.is_greedy for a in ours] == [b.is_greedy for b in ref]
        for i, prompt in enumerate(unit.prompts):  # identical predictions
            pair = slice(2 * i, 2 * i + 2)
            assert unit.task.score(prompt, ours[pair]) == unit.task.score(prompt, ref[pair])


@pytest.mark.slow
def test_mgsm_chat_generations_vs_hf(served, hf):
    cfg = RunConfig(tasks=("mgsm",), langs=("en",), limit=3, data="bundled", max_new_tokens=128)
    [unit] = plan(cfg)
    generation_requests(unit, cfg, served)
    ours = served.generate([reqs[0] for reqs in unit.requests])
    sent = parse_messages(unit.requests[0][0].prompt)
    assert sent and sent[-1].role == "user" and sent[-1].content == unit.prompts[0].question
    generation_requests(unit, cfg, hf)
    ref = hf.generate([reqs[0] for reqs in unit.requests])
    same = sum(a.text == b.text for a, b in zip(ours, ref))
    print(f"\nmgsm/en chat greedy, 128 new tokens: {same}/{len(ref)} generations identical to the HF backend")
    for a, b in zip(ours, ref):
        print(f"  served {a.finish:>6} {a.n_tokens:>3} {a.text[:70]!r}\n  hf     {b.finish:>6} {b.n_tokens:>3} "
              f"{b.text[:70]!r}")
        assert a.text and a.finish in ("stop", "eos", "length")
        # Where float paths differ the greedy paths may part, but not from the first words.
        assert a.text[:20] == b.text[:20]
        if a.text == b.text:
            assert (a.finish, a.n_tokens) == (b.finish, b.n_tokens)


@pytest.mark.slow
def test_plain_text_generation_through_completions(served, hf):
    """--chat off: the plain-text prompt goes to /v1/completions."""
    cfg = RunConfig(tasks=("mgsm",), langs=("en",), limit=2, data="bundled", max_new_tokens=48, chat="off")
    [unit] = plan(cfg)
    generation_requests(unit, cfg, served)
    assert not unit.chat and parse_messages(unit.requests[0][0].prompt) is None
    ours = served.generate([reqs[0] for reqs in unit.requests])
    ref = hf.generate([reqs[0] for reqs in unit.requests])
    print(f"\nmgsm/en plain text greedy, 48 new tokens: {sum(a.text == b.text for a, b in zip(ours, ref))}/"
          f"{len(ref)} identical to the HF backend")
    for a, b in zip(ours, ref):
        assert a.text and a.text[:20] == b.text[:20]
        if a.text == b.text:
            assert (a.finish, a.n_tokens) == (b.finish, b.n_tokens)


@pytest.mark.slow
def test_kill_9_then_resume_from_the_cache(vllm_server, tmp_path):
    db = tmp_path / "requests.sqlite"
    args = ["run", "--model", f"openai:{SERVED}", "--base-url", vllm_server, "--tasks", "xcopa", "--langs", "it",
            "--limit", "60", "--batch-size", "2", "--no-progress"]
    env = {**os.environ, "GLOTBENCH_REQUEST_CACHE": str(db)}

    def launch(out: Path) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "glotbench.harness.cli", *args, "--output", str(out)],
                                env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    proc = launch(tmp_path / "killed")
    deadline = time.time() + 300
    while cached_rows(db) == 0 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = cached_rows(db)
    assert 0 < before < 120

    proc = launch(tmp_path / "resumed")
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    resumed = json.loads((tmp_path / "resumed" / "run.json").read_text())
    assert resumed["provenance"]["requests"] == {"total": 120, "from_cache": before, "computed": 120 - before}
    model = resumed["provenance"]["model"]
    assert (model["backend"], model["base_url"], model["weights_sha256"]) == ("openai", vllm_server, "unknown")
    assert resumed["config"]["base_url"] == vllm_server

    sent = completions_served(vllm_server)
    proc = launch(tmp_path / "again")
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    again = json.loads((tmp_path / "again" / "run.json").read_text())
    assert again["provenance"]["requests"] == {"total": 120, "from_cache": 120, "computed": 0}
    assert completions_served(vllm_server) == sent, "a fully cached run sends no completion request"
    assert again["results"] == resumed["results"]
